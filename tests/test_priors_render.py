"""Exact priors from the renderer's truth, through the frames stage's sampling (stride, crop, resize)."""

from __future__ import annotations

import numpy as np
import pytest
from priors_clips import aligned, native_attrs, rendered

from vidmp3.errors import InputError
from vidmp3.frames import resize_masks
from vidmp3.priors import compute_matches
from vidmp3.priors.correspondence import pixel_grid
from vidmp3.priors.render import align_truth, render_visible_in_first
from vidmp3.scene import SubjectSpec, default_camera
from vidmp3.synthetic import make_trajectory, render_clip


def test_frame_zero_matches_itself():
    clip = rendered("cube", "gradient", "large", 0)
    matches = compute_matches(clip.frames, clip.mask, "render", {}, truth=aligned(clip))
    error = np.linalg.norm(matches[0] - pixel_grid(96, 96), axis=-1)[clip.mask[0]]
    assert error.max() < 0.75  # the point shown is under half a pixel (of supersampling) from the centre


def test_a_match_lands_where_frame_zero_shows_the_same_surface_point():
    clip = rendered("box", "gradient", "large", 1)
    truth = aligned(clip)
    matches = compute_matches(clip.frames, clip.mask, "render", {}, truth=truth)
    seen = render_visible_in_first(truth, clip.mask)
    assert 0.3 < seen[1:][clip.mask[1:]].mean() < 1.0  # large motion: part of the subject turns into view
    t = len(clip.frames) - 1
    positions = np.rint(matches[t][seen[t]]).astype(int)
    shown = clip.object_coords[0][positions[:, 1], positions[:, 0]]
    distance = np.linalg.norm(shown - clip.object_coords[t][seen[t]], axis=-1)
    pixel_in_metres = 4.0 / 96  # the view spans about 4 m at the subject
    assert np.nanmedian(distance) < pixel_in_metres


def test_truth_follows_the_frames_stage_stride_crop_and_resize():
    subject = SubjectSpec("cube", (0.8, 0.8, 0.8), texture="checker")
    clip = render_clip(
        subject, make_trajectory(6, seed=4, subject=subject), 96, 128, camera=default_camera(128, 96), supersample=2
    )
    attrs = {"source": "rendered", "frame_indices": [1, 3, 5], "source_size": [128, 96], "size": [48, 48], "crop": "center"}
    truth = align_truth(clip, attrs)
    mask = resize_masks(clip.mask[[1, 3, 5]], (48, 48), "center")
    matches = compute_matches(np.zeros((3, 48, 48, 3), np.uint8), mask, "render", {}, truth=truth)
    error = np.linalg.norm(matches[0] - pixel_grid(48, 48), axis=-1)[mask[0]]
    # An output pixel covers 2x2 source pixels; the nearest one's centre is 0.25 output px off on each axis.
    assert np.median(error) < 0.6 and error.max() < 1.5
    np.testing.assert_allclose(truth.poses, clip.poses[[1, 3, 5]])
    np.testing.assert_allclose(truth.frame_to_source(truth.source_to_frame(np.array([10.0, 20.0]))), [10.0, 20.0])


def test_render_truth_of_another_clip_is_refused():
    clip = rendered("cube", "gradient", "small", 0)
    attrs = native_attrs(clip) | {"source_size": [64, 64]}
    with pytest.raises(InputError, match="not the same clip"):
        align_truth(clip, attrs)
    attrs = native_attrs(clip) | {"frame_indices": [0, 40]}
    with pytest.raises(InputError, match="has 8 frames but the video takes source frame 40"):
        align_truth(clip, attrs)
    with pytest.raises(InputError, match="needs the rendered clip's truth"):
        compute_matches(clip.frames, clip.mask, "render", {})
