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

Chained this way, errors add up over a long clip, and a frame where the check fails widely hands
its filled (nearest-pixel) guesses on to every later frame. `chaining="anchored"` (the default)
chains on only matches that passed a check, and re-anchors each pixel whose link to the previous
frame fails: it is matched through the latest keyframes (every `keyframe_interval`-th frame) and
straight to frame 0, keeping, among the candidates that pass the check, the one whose match in
frame 0 looks most like it (smallest colour difference of lightly blurred frames, averaged over a
small window); only pixels that no link matches are filled. Where the chain holds it is kept:
preferring a direct long flow by its colour made large motion worse. Flow is computed on frames
upscaled to a shorter side of `min_side` (192) pixels. On rendered 64 px clips of 16-128 frames
this lowers the error of small and large motion in every part of the clip (by 8-50%), but on long
clips of a subject spinning a full turn the middle and end are worse than the old chain at the
frames' own size: tracks of the faces that turn away are not recovered
(`benchmarks/priors_drift.py`, README).
`chaining="consecutive"` is the plain chain above.
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
CHAININGS = ("anchored", "consecutive")
KEYFRAMES = 2  # how many of the latest keyframes a pixel that the chain loses is re-anchored through
PHOTOMETRIC_SIGMA = 1.0  # blur (pixels) of the frames compared when choosing among candidates
PHOTOMETRIC_WINDOW = 5  # box (pixels) over which a candidate's colour difference is averaged


