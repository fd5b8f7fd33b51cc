"""A finished project folder moved or copied elsewhere (with its checkout inside, as `make demo` has
it, or as a cluster mounts it under another path) plans nothing: no input or param holds its path."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from snakemake_runs import REPO, SMALL_CONFIG, write_folder_clip, write_small_config

pytestmark = pytest.mark.workflow

CHECKOUT_IGNORED = shutil.ignore_patterns(".git", ".venv", "results", ".snakemake", "__pycache__", "tests", "*.pyc")


def snakemake_in(project: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake of the project's own checkout, run in the project folder."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=project, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_a_copied_project_plans_nothing(tmp_path):
    project = tmp_path / "first" / "project"
    shutil.copytree(REPO, project, ignore=CHECKOUT_IGNORED)
    write_folder_clip(project)
    write_small_config(
        project,
        SMALL_CONFIG | {"model": {"preset": "toyworld"}},  # the shipped weights: an input inside the checkout
        ["folder\tclips/folder\tclips/folder-masks\ta square\tobject\tsmall\t1\t3\t2\t32x32\tnone"],
        ["folder\tcircle\ta circle\tstructure"],
    )
    target = "results/weights/vidmp3/folder"
    snakemake_in(project, target)
    moved = tmp_path / "elsewhere" / "deeper" / "project"
    shutil.copytree(project, moved, symlinks=True)
    plan = snakemake_in(moved, target, "-n")
    assert "Nothing to be done" in plan.stdout + plan.stderr, plan.stdout + plan.stderr
