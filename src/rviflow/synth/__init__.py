"""Synthetic cohorts with a planted truth, for the demo and the tests."""
