"""Offline subject masks from motion: what moves unlike the camera is the subject.

For each frame and each neighbour (previous, next; for a slow subject up to `max_frame_gap` frames
away, widened until the 99th percentile residual reaches 2 px), dense flow is explained by the
camera as one dominant homography (RANSAC on a grid of flow vectors); what it does not explain is
the residual flow. A pixel moves against that neighbour if its residual is large (above `threshold_pixels` and
4x the frame's median residual) AND its colour changes under the camera's warp: flow is smooth
across object boundaries and spreads the subject's motion into textureless background (sky, road,
water), where the camera's warp still explains the colour. A pixel moving against either
neighbour is moving. The result is cleaned (opening, closing, holes filled) and reduced to one
connected component: in frame 0 the largest, in every later frame the one that overlaps most with
the previous frame's mask carried forward by the flow (seeded by frame 0, then tracked). A frame
where nothing moves under the carried mask (the subject paused) keeps the carried mask.

The moving region still follows the flow's smooth boundary. GrabCut (Rother et al., SIGGRAPH
2004), started from it as probable subject, a band around it as probable background and the rest
as background, moves the boundary onto colour edges; the largest refined component is kept, unless
it keeps under a fifth of the moving region (subject and background colours alike: the motion
region is kept). `grabcut_iterations=0` skips it.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from vidmp3.errors import InputError
from vidmp3.priors.correspondence import pixel_grid
from vidmp3.priors.flow import FlowEstimator, sample

log = logging.getLogger(__name__)

HOMOGRAPHY_GRID_STEP = 8  # flow vectors sampled every 8 pixels for RANSAC: plenty, and fast
RANSAC_REPROJECTION_PIXELS = 1.0
RELATIVE_THRESHOLD = 4.0  # moving: residual above 4x the frame's median residual (parallax, flow noise)
ENOUGH_MOTION_PIXELS = 2.0  # neighbours are compared farther apart until the 99th percentile residual reaches this
COLOUR_CHANGE = 6.0  # ... and colour change (0-255, after a sigma-1 blur) above this under the camera's warp
GRABCUT_BAND = 0.05  # probable-background band around the moving region, share of the shorter side
GRABCUT_MIN_SHARE = 0.2  # GrabCut may trim the moving region (flow bleeds), not discard most of it


def camera_homography(flow: np.ndarray) -> np.ndarray:
    """3x3 homography taking frame a's pixels to frame b's, fitted to the flow a -> b by RANSAC."""
    grid = pixel_grid(*flow.shape[:2])
    points = grid[::HOMOGRAPHY_GRID_STEP, ::HOMOGRAPHY_GRID_STEP].reshape(-1, 2)
    moved = points + flow[::HOMOGRAPHY_GRID_STEP, ::HOMOGRAPHY_GRID_STEP].reshape(-1, 2)
    homography, _ = cv2.findHomography(points, moved, cv2.RANSAC, RANSAC_REPROJECTION_PIXELS)
    if homography is None:  # degenerate (e.g. a blank frame): no camera motion can be estimated
        log.warning("no dominant homography found; treating the camera as still for this frame pair")
        return np.eye(3)
    return homography


def moving_evidence(frame: np.ndarray, other: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residual flow length (H,W) after removing the camera, and colour change (H,W) under the camera's warp."""
    height, width = flow.shape[:2]
    homography = camera_homography(flow)
    grid = pixel_grid(height, width)
    camera = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), homography).reshape(height, width, 2)
    residual = np.linalg.norm(grid + flow - camera, axis=-1)
    warped = cv2.warpPerspective(
        other,
        homography,
        (width, height),
        flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    difference = cv2.GaussianBlur(frame, (0, 0), 1.0).astype(np.float32) - cv2.GaussianBlur(warped, (0, 0), 1.0)
    change = np.abs(difference).max(axis=-1)
    return residual, change


def disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def clean(moving: np.ndarray, radius: int) -> np.ndarray:
    """Remove specks and thin lines, close small gaps, fill holes."""
    opened = cv2.morphologyEx(moving.view(np.uint8), cv2.MORPH_OPEN, disk(radius))
    closed = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, disk(2 * radius))
    return ndimage.binary_fill_holes(closed.astype(bool))


def pick_component(moving: np.ndarray, seed: np.ndarray | None) -> np.ndarray:
    """The component of `moving` overlapping `seed` most, or the largest one when there is no seed;
    the seed itself when nothing moves under it."""
    count, labels = cv2.connectedComponents(moving.view(np.uint8), connectivity=8)
    seeded = seed is not None and seed.any()
    scores = np.bincount(labels[seed if seeded else moving], minlength=count)
    scores[0] = 0
    if scores.max() == 0:
        return seed if seeded else np.zeros_like(moving)
    return labels == scores.argmax()