class FlowEstimator:
    """Dense flow between two RGB frames: `flow(a, b)[y, x]` is where pixel (x, y) of `a` moved in `b`."""

    def __init__(self, method: str = "dis", dis_preset: str = "medium", min_side: int = 0):
        if int(min_side) != min_side or min_side < 0:
            raise InputError(f"flow min_side {min_side!r} must be a whole number of pixels (0: native size)")
        if method not in FLOW_METHODS:
            raise InputError(f"flow method {method!r} is unknown; choose one of {', '.join(FLOW_METHODS)}")
        if dis_preset not in DIS_PRESETS:
            raise InputError(f"flow dis_preset {dis_preset!r} is unknown; choose one of {', '.join(DIS_PRESETS)}")
        self.method = method
        self.min_side = int(min_side)
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[dis_preset]) if method == "dis" else None

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Frames whose shorter side is under `min_side` are upscaled (by a whole factor) for the flow,
        which comes back at their own size: on small frames DIS's patches and pyramid are coarse for the
        subject, and chained correspondence on 64 px frames drifts about half as much upscaled to 192 px
        (`benchmarks/priors_drift.py`)."""
        height, width = first.shape[:2]
        factor = -(-self.min_side // min(height, width))
        if factor > 1:
            size = (width * factor, height * factor)
            upscaled = self._flow(
                cv2.resize(first, size, interpolation=cv2.INTER_CUBIC), cv2.resize(second, size, interpolation=cv2.INTER_CUBIC)
            )
            return cv2.resize(upscaled, (width, height), interpolation=cv2.INTER_AREA) / factor
        return self._flow(first, second)

    def _flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        first_grey = cv2.cvtColor(first, cv2.COLOR_RGB2GRAY)
        second_grey = cv2.cvtColor(second, cv2.COLOR_RGB2GRAY)
        if self._dis is not None:
            return self._dis.calc(first_grey, second_grey, None)
        return cv2.calcOpticalFlowFarneback(
            first_grey,
            second_grey,
            None,
            pyr_scale=0.5,
            levels=5,
            winsize=15,
            iterations=3,
            poly_n=5,
            poly_sigma=1.2,
            flags=0,
        )


def sample(image: np.ndarray, positions: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Sample `image` (H,W[,C]) at float (x, y) `positions` (H,W,2); outside the frame repeats the border."""
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(
        image,
        positions[..., 0],
        positions[..., 1],
        interpolation,
        borderMode=cv2.BORDER_REPLICATE,
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


def _link(
    estimator: FlowEstimator,
    frames: np.ndarray,
    t: int,
    anchor: int,
    anchor_matches: np.ndarray,
    trusted: np.ndarray,
    subject: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Matches of frame t through the flow t -> `anchor`, and which subject pixels pass the check there."""
    grid = pixel_grid(*subject.shape)
    backward = estimator(frames[t], frames[anchor])
    forward = estimator(frames[anchor], frames[t])
    previous = grid + backward
    # Extend the anchor's matches beyond its subject, so bilinear sampling at the edge never mixes in NaN.
    composed = sample(fill_from_nearest(anchor_matches, trusted, np.ones_like(subject)), previous)
    passed = (
        consistent(backward, forward)
        & inside_frame(previous)
        & sample(trusted.view(np.uint8), previous, nearest=True).astype(bool)
        & subject
    )
    return composed, passed


def _blurred(frame: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(frame.astype(np.float32), (0, 0), PHOTOMETRIC_SIGMA)


def _anchors(t: int, source: int, keyframe_interval: int, reliable: np.ndarray) -> list[int]:
    """Frames that frame t is re-anchored through where its chain link fails: the latest keyframes, then frame 0."""
    keyframes = [k for k in range(keyframe_interval, t, keyframe_interval) if k != source and reliable[k].any()]
    return [*reversed(keyframes[-KEYFRAMES:]), *([0] if source else [])]


def _reanchor(
    estimator: FlowEstimator,
    frames: np.ndarray,
    t: int,
    anchors: list[int],
    matches: np.ndarray,
    reliable: np.ndarray,
    subject: np.ndarray,
    composed: np.ndarray,
    passed: np.ndarray,
    first: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`composed` with the pixels that failed the chain link matched through `anchors`, and which now pass."""
    here = _blurred(frames[t])
    best = np.full(passed.shape, np.inf, dtype=np.float32)
    composed = composed.copy()
    for anchor in anchors:
        candidate, linked = _link(estimator, frames, t, anchor, matches[anchor], reliable[anchor], subject)
        difference = cv2.blur(np.abs(sample(first, candidate) - here).sum(-1), (PHOTOMETRIC_WINDOW,) * 2)
        take = linked & ~passed & (difference < best)
        best[take] = difference[take]
        composed[take] = candidate[take]
    return composed, passed | np.isfinite(best)


def flow_matches(
    frames: np.ndarray,
    mask: np.ndarray,
    method: str = "dis",
    dis_preset: str = "medium",
    chaining: str = "anchored",
    keyframe_interval: int = 8,
    min_side: int = 192,
) -> np.ndarray:
    """Matches (N,H,W,2) of each subject pixel in frame 0, by composing flows between frames.

    `chaining`: "consecutive" composes the flows of consecutive frames only; "anchored" also
    re-anchors the pixels a link loses through the latest keyframes (every `keyframe_interval`-th
    frame) and frame 0. Flow is computed on frames upscaled to a shorter side of at least `min_side`
    (0: at their own size). A frame left without matches (empty mask, or no pixel passing the check)
    is skipped: the next frame is chained to the last frame that has matches.
    """
    if chaining not in CHAININGS:
        raise InputError(f"flow chaining {chaining!r} is unknown; choose one of {', '.join(CHAININGS)}")
    if int(keyframe_interval) != keyframe_interval or keyframe_interval < 1:
        raise InputError(f"flow keyframe_interval {keyframe_interval!r} must be a positive integer (frames)")
    count, height, width = mask.shape
    estimator = FlowEstimator(method, dis_preset, min_side)
    matches = np.full((count, height, width, 2), np.nan, dtype=np.float32)
    matches[0][mask[0]] = pixel_grid(height, width)[mask[0]]
    reliable = np.zeros(mask.shape, dtype=bool)  # pixels whose match passed a check (frame 0: all its subject)
    reliable[0] = mask[0]
    first = _blurred(frames[0]) if chaining == "anchored" else None
    source = 0  # the last frame with matches
    for t in tqdm(range(1, count), desc="flow correspondence", leave=False):
        if not mask[t].any():
            continue
        # Consecutive chaining goes on from filled matches too, so a wide failure does not cut the track;
        # anchored chaining re-anchors those pixels instead.
        trusted = reliable[source] if chaining == "anchored" else np.isfinite(matches[source, ..., 0])
        composed, passed = _link(estimator, frames, t, source, matches[source], trusted, mask[t])
        if chaining == "anchored":
            anchors = _anchors(t, source, keyframe_interval, reliable)
            composed, passed = _reanchor(
                estimator,
                frames,
                t,
                anchors,
                matches,
                reliable,
                mask[t],
                composed,
                passed,
                first,
            )
        reliable[t] = passed
        matches[t] = fill_from_nearest(composed, passed, mask[t])
        if passed.any():
            source = t
    return matches
