"""What a user sees when the workflow fails: one short error naming the video, the stage and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

from snakemake_runs import SMALL_CONFIG, snakemake, write_folder_clip, write_small_config

pytestmark = pytest.mark.workflow

FOLDER_ROW = "folder\tclips/folder\tclips/folder-masks\ta square\tobject\tsmall\t1\t3\t2\t48x32\tnone"


def folder_workflow(root: Path, rows: tuple[str, ...] | list[str] = (FOLDER_ROW,), config: dict = SMALL_CONFIG) -> Path:
    write_folder_clip(root)
    write_small_config(root, config, list(rows), ["folder\tcircle\ta circle\tstructure"])
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


def assert_stopped_before_any_job(workdir: Path, result, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("vidmp3: ") and all(fragment in last for fragment in fragments), result.stderr[-2000:]
    assert not (workdir / "results").exists()


def test_a_bad_config_value_names_file_line_and_key(tmp_path):
    workdir = folder_workflow(tmp_path, config={**SMALL_CONFIG, "editing": {"steps": "two"}})
    result = snakemake(workdir, check=False)
    assert_stopped_before_any_job(
        workdir, result, "config/config.yaml, line ", "key editing/steps", "'two' is not of type 'integer'"
    )


def test_a_sheet_with_spaces_and_a_missing_masks_folder(tmp_path):
    workdir = folder_workflow(tmp_path, rows=[FOLDER_ROW.replace("\t", "   ", 2)])
    assert_stopped_before_any_job(workdir, snakemake(workdir, check=False), "must be tab-separated")
    write_small_config(
        workdir, SMALL_CONFIG, [FOLDER_ROW.replace("folder-masks", "other-masks")], ["folder\tcircle\ta circle\tstructure"]
    )
    assert_stopped_before_any_job(
        workdir, snakemake(workdir, check=False), "video folder: masks clips/other-masks does not exist"
    )


def mismatched_adapter(root: Path) -> Path:
    """The ToyWorld motion adapter's config with other block channels (the check reads config.json only)."""
    from vidmp3.model.spec import TOYWORLD_WEIGHTS

    adapter = root / "adapter"
    adapter.mkdir()
    config = json.loads((TOYWORLD_WEIGHTS / "motion_adapter" / "config.json").read_text())
    (adapter / "config.json").write_text(json.dumps(config | {"block_out_channels": [32, 64, 128]}))
    (adapter / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    return adapter


@pytest.mark.parametrize("case", ["window too long", "adapter does not fit", "hub id not cached", "no base folder"])
def test_the_video_model_is_checked_before_any_job(tmp_path, monkeypatch, case):
    model = {"preset": "toyworld"}
    rows = [FOLDER_ROW]
    config = dict(SMALL_CONFIG)
    if case == "window too long":
        rows = [FOLDER_ROW.replace("\t3\t2\t48x32", "\t40\t2\t48x32")]
        config["window"] = {"frames": 40, "stride": 8}
        expected = ("video folder: frames 40", "a window of 40 frames", "motion_max_seq_length 32", "set window: frames")
    elif case == "adapter does not fit":
        model["motion_adapter"] = str(mismatched_adapter(tmp_path))
        expected = ("block channels [32, 64, 128] do not match the UNet's [32, 64, 96]",)
    elif case == "hub id not cached":
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
        model["motion_adapter"] = "guoyww/animatediff-motion-adapter-v1-5"
        expected = ("not in the local Hugging Face cache", "hf download guoyww/animatediff-motion-adapter-v1-5")
    else:
        model["base"] = str(tmp_path / "no-such-base")
        expected = (f"model base folder {tmp_path / 'no-such-base'} does not exist",)
    workdir = folder_workflow(tmp_path / "work", rows=rows, config={**config, "model": model})
    assert_stopped_before_any_job(workdir, snakemake(workdir, check=False), *expected)


def test_an_edit_schedule_that_cannot_meet_stops_before_any_job(tmp_path):
    config = {**SMALL_CONFIG, "inversion": {"steps": 4}, "editing": {"steps": 2, "strength": 0.5}}
    workdir = folder_workflow(tmp_path / "work", config=config)
    assert_stopped_before_any_job(
        workdir, snakemake(workdir, check=False), "editing strength 0.5 needs inversion: steps (4) equal to editing: steps (2)"
    )


def test_a_target_of_an_unknown_video_is_one_line_while_planning(tmp_path):
    workdir = folder_workflow(tmp_path)
    result = snakemake(workdir, "results/priors/nosuch.zarr/corr", check=False)
    assert_stopped_before_any_job(workdir, result, "video 'nosuch' is not in config/videos.tsv")
