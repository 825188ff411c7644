"""Imaging transcriptomics: AHBA expression, gene-map association, spatial nulls, enrichment."""
