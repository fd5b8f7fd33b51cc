"""Snakemake runs of the real Snakefile on tiny configs in temporary working directories."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from snakemake_runs import REPO, planned_jobs, snakemake, write_folder_clip

from vidmp3.store import read_array, read_group_attrs

pytestmark = pytest.mark.workflow

TINY_CONFIG = {
    "videos": "config/videos.tsv",
    "edits": "config/edits.tsv",
    "methods": ["vidmp3", "tune-a-video"],
    "model": {"preset": "tiny"},
    "finetune": {"steps": 2, "motion_guide_hidden": 8},
    "inversion": {"steps": 2},
    "editing": {"steps": 2, "guidance_scale": 2.0},
    "shape_invariance": {"seeds": [0], "iterations": 3, "size": 32, "frames": 4, "shapes": ["sphere"], "hidden": 8},
    "render": {"clips": {"toy": {"shape": "cube", "frames": 12, "width": 32, "height": 32, "supersample": 2}}},
}


def write_sheets(workdir: Path, video_rows: list[str], edit_rows: list[str], config: dict = TINY_CONFIG) -> None:
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    header = "video\tsource\tmasks\tprompt\tcategory\tmotion\tfirst_frame\tframes\tstride\tsize\tcrop"
    header += "\tcorr_backend\tmask_backend\tdepth_backend\tsubject_class\n"  # priors columns: empty takes the default
    (workdir / "config" / "videos.tsv").write_text(header + "".join(row + "\t\t\t\t\n" for row in video_rows))
    (workdir / "config" / "edits.tsv").write_text("video\tconcept\tprompt\tkind\n" + "".join(row + "\n" for row in edit_rows))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    frames = workdir / "clips" / "folder"
    masks = workdir / "clips" / "folder-masks"
    frames.mkdir(parents=True)
    masks.mkdir()
    y, x = np.mgrid[0:40, 0:48]
    for t in range(8):
        Image.fromarray(np.dstack([x * 5, y * 6, np.full_like(x, 30 * t)]).astype(np.uint8)).save(frames / f"{t:05d}.jpg")
        Image.fromarray(((np.abs(x - 10 - 3 * t) < 8) & (np.abs(y - 20) < 8)).astype(np.uint8) * 255).save(masks / f"{t:05d}.png")
    write_sheets(
        workdir,
        [
            "toy\tresults/clips/toy/video.mp4\tresults/clips/toy/masks\ta cube\tobject\tlarge\t0\t4\t3\t32x32\tcenter",
            "folder\tclips/folder\tclips/folder-masks\ta square\tobject\tsmall\t1\t3\t2\t48x32\tnone",
        ],
        ["toy\tsphere\ta sphere\tcross-domain", "folder\tcircle\ta circle\tstructure"],
    )
    snakemake(workdir)
    return workdir


def test_outputs_of_a_full_run(workdir):
    toy = workdir / "results" / "priors" / "toy.zarr"
    frames, attrs = read_array(toy / "frames")
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    assert attrs["frame_indices"] == [0, 3, 6, 9] and attrs["fps"] == pytest.approx(24)
    assert read_group_attrs(toy)["video_source"] == "results/clips/toy/video.mp4"
    mask, _ = read_array(toy / "mask_given")
    assert mask.shape == (4, 32, 32) and 0 < mask.mean() < 0.5
    truth_mask, _ = read_array(workdir / "results" / "clips" / "toy" / "truth.zarr" / "mask")
    assert truth_mask.shape == (12, 32, 32)

    folder = workdir / "results" / "priors" / "folder.zarr"
    frames, attrs = read_array(folder / "frames")
    assert frames.shape == (3, 32, 48, 3) and attrs["frame_indices"] == [1, 3, 5] and attrs["fps"] is None
    mask, _ = read_array(folder / "mask_given")
    assert mask.sum(axis=(1, 2)).tolist() == [15 * 12] * 3  # 15x15 squares, rows 12.5..27.5 of 40 -> 32
    guide, _ = read_array(toy / "guide")
    subject, _ = read_array(toy / "mask")
    assert guide.shape == (4, 3, 32, 32) and (guide.transpose(0, 2, 3, 1)[~subject] == 0).all()
    results = workdir / "results"
    for method in ("vidmp3", "tune-a-video"):
        assert (results / "weights" / method / "toy" / "trainable.safetensors").is_file()
        assert (results / "weights" / method / "toy" / "motion_guide.safetensors").is_file() == (method == "vidmp3")
        assert (results / "weights" / method / "toy" / "latents.safetensors").is_file()
        assert (results / "methods" / method / "folder" / "latents.safetensors").is_file()
        for video, concept in (("toy", "sphere"), ("folder", "circle")):
            name = f"{video}_{concept}"
            assert (results / "methods" / method / video / f"{concept}.mp4").stat().st_size > 0
            assert (results / "methods" / method / video / f"{concept}.png").is_file()
            edits = json.loads((results / "methods" / method / video / "edits.json").read_text())
            assert list(edits["edits"]) == [concept]
            record = json.loads((results / "eval" / method / f"{name}.json").read_text())
            assert record["method"] == method and record["metrics"]["motion_fidelity"] is not None
            assert record["metrics"]["clip_text_alignment"] is None and "clip_text_alignment" in record["not_available"]
    for name in ("toy_sphere", "folder_circle"):  # the user's results: VidMP3's edits
        video, concept = name.split("_")
        assert (results / "edits" / f"{name}.mp4").read_bytes() == (
            results / "methods" / "vidmp3" / video / f"{concept}.mp4"
        ).read_bytes()
        assert (results / "edits" / f"{name}.png").is_file()
    toy_record = json.loads((results / "eval" / "vidmp3" / "toy_sphere.json").read_text())
    folder_record = json.loads((results / "eval" / "vidmp3" / "folder_circle.json").read_text())
    assert "trajectory_error_px" in toy_record["metrics"] and folder_record["metrics"]["trajectory_error_px"] is None
    summary = (results / "eval" / "summary.csv").read_text()
    assert "vidmp3" in summary and "tune-a-video" in summary and "no-motionguide" not in summary
    assert (results / "toy" / "shape_invariance.png").is_file()
    for rule in (
        "render_clip",
        "frames",
        "given_masks",
        "tiny_model",
        "video_model",
        "finetune",
        "edit",
        "edit_result",
        "evaluate",
        "tables",
    ):
        assert list((results / "logs" / rule).rglob("*.log")), rule
        assert list((results / "benchmarks" / rule).rglob("*.tsv")), rule


def test_changing_nothing_reruns_nothing(workdir):
    assert planned_jobs(workdir) == {}


def changed(workdir: Path, path: str, old: str, new: str) -> dict[str, int]:
    """The dry-run plan after replacing `old` by `new` in one config file (restored afterwards)."""
    file = workdir / path
    original = file.read_text()
    assert old in original
    try:
        file.write_text(original.replace(old, new))
        return planned_jobs(workdir)
    finally:
        file.write_text(original)


DOWNSTREAM_OF_ONE_WEIGHTS = {"finetune": 1, "edit": 1, "edit_result": 1, "evaluate": 1, "tables": 1, "all": 1}


def test_one_edit_prompt_reruns_only_that_videos_edit_job(workdir):
    """The video's edit job (one model load for all its edits) of each method reruns; its fine-tuning,
    its priors and the other video do not."""
    plan = changed(workdir, "config/edits.tsv", "a circle", "a triangle")
    assert plan == {"edit": 2, "edit_result": 1, "evaluate": 2, "tables": 1, "all": 1}


def test_lambda_reruns_fine_tuning_inversion_and_edits_of_the_guided_method_only(workdir):
    # toy's motion class is large; tune-a-video has no MotionGuide, so lambda is not its param
    assert (
        changed(workdir, "config/config.yaml", "finetune:\n", "finetune:\n  guide_strength_large: 0.2\n")
        == DOWNSTREAM_OF_ONE_WEIGHTS
    )


def test_a_training_setting_reruns_every_fine_tuning_but_no_priors(workdir):
    plan = changed(workdir, "config/config.yaml", "motion_guide_hidden: 8\n  steps: 2", "motion_guide_hidden: 8\n  steps: 3")
    assert plan == {"finetune": 4, "edit": 4, "edit_result": 2, "evaluate": 4, "tables": 1, "all": 1}


def test_a_priors_backend_reruns_from_that_prior(workdir):
    plan = changed(workdir, "config/videos.tsv", "32x32\tcenter\t\t\t\t", "32x32\tcenter\t\t\trender\t")
    assert plan == {"priors_depth": 1, "priors_guide": 1, **DOWNSTREAM_OF_ONE_WEIGHTS}


def test_one_edit_target_builds_only_what_it_needs(workdir, tmp_path):
    counts = planned_jobs(workdir, "--forceall", "results/edits/toy_sphere.mp4")
    per_video = ("render_clip", "frames", "given_masks", "priors_mask", "priors_corr", "priors_depth", "priors_guide")
    model = {"tiny_model": 1, "video_model": 1, "finetune": 1, "edit": 1}
    assert counts == {**dict.fromkeys(per_video, 1), **model, "edit_result": 1}
    comparison = planned_jobs(workdir, "--forceall", "results/methods/tune-a-video/folder")
    assert comparison == {"frames": 1, "tiny_model": 1, "video_model": 1, "finetune": 1, "edit": 1}


def job_resources(output: str) -> dict[str, str]:
    """Rule -> its `resources:` line in a dry run's output (one job per rule is enough here)."""
    resources, rule = {}, None
    for line in output.splitlines():
        if line.startswith("rule ") or line.startswith("localrule "):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            resources[rule] = line.strip()
    return resources


