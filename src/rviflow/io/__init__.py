"""Reading and naming files: BIDS/fMRIPrep discovery, ASL inputs, scan choice, shipped resources."""
