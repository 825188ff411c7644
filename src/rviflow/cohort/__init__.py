"""Cohort statistics: tables, harmonisation, effect sizes, co-localisation, RVI, prediction."""
