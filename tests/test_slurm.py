"""The workflow through a real Slurm: `snakemake --profile profiles/slurm` on the one-node test
cluster of scripts/slurm/ (`make test-slurm` installs and starts it, runs this, stops it).

Runs only against that cluster (its SLURM_CONF under $VIDMP3_SLURM_DIR, default /tmp/vidmp3-slurm),
never against a site's Slurm; skips when it is not running, or fails where VIDMP3_SLURM_TEST=required
(as `make test-slurm` sets). The profile is used as it is, plus what a 2-CPU node without GPUs
needs: GPU stages keep `gpu: 1` (the node has two fake GPUs) but ask for 1 CPU and 2 GB; without
accounting the status command is squeue; status checks start after 2 s instead of 40 s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from snakemake_runs import CACHED_RULES, REPO, SMALL_CONFIG, write_folder_clip, write_small_config

pytestmark = pytest.mark.workflow

SLURM_DIR = Path(os.environ.get("VIDMP3_SLURM_DIR", "/tmp/vidmp3-slurm"))
SLURM_CONF = SLURM_DIR / "slurm.conf"
PROFILE = REPO / "profiles" / "slurm"
TIMEOUT_S = 900  # hard limit (SIGKILL) on the whole Snakemake run; it takes 4–6 minutes


def slurm_env() -> dict[str, str]:
    """This environment for the test cluster: its SLURM_CONF, no SLURM_* of an enclosing job."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    return env | {"SLURM_CONF": str(SLURM_CONF)}


def unavailable() -> str | None:
    """Why the test cluster cannot be used, or None."""
    for command in ("sbatch", "squeue", "scontrol", "sinfo"):
        if shutil.which(command) is None:
            return f"Slurm is not installed ({command} not found); `make test-slurm` (root, Debian) installs it"
    if not SLURM_CONF.is_file():
        return f"the test cluster is not running (no {SLURM_CONF}); `make test-slurm` (root) starts it"
    ping = subprocess.run(["scontrol", "ping"], env=slurm_env(), capture_output=True, text=True, timeout=30)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        said = (ping.stdout + ping.stderr).strip().splitlines()
        return f"the test cluster is not running (scontrol ping: {said[0] if said else ping.returncode}); `make test-slurm` (root) starts it"
    states = subprocess.run(["sinfo", "--noheader", "--format=%t"], env=slurm_env(), capture_output=True, text=True, timeout=30)
    if not re.search(r"^(idle|mix|alloc)", states.stdout, re.MULTILINE):
        return f"the test cluster has no usable node (sinfo: {states.stdout.strip() or states.stderr.strip()})"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = unavailable()
    if reason and os.environ.get("VIDMP3_SLURM_TEST") == "required":
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


def has_accounting() -> bool:
    return "AccountingStorageType=accounting_storage/slurmdbd" in SLURM_CONF.read_text()


def small_node_resources() -> list[str]:
    """--set-resources for this node: the profile's (a CLI option replaces the profile's whole key),
    with GPU requests kept and sizes cut to 1 CPU per GPU, 2 GB, 10 minutes."""
    profile = yaml.safe_load((PROFILE / "config.v8+.yaml").read_text())
    limits = {"mem_mb": 2000, "runtime": 10, "cpus_per_gpu": 1}
    values = []
    for rule, resources in profile["set-resources"].items():
        for name, value in resources.items():
            values.append(f"{rule}:{name}={min(value, limits[name]) if name in limits else value}")
    return values


