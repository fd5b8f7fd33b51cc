"""Offline correspondence: dense optical flow composed frame by frame back to frame 0.

For frame t, the backward flow t -> t-1 carries each pixel to frame t-1, where the matches of
frame t-1 (positions in frame 0) are sampled bilinearly. A subject pixel keeps that match only if
its flow passes the forward-backward consistency check of Sundaram et al. (ECCV 2010),
|w_b + w_f(p + w_b)|^2 <= 0.01 (|w_b|^2 + |w_f(p + w_b)|^2) + 0.5, and lands inside the frame on a
subject pixel of frame t-1; occlusions and disocclusions fail it. Subject pixels that fail take
the match of the nearest subject pixel that passed, so every subject pixel gets a colour (as
with feature matching), and the chain goes on from these filled matches, so a frame where the
check fails widely (fast rotation) does not cut the track for all later frames. A frame where no
subject pixel passes (or whose mask is empty) gets no matches (NaN); the next frame is chained to
the last frame that has them.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from vidmp3.errors import InputError
from vidmp3.priors.correspondence import pixel_grid

FLOW_METHODS = ("dis", "farneback")
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5


class FlowEstimator:
    """Dense flow between two RGB frames: `flow(a, b)[y, x]` is where pixel (x, y) of `a` moved in `b`."""

    def __init__(self, method: str = "dis", dis_preset: str = "medium"):
        if method not in FLOW_METHODS:
            raise InputError(f"flow method {method!r} is unknown; choose one of {', '.join(FLOW_METHODS)}")
        if dis_preset not in DIS_PRESETS:
            raise InputError(f"flow dis_preset {dis_preset!r} is unknown; choose one of {', '.join(DIS_PRESETS)}")
        self.method = method
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[dis_preset]) if method == "dis" else None

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        first_grey = cv2.cvtColor(first, cv2.COLOR_RGB2GRAY)
        second_grey = cv2.cvtColor(second, cv2.COLOR_RGB2GRAY)
        if self._dis is not None:
            return self._dis.calc(first_grey, second_grey, None)
        return cv2.calcOpticalFlowFarneback(
            first_grey, second_grey, None, pyr_scale=0.5, levels=5, winsize=15, iterations=3,
            poly_n=5, poly_sigma=1.2, flags=0,
        )


def sample(image: np.ndarray, positions: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Sample `image` (H,W[,C]) at float (x, y) `positions` (H,W,2); outside the frame repeats the border."""
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(
        image, positions[..., 0], positions[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE,
    )


def consistent(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Forward-backward check of `backward` (t -> t-1) against `forward` (t-1 -> t), bool (H,W)."""
    grid = pixel_grid(*backward.shape[:2])
    forward_there = sample(forward, grid + backward)
    loop = backward + forward_there
    bound = CONSISTENCY_RELATIVE * ((backward**2).sum(-1) + (forward_there**2).sum(-1)) + CONSISTENCY_ABSOLUTE
    return (loop**2).sum(-1) <= bound


def inside_frame(positions: np.ndarray) -> np.ndarray:
    height, width = positions.shape[:2]
    x, y = positions[..., 0], positions[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def fill_from_nearest(matches: np.ndarray, passed: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """Give each pixel of `subject` the match of the nearest `passed` pixel; NaN elsewhere (or if none passed)."""
    filled = np.full_like(matches, np.nan)
    if passed.any():
        _, (rows, cols) = ndimage.distance_transform_edt(~passed, return_indices=True)
        filled[subject] = matches[rows[subject], cols[subject]]
    return filled


def flow_matches(frames: np.ndarray, mask: np.ndarray, method: str = "dis", dis_preset: str = "medium") -> np.ndarray:
    """Matches (N,H,W,2) of each subject pixel in frame 0, by composing flows between consecutive frames.

    A frame left without matches (empty mask, or no pixel passing the check) is skipped: the next
    frame is chained to the last frame that has matches.
    """
    count, height, width = mask.shape
    estimator = FlowEstimator(method, dis_preset)
    grid = pixel_grid(height, width)
    everywhere = np.ones((height, width), dtype=bool)
    matches = np.full((count, height, width, 2), np.nan, dtype=np.float32)
    matches[0][mask[0]] = grid[mask[0]]
    source = 0  # the last frame with matches
    for t in tqdm(range(1, count), desc="flow correspondence", leave=False):
        if not mask[t].any():
            continue
        matched = np.isfinite(matches[source, ..., 0])
        backward = estimator(frames[t], frames[source])
        forward = estimator(frames[source], frames[t])
        previous = grid + backward
        # Extend the source's matches beyond its subject, so bilinear sampling at the edge never mixes in NaN.
        composed = sample(fill_from_nearest(matches[source], matched, everywhere), previous)
        passed = (
            consistent(backward, forward)
            & inside_frame(previous)
            & sample(matched.view(np.uint8), previous, nearest=True).astype(bool)
            & mask[t]
        )
        matches[t] = fill_from_nearest(composed, passed, mask[t])
        if passed.any():
            source = t
    return matches
