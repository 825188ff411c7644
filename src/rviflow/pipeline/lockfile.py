"""Lock-file lines and installed distributions, with the standard library only.

``setup.sh`` runs this file as a script with each venv's own interpreter (the abagen venv has no
rviflow and no ``packaging``): ``python lockfile.py prune LOCK`` uninstalls what the lock does not
hold; ``python lockfile.py installed`` prints {canonical name: version} as JSON (tests compare it
with the lock). :mod:`rviflow.pipeline.envlock` parses locks with the same pattern and names.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import sys
from pathlib import Path

#: ``name==version [; marker] [\\]`` of a pip requirements lock (hash lines do not match)
LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")
#: what a venv may hold beyond its lock: the installer, and rviflow itself (editable)
ALWAYS = {"pip", "rviflow"}


def canonical(name: str) -> str:
    """PEP 503 normalised project name (as ``packaging.utils.canonicalize_name``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_names(path: str | Path) -> set[str]:
    """Canonical names of every pin in a lock (whatever its marker)."""
    return {canonical(m.group(1)) for line in Path(path).read_text().splitlines()
            if (m := LOCK_LINE.match(line.strip()))}


def installed() -> dict[str, str]:
    """{canonical name: version} of the running interpreter's distributions."""
    return {canonical(d.metadata["Name"]): d.version for d in md.distributions()}


def prune(lock: str | Path) -> list[str]:
    """Uninstall the distributions the lock does not hold (an older lock's); returns their names."""
    extra = sorted(set(installed()) - lock_names(lock) - ALWAYS)
    if extra:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", *extra], check=True)
    return extra


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "prune":
        prune(args[0])
    elif cmd == "installed":
        print(json.dumps(installed()))
    else:
        sys.exit(f"lockfile.py: unknown command {cmd} (prune LOCK | installed)")
