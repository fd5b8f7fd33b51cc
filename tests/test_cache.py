"""Snakemake's between-workflow output cache (README "Reusing results between workflows"): a second
workflow directory with the same config takes priors and fine-tuned weights from the cache instead of computing them; a changed setting misses the cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from snakemake_runs import CACHED_RULES, SMALL_CONFIG, planned_jobs, snakemake, write_folder_clip, write_small_config

pytestmark = pytest.mark.workflow

TARGET = "results/weights/vidmp3/folder"
# output (relative to results/) and benchmark file of each cached job of TARGET
CACHED_OUTPUTS = {
    "priors_mask": ("priors/folder.zarr/mask", "priors_mask/folder.tsv"),
    "priors_corr": ("priors/folder.zarr/corr", "priors_corr/folder.tsv"),
    "priors_depth": ("priors/folder.zarr/depth", "priors_depth/folder.tsv"),
    "finetune": ("weights/vidmp3/folder", "finetune/vidmp3/folder.tsv"),
}


def cached_run(workdir: Path, cache: Path, *args: str, check: bool = True):
    """snakemake TARGET with the documented `--cache <rules>` (after the targets: --cache takes every word after it)."""
    os.environ["SNAKEMAKE_OUTPUT_CACHE"] = str(cache)
    try:
        return snakemake(workdir, TARGET, *args, "--cache", *CACHED_RULES, check=check)
    finally:
        del os.environ["SNAKEMAKE_OUTPUT_CACHE"]


def new_workflow(root: Path, name: str) -> Path:
    workdir = root / name
    workdir.mkdir()
    write_folder_clip(workdir)
    write_small_config(
        workdir,
        SMALL_CONFIG,
        ["folder\tclips/folder\tclips/folder-masks\ta square\tobject\tsmall\t1\t3\t2\t48x32\tnone"],
        ["folder\tcircle\ta circle\tstructure"],
    )
    return workdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The cache, the first workflow (computes and stores) and a second one (same config, own folder)."""
    root = tmp_path_factory.mktemp("cache")
    cache = root / "cache"
    cache.mkdir()
    first, second = new_workflow(root, "first"), new_workflow(root, "second")
    first_run = cached_run(first, cache)
    second_run = cached_run(second, cache)
    return cache, first, second, first_run.stdout + first_run.stderr, second_run.stdout + second_run.stderr


def test_the_first_workflow_computes_and_stores(runs):
    cache, first, _, output, _ = runs
    for rule, (out, _) in CACHED_OUTPUTS.items():
        assert f"Moving output file results/{out} to cache." in output, rule
        path = first / "results" / out
        assert path.is_symlink() and path.resolve().parent == cache.resolve(), rule
    assert (first / "results" / "logs" / "finetune" / "vidmp3" / "folder.log").stat().st_size > 0
    # one directory per output, one benchmark file per job (5 jobs)
    assert len(list(cache.glob("*_timing.tsv"))) == len(CACHED_RULES)


def test_the_second_workflow_reuses_without_running(runs):
    cache, first, second, _, output = runs
    for rule, (out, benchmark) in CACHED_OUTPUTS.items():
        assert f"Symlinking output file results/{out}" in output, rule
        # the job never ran: Snakemake created its log, nothing wrote to it
        log = next((second / "results" / "logs" / rule).rglob("*.log"))
        assert log.stat().st_size == 0, rule
        # the benchmark file is the first run's (what computing the stage cost)
        ours, theirs = (workflow / "results" / "benchmarks" / benchmark for workflow in (second, first))
        assert ours.read_text() == theirs.read_text() and float(ours.read_text().split("\n")[1].split("\t")[0]) > 0
    # the cached folders' files are the first run's files
    weights = second / "results" / "weights" / "vidmp3" / "folder"
    assert (weights / "trainable.safetensors").resolve().parent.parent == cache.resolve()
    assert (weights / "trainable.safetensors").read_bytes() == (
        first / "results" / "weights" / "vidmp3" / "folder" / "trainable.safetensors"
    ).read_bytes()
    # what is not cached ran in the second workflow too
    assert (second / "results" / "logs" / "frames" / "folder.log").stat().st_size > 0
    assert planned_jobs(second, TARGET) == {}


