"""Write measured false-positive rates and power to benchmarks/results/calibration.md.

Each calibration test calls :func:`record` with its own section name; the file keeps one
Markdown section per name (between HTML comment markers), so test modules written apart
never overwrite each other's rows. The machine info heads the file.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

from scipy import stats

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "calibration.md"
HEADER = ("# Calibration of rviflow's p-values\n\n"
          "Written by the calibration tests (tests/test_calibration_*.py): for every p-value rviflow\n"
          "writes, the false-positive rate at alpha = 0.05 under a null simulated like real data, the\n"
          "binomial 99% interval it must lie in, and the power for a planted effect.\n\n")


def binomial_interval(n_sim: int, alpha: float = 0.05, level: float = 0.99) -> tuple[float, float]:
    """Central ``level`` interval of the rejection rate of ``n_sim`` independent tests at ``alpha``."""
    lo, hi = stats.binom.interval(level, n_sim, alpha)
    return lo / n_sim, hi / n_sim


def record(section: str, rows: list[dict], note: str = "") -> None:
    """Replace ``section`` in calibration.md by a table of ``rows`` (dicts with the same keys)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    if not text.startswith("# "):
        text = HEADER + text
    cols = list(rows[0]) if rows else []
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    table = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    table += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    stamp = (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    body = f"## {section}\n\n{note.strip()}\n\n" + "\n".join(table) + f"\n\n_Measured {stamp}._\n"
    block = f"<!-- begin:{section} -->\n{body}<!-- end:{section} -->\n"
    pattern = re.compile(rf"<!-- begin:{re.escape(section)} -->.*?<!-- end:{re.escape(section)} -->\n", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(text)
