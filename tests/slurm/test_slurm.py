"""The SLURM profile on a real single-node SLURM cluster started on this machine.

A fixture installs (Debian packages) and starts munged / slurmctld / slurmd as plain daemons
(tests/slurm/slurm_cluster.sh), runs a small synthetic cohort through
``--profile config/profiles/slurm`` (with the overrides a cluster without slurmdbd needs) and
the same cohort locally, compares the outputs, and stops the daemons by their PIDs. Needs root;
skipped otherwise, with the reason.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import MACHINERY_CONFIG, REPO, assert_same_outputs, write_config

pytestmark = pytest.mark.workflow
HERE = Path(__file__).resolve().parent
LOCK = Path("/tmp/rviflow-slurm-test.lock")  # one test cluster per machine (/etc/slurm/slurm.conf)
N_SUBJECTS, PER_JOB = 4, 2
#: what a cluster without SLURM accounting (no slurmdbd) needs, plus test speed-ups; conda cannot
#: be installed here, so jobs use the test's Python instead of the profile's conda envs
PROFILE_OVERRIDES = {
    "slurm-status-command": "squeue",
    "slurm-no-account": True,
    "slurm-init-seconds-before-status-checks": 3,
    "slurm-keep-successful-logs": True,
    "cores": 2,
    "group-components": {"subject": PER_JOB},
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node SLURM cluster: yields its run directory; torn down by PID."""
    if os.geteuid() != 0:
        pytest.skip(f"the SLURM test needs root (installs slurmctld/slurmd/munge, runs slurmd); uid is {os.geteuid()}")
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    run = tmp_path_factory.mktemp("slurmcluster")
    proc = subprocess.run(["bash", str(HERE / "slurm_cluster.sh"), "start", str(run)], capture_output=True,
                          text=True, timeout=900)
    pids = {p.stem: int(p.read_text()) for p in run.glob("*.pid")}
    try:
        assert proc.returncode == 0, f"SLURM did not start:\n{proc.stdout}\n{proc.stderr}"
        assert {"slurmctld", "slurmd"} <= set(pids), pids
        yield run
    finally:
        subprocess.run(["scancel", "--user", "root"], capture_output=True, timeout=60)
        for name in ("slurmd", "slurmctld", "munged"):  # only the daemons the script started
            if name in pids and _alive(pids[name]):
                os.kill(pids[name], signal.SIGTERM)
        deadline = time.time() + 15
        while time.time() < deadline and any(_alive(p) for p in pids.values()):
            time.sleep(0.2)
        for pid in pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["bash", str(HERE / "slurm_cluster.sh"), "stop", str(run)], capture_output=True, timeout=60)
        lock.close()


def _test_profile(directory: Path) -> Path:
    """config/profiles/slurm with PROFILE_OVERRIDES (and without conda) in ``directory``."""
    profile = yaml.safe_load((REPO / "config" / "profiles" / "slurm" / "config.yaml").read_text())
    profile.pop("software-deployment-method", None)
    profile.update(PROFILE_OVERRIDES, **{"slurm-logdir": str(directory / "slurm_logs")})
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile))
    return directory