@pytest.fixture(scope="module")
def run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    cache = workdir / "cache"
    cache.mkdir()
    write_folder_clip(workdir)
    write_small_config(
        workdir,
        SMALL_CONFIG,
        ["folder\tclips/folder\tclips/folder-masks\ta square\tobject\tsmall\t1\t3\t2\t48x32\tnone"],
        ["folder\tcircle\ta circle\tstructure"],
    )
    command = [
        "timeout", "-s", "KILL", str(TIMEOUT_S),
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--profile", str(PROFILE),
        "results/eval/summary.csv", "results/edits/folder_circle.mp4",  # before the options taking lists
        "--slurm-init-seconds-before-status-checks", "2",
        *([] if has_accounting() else ["--slurm-status-command", "squeue"]),
        "--set-resources", *small_node_resources(),
        "--cache", *CACHED_RULES,
    ]  # fmt: skip
    log = workdir / "snakemake.log"
    with open(log, "w") as handle:
        result = subprocess.run(
            command,
            cwd=workdir,
            env=slurm_env() | {"SNAKEMAKE_OUTPUT_CACHE": str(cache)},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    output = log.read_text()
    run_id = re.search(r"SLURM run ID: (\S+)", output)
    if result.returncode != 0:
        if run_id:  # jobs of a killed Snakemake keep running: cancel this run's
            subprocess.run(["scancel", "--name", run_id.group(1)], env=slurm_env(), check=False)
        reason = "killed after the time limit" if result.returncode in (124, 137, -9) else f"exit status {result.returncode}"
        raise AssertionError(f"snakemake --profile profiles/slurm: {reason}; last lines of {log}:\n{output[-6000:]}")
    assert run_id, output[-3000:]
    return workdir, cache, output, run_id.group(1)


def test_workflow_completes_through_slurm(run):
    workdir, _, output, _ = run
    results = workdir / "results"
    assert (results / "edits" / "folder_circle.mp4").stat().st_size > 0
    assert (results / "edits" / "folder_circle.png").is_file()
    assert (results / "methods" / "vidmp3" / "folder" / "circle.mp4").stat().st_size > 0
    record = json.loads((results / "eval" / "vidmp3" / "folder_circle.json").read_text())
    assert record["method"] == "vidmp3" and record["metrics"]["motion_fidelity"] is not None
    assert "vidmp3" in (results / "eval" / "summary.csv").read_text()
    time_cost = (results / "eval" / "time_cost.csv").read_text()
    for stage in ("frames", "priors_corr", "video_model", "finetune/vidmp3", "edit/vidmp3", "evaluate/vidmp3"):
        assert f"\n{stage}," in time_cost, stage
    for rule in ("frames", "video_model", "finetune", "edit", "edit_result", "evaluate", "tables"):
        assert list((results / "logs" / rule).rglob("*.log")), rule


def test_named_cache_rules_reach_the_jobs(run):
    """`--cache <rules>` is passed on to each Slurm job, which stores its outputs in the cache."""
    workdir, cache, _, _ = run
    assert len(list(cache.glob("*_timing.tsv"))) == len(CACHED_RULES)
    weights = workdir / "results" / "weights" / "vidmp3" / "folder"
    assert weights.is_symlink() and weights.resolve().parent == cache.resolve()


def test_gpu_stages_ask_slurm_for_a_gpu_and_cpu_stages_do_not(run):
    """The jobs that ended in the last MinJobAge (300 s) seconds, as squeue lists them."""
    _, _, _, run_id = run
    listed = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--name", run_id, "--Format=Comment:300|,tres-per-job:100|,State:20|"],
        env=slurm_env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    jobs = {}
    for line in listed.splitlines():
        comment, tres, state = (field.strip() for field in line.split("|")[:3])
        rule = re.match(r"rule_([a-z_]+?)_wildcards", comment) or re.match(r"rule_([a-z_]+)", comment)
        jobs.setdefault(rule.group(1), set()).add((tres, state))
    assert "edit" in jobs and "evaluate" in jobs, listed
    profile = yaml.safe_load((PROFILE / "config.v8+.yaml").read_text())
    gpu_rules = {rule for rule, resources in profile["set-resources"].items() if resources.get("gpu")}
    assert {"finetune", "edit"} <= gpu_rules
    for rule, requests in jobs.items():
        for tres, state in requests:
            assert state == "COMPLETED", (rule, state)
            assert ("gpu" in tres) == (rule in gpu_rules), (rule, tres)
