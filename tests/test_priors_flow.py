"""The offline `flow` correspondence backend: composed optical flow with a consistency check."""

from __future__ import annotations

import numpy as np
import pytest
from priors_clips import aligned, rendered

from vidmp3.errors import InputError
from vidmp3.priors import compute_matches, matches_to_corr
from vidmp3.priors.correspondence import pixel_grid, summarise_endpoint_error
from vidmp3.priors.flow import consistent, flow_matches
from vidmp3.priors.render import render_visible_in_first

H, W = 64, 80


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (flow needs texture at several scales)."""
    import cv2

    noise = np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)
    texture = sum(cv2.GaussianBlur(noise, (0, 0), sigma) for sigma in (1.0, 2.5, 6.0))
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    return (texture * 255).astype(np.uint8)


def test_a_translating_picture_matches_its_shift_in_frame_zero():
    big = textured(H + 40, W + 40)
    shift = np.array([2, 1])  # pixels per frame, (x, y)
    frames = np.stack([big[20 - t * shift[1] : 20 - t * shift[1] + H, 20 - t * shift[0] : 20 - t * shift[0] + W] for t in range(5)])
    mask = np.zeros((5, H, W), dtype=bool)
    for t in range(5):  # the subject moves with the picture
        mask[t, 16 + t * shift[1] : 40 + t * shift[1], 20 + t * shift[0] : 50 + t * shift[0]] = True
    matches = flow_matches(frames, mask)
    expected = pixel_grid(H, W)[None] - np.arange(5)[:, None, None, None] * shift
    error = np.linalg.norm(matches - expected, axis=-1)[mask]
    assert np.isfinite(error).all()
    assert np.median(error) < 0.3 and np.percentile(error, 95) < 1.0


def test_consistency_check_accepts_inverse_flows_and_rejects_disagreeing_ones():
    backward = np.full((H, W, 2), 3.0, np.float32)
    assert consistent(backward, -backward).all()
    forward = -backward
    forward[:, 30:] += 4.0  # a forward flow that does not return where the backward one came from
    agree = consistent(backward, forward)
    assert agree[:, :20].all() and not agree[:, 40:].any()


@pytest.mark.parametrize("texture", ["gradient", "checker"])
@pytest.mark.parametrize("seed", [0, 1])
def test_flow_correspondence_on_rendered_clips_is_within_the_measured_bound(texture, seed):
    """Small motion, 96x96, 8 frames: EPE over the points frame 0 sees, against the exact map.

    Measured (cube, seeds 0-3): gradient 1.2-1.9 px, checker 0.9-1.3 px, against 3.2-4.9 px for
    "no motion" (each pixel matched to itself); bounds 2.5 px and 0.6 x the no-motion error.
    """
    clip = rendered("cube", texture, "small", seed)
    truth = aligned(clip)
    exact = compute_matches(clip.frames, clip.mask, "render", {}, truth=truth)
    seen = np.where(render_visible_in_first(truth, clip.mask)[..., None], exact, np.nan)
    matches = compute_matches(clip.frames, clip.mask, "flow", {})
    still = np.where(clip.mask[..., None], pixel_grid(*clip.mask.shape[1:])[None], np.nan).astype(np.float32)
    flow_epe = summarise_endpoint_error(matches, seen)
    still_epe = summarise_endpoint_error(still, seen)
    assert flow_epe["coverage"] == 1.0
    assert flow_epe["epe_mean"] < 2.5
    assert flow_epe["epe_mean"] < 0.6 * still_epe["epe_mean"]


def test_every_subject_pixel_gets_a_match_and_nothing_outside_it():
    clip = rendered("box", "checker", "large", 0)
    matches = compute_matches(clip.frames, clip.mask, "flow", {"method": "farneback"})
    assert matches.dtype == np.float32
    assert np.array_equal(np.isfinite(matches).all(axis=-1), clip.mask)
    np.testing.assert_array_equal(matches[0][clip.mask[0]], pixel_grid(96, 96)[clip.mask[0]])


def test_a_frame_with_an_empty_mask_gets_no_matches_and_the_next_chains_past_it():
    clip = rendered("cube", "checker", "small", 0)
    mask = clip.mask.copy()
    mask[3] = False
    matches = compute_matches(clip.frames, mask, "flow", {})
    assert np.isnan(matches[3]).all()
    assert np.array_equal(np.isfinite(matches[4]).all(axis=-1), mask[4])
    corr = matches_to_corr(matches)
    assert np.isfinite(corr).all() and not corr[3].any()


def test_bad_flow_options_are_input_errors():
    clip = rendered("cube", "checker", "small", 0)
    with pytest.raises(InputError, match="method 'raft'"):
        compute_matches(clip.frames, clip.mask, "flow", {"method": "raft"})
    with pytest.raises(InputError, match="dis_preset 'slow'"):
        compute_matches(clip.frames, clip.mask, "flow", {"dis_preset": "slow"})
    with pytest.raises(InputError, match="unknown option.*window"):
        compute_matches(clip.frames, clip.mask, "flow", {"window": 5})
