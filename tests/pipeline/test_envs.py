"""The version lock (locks/*.txt), the per-rule conda environments (envs/*.yaml) and `snakemake --lint`.

setup.sh installs exactly locks/main.txt (and locks/abagen.txt into .venv-abagen) with pip
--require-hashes; envs/*.yaml are derived from the same locks by `rviflow lock`. These tests fail
when a declared range in pyproject.toml / locks/abagen.in is edited without re-locking, when the
lock leaves a declared range, when an env's pin is not the lock's, and when the venv has drifted
from the lock. A new release of a dependency on the registry can change none of them.

Conda cannot run here, so the environments are checked as files: every rule names one that
exists, each parses, uses conda-forge/bioconda only, pins every dependency exactly, and its pins
agree with what is installed in this venv and with pyproject.toml. abagen's own environment is
the one place numpy / pandas differ on purpose (< 2: abagen's expression code breaks on pandas 2);
its pins are compared with .venv-abagen (setup.sh) instead.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import REPO, write_config

ENVS = REPO / "envs"
CHANNELS = {"conda-forge", "bioconda", "nodefaults"}
CONDA_PIN = re.compile(r"^([A-Za-z0-9_.-]+)=([0-9][0-9A-Za-z.]*)$")   # name=1.2.3, no wildcards / ranges
PIP_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.]*)$")
#: environments whose pins deliberately differ from the main venv: {env: {package: requirement}}
OWN_PINS = {"abagen.yaml": {"numpy": "numpy<2", "pandas": "pandas<2"}}
#: environments mirrored by another venv (setup.sh), whose installed versions they must match
OWN_VENV = {"abagen.yaml": REPO / ".venv-abagen" / "bin" / "python"}
#: build tools, not runtime packages: pinned, but not compared with the venv
TOOLS = {"pip"}
RULE_HEADER = re.compile(r"^(\s*)rule\s*(\w*)\s*:", re.M)


def _env_files():
    return sorted(ENVS.glob("*.yaml"))


def _pins(env: dict) -> list[tuple[str, str, str]]:
    """(kind, name, version) of every dependency; unpinned ones raise AssertionError."""
    out = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"]:
                m = PIP_PIN.match(spec.strip())
                assert m, f"pip dependency {spec!r} is not pinned as name==version"
                out.append(("pip", m.group(1), m.group(2)))
        else:
            m = CONDA_PIN.match(str(dep).strip())
            assert m, f"conda dependency {dep!r} is not pinned as name=version"
            out.append(("conda", m.group(1), m.group(2)))
    return out


def _rule_envs() -> dict[str, str | None]:
    """Rule name (or file:line) -> env file named in its conda: directive, for every rule in every .smk."""
    found = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "Snakefile"]:
        text = smk.read_text()
        heads = list(RULE_HEADER.finditer(text))
        for i, h in enumerate(heads):
            block = text[h.end(): heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            if not re.search(r"^\s*(script|shell|run|wrapper|notebook)\s*:", block, re.M):
                continue  # target-only rules (rule all) run nothing
            name = h.group(2) or re.search(r"name:\s*\n\s*(.+)", block).group(1).strip()
            env = re.search(r"^\s*conda:\s*\n\s*(.+)$", block, re.M)
            file = re.search(r"[\"']([\w.-]+\.ya?ml)[\"']", env.group(1)) if env else None
            found[f"{smk.name}:{name}"] = file.group(1) if file else None
    return found


def test_every_rule_names_an_env_that_exists():
    rules = _rule_envs()
    assert len(rules) >= 6, rules  # the ReHo chain and the cohort rules at least
    missing = {r: e for r, e in rules.items() if e is None}
    assert not missing, f"rules without a conda: envs/<name>.yaml: {sorted(missing)}"
    absent = {r: e for r, e in rules.items() if not (ENVS / e).is_file()}
    assert not absent, f"rules naming an env file that does not exist: {absent}"


@pytest.mark.parametrize("path", _env_files(), ids=lambda p: p.name)
def test_env_parses_and_is_fully_pinned(path):
    env = yaml.safe_load(path.read_text())
    assert set(env) >= {"channels", "dependencies"}, path.name
    assert set(env["channels"]) <= CHANNELS and "conda-forge" in env["channels"], env["channels"]
    assert "defaults" not in env["channels"]
    pins = _pins(env)
    names = [n.lower() for _, n, _ in pins]
    assert "python" in names and len(names) == len(set(names)), names


@pytest.mark.parametrize("path", _env_files(), ids=lambda p: p.name)
def test_env_pins_agree_with_installed_versions(path):
    own = OWN_PINS.get(path.name, {})
    pins = _pins(yaml.safe_load(path.read_text()))
    python = OWN_VENV.get(path.name)
    if python is not None and not python.exists():
        python = None  # no mirror venv here: only the OWN_PINS constraints are checked
    if python is not None:
        code = ("import importlib.metadata as m, json, sys\n"
                "def v(n):\n    try: return m.version(n)\n    except m.PackageNotFoundError: return None\n"
                "print(json.dumps({n: v(n) for n in sys.argv[1:]}))")
        proc = subprocess.run([str(python), "-c", code, *[n for _, n, _ in pins]], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        installed_in = json.loads(proc.stdout).get
    else:
        def installed_in(name):
            try:
                return md.version(name)
            except md.PackageNotFoundError:
                return None
    wrong = []
    for _, name, version in pins:
        key = name.lower()
        if key == "python":
            here = f"{sys.version_info.major}.{sys.version_info.minor}"
            if version != here:
                wrong.append(f"python={version} (tests run on {here})")
            continue
        if key in own and not Requirement(own[key]).specifier.contains(version):
            wrong.append(f"{name}={version} (must satisfy {own[key]})")
        if key in TOOLS or (key in own and python is None):
            continue
        installed = installed_in(name)
        if installed is None:
            wrong.append(f"{name}={version} (not installed in {python or 'this venv'})")
        elif Version(installed) != Version(version):
            wrong.append(f"{name}={version} (installed in {python or 'this venv'}: {installed})")
    assert not wrong, f"{path.name}: " + "; ".join(wrong)


@pytest.mark.parametrize("path", _env_files(), ids=lambda p: p.name)
def test_env_pins_satisfy_pyproject(path):
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {Requirement(d).name.lower().replace("_", "-"): Requirement(d) for d in deps}
    own = OWN_PINS.get(path.name, {})
    bad = [f"{n}={v} vs pyproject {wanted[n.lower()]}" for _, n, v in _pins(yaml.safe_load(path.read_text()))
           if n.lower() in wanted and n.lower() not in own
           and not wanted[n.lower()].specifier.contains(v, prereleases=True)]
    assert not bad, f"{path.name}: " + "; ".join(bad)


def test_locks_agree_with_declared_ranges_and_envs():
    """`rviflow lock --check`: offline; every declared range is in the lock and satisfied, the ranges'
    digest recorded in the lock is today's, every env pin is the lock's."""
    from rviflow.pipeline import envlock

    assert envlock.check() == []
    main = envlock.locked("main")
    assert len(main) > 50 and main["numpy"].startswith("1.") and "snakemake" in main


def test_every_lock_line_is_hashed():
    """pip --require-hashes needs a hash for every requirement: each name==version line is followed by
    --hash lines (several: one per wheel / sdist, so the lock installs on other platforms too)."""
    for lock in ("main", "abagen"):
        text = (REPO / "locks" / f"{lock}.txt").read_text()
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 4)[-1])
        entries = [b for b in blocks if re.match(r"[A-Za-z0-9][\w.-]*==", b)]
        assert len(entries) >= 10, lock
        unhashed = [b.split()[0] for b in entries if "--hash=sha256:" not in b]
        assert not unhashed, f"locks/{lock}.txt: no hash for {unhashed}"


def test_venv_is_the_lock():
    """What setup.sh installed is exactly the lock (no package at another version)."""
    from rviflow.pipeline import envlock

    assert envlock.drift() == {}, envlock.drift()
    abagen_py = REPO / ".venv-abagen" / "bin" / "python"
    helper = REPO / "src" / "rviflow" / "pipeline" / "lockfile.py"  # stdlib-only: runs in the abagen venv
    have = json.loads(subprocess.run([str(abagen_py), str(helper), "installed"], capture_output=True, text=True,
                                     check=True).stdout)
    wrong = {k: (have.get(k), v) for k, v in envlock.locked("abagen").items() if have.get(k) != v}
    assert not wrong, f".venv-abagen differs from locks/abagen.txt: {wrong}"


def test_a_range_edited_without_relocking_is_caught(tmp_path):
    """The check is not vacuous: a copy of the repository's lock inputs with one range moved, or one env
    pin edited, or a lock version outside its range, each gives a one-line problem naming the file."""
    import shutil

    from rviflow.pipeline import envlock

    for part in ("pyproject.toml", "locks", "envs"):
        (shutil.copytree if (REPO / part).is_dir() else shutil.copy)(REPO / part, tmp_path / part)
    assert envlock.check(tmp_path) == []
    py = tmp_path / "pyproject.toml"
    py.write_text(py.read_text().replace('"pyyaml>=6"', '"pyyaml>=6,<6.0.2"'))
    problems = envlock.check(tmp_path)
    assert any("resolved from other ranges" in p for p in problems), problems
    assert any("pyyaml==" in p and "outside the declared range" in p for p in problems), problems
    shutil.copy(REPO / "pyproject.toml", py)
    env = tmp_path / "envs" / "cohort.yaml"
    env.write_text(re.sub(r"scipy=[0-9.]+", "scipy=1.14.0", env.read_text()))
    assert [p for p in envlock.check(tmp_path) if "cohort.yaml" in p], envlock.check(tmp_path)
    envlock.write_envs(tmp_path)       # the same command that derives them repairs them
    assert envlock.check(tmp_path) == []


def test_render_env_sets_locked_versions_and_refuses_unlocked_packages():
    from rviflow.pipeline.envlock import LockError, render_env

    text = "dependencies:\n  - python=3.11\n  - numpy=1.0.0  # why\n  - pip=23.2.1\n  - pip:\n      - abagen==0.0.1\n"
    out = render_env(text, {"numpy": "1.26.4", "abagen": "0.1.3"})
    assert out == text.replace("1.0.0", "1.26.4").replace("0.0.1", "0.1.3")  # python, pip, comments kept
    with pytest.raises(LockError, match="envs/x.yaml: numpy is pinned but not in the lock"):
        render_env(text, {"abagen": "0.1.3"}, "x.yaml")


def test_version_lists_the_locked_versions():
    from rviflow.pipeline import envlock

    out = subprocess.run([str(REPO / ".venv" / "bin" / "rviflow"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lock = envlock.locked("main")
    for pkg in ("numpy", "nilearn", "snakemake", "neuroharmonize"):
        assert f"  {pkg} {lock[pkg]}\n" in out.stdout + "\n", out.stdout
    assert "WARNING" not in out.stdout and envlock.lock_digest()[:12] in out.stdout


def test_abagen_has_its_own_environment():
    env = yaml.safe_load((ENVS / "abagen.yaml").read_text())
    pins = {n.lower(): v for _, n, v in _pins(env)}
    assert pins["abagen"] == md.version("abagen")
    assert Version(pins["numpy"]) < Version("2") and Version(pins["pandas"]) < Version("2")


def test_jobs_import_rviflow_from_the_repository():
    """Snakemake puts a script's folder on sys.path: scripts/rviflow must be src/rviflow."""
    link = REPO / "scripts" / "rviflow"
    assert link.is_symlink() and link.resolve() == (REPO / "src" / "rviflow").resolve()
    # a bare interpreter that only has scripts/ on its path (as in a conda env) finds it there
    code = ("import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; "
            f"sys.path.append({str(REPO / 'scripts')!r}); import importlib.util as u; "
            "print(u.find_spec('rviflow').origin)")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(REPO / "scripts" / "rviflow" / "__init__.py")


def test_snakemake_lint_passes(tmp_path):
    from rviflow.synth.cohort import write_cohort

    cohort = write_cohort(tmp_path / "cohort", n_subjects=4, seed=1, n_sites=1)  # with ASL: CBF rules too
    cfg = write_config(tmp_path / "config.yaml", cohort, tmp_path / "out")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile",
                           str(cfg), "--directory", str(tmp_path), "--lint"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "Congratulations" in proc.stdout + proc.stderr
