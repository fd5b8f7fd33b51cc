"""The learned backends through the priors dispatch: option names, weights, dtype and class routing.

Uses the tiny random models of tests/test_priors_learned.py (real classes, saved and loaded back).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_priors_learned import HEIGHT, WIDTH, box_mask, noise_frames, tiny_models  # noqa: F401 (fixture)

from vidmp3.errors import InputError
from vidmp3.priors import DEPTH_FLOOR, compute_depth, compute_mask, compute_matches


def test_feature_matching_through_the_dispatch(tiny_models):
    """dinov2 only: sd-dino takes the same path (its two weights keys are checked in test_priors_dispatch)."""
    frames = noise_frames(2)
    mask = box_mask(2)
    matches = compute_matches(frames, mask, "dinov2", {"weights": tiny_models["dinov2"], "resolution": WIDTH, "dtype": "float32"})
    assert matches.dtype == np.float32 and np.array_equal(np.isfinite(matches).all(axis=-1), mask)


def test_depth_anything_through_the_dispatch_is_normalised_near_large(tiny_models):
    frames = noise_frames(2, seed=2)
    mask = box_mask(2)
    depth = compute_depth(frames, mask, "depth-anything-v2", {"weights": tiny_models["depth"]})
    assert depth[mask].min() == pytest.approx(DEPTH_FLOOR) and depth[mask].max() == pytest.approx(1.0)
    assert not depth[~mask].any()


def test_segmenters_through_the_dispatch_take_the_class_name(tiny_models):
    frames = np.repeat(noise_frames(1, seed=3), 2, axis=0)
    masks = compute_mask(frames, "mask2former", {"weights": tiny_models["mask2former"]}, class_name="dog")
    assert masks.shape == (2, HEIGHT, WIDTH) and masks[0].any()
    with pytest.raises(InputError, match="'giraffe' is not one of the 4 classes"):
        compute_mask(frames, "mask2former", {"weights": tiny_models["mask2former"]}, class_name="giraffe")
    foreground = compute_mask(frames, "clipseg", {"weights": tiny_models["clipseg"], "threshold": 0.0}, class_name="giraffe")
    assert foreground.all()


def test_learned_option_errors(tiny_models):
    frames, mask = noise_frames(2), box_mask(2)
    with pytest.raises(InputError, match="unknown option\\(s\\) model; it takes weights, device, dtype"):
        compute_depth(frames, mask, "depth-anything-v2", {"weights": tiny_models["depth"], "model": "x"})
    with pytest.raises(InputError, match="dtype 'float8' is not a torch dtype"):
        compute_depth(frames, mask, "depth-anything-v2", {"weights": tiny_models["depth"], "dtype": "float8"})
