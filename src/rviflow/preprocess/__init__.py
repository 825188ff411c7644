"""Per-scan preparation shared by measures: denoising, registration, parcellation."""
