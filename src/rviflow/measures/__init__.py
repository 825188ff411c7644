"""Per-subject measures: the registry describing each once, and each measure's science."""
