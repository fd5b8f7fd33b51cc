"""Backend dispatch, C ⊙ D, the empty-subject rules, the workflow stages and their settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from priors_clips import native_attrs, rendered

from vidmp3.errors import InputError
from vidmp3.priors import combine, compute_depth, compute_mask, compute_matches, matches_to_corr
from vidmp3.workflow.prior_settings import prior_inputs, prior_params
from vidmp3.priors.stages import corr_stage, depth_stage, guide_stage, mask_stage
from vidmp3.store import read_array, write_array
from vidmp3.synthetic import write_clip


@pytest.fixture(scope="module")
def clip():
    return rendered("cube", "checker", "small", 0)


def test_unknown_backends_are_named_with_the_choices(clip):
    with pytest.raises(
        InputError, match=r"correspondence backend 'raft' is unknown; choose one of sd-dino, dinov2, flow, render"
    ):
        compute_matches(clip.frames, clip.mask, "raft", {})
    with pytest.raises(InputError, match="mask backend 'sam' is unknown"):
        compute_mask(clip.frames, "sam", {})
    with pytest.raises(InputError, match="depth backend 'zoe' is unknown"):
        compute_depth(clip.frames, clip.mask, "zoe", {})


@pytest.mark.parametrize(
    ("prior", "backend", "missing"),
    [
        ("corr", "dinov2", "weights"),
        ("corr", "sd-dino", "dino_weights, sd_weights"),
        ("mask", "mask2former", "weights"),
        ("mask", "clipseg", "weights"),
        ("depth", "depth-anything-v2", "weights"),
    ],
)
def test_a_learned_backend_without_weights_is_an_input_error(clip, prior, backend, missing):
    options = {"weights": ""} if backend != "sd-dino" else {"dino_weights": "", "sd_weights": ""}
    with pytest.raises(InputError, match=f"backend '{backend}' has no weights: set option\\(s\\) {missing}"):
        if prior == "corr":
            compute_matches(clip.frames, clip.mask, backend, options)
        elif prior == "mask":
            compute_mask(clip.frames, backend, options, class_name="dog")
        else:
            compute_depth(clip.frames, clip.mask, backend, options)


def test_mask_backend_input_errors(clip):
    with pytest.raises(InputError, match="needs the subject's class name"):
        compute_mask(clip.frames, "mask2former", {"weights": "some/model"})
    with pytest.raises(InputError, match="'given' needs the sheet's masks"):
        compute_mask(clip.frames, "given", {})
    with pytest.raises(InputError, match="given masks must be bool"):
        compute_mask(clip.frames, "given", {}, given=clip.mask[:3])
    np.testing.assert_array_equal(compute_mask(clip.frames, "given", {}, given=clip.mask), clip.mask)


def test_frame_zero_without_subject_is_refused(clip):
    mask = clip.mask.copy()
    mask[0] = False
    with pytest.raises(InputError, match="mask of frame 0 is empty"):
        compute_matches(clip.frames, mask, "flow", {})


def test_a_frame_without_subject_gets_zero_guide_and_alpha_and_nothing_is_nan(clip):
    mask = clip.mask.copy()
    mask[5] = False
    corr = matches_to_corr(compute_matches(clip.frames, mask, "flow", {}))
    depth = compute_depth(clip.frames, mask, "mask-area", {})
    guide, alpha = combine(corr.astype(np.float16), depth.astype(np.float16), mask)
    for array in (corr, depth, guide, alpha):
        assert np.isfinite(array).all()
    assert alpha[5] == 0 and not guide[5].any() and not corr[5].any() and not depth[5].any()
    assert np.all(alpha[mask.any(axis=(1, 2))] > 0)


def test_guide_is_corr_times_depth_channels_first_and_alpha_is_the_subject_share():
    mask = np.zeros((2, 8, 8), dtype=bool)
    mask[0, :4] = True  # half the frame
    corr = np.where(mask[..., None], np.float32([0.2, 0.4, 0.8]), 0).astype(np.float16)
    depth = np.where(mask, 0.5, 0).astype(np.float16)
    guide, alpha = combine(corr, depth, mask)
    assert guide.dtype == np.float16 and guide.shape == (2, 3, 8, 8)
    assert alpha.dtype == np.float32
    np.testing.assert_allclose(alpha, [0.5, 0.0])
    np.testing.assert_allclose(guide[0, :, 0, 0], [0.1, 0.2, 0.4], rtol=1e-3)
    assert not guide[0, :, 4:].any()
    with pytest.raises(InputError, match="do not fit together"):
        combine(corr[:1], depth, mask)


# ----------------------------------------------------------------------------- stages


@pytest.fixture
def group(tmp_path, clip):
    """A video's priors group as the frames stage leaves it, for the rendered clip."""
    group = tmp_path / "toy.zarr"
    write_array(group / "frames", clip.frames, native_attrs(clip))
    write_array(group / "mask_given", clip.mask)
    write_clip(clip, tmp_path / "clip" / "video.mp4", tmp_path / "clip" / "masks", tmp_path / "clip" / "truth.zarr", fps=8)
    return group


