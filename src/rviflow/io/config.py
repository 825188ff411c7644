"""The config's defaults, read from its JSON schema: the one place they are written.

``workflow/schemas/config.schema.yaml`` documents every key with its default; Snakemake fills
them in when it validates a config. The command-line tools that run one step outside Snakemake
(``rviflow reho``, ``rviflow cbf``) take their defaults from here, and the nipype interfaces
and step functions take every configurable value explicitly, so a default is never written
twice (``config/config.yaml`` repeats them for the reader; a test keeps it equal to the schema).
"""

from __future__ import annotations

import functools
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


def _defaults(node: dict):
    if node.get("type") == "object" and "properties" in node:
        out = {k: _defaults(v) for k, v in node["properties"].items()}
        return {k: v for k, v in out.items() if v is not _NONE}
    return node.get("default", _NONE)


_NONE = object()


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA.read_text())


def schema_defaults(section: str | None = None) -> dict:
    """The schema's defaults (nested dict; keys without a default are absent), of one top-level
    ``section`` (e.g. "reho", "cbf") or of the whole config."""
    out = _defaults(_schema())
    return dict(out[section]) if section else out
