"""Matches to the first frame -> the correspondence colour map `corr`, and its end-point error.

Every correspondence backend returns `matches` float32 (N,H,W,2): for each subject pixel of frame
t, the (x, y) pixel position of its match in frame 0, NaN where there is none. Frame 0's subject
is painted with a fixed colour map of its own pixel coordinates, and a pixel of frame t takes the
colour at its match (the paper's Fig. 4). With (x0, y0) - (x1, y1) the bounding box of frame 0's
subject,

    R = (x - x0) / (x1 - x0),   G = (y - y0) / (y1 - y0),   B = 1 - (R + G) / 2,

clamped to [0, 1]. The box spreads the full colour range over the subject whatever its size or
place in frame 0 (like the paper's gradient-coloured cube, normalised over its bounding box). The
map is linear in (x, y), so looking it up at a sub-pixel match is exact (no interpolation), and it
changes in every direction: R follows x, G follows y, and B tells the diagonals' ends apart
(top-left blue, bottom-right yellow, top-right magenta, bottom-left cyan).
"""

from __future__ import annotations

import numpy as np


def subject_box(first_matches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Origin (x0, y0) and size (at least 1 px) of the bounding box of frame 0's matched pixels (H,W,2)."""
    positions = first_matches[np.isfinite(first_matches).all(axis=-1)]
    if len(positions) == 0:
        raise ValueError("frame 0 has no matched pixel: the colour map is defined on frame 0's subject")
    origin = positions.min(axis=0)
    return origin, np.maximum(positions.max(axis=0) - origin, 1.0)


def coordinate_colours(positions: np.ndarray, origin: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Colour (..., 3) float32 of frame-0 positions (..., 2) as (x, y) in the box `origin`, `size`."""
    red, green = np.moveaxis(np.clip((positions - origin) / size, 0.0, 1.0), -1, 0)
    return np.stack([red, green, 1.0 - (red + green) / 2.0], axis=-1).astype(np.float32)


def matches_to_corr(matches: np.ndarray) -> np.ndarray:
    """`corr` float32 (N,H,W,3): the colour of each pixel's match in frame 0; 0 where it has none."""
    if matches.ndim != 4 or matches.shape[-1] != 2:
        raise ValueError(f"matches must have shape (N, H, W, 2), got {matches.shape}")
    origin, size = subject_box(matches[0])
    matched = np.isfinite(matches).all(axis=-1)
    corr = coordinate_colours(np.nan_to_num(matches), origin, size)
    corr[~matched] = 0.0
    return corr


def pixel_grid(height: int, width: int) -> np.ndarray:
    """(H,W,2) float32 of each pixel's own (x, y): the identity matches of frame 0."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xs, ys], axis=-1)


def endpoint_error(matches: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-pixel distance (N,H,W) in frame-0 pixels between two match maps; NaN where either is missing."""
    if matches.shape != reference.shape:
        raise ValueError(f"matches {matches.shape} and reference {reference.shape} differ in shape")
    return np.linalg.norm(matches - reference, axis=-1)


def summarise_endpoint_error(matches: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Mean and median EPE over pixels both maps match (frames 1.., frame 0 is the identity),
    and `coverage`: the share of the reference's matched pixels that `matches` also matches."""
    error = endpoint_error(matches[1:], reference[1:])
    has_reference = np.isfinite(reference[1:]).all(axis=-1)
    scored = np.isfinite(error)
    if not scored.any():
        return {"epe_mean": float("nan"), "epe_median": float("nan"), "coverage": 0.0}
    return {
        "epe_mean": float(error[scored].mean()),
        "epe_median": float(np.median(error[scored])),
        "coverage": float(scored.sum() / max(has_reference.sum(), 1)),
    }
