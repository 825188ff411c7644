"""Cerebral blood flow from BIDS ASL: quantification, kinetic models, perfusion helpers."""
