"""Depth priors: the per-video normalisation every backend shares, and the offline `mask-area` backend.

Convention (all backends): NEAR IS LARGE. A backend returns "nearness" (inverse depth up to scale
and shift, e.g. 1/z or Depth Anything's relative disparity); `normalise_depth` maps it, over all
subject pixels of the whole video (so depth changes across frames survive), linearly onto
[DEPTH_FLOOR, 1]: the nearest subject pixel of the video is 1, the farthest DEPTH_FLOOR, and
everything outside the subject 0. The floor keeps the farthest subject pixel apart from the
background in C ⊙ D. The 1st and 99th percentiles stand for the extremes (values beyond are
clipped), so a few stray pixels at the mask's edge cannot squeeze the range.
"""

from __future__ import annotations

import numpy as np

DEPTH_FLOOR = 0.1
ROBUST_PERCENTILES = (1.0, 99.0)


def normalise_depth(nearness: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float32 (N,H,W) in [DEPTH_FLOOR, 1] on the subject (near is large), 0 outside it."""
    if nearness.shape != mask.shape:
        raise ValueError(f"nearness {nearness.shape} and mask {mask.shape} differ in shape")
    depth = np.zeros(mask.shape, dtype=np.float32)
    values = nearness[mask].astype(np.float64)
    if values.size == 0:
        return depth
    if not np.isfinite(values).all():
        raise ValueError("depth backend returned non-finite values on the subject")
    low, high = np.percentile(values, ROBUST_PERCENTILES)
    if high - low <= 1e-12 * max(abs(high), 1.0):  # one depth for the whole subject, e.g. a constant area
        depth[mask] = 1.0
        return depth
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0)
    depth[mask] = DEPTH_FLOOR + (1.0 - DEPTH_FLOOR) * scaled
    return depth


def mask_area_nearness(mask: np.ndarray) -> np.ndarray:
    """Offline fallback: the subject's apparent size as its nearness, one value per frame spread over the mask.

    Under a pinhole camera a subject at distance z covers an area proportional to 1/z^2, so
    sqrt(area) is proportional to 1/z: a rigid subject's distance, up to one scale per video (which
    the normalisation removes). It knows nothing of the subject's own relief or of shape changes
    (a turning box changes area without moving), so it only says how the subject's distance changes.
    """
    share = mask.mean(axis=(1, 2), dtype=np.float64)
    return (np.sqrt(share)[:, None, None] * mask).astype(np.float32)
