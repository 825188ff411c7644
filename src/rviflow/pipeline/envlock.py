"""The version lock: exact, hashed versions of every package, and the per-rule conda envs derived from it.

rviflow's declared dependencies are ranges (``pyproject.toml``; ``locks/abagen.in`` for abagen's own
environment). ``rviflow lock`` resolves them once, with hashes, into ``locks/main.txt`` and
``locks/abagen.txt`` (``uv pip compile --universal --generate-hashes``, Python 3.11, any platform),
then rewrites the version of every pin in ``envs/*.yaml`` from those locks. ``setup.sh`` installs
exactly the locks (``pip install --require-hashes``), so two machines a month apart get the same
versions and the venvs and the conda environments can never disagree; a new release of any
dependency changes nothing until someone re-locks on purpose. Each lock's header records a digest
of the ranges it was resolved from: a range edited without re-locking is found by
:func:`check` (and the tests) without a network.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

from rviflow.pipeline.lockfile import LOCK_LINE, canonical

REPO = Path(__file__).resolve().parents[3]
LOCKS = REPO / "locks"
ENVS = REPO / "envs"
#: lock name -> (file its ranges come from, the envs/*.yaml derived from it ('*' = all others))
LOCK_SOURCES = {"main": "pyproject.toml", "abagen": "locks/abagen.in"}
ENV_LOCK = {"abagen.yaml": "abagen"}     # every other env derives from the main lock
#: packages that shape rviflow's numbers or run it: listed by ``rviflow --version``, in the methods
#: text and in dataset_description.json
KEY_PACKAGES = ("numpy", "scipy", "pandas", "nibabel", "nilearn", "nipype", "statsmodels", "scikit-learn",
                "neuroharmonize", "brainsmash", "gseapy", "antspyx", "nitransforms", "matplotlib", "snakemake",
                "snakemake-executor-plugin-slurm")
#: build tools resolved into the lock so that the editable install needs nothing unpinned
BUILD_TOOLS = ("setuptools>=68", "wheel")
PYTHON = "3.11"
DIGEST_LINE = re.compile(r"^# ranges-sha256: ([0-9a-f]{64})$", re.M)
CONDA_PIN = re.compile(r"^(\s*-\s*)([A-Za-z0-9_.-]+)(==?)([0-9][0-9A-Za-z.]*)(.*)$")


class LockError(RuntimeError):
    """The lock, the declared ranges and the envs disagree (message names file and package)."""


@dataclass(frozen=True)
class Pin:
    name: str          # canonical name (PEP 503)
    version: str
    marker: str        # environment marker or ''

    def applies(self, python: str | None = None) -> bool:
        """Whether this pin is for the running interpreter (or for Linux + Python ``python``)."""
        if not self.marker:
            return True
        env = None if python is None else {"python_version": python, "python_full_version": f"{python}.0",
                                           "sys_platform": "linux", "platform_system": "Linux",
                                           "platform_machine": "x86_64", "implementation_name": "cpython",
                                           "platform_python_implementation": "CPython", "os_name": "posix"}
        return Marker(self.marker).evaluate(env)


def declared_ranges(lock: str, repo: Path = REPO) -> list[str]:
    """The requirement strings a lock is resolved from (pyproject dependencies + test extra, or abagen.in)."""
    src = repo / LOCK_SOURCES[lock]
    if src.suffix == ".toml":
        project = tomllib.loads(src.read_text())["project"]
        reqs = list(project["dependencies"]) + list(project.get("optional-dependencies", {}).get("test", []))
    else:
        reqs = [ln.split("#")[0].strip() for ln in src.read_text().splitlines()]
    return [r for r in reqs if r] + list(BUILD_TOOLS)


def ranges_digest(lock: str, repo: Path = REPO) -> str:
    """sha256 of the normalised declared ranges: changes exactly when a range changes."""
    norm = sorted(str(Requirement(r)) for r in declared_ranges(lock, repo))
    return hashlib.sha256("\n".join(norm).encode()).hexdigest()


def read_lock(path: Path) -> list[Pin]:
    """Every ``name==version [; marker]`` of a pip requirements lock (hash lines skipped)."""
    pins = []
    for line in path.read_text().splitlines():
        m = LOCK_LINE.match(line.strip())
        if m:
            pins.append(Pin(canonical(m.group(1)), m.group(2), (m.group(3) or "").strip()))
    if not pins:
        raise LockError(f"{path}: no name==version lines (not a lock file?)")
    return pins


def locked(lock: str = "main", repo: Path = REPO, python: str | None = PYTHON) -> dict[str, str]:
    """{canonical name: version} of a lock for Linux + ``python`` (None: the running interpreter)."""
    return {p.name: p.version for p in read_lock(repo / "locks" / f"{lock}.txt") if p.applies(python)}


def check(repo: Path = REPO) -> list[str]:
    """Problems between the declared ranges, the locks and envs/*.yaml, one line each ([] = consistent)."""
    problems = []
    for lock in LOCK_SOURCES:
        path = repo / "locks" / f"{lock}.txt"
        if not path.is_file():
            problems.append(f"{path}: missing; run `rviflow lock`")
            continue
        m = DIGEST_LINE.search(path.read_text())
        if not m or m.group(1) != ranges_digest(lock, repo):
            problems.append(f"{path}: resolved from other ranges than {LOCK_SOURCES[lock]} declares now; "
                            "run `rviflow lock` to re-resolve")
        pins = locked(lock, repo)
        for req in map(Requirement, declared_ranges(lock, repo)):
            if req.marker is not None and not req.marker.evaluate({"python_version": PYTHON}):
                continue
            got = pins.get(canonical(req.name))
            if got is None:
                problems.append(f"{path}: {req.name} (declared {req}) is not in the lock")
            elif not req.specifier.contains(Version(got), prereleases=True):
                problems.append(f"{path}: {req.name}=={got} is outside the declared range {req}")
    for env in sorted((repo / "envs").glob("*.yaml")):
        lock = ENV_LOCK.get(env.name, "main")
        try:
            want = render_env(env.read_text(), locked(lock, repo), env.name)
        except (LockError, FileNotFoundError) as exc:
            problems.append(str(exc))
            continue
        if want != env.read_text():
            problems.append(f"{env}: pins differ from locks/{lock}.txt; run `rviflow lock --envs-only`")
    return problems


def render_env(text: str, pins: dict[str, str], name: str = "env") -> str:
    """``text`` (a conda env YAML) with every ``- pkg=ver`` / ``- pkg==ver`` set to the locked version.

    Comments and order are kept. ``python`` keeps its minor version (the lock is for one Python);
    ``pip`` is the installer conda uses, not a locked package, and keeps its pin. A pinned package
    that the lock does not hold is an error: an env cannot ask for what the venv does not test.
    """
    out = []
    for line in text.splitlines(keepends=True):
        m = CONDA_PIN.match(line.rstrip("\n"))
        if m and m.group(2).lower() not in ("python", "pip"):
            key = canonical(m.group(2))
            if key not in pins:
                raise LockError(f"envs/{name}: {m.group(2)} is pinned but not in the lock; add it to the "
                                "declared ranges or remove it from the env")
            line = f"{m.group(1)}{m.group(2)}{m.group(3)}{pins[key]}{m.group(5)}\n"
        out.append(line)
    return "".join(out)


def write_envs(repo: Path = REPO) -> list[Path]:
    """Rewrite every envs/*.yaml's pins from its lock; returns the files that changed."""
    changed = []
    for env in sorted((repo / "envs").glob("*.yaml")):
        text = env.read_text()
        new = render_env(text, locked(ENV_LOCK.get(env.name, "main"), repo), env.name)
        if new != text:
            env.write_text(new)
            changed.append(env)
    return changed


def compile_locks(repo: Path = REPO, upgrade: bool = False) -> None:
    """Resolve each lock from its declared ranges with uv (needs the registry; a developer's step).

    ``upgrade`` re-resolves every package to the newest allowed; without it uv keeps the versions
    already locked where the ranges still allow them (a minimal change).
    """
    try:
        subprocess.run([sys.executable, "-m", "uv", "--version"], check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError):
        raise LockError("rviflow lock: uv is not installed in this Python; `python -m pip install uv` first") from None
    for lock in LOCK_SOURCES:
        out = repo / "locks" / f"{lock}.txt"
        src = repo / "locks" / f".{lock}.in"
        src.write_text("\n".join(declared_ranges(lock, repo)) + "\n")
        try:
            cmd = [sys.executable, "-m", "uv", "pip", "compile", str(src.relative_to(repo)), "--universal",
                   "--generate-hashes", "--python-version", PYTHON, "--no-header", "--quiet",
                   "--output-file", str(out.relative_to(repo))] + (["--upgrade"] if upgrade else [])
            subprocess.run(cmd, check=True, cwd=repo)
        finally:
            src.unlink()
        header = (f"# rviflow's {lock} lock: exact versions with hashes, for Python {PYTHON} on any platform.\n"
                  f"# Resolved from {LOCK_SOURCES[lock]} by `rviflow lock` (uv pip compile --universal\n"
                  f"# --generate-hashes); setup.sh installs it with pip --require-hashes. Do not edit by hand.\n"
                  f"# ranges-sha256: {ranges_digest(lock, repo)}\n")
        out.write_text(header + out.read_text())
    write_envs(repo)


def installed_versions(packages=KEY_PACKAGES) -> dict[str, str]:
    """{name: version} of ``packages`` installed in this Python (absent ones left out)."""
    out = {}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def drift(repo: Path = REPO) -> dict[str, tuple[str, str]]:
    """{package: (installed, locked)} for every main-lock package installed at another version."""
    try:
        pins = locked("main", repo, python=None)
    except (FileNotFoundError, LockError):
        return {}
    out = {}
    for name, version in pins.items():
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            continue
        if Version(have) != Version(version):
            out[name] = (have, version)
    return out


def lock_digest(repo: Path = REPO) -> str | None:
    """sha256 of locks/main.txt (identifies the exact environment), None without a lock."""
    path = repo / "locks" / "main.txt"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def version_text(rviflow_version: str, repo: Path = REPO) -> str:
    """What ``rviflow --version`` prints: rviflow, Python, the key packages, and any drift from the lock."""
    lines = [f"rviflow {rviflow_version} (Python {sys.version.split()[0]})"]
    digest = lock_digest(repo)
    lines.append(f"lock: locks/main.txt sha256 {digest[:12]}" if digest else "lock: none (not a repository install)")
    lines += [f"  {k} {v}" for k, v in installed_versions().items()]
    for pkg, (have, want) in sorted(drift(repo).items()):
        lines.append(f"  WARNING: {pkg} {have} is installed, the lock has {want} (run `bash setup.sh`)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``rviflow lock [--check | --envs-only | --upgrade]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="rviflow lock", description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="only check ranges, locks and envs agree (offline)")
    g.add_argument("--envs-only", action="store_true", help="only rewrite envs/*.yaml from the existing locks")
    g.add_argument("--upgrade", action="store_true", help="re-resolve everything to the newest allowed versions")
    a = ap.parse_args(argv)
    try:
        if a.envs_only:
            print("\n".join(f"rewrote {p}" for p in write_envs()) or "envs/*.yaml already agree with the locks")
        elif not a.check:
            compile_locks(upgrade=a.upgrade)
    except LockError as exc:
        print(exc, file=sys.stderr)
        return 1
    problems = check()
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(json.dumps({lock: len(locked(lock)) for lock in LOCK_SOURCES}) + " packages locked; envs agree")
    return 1 if problems else 0
