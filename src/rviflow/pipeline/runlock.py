"""One rviflow run per output_dir, and a clean start after a run that was killed.

Snakemake locks the files of a run in ``<working directory>/.snakemake/locks`` and removes the lock
when it stops; a run that is killed (SIGKILL, the out-of-memory killer, a lost node) leaves it
behind and the next run stops with "Directory cannot be locked". Snakemake's lock is also kept per
working directory, so it does not see a second run on the same output_dir started elsewhere.

``rviflow run`` therefore holds an ``flock(2)`` on ``<output_dir>/.rviflow.lock`` for as long as it
and the snakemake it starts (which inherits the descriptor) live; the kernel releases it when they
die, however they die. A second run on that output_dir cannot take it and refuses with one line.
A run that does take it knows that no other rviflow run is writing the output_dir, so a Snakemake
lock on files under the output_dir is stale and can be cleared (``snakemake --unlock``).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".rviflow.lock"


class RunLockError(RuntimeError):
    """Another rviflow run holds the output_dir (the message is one line for the user)."""


def hold(output_dir: str | Path) -> int:
    """Take rviflow's lock on ``output_dir`` (made if missing) and return its open descriptor.

    The lock lasts until every copy of the descriptor is closed (pass it on to child processes
    that should keep it). Raises RunLockError naming the holder's pid when another run has it.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunLockError(f"another rviflow run (pid {holder}) is using output_dir {out}; "
                               "wait for it to finish or stop it first") from None
        if _same_file(fd, path):  # not a lock file that its last holder removed meanwhile
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def release(fd: int, output_dir: str | Path, created: bool) -> None:
    """Close the lock; if this run ``created`` output_dir and wrote nothing to it (e.g. its config
    was refused), remove the lock file and the directory again."""
    out = Path(output_dir)
    if created and out.is_dir() and [p.name for p in out.iterdir()] == [LOCK_NAME]:
        (out / LOCK_NAME).unlink()
        out.rmdir()
    os.close(fd)


def stale_snakemake_lock(workdir: str | Path, output_dir: str | Path) -> bool:
    """Whether Snakemake's lock in ``workdir`` covers output files under ``output_dir``.

    Call it only while holding :func:`hold`'s lock: then no live rviflow run owns that lock.
    """
    out = os.path.join(os.path.abspath(output_dir), "")
    for lock in (Path(workdir) / ".snakemake" / "locks").glob("*.output.lock"):
        with open(lock) as f:
            if any(os.path.abspath(os.path.join(workdir, line.strip())).startswith(out) for line in f if line.strip()):
                return True
    return False