def test_model_jobs_take_a_gpu_resource_only_on_cuda(workdir):
    """`resources: gpu` is what `--resources gpu=N` (local) and the Slurm profile honour."""
    target = "results/edits/toy_sphere.mp4"
    on_cuda = job_resources(snakemake(workdir, "-n", "--forceall", "--config", "device=cuda", "--", target).stdout)
    on_cpu = job_resources(snakemake(workdir, "-n", "--forceall", "--", target).stdout)
    for rule in ("finetune", "edit"):
        assert "gpu=1" in on_cuda[rule] and "gpu=0" in on_cpu[rule], rule
    assert "gpu" not in on_cuda["priors_corr"] and "gpu" not in on_cuda["video_model"]


def test_report_builds(workdir):
    snakemake(workdir, "--report", str(workdir / "report.html"))
    html = (workdir / "report.html").read_text(errors="replace")
    assert "toy_sphere" in html or "toy" in html
    assert (workdir / "report.html").stat().st_size > 100_000


def test_bad_source_fails_the_job_and_leaves_no_partial_output(tmp_path):
    (tmp_path / "broken.mp4").write_text("not a video")
    write_sheets(tmp_path, ["broken\tbroken.mp4\t\ta thing\tobject\tlarge\t0\t4\t1\t32x32\tcenter"], ["broken\tx\tan x\tstyle"])
    result = snakemake(tmp_path, "results/priors/broken.zarr/frames", check=False)
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "frames" / "broken.log").read_text()
    assert "broken.mp4: not a readable video" in log
    group = tmp_path / "results" / "priors" / "broken.zarr"
    assert not group.exists() or list(group.iterdir()) == []