def grabcut_refine(frame: np.ndarray, region: np.ndarray, iterations: int) -> np.ndarray:
    """The subject inside and near `region` by GrabCut's colour models; its largest component."""
    if iterations == 0 or not region.any():
        return region
    band = max(1, round(GRABCUT_BAND * min(region.shape)))
    labels = np.full(region.shape, cv2.GC_BGD, dtype=np.uint8)
    labels[cv2.dilate(region.view(np.uint8), disk(band)).astype(bool)] = cv2.GC_PR_BGD
    labels[region] = cv2.GC_PR_FGD
    if not (labels == cv2.GC_BGD).any():  # the region fills the frame: no background to learn from
        return region
    background_model, foreground_model = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models by k-means on OpenCV's global generator
    cv2.grabCut(
        cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
        labels,
        None,
        background_model,
        foreground_model,
        iterations,
        cv2.GC_INIT_WITH_MASK,
    )
    refined = pick_component((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD), None)
    if refined.sum() < GRABCUT_MIN_SHARE * region.sum():  # colours do not tell the subject apart: keep the motion
        return region
    return refined


def motion_masks(
    frames: np.ndarray,
    method: str = "dis",
    dis_preset: str = "medium",
    threshold_pixels: float = 0.5,
    clean_radius: float = 0.01,
    grabcut_iterations: int = 3,
    max_frame_gap: int = 3,
) -> np.ndarray:
    """Subject masks bool (N,H,W) from camera-compensated residual flow.

    threshold_pixels: residual flow (pixels per frame pair) a moving pixel must exceed at least
        (it must also exceed 4x the frame's median residual).
    clean_radius: radius of the opening, as a share of the frame's shorter side (closing uses twice it).
    grabcut_iterations: GrabCut iterations refining each frame's mask onto colour edges (0: none).
    max_frame_gap: how far apart (in frames) the compared neighbours may be for a slow subject.
    """
    if threshold_pixels <= 0:
        raise InputError(f"motion mask threshold_pixels must be positive, got {threshold_pixels}")
    if not 0 <= clean_radius < 0.5:
        raise InputError(f"motion mask clean_radius must be in [0, 0.5), got {clean_radius}")
    if int(grabcut_iterations) != grabcut_iterations or grabcut_iterations < 0:
        raise InputError(f"motion mask grabcut_iterations must be a whole number >= 0, got {grabcut_iterations}")
    if int(max_frame_gap) != max_frame_gap or max_frame_gap < 1:
        raise InputError(f"motion mask max_frame_gap must be a whole number >= 1, got {max_frame_gap}")
    count, height, width = frames.shape[:3]
    if count < 2:
        raise InputError(f"motion masks need at least 2 frames, got {count}")
    estimator = FlowEstimator(method, dis_preset)
    radius = max(1, round(clean_radius * min(height, width)))
    grid = pixel_grid(height, width)
    masks = np.zeros((count, height, width), dtype=bool)
    for t in tqdm(range(count), desc="motion masks", leave=False):
        flows = {}
        for gap in range(1, max_frame_gap + 1):  # widen the gap until the subject has moved enough
            neighbours = sorted({min(max(t + step, 0), count - 1) for step in (-gap, gap)} - {t})
            flows.update({other: estimator(frames[t], frames[other]) for other in neighbours if other not in flows})
            evidence = [moving_evidence(frames[t], frames[other], flows[other]) for other in neighbours]
            if max(np.percentile(residual, 99) for residual, _ in evidence) >= ENOUGH_MOTION_PIXELS:
                break
        moving = np.zeros((height, width), dtype=bool)
        for residual, change in evidence:
            threshold = max(threshold_pixels, RELATIVE_THRESHOLD * float(np.median(residual)))
            moving |= (residual > threshold) & (change > COLOUR_CHANGE)
        moving = clean(moving, radius)
        if t == 0:
            region = pick_component(moving, None)
        else:
            backward = flows[t - 1] if t - 1 in flows else estimator(frames[t], frames[t - 1])
            carried = sample(masks[t - 1].view(np.uint8), grid + backward, nearest=True).astype(bool)
            region = pick_component(moving, carried)
        masks[t] = grabcut_refine(frames[t], region, int(grabcut_iterations))
    return masks
