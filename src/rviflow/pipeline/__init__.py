"""Running steps: nipype interfaces, batch mode, the script runner, outcomes, locks."""
