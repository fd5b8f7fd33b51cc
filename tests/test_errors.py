"""What a user sees when the workflow fails: one short error naming the video, the stage and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

from snakemake_runs import SMALL_CONFIG, snakemake, write_folder_clip, write_small_config

pytestmark = pytest.mark.workflow

FOLDER_ROW = "folder\tclips/folder\tclips/folder-masks\ta square\tobject\tsmall\t1\t3\t2\t48x32\tnone"


def folder_workflow(root: Path, rows: list[str] = [FOLDER_ROW], config: dict = SMALL_CONFIG) -> Path:
    write_folder_clip(root)
    write_small_config(root, config, rows, ["folder\tcircle\ta circle\tstructure"])
    return root


def test_an_empty_first_mask_fails_the_mask_stage_in_one_short_message(tmp_path):
    workdir = folder_workflow(tmp_path)
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(workdir / "clips" / "folder-masks" / "00001.png")
    result = snakemake(workdir, "results/priors/folder.zarr/guide", check=False)
    assert result.returncode != 0
    [message] = [line for line in result.stderr.splitlines() if line.startswith("vidmp3:")]
    assert message.startswith("vidmp3: priors_mask folder: video folder:")
    assert "'given'" in message and "clips/folder-masks" in message and "source frame 1" in message
    assert "Traceback" not in result.stderr
    assert "Traceback" in (workdir / "results" / "logs" / "priors_mask" / "folder.log").read_text()
    group = zarr.open_group(str(workdir / "results" / "priors" / "folder.zarr"), mode="r")
    assert sorted(group.keys()) == ["frames", "mask_given"]  # no mask written, no debris