def test_stages_write_every_prior_and_the_figure(group, tmp_path, clip):
    mask_stage(group / "frames", group / "mask", "given", {}, given=group / "mask_given")
    corr_stage(group / "frames", group / "mask", group / "corr", "render", {}, truth=tmp_path / "clip" / "truth.zarr")
    depth_stage(group / "frames", group / "mask", group / "depth", "mask-area", {})
    figure = tmp_path / "toy_priors.png"
    guide_stage(group / "frames", group / "corr", group / "depth", group / "mask", group / "guide", group / "alpha", figure)
    corr, corr_attrs = read_array(group / "corr")
    depth, depth_attrs = read_array(group / "depth")
    guide, _ = read_array(group / "guide")
    alpha, _ = read_array(group / "alpha")
    assert corr.dtype == np.float16 and corr.shape == (*clip.mask.shape, 3)
    assert depth.dtype == np.float16 and guide.dtype == np.float16 and guide.shape == (8, 3, 96, 96)
    assert corr_attrs["backend"] == "render" and corr_attrs["matched_share"] == 1.0
    assert "near is large" in depth_attrs["convention"]
    np.testing.assert_allclose(alpha, clip.mask.mean(axis=(1, 2)), rtol=1e-6)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_stage_leaves_nothing(group, tmp_path):
    mask_stage(group / "frames", group / "mask", "given", {}, given=group / "mask_given")
    with pytest.raises(InputError):
        corr_stage(group / "frames", group / "mask", group / "corr", "flow", {"method": "raft"})
    with pytest.raises(InputError):
        depth_stage(group / "frames", group / "mask", group / "depth", "render", {})
    with pytest.raises(InputError, match="'depth-anything-v2' has no weights"):
        depth_stage(group / "frames", group / "mask", group / "depth", "depth-anything-v2", {"weights": ""})
    with pytest.raises(InputError):
        mask_stage(group / "frames", group / "mask2", "motion", {"threshold_pixels": -1})
    assert sorted(p.name for p in group.iterdir()) == ["frames", "mask", "mask_given"]


# ----------------------------------------------------------------------------- settings


CONFIG = {
    "priors": {"corr": "", "mask": "", "depth": "", "flow": {"method": "dis"}, "mask2former": {"weights": "x"}},
    "render": {"clips": {"toy": {}}},
    "toyworld": {"clips": {"red-cube": {}}},
    "model": {"preset": "tiny"},
}


def row(**cells) -> pd.Series:
    base = {
        "source": "results/clips/toy/video.mp4",
        "masks": "results/clips/toy/masks",
        "corr_backend": "",
        "mask_backend": "",
        "depth_backend": "",
        "subject_class": "",
    }
    return pd.Series(base | cells, name="toy")


def test_settings_take_the_sheet_cell_over_the_config_over_the_preset_and_only_the_backend_options():
    assert prior_params("corr", row(), CONFIG) == {"backend": "flow", "options": {"method": "dis"}}
    assert prior_params("depth", row(), CONFIG | {"model": {"preset": "sd15"}})["backend"] == "depth-anything-v2"
    assert prior_params("depth", row(), CONFIG | {"priors": CONFIG["priors"] | {"depth": "render"}})["backend"] == "render"
    assert prior_params("corr", row(corr_backend="render"), CONFIG) == {"backend": "render", "options": {}}
    assert prior_params("mask", row(mask_backend="mask2former", subject_class="dog"), CONFIG) == {
        "backend": "mask2former",
        "options": {"weights": "x"},
        "class_name": "dog",
    }
    assert prior_inputs("mask", row(), CONFIG) == {
        "frames": "results/priors/toy.zarr/frames",
        "given": "results/priors/toy.zarr/mask_given",
    }
    assert prior_inputs("depth", row(depth_backend="render"), CONFIG) == {
        "frames": "results/priors/toy.zarr/frames",
        "mask": "results/priors/toy.zarr/mask",
        "truth": "results/clips/toy/truth.zarr",
    }
    toyworld = row(source="results/clips/red-cube/video.mp4", depth_backend="render")
    assert prior_inputs("depth", toyworld, CONFIG)["truth"] == "results/clips/red-cube/truth.zarr"


def test_settings_errors_name_the_video_and_the_column():
    with pytest.raises(InputError, match="video toy: column depth_backend: backend 'zoe' is unknown"):
        prior_params("depth", row(depth_backend="zoe"), CONFIG)
    with pytest.raises(InputError, match="config priors: corr: backend 'raft'"):
        prior_params("corr", row(), CONFIG | {"priors": CONFIG["priors"] | {"corr": "raft"}})
    with pytest.raises(InputError, match="needs a masks folder"):
        prior_inputs("mask", row(masks=""), CONFIG)
    with pytest.raises(InputError, match="needs the subject's class in column subject_class"):
        prior_params("mask", row(mask_backend="clipseg"), CONFIG)
    with pytest.raises(InputError, match="needs a rendered clip"):
        prior_inputs("corr", row(source="clips/dog", corr_backend="render"), CONFIG)