def test_slurm_profile_run_equals_local_run(slurm_cluster, tmp_path):
    from rviflow.synth.cohort import write_cohort

    cohort = write_cohort(tmp_path / "cohort", n_subjects=N_SUBJECTS, seed=11, n_sites=2, asl=False)
    env = dict(os.environ, NIPYPE_NO_ET="1")
    env.pop("SLURM_CONF", None)  # the cluster is found through /etc/slurm/slurm.conf, as jobs find it
    local_out, slurm_out = tmp_path / "local" / "out", tmp_path / "slurm" / "out"
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    cfg_local = write_config(tmp_path / "local.yaml", cohort, local_out, **MACHINERY_CONFIG)
    cfg_slurm = write_config(tmp_path / "slurm.yaml", cohort, slurm_out, **MACHINERY_CONFIG)
    # the local reference runs alongside (the SLURM run mostly waits on the queue)
    local = subprocess.Popen([*base, "--configfile", str(cfg_local), "--directory", str(tmp_path / "local"),
                              "--cores", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    profile = _test_profile(tmp_path / "profile")
    # a failing status query makes the plugin wait forever: always under `timeout -k`
    slurm = subprocess.run(["timeout", "-k", "20", "600", *base, "--configfile", str(cfg_slurm), "--directory",
                            str(tmp_path / "slurm"), "--profile", str(profile)],
                           capture_output=True, text=True, env=env)
    local_log = local.communicate(timeout=600)[0]
    log = slurm.stdout + slurm.stderr
    assert slurm.returncode != 124, "SLURM run timed out (status queries failing?):\n" + log[-4000:]
    assert slurm.returncode == 0, log[-6000:]
    assert local.returncode == 0, local_log[-3000:]

    # batching: the 4 subjects' chains went to SLURM as 2 group jobs, the cohort rules as one
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", log)
    logdirs = [Path(p).parent.name for _, p in dict(submitted).items()]
    subject_jobs = [d for d in logdirs if d.startswith("group_subject")]
    cohort_jobs = [d for d in logdirs if d.startswith("group_cohort")]
    assert len(subject_jobs) == N_SUBJECTS // PER_JOB, logdirs
    assert len(cohort_jobs) == 1, logdirs
    ungrouped = [d for d in logdirs if not d.startswith("group_")]
    assert not ungrouped, f"{ungrouped}: add these rules to groups: in config/profiles/slurm/config.yaml"
    # each subject group job ran its 2 subjects' chain jobs (reho_scan: denoise -> ReHo -> parcels
    # in one job per scan), with the profile's cores (its kept log)
    for _, path in submitted:
        if "group_subject" in path:
            head = Path(path).read_text()[:50000]
            targets = re.search(r"--target-jobs (.*?) --", head).group(1).split()
            assert len(targets) == PER_JOB and all("reho_scan" in t for t in targets) and len({re.search(r"sub-[a-zA-Z0-9]+", t).group(0) for t in targets}) == PER_JOB, targets
            assert "--cores 2 " in head

    files = assert_same_outputs(local_out, slurm_out)
    assert any(f.endswith("desc-reho_parcels.tsv") for f in files) and "group/effect_sizes.tsv" in files

    # batch mode (batch_size: 2): each batch of 2 subjects is one SLURM job (no group needed), the
    # jobs on the node re-read the same batch manifest, and the outputs still equal the local run's
    batch_out = tmp_path / "batch" / "out"
    cfg_batch = write_config(tmp_path / "batch.yaml", cohort, batch_out, batch_size=PER_JOB, **MACHINERY_CONFIG)
    batch = subprocess.run(["timeout", "-k", "20", "600", *base, "--configfile", str(cfg_batch), "--directory",
                            str(tmp_path / "batch"), "--profile", str(profile)], capture_output=True, text=True, env=env)
    log = batch.stdout + batch.stderr
    assert batch.returncode == 0, log[-6000:]
    logs = sorted(dict(re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", log)).values())
    assert len([p for p in logs if "/rule_reho_batch/" in p]) == N_SUBJECTS // PER_JOB, logs
    assert len([p for p in logs if "/group_cohort" in p]) == 1 and len(logs) == N_SUBJECTS // PER_JOB + 1, logs
    assert_same_outputs(local_out, batch_out)


def test_profile_keeps_a_uk_biobank_run_under_max_job_count():
    """15,501 subjects (ReHo + CBF chains) must not mean ~93,000 SLURM submissions: the profile's
    batching keeps them far below SLURM's default MaxJobCount (10,000), and the queue short."""
    profile = yaml.safe_load((REPO / "config" / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    per_job = int(profile["group-components"]["subject"])
    chains = 2 * 15501  # a ReHo and a CBF chain per subject
    submissions = -(-chains // per_job) + 1  # + the one cohort group job
    assert submissions <= 2000, submissions
    assert profile["jobs"] <= 1000 and profile["retries"] >= 1
    assert set(profile["groups"].values()) == {"cohort"} and {"collect_reho", "effect_sizes", "qc_table"} <= set(
        profile["groups"])
    assert profile["software-deployment-method"] == "conda"