def test_frames_all_samples_the_clip_to_its_end(tmp_path):
    write_folder_clip(tmp_path, frames=11)
    write_sheets(tmp_path, ["folder\tclips/folder\t\ta square\tobject\tsmall\t1\tall\t3\t48x32\tnone"], [])
    snakemake(tmp_path, "results/priors/folder.zarr/frames")
    frames, attrs = read_array(tmp_path / "results" / "priors" / "folder.zarr" / "frames")
    assert attrs["frame_indices"] == [1, 4, 7, 10] and frames.shape == (4, 32, 48, 3)


def test_bad_config_stops_at_parse_time(tmp_path):
    write_sheets(tmp_path, ["../escape\tclip.mp4\t\ta\tobject\tlarge\t0\t4\t1\t32x32\tcenter"], [])
    result = snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0
    assert "videos.tsv, line 2: video: '../escape' does not match" in result.stderr + result.stdout


def test_the_default_demo_edits_a_toyworld_clip_with_the_shipped_weights(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    jobs = planned_jobs(tmp_path)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    edits = len((REPO / "config" / "edits.tsv").read_text().splitlines()) - 1
    methods = len(config["methods"])
    assert config["model"]["preset"] == "toyworld" and "tiny_model" not in jobs
    assert jobs["toyworld_clip"] == len(config["toyworld"]["clips"]) and "render_clip" not in jobs
    videos = len((REPO / "config" / "videos.tsv").read_text().splitlines()) - 1
    assert jobs["evaluate"] == methods * edits and jobs["edit_result"] == edits
    assert jobs["edit"] == jobs["finetune"] == methods * videos and jobs["video_model"] == 1
    assert "toyworld_image" not in jobs and "toyworld_benchmark" not in jobs  # shipped, and a target of its own


def test_a_clip_id_under_both_render_and_toyworld_stops_at_parse_time(tmp_path):
    config = dict(TINY_CONFIG, toyworld={"clips": {"toy": {"shape": "cone"}}})
    write_sheets(tmp_path, [], [], config)
    result = snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0
    assert "clip ids ['toy'] are under both render: clips: and toyworld: clips:" in result.stderr + result.stdout


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr
