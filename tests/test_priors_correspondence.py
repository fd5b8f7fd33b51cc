"""The correspondence colour map shared by every backend, and its end-point error."""

from __future__ import annotations

import numpy as np
import pytest

from vidmp3.priors.correspondence import (
    coordinate_colours,
    endpoint_error,
    matches_to_corr,
    pixel_grid,
    summarise_endpoint_error,
)

H, W = 24, 32


def first_frame_matches(mask: np.ndarray) -> np.ndarray:
    return np.where(mask[..., None], pixel_grid(H, W), np.nan).astype(np.float32)


@pytest.fixture
def mask() -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[4:20, 6:30] = True  # bounding box x 6..29, y 4..19
    return mask


def test_frame_zero_is_its_own_coordinate_colour_map_over_the_subject_box(mask):
    corr = matches_to_corr(first_frame_matches(mask)[None])
    assert corr.dtype == np.float32 and corr.shape == (1, H, W, 3)
    assert np.all(corr[0][~mask] == 0)
    np.testing.assert_allclose(corr[0, 4, 6], [0, 0, 1])  # top-left of the subject: blue
    np.testing.assert_allclose(corr[0, 19, 29], [1, 1, 0])  # bottom-right: yellow
    np.testing.assert_allclose(corr[0, 4, 29], [1, 0, 0.5])  # top-right: magenta
    np.testing.assert_allclose(corr[0, 19, 6], [0, 1, 0.5])  # bottom-left: cyan
    r, g = (20 - 6) / 23, (10 - 4) / 15
    np.testing.assert_allclose(corr[0, 10, 20], [r, g, 1 - (r + g) / 2], rtol=1e-6)


def test_every_subject_pixel_of_frame_zero_has_its_own_colour(mask):
    colours = matches_to_corr(first_frame_matches(mask)[None])[0][mask]
    assert len(np.unique(colours.round(6), axis=0)) == mask.sum()


def test_the_colours_do_not_depend_on_where_the_subject_is_or_its_size(mask):
    moved = np.zeros_like(mask)
    moved[0:8, 0:12] = True  # same aspect (16x24 -> 8x12), other place and size
    corner = matches_to_corr(first_frame_matches(moved)[None])[0]
    original = matches_to_corr(first_frame_matches(mask)[None])[0]
    np.testing.assert_allclose(corner[7, 11], original[19, 29])
    np.testing.assert_allclose(corner[0, 0], original[4, 6])


def test_a_pixel_takes_the_colour_at_its_match_and_none_without_one(mask):
    matches = np.full((2, H, W, 2), np.nan, dtype=np.float32)
    matches[0] = first_frame_matches(mask)
    matches[1, 5, 5] = (12.5, 7.25)  # sub-pixel: the linear map needs no interpolation
    corr = matches_to_corr(matches)
    expected = coordinate_colours(np.array([12.5, 7.25]), np.array([6.0, 4.0]), np.array([23.0, 15.0]))
    np.testing.assert_allclose(corr[1, 5, 5], expected, rtol=1e-6)
    assert np.count_nonzero(corr[1].any(axis=-1)) == 1
    assert np.isfinite(corr).all()


def test_matches_outside_the_box_clamp_to_the_edge_colour(mask):
    matches = np.stack([first_frame_matches(mask), np.full((H, W, 2), np.nan, np.float32)])
    matches[1, 0, :2] = [(-5.0, -5.0), (W + 9.0, H + 9.0)]
    corr = matches_to_corr(matches)
    np.testing.assert_allclose(corr[1, 0, :2], [[0, 0, 1], [1, 1, 0]], atol=1e-6)


def test_frame_zero_without_subject_has_no_colour_map():
    with pytest.raises(ValueError, match="frame 0 has no matched pixel"):
        matches_to_corr(np.full((2, H, W, 2), np.nan, np.float32))


def test_endpoint_error_is_the_distance_and_missing_where_either_is_missing():
    reference = np.broadcast_to(pixel_grid(H, W), (3, H, W, 2)).astype(np.float32)
    matches = reference + np.array([3.0, 4.0], np.float32)
    matches[2, :2] = np.nan
    error = endpoint_error(matches, reference)
    assert np.allclose(error[~np.isnan(error)], 5.0)
    summary = summarise_endpoint_error(matches, reference)
    assert summary["epe_mean"] == pytest.approx(5.0) and summary["epe_median"] == pytest.approx(5.0)
    assert summary["coverage"] == pytest.approx(1 - 2 * W / (2 * H * W))
    with pytest.raises(ValueError, match="shape"):
        endpoint_error(matches[:2], reference)
