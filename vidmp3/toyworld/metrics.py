"""Ground-truth metrics of one ToyWorld edit, from masks, classifier labels and frames (no model here).

The edit's subject is found by `world.segment` (pixels far from the plain backdrop) and compared with
the source clip's exact subject mask from the renderer, and with the ideal edit's: the target subject
rendered on the source's trajectory (what a perfect edit would show; the target's other shape moves its
centroid and silhouette, so even it does not score 0 against the source). With N frames, W the frame
width, c_t and A_t the centroid and area of a mask in frame t (e: edit, s: source, i: ideal edit), and
F the frames where the edit's segmentation is not empty:

- centroid_error = mean_{t in F} ||c^e_t - c^s_t|| / W  (the subject follows the source's path)
- size_error = mean_{t in F} |sqrt(A^e_t) - sqrt(A^s_t)| / sqrt(A^s_t)  (and its apparent size, i.e. depth)
- shape_iou = mean_{t in F} |M^e_t ∩ M^s_t| / |M^e_t ∪ M^s_t|: shape leakage. The target shape differs
  from the source's, so a perfect edit covers the source's silhouette only partly; 1 means the
  source's silhouette was kept. Lower is better (at equal trajectory error).
- ideal_centroid_error = mean_{t in F} ||c^e_t - c^i_t|| / W: the path error against where the target
  subject would be, which a perfect edit brings to 0 (centroid_error cannot go below the ideal edit's).
- silhouette_kept = mean_{t in F} |M^e_t ∩ (M^s_t − M^i_t)| / |M^s_t − M^i_t|: the share of the source's
  silhouette outside the target's that the edit still fills (0 for the ideal edit, 1 when the source's
  whole silhouette stays), leakage apart from being in the right place.
- shape_correct, colour_correct, both_correct: the share of frames the classifier calls the target
  shape, the target colour, both.
- label_agreement = share of consecutive frame pairs the classifier gives the same (shape, colour):
  an edit that flickers between shapes or colours scores low.
- change_ratio = mean_t mean_px |I^e_{t+1} - I^e_t| / mean_t mean_px |I^s_{t+1} - I^s_t|: how much the
  edit changes from frame to frame relative to the source (1: as much; above: flicker; below: frozen).
- empty_frames = N - |F|. With F empty, the segmentation metrics are NaN (the count says why).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidmp3.errors import InputError


@dataclass(frozen=True)
class Metric:
    label: str
    goal: str  # "lower", "higher" or "one": which values are better

    @property
    def arrow(self) -> str:
        return {"lower": "↓", "higher": "↑", "one": "→1"}[self.goal]


METRICS = {
    "centroid_error": Metric("centroid error (frac. of width)", "lower"),
    "size_error": Metric("size error (relative)", "lower"),
    "shape_iou": Metric("shape leakage (IoU with source)", "lower"),
    "ideal_centroid_error": Metric("centroid error vs ideal edit", "lower"),
    "silhouette_kept": Metric("source silhouette kept", "lower"),
    "shape_correct": Metric("target shape (frac. of frames)", "higher"),
    "colour_correct": Metric("target colour (frac. of frames)", "higher"),
    "both_correct": Metric("target shape and colour", "higher"),
    "label_agreement": Metric("label agreement (consecutive)", "higher"),
    "change_ratio": Metric("frame change vs source", "one"),
    "empty_frames": Metric("frames without a segmented subject", "lower"),
}
"""Every metric of an edit (what `edit_metrics` returns), in table order."""


def _check_masks(name: str, masks: np.ndarray) -> None:
    if masks.dtype != np.bool_ or masks.ndim != 3:
        raise InputError(f"{name} must be bool (N, H, W), got {masks.dtype} {masks.shape}")


def centroids_and_sizes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the mask's centroid (N, 2) as (x, y) pixel centres and sqrt(area) (N,); NaN for an empty frame."""
    _check_masks("masks", masks)
    height, width = masks.shape[1:]
    ys, xs = np.mgrid[0:height, 0:width]
    area = masks.sum(axis=(1, 2)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (masks * xs).sum(axis=(1, 2)) / area
        y = (masks * ys).sum(axis=(1, 2)) / area
    empty = area == 0
    centroids = np.where(empty[:, None], np.nan, np.stack([x, y], axis=-1))
    return centroids, np.where(empty, np.nan, np.sqrt(area))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def trajectory_errors(edit_masks: np.ndarray, source_masks: np.ndarray) -> tuple[float, float]:
    """(centroid_error, size_error) over the frames where both masks hold a subject."""
    _check_masks("edit masks", edit_masks)
    if edit_masks.shape != source_masks.shape:
        raise InputError(f"edit masks {edit_masks.shape} and source masks {source_masks.shape} differ in shape")
    edit_centroids, edit_sizes = centroids_and_sizes(edit_masks)
    source_centroids, source_sizes = centroids_and_sizes(source_masks)
    both = np.isfinite(edit_sizes) & np.isfinite(source_sizes)
    distance = np.linalg.norm(edit_centroids[both] - source_centroids[both], axis=-1) / edit_masks.shape[2]
    relative = np.abs(edit_sizes[both] - source_sizes[both]) / source_sizes[both]
    return _mean(distance), _mean(relative)


def mask_iou(edit_masks: np.ndarray, source_masks: np.ndarray) -> float:
    """Mean IoU over the frames where the edit's mask is not empty (NaN if there is none)."""
    _check_masks("edit masks", edit_masks)
    if edit_masks.shape != source_masks.shape:
        raise InputError(f"edit masks {edit_masks.shape} and source masks {source_masks.shape} differ in shape")
    present = edit_masks.any(axis=(1, 2))
    intersection = (edit_masks & source_masks).sum(axis=(1, 2))[present]
    union = (edit_masks | source_masks).sum(axis=(1, 2))[present]
    return _mean(intersection / union)


def silhouette_kept(edit_masks: np.ndarray, source_masks: np.ndarray, ideal_masks: np.ndarray) -> float:
    """Mean share of the source-only pixels (source mask minus the ideal edit's) the edit's mask covers,
    over the frames where the edit's mask is not empty and the source has such pixels."""
    _check_masks("edit masks", edit_masks)
    _check_masks("ideal masks", ideal_masks)
    if not edit_masks.shape == source_masks.shape == ideal_masks.shape:
        raise InputError(
            f"edit masks {edit_masks.shape}, source masks {source_masks.shape} and ideal masks {ideal_masks.shape} differ in shape"
        )
    source_only = source_masks & ~ideal_masks
    counted = edit_masks.any(axis=(1, 2)) & source_only.any(axis=(1, 2))
    covered = (edit_masks & source_only).sum(axis=(1, 2))[counted]
    return _mean(covered / source_only.sum(axis=(1, 2))[counted])


def label_agreement(shapes: np.ndarray, colours: np.ndarray) -> float:
    """Share of consecutive frame pairs with the same classified (shape, colour)."""
    shapes, colours = np.asarray(shapes), np.asarray(colours)
    if shapes.shape != colours.shape or shapes.ndim != 1 or len(shapes) < 2:
        raise InputError(
            f"need one shape and one colour label per frame (at least 2 frames), got {shapes.shape} and {colours.shape}"
        )
    return float(((shapes[1:] == shapes[:-1]) & (colours[1:] == colours[:-1])).mean())


def frame_change(frames: np.ndarray) -> float:
    """Mean absolute difference of consecutive frames, in [0, 1] units."""
    return float(np.abs(np.diff(frames.astype(np.float32) / 255.0, axis=0)).mean())


def edit_metrics(
    edit_frames: np.ndarray,
    edit_masks: np.ndarray,
    source_frames: np.ndarray,
    source_masks: np.ndarray,
    ideal_masks: np.ndarray,
    shapes: np.ndarray,
    colours: np.ndarray,
    target: tuple[int, int],
) -> dict[str, float]:
    """Every metric of METRICS, for one edit.

    edit_frames / source_frames: uint8 (N, H, W, 3); edit_masks: the edit's segmentation; source_masks:
    the source's true subject masks; ideal_masks: the true masks of the target subject on the source's
    trajectory; shapes / colours: the classifier's label per edit frame (indices);
    target: the edit caption's (shape, colour) indices."""
    if edit_frames.shape != source_frames.shape or edit_frames.shape[:3] != edit_masks.shape:
        raise InputError(
            f"edit frames {edit_frames.shape}, edit masks {edit_masks.shape} and source frames "
            f"{source_frames.shape} do not fit together"
        )
    shapes, colours = np.asarray(shapes), np.asarray(colours)
    if shapes.shape != (len(edit_frames),) or colours.shape != (len(edit_frames),):
        raise InputError(f"need one label per edit frame ({len(edit_frames)}), got {shapes.shape} and {colours.shape}")
    centroid_error, size_error = trajectory_errors(edit_masks, source_masks)
    ideal_centroid_error, _ = trajectory_errors(edit_masks, ideal_masks)
    shape_ok, colour_ok = shapes == target[0], colours == target[1]
    source_change = frame_change(source_frames)
    return {
        "centroid_error": centroid_error,
        "size_error": size_error,
        "shape_iou": mask_iou(edit_masks, source_masks),
        "ideal_centroid_error": ideal_centroid_error,
        "silhouette_kept": silhouette_kept(edit_masks, source_masks, ideal_masks),
        "shape_correct": float(shape_ok.mean()),
        "colour_correct": float(colour_ok.mean()),
        "both_correct": float((shape_ok & colour_ok).mean()),
        "label_agreement": label_agreement(shapes, colours),
        "change_ratio": frame_change(edit_frames) / source_change if source_change > 0 else float("nan"),
        "empty_frames": int((~edit_masks.any(axis=(1, 2))).sum()),
    }