def test_a_changed_setting_misses_the_cache(runs):
    cache, _, second, _, _ = runs
    config = second / "config" / "config.yaml"
    original = config.read_text()
    try:
        config.write_text(original.replace("motion_guide_hidden: 8\n  steps: 2", "motion_guide_hidden: 8\n  steps: 3"))
        assert config.read_text() != original
        output = cached_run(second, cache, "-n")
        text = output.stdout + output.stderr
    finally:
        config.write_text(original)
    for rule in ("finetune",):  # fine-tuning steps change the weights
        assert f"Output file results/{CACHED_OUTPUTS[rule][0]} will be written to global between-workflow cache." in text, rule
    for rule in ("priors_mask", "priors_corr", "priors_depth"):  # the priors were not run (nothing to do for them)
        assert f"results/{CACHED_OUTPUTS[rule][0]} will be" not in text, rule


def test_a_changed_frame_misses_the_cache(runs, tmp_path):
    """The key holds the content of the input files that no job makes: the clip's frames."""
    cache, first, _, _, _ = runs
    third = tmp_path / "third"
    shutil.copytree(first / "config", third / "config")
    shutil.copytree(first / "clips", third / "clips")
    frame = third / "clips" / "folder" / "00003.jpg"
    frame.write_bytes((third / "clips" / "folder" / "00001.jpg").read_bytes())
    result = cached_run(third, cache, "-n")
    text = result.stdout + result.stderr
    for rule, (out, _) in CACHED_OUTPUTS.items():
        assert f"Output file results/{out} will be written to global between-workflow cache." in text, rule
    # with the frame restored, every cached stage is taken from the cache (keys come from the inputs'
    # content, so a dry run cannot tell before the stages upstream have run: this run is real)
    (third / "clips" / "folder" / "00003.jpg").write_bytes((first / "clips" / "folder" / "00003.jpg").read_bytes())
    result = cached_run(third, cache)
    text = result.stdout + result.stderr
    for rule, (out, _) in CACHED_OUTPUTS.items():
        assert f"Symlinking output file results/{out}" in text, rule


def test_a_job_that_sees_only_itself_has_the_same_key(runs, tmp_path):
    """A Slurm job's Snakemake sees only its own job, every input already there: here, the priors
    computed without the cache. Its key is the key of the same job in a local run."""
    cache, first, _, _, _ = runs
    fourth = tmp_path / "fourth"
    shutil.copytree(first / "config", fourth / "config")
    shutil.copytree(first / "clips", fourth / "clips")
    snakemake(fourth, "results/priors/folder.zarr/corr", "results/priors/folder.zarr/depth", "results/priors/folder.zarr/alpha")
    result = cached_run(fourth, cache)
    text = result.stdout + result.stderr
    for rule in ("finetune",):
        assert f"Symlinking output file results/{CACHED_OUTPUTS[rule][0]}" in text, rule
        assert next((fourth / "results" / "logs" / rule).rglob("*.log")).stat().st_size == 0, rule


def test_a_job_run_as_the_slurm_plugin_runs_it_finds_the_local_entry(runs, tmp_path):
    """The command the Slurm plugin runs on a node: `--target-jobs` with `--allowed-rules` of that rule
    alone, so its DAG holds the one job and its inputs are files already there. Snakemake's own key
    hashes such inputs by content but those of a local run by their jobs' keys; the content key is
    the same in both, so the job takes the first (local) workflow's entry."""
    cache, first, _, _, _ = runs
    node = tmp_path / "node"
    shutil.copytree(first / "config", node / "config")
    shutil.copytree(first / "clips", node / "clips")
    snakemake(
        node,
        "results/priors/folder.zarr/corr",
        "results/priors/folder.zarr/depth",
        "results/priors/folder.zarr/alpha",
        "results/models/video",
    )
    os.environ["SNAKEMAKE_OUTPUT_CACHE"] = str(cache)
    try:
        result = snakemake(
            node, "--target-jobs", "finetune:method=vidmp3,video=folder", "--allowed-rules", "finetune", "--cache", *CACHED_RULES
        )
    finally:
        del os.environ["SNAKEMAKE_OUTPUT_CACHE"]
    text = result.stdout + result.stderr
    assert f"Symlinking output file results/{CACHED_OUTPUTS['finetune'][0]}" in text, text[-3000:]
    assert next((node / "results" / "logs" / "finetune").rglob("*.log")).stat().st_size == 0
