"""The ToyWorld benchmark: its metrics against known answers, its clip plans and priors, and a reduced run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from snakemake_runs import REPO, snakemake
from test_windows import recording_frames

import vidmp3.finetune

from vidmp3.errors import InputError
from vidmp3.model.presets import model_spec
from vidmp3.model.tiny import build_tiny
from vidmp3.priors.stages import corr_stage, depth_stage, guide_stage
from vidmp3.store import read_array, write_array
from vidmp3.synthetic import write_clip
from vidmp3.toyworld import world
from vidmp3.toyworld.benchmark import (
    CHANCE_LEVELS,
    IDEAL_EDIT,
    MAX_EDITS,
    OTHER_CLIP_OFFSET,
    SHIFT_PIXELS,
    UNEDITED,
    BenchmarkConfig,
    BenchmarkOutputs,
    ClipPlan,
    bootstrap_interval,
    ideal_edit,
    paired_differences,
    plan_clip,
    rendered_priors,
    run_benchmark,
)
from vidmp3.toyworld.classifier import ToyClassifier, load_classifier
from vidmp3.toyworld.long_clips import long_clips_markdown, run_long_clips
from vidmp3.toyworld.metrics import METRICS, edit_metrics, mask_iou, silhouette_kept, trajectory_errors
from vidmp3.windows import Window, seam_score

SIZE = world.IMAGE_SIZE


@pytest.fixture(scope="module")
def clip():
    return world.render_toy_clip("cube", "red", world.HELD_OUT_SEED)


def squares(lefts, side=6, top=10, frames=4):
    """bool (frames, S, S): a side x side square per frame at column lefts[t] (None: empty frame)."""
    masks = np.zeros((frames, SIZE, SIZE), bool)
    for t, left in enumerate(lefts):
        if left is not None:
            masks[t, top : top + side, left : left + side] = True
    return masks


# ---- metrics ------------------------------------------------------------------------------------


def test_the_source_against_itself_has_no_trajectory_error_and_full_overlap(clip):
    assert trajectory_errors(clip.mask, clip.mask) == (0.0, 0.0)
    assert mask_iou(clip.mask, clip.mask) == 1.0
    # the segmentation the benchmark applies to edits finds the rendered subject (anti-aliased edges aside)
    found = world.segment(clip.frames)
    centroid, size = trajectory_errors(found, clip.mask)
    assert centroid < 0.01 and size < 0.03 and mask_iou(found, clip.mask) > 0.95


def test_a_shifted_or_scaled_subject_has_the_expected_errors():
    source = squares([4, 8, 12, 16])
    shifted = squares([7, 11, 15, 19])  # 3 px to the right, same size
    centroid, size = trajectory_errors(shifted, source)
    assert centroid == pytest.approx(3 / SIZE) and size == 0.0
    assert mask_iou(shifted, source) == pytest.approx((3 * 6) / (9 * 6))
    larger = squares([4, 8, 12, 16], side=12)  # twice the side: centre moves 3 px right and down
    centroid, size = trajectory_errors(larger, source)
    assert centroid == pytest.approx(math.hypot(3, 3) / SIZE) and size == pytest.approx(1.0)
    assert mask_iou(larger, source) == pytest.approx(36 / 144)


def test_empty_segmentations_are_counted_and_left_out():
    source = squares([4, 8, 12, 16])
    partly = squares([None, 11, None, 19])
    frames = np.zeros((4, SIZE, SIZE, 3), np.uint8)
    frames[:, 0, 0] = [[0, 0, 0], [10, 0, 0], [0, 0, 0], [10, 0, 0]]
    labels = np.zeros(4, int)
    result = edit_metrics(frames, partly, frames, source, source, labels, labels, (0, 0))
    assert result["empty_frames"] == 2 and result["centroid_error"] == pytest.approx(3 / SIZE)
    empty = edit_metrics(frames, squares([None] * 4), frames, source, source, labels, labels, (0, 0))
    assert empty["empty_frames"] == 4
    assert all(
        math.isnan(empty[name])
        for name in ("centroid_error", "size_error", "shape_iou", "ideal_centroid_error", "silhouette_kept")
    )
    assert set(result) == set(METRICS)


def test_correctness_agreement_and_frame_change(clip):
    frames, mask = clip.frames, clip.mask
    shapes = np.array([1, 1, 1, 2, 2, 2, 2, 2])
    colours = np.array([3, 3, 3, 3, 3, 3, 0, 0])
    result = edit_metrics(frames, mask, frames, mask, mask, shapes, colours, target=(2, 3))
    assert result["shape_correct"] == 5 / 8 and result["colour_correct"] == 6 / 8 and result["both_correct"] == 3 / 8
    assert result["label_agreement"] == 5 / 7  # changes at 2->3 and 5->6
    assert result["change_ratio"] == 1.0
    frozen = np.repeat(frames[:1], len(frames), axis=0)
    assert edit_metrics(frozen, mask, frames, mask, mask, shapes, colours, (2, 3))["change_ratio"] == 0.0
    with pytest.raises(InputError, match="one label per edit frame"):
        edit_metrics(frames, mask, frames, mask, mask, shapes[:3], colours, (2, 3))


def test_the_ideal_edit_is_the_reference_for_path_and_silhouette():
    """Against the ideal edit (the target subject on the source's path) a perfect edit scores 0, although
    its other shape has a centroid error against the source; keeping the source's silhouette scores 1."""
    source = squares([4, 8, 12, 16], side=8)
    ideal = squares([4, 8, 12, 16], side=4, top=14)  # a smaller target resting on the same ground line
    frames = np.zeros((4, SIZE, SIZE, 3), np.uint8)
    labels = np.zeros(4, int)
    perfect = edit_metrics(frames, ideal, frames, source, ideal, labels, labels, (0, 0))
    assert perfect["ideal_centroid_error"] == 0.0 and perfect["silhouette_kept"] == 0.0
    assert perfect["centroid_error"] == pytest.approx(math.hypot(2, 2) / SIZE)
    kept = edit_metrics(frames, source, frames, source, ideal, labels, labels, (0, 0))
    assert kept["silhouette_kept"] == 1.0 and kept["centroid_error"] == 0.0
    assert kept["ideal_centroid_error"] == pytest.approx(math.hypot(2, 2) / SIZE)
    half = source.copy()
    half[:, :, :10] = False  # drops the left columns of the source-only ring
    assert 0.0 < silhouette_kept(half, source, ideal) < 1.0
    with pytest.raises(InputError, match="ideal masks"):
        silhouette_kept(source, source, ideal[:3])


# ---- chance levels and statistics --------------------------------------------------------------


def test_chance_levels_score_what_they_are(clip):
    other = world.render_toy_clip("cube", "red", world.HELD_OUT_SEED + OTHER_CLIP_OFFSET)
    ideal = ideal_edit(ClipPlan(world.HELD_OUT_SEED, "cube", "red", (("sphere", "blue"),)), 0, world.CLIP_FRAMES, "large")
    errors, ideal_errors = {}, {}
    for name, (make, _) in CHANCE_LEVELS.items():
        frames = make(clip, other, ideal)
        assert frames.shape == clip.frames.shape and frames.dtype == np.uint8
        errors[name] = trajectory_errors(world.segment(frames), clip.mask)[0]
        ideal_errors[name] = trajectory_errors(world.segment(frames), ideal.mask)[0]
    assert errors[UNEDITED] < 0.01 and ideal_errors[IDEAL_EDIT] < 0.01
    assert 0.01 < errors[IDEAL_EDIT] < errors["static"]  # the other shape moves the centroid, not the path
    assert errors["shifted-2px"] == pytest.approx(SHIFT_PIXELS / SIZE, abs=0.01)
    assert min(errors["static"], errors["other-clip"]) > errors["shifted-2px"]
    assert errors["backwards"] > 0.03  # this clip's path is nearly symmetric in time: backwards is close, not equal
    static = CHANCE_LEVELS["static"][0](clip, other, ideal)
    assert (static == static[0]).all() and np.array_equal(CHANCE_LEVELS["backwards"][0](clip, other, ideal), clip.frames[::-1])


def test_bootstrap_intervals_resample_whole_clips():
    values = pd.Series([1.0, 1.0, 3.0, 3.0, 5.0, 5.0])
    clips = pd.Series([1, 1, 2, 2, 3, 3])
    low, high = bootstrap_interval(values, clips)
    assert 1.0 <= low < 3.0 < high <= 5.0
    assert bootstrap_interval(pd.Series([2.0] * 4), pd.Series([1, 1, 2, 2])) == (2.0, 2.0)
    assert all(math.isnan(v) for v in bootstrap_interval(values, pd.Series([7] * 6)))  # one clip: no interval


def test_paired_differences_are_method_minus_no_motionguide_edit_by_edit():
    rows = []
    for clip_seed in (1, 2, 3):
        for edit in (0, 1):
            base = {metric: float(clip_seed + edit) for metric in METRICS}
            rows.append({"clip_seed": clip_seed, "edit": edit, "method": "no-motionguide", **base})
            rows.append({"clip_seed": clip_seed, "edit": edit, "method": "vidmp3", **{m: v - 0.25 for m, v in base.items()}})
            rows.append({"clip_seed": clip_seed, "edit": edit, "method": "tune-a-video", **base})
    differences = paired_differences(pd.DataFrame(rows), ("vidmp3", "no-motionguide", "tune-a-video"))
    assert set(differences["method"]) == {"vidmp3"} and len(differences) == len(METRICS)
    assert np.allclose(differences[["mean", "ci_low", "ci_high"]].to_numpy(), -0.25)
    assert (differences["count"] == 6).all()
    assert paired_differences(pd.DataFrame(rows), ("vidmp3", "tune-a-video")).empty


# ---- plans and priors ---------------------------------------------------------------------------


def test_clip_plans_are_drawn_from_the_seed_with_targets_of_another_shape_and_colour():
    plans = [plan_clip(world.HELD_OUT_SEED + i, MAX_EDITS) for i in range(12)]
    assert plan_clip(world.HELD_OUT_SEED + 3, MAX_EDITS) == plans[3]
    assert plan_clip(world.HELD_OUT_SEED + 3, 2).targets == plans[3].targets[:2]
    assert len({(plan.shape, plan.colour) for plan in plans}) > 4
    for plan in plans:
        assert len(set(plan.targets)) == MAX_EDITS
        assert all(shape != plan.shape and colour != plan.colour for shape, colour in plan.targets)
        first = plan.targets[:3]
        assert len({shape for shape, _ in first}) == 3 and len({colour for _, colour in first}) == 3
        world.parse_caption(plan.target_caption(0))
    with pytest.raises(InputError, match="edits per clip"):
        plan_clip(world.HELD_OUT_SEED, MAX_EDITS + 1)
    with pytest.raises(InputError, match="pretraining data"):
        BenchmarkConfig(first_seed=world.HELD_OUT_SEED - 1)


def test_priors_are_those_the_workflow_stages_write_for_the_rendered_clip(clip, tmp_path):
    """Frames stored as the frames stage stores a rendered clip; mask given by the render; corr and depth by
    the `render` backends; alpha by the guide stage."""
    write_clip(clip, tmp_path / "video.mp4", tmp_path / "masks", tmp_path / "truth.zarr", fps=8)
    group = tmp_path / "clip.zarr"
    attrs = {
        "frame_indices": list(range(len(clip.frames))),
        "source_size": [SIZE, SIZE],
        "size": [SIZE, SIZE],
        "crop": "none",
        "source": "video.mp4",
    }
    write_array(group / "frames", clip.frames, attrs)
    write_array(group / "mask", clip.mask)
    corr_stage(group / "frames", group / "mask", group / "corr", "render", {}, truth=tmp_path / "truth.zarr")
    depth_stage(group / "frames", group / "mask", group / "depth", "render", {}, truth=tmp_path / "truth.zarr")
    guide_stage(
        group / "frames", group / "corr", group / "depth", group / "mask", group / "guide", group / "alpha", tmp_path / "p.png"
    )
    priors = rendered_priors(clip)
    for name in ("corr", "depth", "alpha"):
        np.testing.assert_array_equal(getattr(priors, name), read_array(group / name)[0].astype(np.float32), err_msg=name)
    assert (priors.depth[clip.mask] > 0).all()


# ---- reduced runs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """An untrained judge in train_classifier's format: the reduced runs check the path, not the judgement."""
    folder = tmp_path_factory.mktemp("classifier")
    torch.manual_seed(0)
    model = ToyClassifier()
    save_file({name: value.contiguous() for name, value in model.state_dict().items()}, folder / "model.safetensors")
    config = {
        "widths": list(model.widths),
        "image_size": model.image_size,
        "shapes": list(world.SHAPES),
        "colours": list(world.COLOURS),
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def outputs_in(folder: Path) -> BenchmarkOutputs:
    names = {
        "rows": "edits.csv",
        "table": "table.csv",
        "differences": "differences.csv",
        "markdown": "table.md",
        "plot": "metrics.png",
        "strips": "strips.png",
        "timing": "timing.json",
    }
    return BenchmarkOutputs(**{field: folder / name for field, name in names.items()})


REDUCED = dict(
    clips=1, edits=2, methods=("vidmp3", "tune-a-video"), finetune_steps=1, inversion_steps=2, editing_steps=2, strip_clips=1
)


def test_a_reduced_benchmark_writes_every_output_with_sane_metrics(tmp_path, classifier_dir):
    build_tiny("tiny", tmp_path / "models" / "tiny", seed=0)
    config = BenchmarkConfig(**REDUCED)
    outputs = outputs_in(tmp_path / "out")
    rows = run_benchmark(config, model_spec("tiny", tiny_dir=tmp_path / "models"), classifier_dir, outputs)

    on_disk = pd.read_csv(outputs.rows)
    assert len(on_disk) == 1 * 2 * (2 + len(CHANCE_LEVELS)) and list(on_disk.columns) == [*rows.columns]
    assert on_disk["method"].tolist() == [name for name in ("vidmp3", "tune-a-video", *CHANCE_LEVELS) for _ in range(2)]
    plan = plan_clip(world.HELD_OUT_SEED, 2)
    assert set(on_disk["source"]) == {plan.caption}
    assert on_disk["target"].tolist()[:2] == [plan.target_caption(0), plan.target_caption(1)]
    for metric in ("shape_correct", "colour_correct", "both_correct", "label_agreement"):
        assert on_disk[metric].between(0, 1).all(), metric
    assert (on_disk["both_correct"] <= on_disk[["shape_correct", "colour_correct"]].min(axis=1)).all()
    # the unedited reference is the source itself: on its path, on its silhouette (bar partly covered
    # edge pixels the segmentation adds), changing like itself
    unedited = on_disk[on_disk["method"] == UNEDITED]
    assert (unedited["centroid_error"] < 0.01).all() and (unedited["shape_iou"] > 0.9).all()
    assert (unedited["change_ratio"] == 1.0).all() and (unedited["empty_frames"] == 0).all()

    table = pd.read_csv(outputs.table)
    assert len(table) == (2 + len(CHANCE_LEVELS)) * len(METRICS) and set(table["metric"]) == set(METRICS)
    vidmp3 = on_disk[on_disk["method"] == "vidmp3"]
    row = table[(table["method"] == "vidmp3") & (table["metric"] == "centroid_error")].iloc[0]
    assert (
        row["mean"] == pytest.approx(vidmp3["centroid_error"].mean()) and row["count"] == vidmp3["centroid_error"].notna().sum()
    )
    assert row["std"] == pytest.approx(vidmp3["centroid_error"].std(ddof=1), nan_ok=True)
    markdown = Path(outputs.markdown).read_text()
    assert all(name in markdown for name in ("vidmp3", "tune-a-video", *CHANCE_LEVELS, METRICS["shape_iou"].label))
    assert pd.read_csv(outputs.differences).empty  # no no-motionguide run to pair with
    for image in (outputs.plot, outputs.strips):
        assert min(Image.open(image).size) > 100
    timing = json.loads(Path(outputs.timing).read_text())
    assert timing["stages"]["finetune"]["runs"] == 2 and timing["stages"]["sampling"]["runs"] == 4
    assert timing["config"]["methods"] == ["vidmp3", "tune-a-video"]


@pytest.mark.workflow
def test_the_rule_runs_the_benchmark_from_the_config(tmp_path, classifier_dir):
    """`snakemake toyworld_benchmark` on the tiny preset: the rule, its helpers and its script."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["toyworld"]["benchmark"].update(
        preset="tiny",
        classifier=str(classifier_dir),
        clips=1,
        edits=1,
        methods=["no-motionguide"],
        finetune_steps=1,
        inversion_steps=1,
        editing_steps=1,
        strip_clips=1,
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    for sheet in ("videos.tsv", "edits.tsv"):
        (tmp_path / "config" / sheet).write_text((REPO / "config" / sheet).read_text())
    snakemake(tmp_path, "toyworld_benchmark")
    results = tmp_path / "results" / "toyworld" / "benchmark"
    rows = pd.read_csv(results / "edits.csv")
    assert rows["method"].tolist() == ["no-motionguide", *CHANCE_LEVELS]
    assert set(pd.read_csv(results / "table.csv")["method"]) == {"no-motionguide", *CHANCE_LEVELS}
    assert json.loads((results / "timing.json").read_text())["torch_threads"] == 1
    assert (tmp_path / "results" / "logs" / "toyworld" / "benchmark.log").is_file()


def test_long_clips_edit_window_by_window_and_score_the_seams(tmp_path, classifier_dir, monkeypatch):
    """benchmarks/long_clips.py's mechanics on a tiny setting: 12-frame clips through 4-frame windows."""
    build_tiny("tiny", tmp_path / "models" / "tiny", seed=0)
    window = Window(4, 2, shift=True)  # as the benchmark's default
    config = BenchmarkConfig(**REDUCED | dict(clips=2, edits=1, methods=("vidmp3", "no-motionguide"), frames=12, window=window))
    calls = recording_frames(monkeypatch, vidmp3.finetune)
    rows, timer = run_long_clips(config, model_spec("tiny", tiny_dir=tmp_path / "models"), load_classifier(classifier_dir))
    assert calls and set(calls) == {window.frames}  # fine-tuning, inversion and sampling: one window per UNet call
    assert len(rows) == 2 * (2 + len(CHANCE_LEVELS)) and rows["seam_score"].notna().sum() == len(rows) - 2  # static: none
    assert (
        rows["phase_seam_score"].notna().sum() == len(rows) - 2 and (rows["phase_seam_score"].dropna() >= 1.0).all()
    )  # the worst offset: never below the rest
    for seed, mine in rows.groupby("clip_seed"):
        plan = plan_clip(seed, 1)
        source = world.render_toy_clip(plan.shape, plan.colour, seed, frames=12)
        unedited = mine[mine["method"] == UNEDITED].iloc[0]
        assert unedited["seam_score"] == pytest.approx(seam_score(source.frames, window)) and unedited["centroid_error"] < 0.01
    assert timer.summary()["sampling"]["runs"] == 2 * 2
    markdown = long_clips_markdown(rows, config)
    assert (
        "12 frames, 5 windows of 4 frames every 2 (the grid moved one frame per DDIM step)" in markdown
        and "Paired differences" in markdown
    )
    assert all(f"| {name} |" in markdown or f"| *{name}* |" in markdown for name in (*config.methods, *CHANCE_LEVELS))
    with pytest.raises(InputError, match="long clips need more frames than the 4-frame window, got 4"):
        run_long_clips(BenchmarkConfig(**REDUCED | dict(frames=4, window=window)), None, None)
    with pytest.raises(InputError, match="frames per clip must be at least 2"):
        BenchmarkConfig(frames=1)
