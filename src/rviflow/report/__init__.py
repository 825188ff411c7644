"""The self-contained HTML report: document, figures, sections, methods text."""
