"""The workflow plans and runs an edit of a clip with two subjects (instance-id masks, one MotionGuide each)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from snakemake_runs import SMALL_CONFIG, planned_jobs, snakemake, write_small_config
from test_subjects import two_squares, write_palette_masks

from vidmp3.store import read_array

pytestmark = pytest.mark.workflow


def test_a_two_subject_edit_plans_and_runs(tmp_path):
    video, labels = two_squares(frames=4)
    frames = tmp_path / "clips" / "two"
    frames.mkdir(parents=True)
    for index, frame in enumerate(video):
        Image.fromarray(frame).save(frames / f"{index:05d}.png")
    write_palette_masks(tmp_path / "clips" / "two-masks", labels)
    write_small_config(
        tmp_path,
        SMALL_CONFIG,
        ["two\tclips/two\tclips/two-masks\ta cube a cone\tobject\tlarge\t0\t4\t1\t32x32\tnone"],
        ["two\ttiger-fox\ta tiger and a fox\tcross-domain"],
    )
    # the sheets with the subjects columns (write_small_config writes the one-subject columns)
    videos = (tmp_path / "config" / "videos.tsv").read_text().splitlines()
    videos[0] += "\tsubjects"
    videos[1] += "\t1=a cube; 2=a cone"
    (tmp_path / "config" / "videos.tsv").write_text("\n".join(videos) + "\n")
    (tmp_path / "config" / "edits.tsv").write_text(
        "video\tconcept\tprompt\tkind\tsubjects\tsubject_scales\n"
        "two\ttiger-fox\ta tiger and a fox\tcross-domain\t1=a tiger; 2=a fox\t2=1.5\n"
    )
    targets = ("results/edits/two_tiger-fox.mp4", "results/eval/vidmp3/two_tiger-fox.json")
    jobs = planned_jobs(tmp_path, *targets)
    assert jobs["given_masks"] == 1 and jobs["finetune"] == 1 and jobs["edit"] == 1
    snakemake(tmp_path, *targets)
    group = tmp_path / "results" / "priors" / "two.zarr"
    given, _ = read_array(group / "mask_given")
    alpha, alpha_attrs = read_array(group / "alpha")
    np.testing.assert_array_equal(given, labels)
    assert alpha.shape == (4, 2) and alpha_attrs["subjects"] == [1, 2]
    weights = json.loads((tmp_path / "results" / "weights" / "vidmp3" / "two" / "config.json").read_text())
    assert weights["subjects"]["ids"] == [1, 2]
    assert (tmp_path / "results" / "edits" / "two_tiger-fox.mp4").stat().st_size > 0
    record = json.loads((tmp_path / "results" / "methods" / "vidmp3" / "two" / "edits.json").read_text())
    assert record["edits"]["tiger-fox"]["subject_scales"] == {"2": 1.5}
    assert record["edits"]["tiger-fox"]["subjects"] == {"1": "a tiger", "2": "a fox"}
    assert record["settings"]["subject_prompts"] is True
    metrics = json.loads((tmp_path / "results" / "eval" / "vidmp3" / "two_tiger-fox.json").read_text())
    per_subject = metrics["details"]["motion_fidelity_per_subject"]
    assert set(per_subject) == {"1", "2"} and metrics["metrics"]["worst_subject_motion_fidelity"] == min(per_subject.values())

    # a bad mapping stops the workflow at parse time, naming sheet, line, column and fix
    (tmp_path / "config" / "edits.tsv").write_text(
        "video\tconcept\tprompt\tkind\tsubjects\ntwo\ttiger-fox\ta tiger and a fox\tcross-domain\t1=a tiger; 3=a fox\n"
    )
    result = snakemake(tmp_path, *targets, "-n", check=False)
    assert result.returncode != 0
    assert (
        "edits.tsv, line 2, column subjects: edit two_tiger-fox: subject 3 is not a subject of its video"
        in result.stderr + result.stdout
    )
