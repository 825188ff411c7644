"""rviflow: ReHo, CBF and regional vulnerability in depression, at cohort scale."""

__version__ = "0.1.0"
