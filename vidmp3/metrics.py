"""Per-edit evaluation: CLIP text alignment and temporal consistency, flow warp error, motion
fidelity (DMT's score on Lucas–Kanade tracks) and, on rendered clips, trajectory error against
the source's pose track. `evaluate_edit` writes one JSON record per edit; `vidmp3.tables` reads them.

Formulas (frames in [0, 1] where pixel values enter; N frames)

- clip_text_alignment = (1/N) sum_t cos(E_img(I_t), E_txt(prompt)), CLIP's projected embeddings.
- clip_temporal_consistency = (1/(N-1)) sum_t cos(E_img(I_t), E_img(I_{t+1})).
  Both need a CLIP model (a hub id or a local folder); with none configured they are reported as
  not available: a random model's score would look like a number and mean nothing.
- warp_error (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018), on the video's
  own flow: b = flow(I_t -> I_{t-1}), W_t = I_{t-1} sampled at x + b(x),
  M_t = forward-backward consistent (Sundaram et al. 2010, as in `vidmp3.priors.flow`) and inside
  the frame, E_t = sum_x M_t(x) ||I_t(x) - W_t(x)||_2^2 / sum_x M_t(x) (squared L2 over RGB),
  warp_error = mean_t E_t. Occluded and disoccluded pixels are left out, not counted as errors.
- motion_fidelity (Yatim et al., "Space-Time Diffusion Features for Zero-Shot Text-Driven Motion
  Transfer", CVPR 2024). Tracklets T (source, n of them) and T~ (edit, m) start at the same
  points: the points of a 55 x 55 grid over the frame (DMT's CoTracker grid) that fall in the
  source subject's mask in frame 0. DMT kept the mask's bounding box; with a still camera the
  background inside the box is still in any edit and agreed trivially. With v_k the k-th
  displacement of a tracklet, corr(tau, tau~) = (1/(N-1)) sum_k v_k . v~_k / (|v_k| |v~_k|), and
      MFS = 1/2 [ (1/m) sum_{tau~ in T~} max_{tau in T} corr + (1/n) sum_{tau in T} max_{tau~ in T~} corr ].
  DMT's released script (motion_fidelity_score.py) keeps the first (edit -> source) term only
  (and lowers the matrix diagonal by 1, assuming equal track counts); the symmetric mean also
  penalises source motion that the edit dropped, and is 1 for a video against itself. A step
  shorter than `still_px` counts as no motion: two still steps agree (1), a still and a moving
  one do not (0), where the cosine would divide by zero. Tracks come from OpenCV's pyramidal
  Lucas–Kanade (DMT used CoTracker, whose weights we do not have); a point LK loses keeps its
  last position (still from then on). Tracks are not dropped on a forward-backward check: on the
  rendered clips that kept mostly the still (lost) tracks and scored a frozen edit 0.82.
- trajectory_error_px and size_log_error, on rendered clips only. The edit's subject is segmented
  by background differencing (see `segment_subject`); its centroid c_t and area A_t are compared
  with the source's pose: p_t, the object centre projected into the sampled, resized frames, and
  z_t, its camera depth (apparent size ~ 1/z_t). Constant offsets are removed (a mask centroid is
  not the projected centre; an edited subject may be larger), so only the motion is compared:
      trajectory_error_px = mean_t || (c_t - p_t) - mean_s (c_s - p_s) ||
      size_log_error = mean_t | r_t - mean_s r_s |,  r_t = 1/2 log A_t + log z_t.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.frames import crop_box
from vidmp3.methods import METHODS as METHOD_TABLE
from vidmp3.priors.correspondence import pixel_grid
from vidmp3.priors.flow import FlowEstimator, consistent, inside_frame, sample
from vidmp3.store import read_array
from vidmp3.scene import RenderedClip, read_truth
from vidmp3.video_io import read_frames

log = logging.getLogger(__name__)

METHODS = tuple(METHOD_TABLE)


@dataclass(frozen=True)
class Metric:
    label: str
    higher_is_better: bool


METRICS = {
    "clip_text_alignment": Metric("CLIP text alignment", True),
    "clip_temporal_consistency": Metric("CLIP temporal consistency", True),
    "warp_error": Metric("warp error", False),
    "motion_fidelity": Metric("motion fidelity", True),
    "worst_subject_motion_fidelity": Metric("motion fidelity, worst subject", True),
    "trajectory_error_px": Metric("trajectory error (px)", False),
    "size_log_error": Metric("size error (log)", False),
}
"""Every metric an edit record can hold, in table order."""

TRACK_GRID = 55  # DMT's CoTracker grid_size: points per image side
STILL_PX = 0.1  # shorter steps are no motion; 0.5 px read the small-motion toy clips (median step 0.36 px) as still
LK_WINDOW = (15, 15)
LK_LEVELS = 3
LK_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)
SEGMENT_THRESHOLD = 0.15  # RGB distance (0-1 units) from the background that counts as subject
SEGMENT_MARGIN_PX = 3  # source-mask dilation kept out of the background estimate


# ---- CLIP ---------------------------------------------------------------------------------------


class ClipScorer:
    """Unit-length CLIP image and text embeddings from a hub id or a local folder."""

    def __init__(self, model: str, device: str | torch.device = "cpu", batch_size: int = 16):
        from transformers import CLIPModel, CLIPProcessor  # heavy import, only when CLIP is configured

        try:
            self.model = CLIPModel.from_pretrained(model).to(device).eval()
            self.processor = CLIPProcessor.from_pretrained(model)
        except OSError as error:
            raise InputError(f"CLIP model {model!r} cannot be loaded (a local folder or a cached hub id): {error}") from None
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.inference_mode()
    def image_embeddings(self, frames: np.ndarray) -> torch.Tensor:
        batches = []
        for start in range(0, len(frames), self.batch_size):
            inputs = self.processor(images=list(frames[start : start + self.batch_size]), return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(self.device, self.model.dtype)
            batches.append(self.model.get_image_features(pixel_values=pixel_values).pooler_output)
        return torch.nn.functional.normalize(torch.cat(batches).float(), dim=-1).cpu()

    @torch.inference_mode()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        inputs = self.processor(text=[prompt], padding=True, truncation=True, return_tensors="pt").to(self.device)
        features = self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return torch.nn.functional.normalize(features.pooler_output.float(), dim=-1)[0].cpu()


def text_alignment(image_embeddings: torch.Tensor, text_embedding: torch.Tensor) -> float:
    """Mean cosine between each frame's and the prompt's unit embeddings."""
    return float((image_embeddings @ text_embedding).mean())


def temporal_consistency(image_embeddings: torch.Tensor) -> float:
    """Mean cosine between consecutive frames' unit embeddings."""
    return float((image_embeddings[1:] * image_embeddings[:-1]).sum(-1).mean())


# ---- warp error ---------------------------------------------------------------------------------


def warp_error(frames: np.ndarray, flow_method: str = "dis") -> float | None:
    """Lai et al.'s occlusion-aware warp error of a clip on its own flow; None if no pixel is valid."""
    estimator = FlowEstimator(flow_method)
    height, width = frames.shape[1:3]
    grid = pixel_grid(height, width)
    images = frames.astype(np.float32) / 255.0
    errors = []
    for t in tqdm(range(1, len(frames)), desc="warp error", leave=False):
        backward = estimator(frames[t], frames[t - 1])
        forward = estimator(frames[t - 1], frames[t])
        previous = grid + backward
        valid = consistent(backward, forward) & inside_frame(previous)
        if valid.any():
            squared = ((images[t] - sample(images[t - 1], previous)) ** 2).sum(-1)
            errors.append(float(squared[valid].mean()))
    return float(np.mean(errors)) if errors else None


# ---- motion fidelity ----------------------------------------------------------------------------


def grid_points(mask: np.ndarray, grid: int = TRACK_GRID) -> np.ndarray:
    """(P,2) float32 (x, y) points of a `grid` x `grid` lattice over the image that fall in the mask."""
    height, width = mask.shape
    x, y = np.meshgrid(np.linspace(0, width - 1, grid), np.linspace(0, height - 1, grid))
    inside = mask[np.rint(y).astype(int), np.rint(x).astype(int)]
    return np.stack([x[inside], y[inside]], axis=-1).astype(np.float32)


def track_points(frames: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P,N,2) Lucas–Kanade tracks of `points` (P,2) through every frame. Like CoTracker, every
    point gets a position in every frame: one that LK loses (not found, e.g. off the frame) keeps
    its last position, so a lost track reads as no motion rather than vanishing from the score."""
    greys = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    tracks = np.repeat(points.astype(np.float32)[:, None], len(frames), axis=1)
    alive = np.ones(len(points), bool)
    for t in range(1, len(frames)):
        tracks[:, t] = tracks[:, t - 1]
        if not alive.any():
            continue
        ahead, found, _ = cv2.calcOpticalFlowPyrLK(
            greys[t - 1],
            greys[t],
            tracks[alive, t - 1].reshape(-1, 1, 2),
            None,
            winSize=LK_WINDOW,
            maxLevel=LK_LEVELS,
            criteria=LK_CRITERIA,
        )
        found = found.ravel().astype(bool)
        moving = np.flatnonzero(alive)
        tracks[moving[found], t] = ahead.reshape(-1, 2)[found]
        alive[moving[~found]] = False
    return tracks


def _directions(tracks: np.ndarray, still_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit displacements (M,N-1,2), zero for still steps, and the still indicator (M,N-1)."""
    steps = np.diff(tracks.astype(np.float64), axis=1)
    length = np.linalg.norm(steps, axis=-1)
    still = length < still_px
    units = np.where(still[..., None], 0.0, steps / np.where(still, 1.0, length)[..., None])
    return units, still.astype(np.float64)


def track_similarity(source_tracks: np.ndarray, edit_tracks: np.ndarray, still_px: float = STILL_PX) -> np.ndarray:
    """(n,m) corr(tau, tau~): mean over steps of the displacement cosine (still steps: see module docstring)."""
    if source_tracks.shape[1] != edit_tracks.shape[1]:
        raise ValueError(f"tracks differ in length: {source_tracks.shape[1]} and {edit_tracks.shape[1]} frames")
    source_units, source_still = _directions(source_tracks, still_px)
    edit_units, edit_still = _directions(edit_tracks, still_px)
    agreement = np.einsum("ntc,mtc->nm", source_units, edit_units) + np.einsum("nt,mt->nm", source_still, edit_still)
    return agreement / source_units.shape[1]


def motion_fidelity(source_tracks: np.ndarray, edit_tracks: np.ndarray, still_px: float = STILL_PX) -> float:
    """DMT's motion fidelity score, symmetric (see the module docstring); 1 is the same motion."""
    similarity = track_similarity(source_tracks, edit_tracks, still_px)
    return float((similarity.max(axis=0).mean() + similarity.max(axis=1).mean()) / 2)


# ---- trajectory against the pose (rendered clips) -----------------------------------------------


def pose_track(truth: RenderedClip, frames_attrs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Object centre in the sampled, cropped and resized frames: (N,2) pixel (x, y) and (N,) camera z.

    `frames_attrs` are the frames-stage attributes (frame_indices, size, crop) of the source."""
    indices = list(frames_attrs["frame_indices"])
    if indices[-1] >= len(truth.poses):
        raise InputError(f"truth has {len(truth.poses)} poses, the frames use index {indices[-1]}")
    pixels, depth = truth.camera.project(truth.poses[indices, :3])
    width, height = frames_attrs["size"]
    left, top, right, bottom = crop_box(truth.camera.width, truth.camera.height, (width, height), frames_attrs["crop"])
    # pixel centres at integers: edges sit at -0.5, so scale about the edges
    x = (pixels[:, 0] + 0.5 - left) * width / (right - left) - 0.5
    y = (pixels[:, 1] + 0.5 - top) * height / (bottom - top) - 0.5
    return np.stack([x, y], axis=-1), depth


def segment_subject(frames: np.ndarray, source_mask: np.ndarray, threshold: float = SEGMENT_THRESHOLD) -> np.ndarray:
    """Subject masks (N,H,W) of a clip over a still background, by background differencing.

    The background is the per-pixel median over the frames where the (dilated) source subject is
    absent, so the subject does not leak into it; pixels the source subject covers in every frame
    (a subject that moves less than its size) are inpainted from around them (Telea). Foreground
    is an RGB distance (in [0, 1] units) above `threshold`, opened, largest connected component.
    Where an edited subject stays on pixels the source subject leaves, it is taken for background."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * SEGMENT_MARGIN_PX + 1,) * 2)
    covered = np.stack([cv2.dilate(m.astype(np.uint8), kernel).astype(bool) for m in source_mask])
    always = covered.all(axis=0)
    background = np.zeros(frames.shape[1:], np.uint8)
    free = np.where(covered[..., None], np.nan, frames.astype(np.float32))[:, ~always]
    background[~always] = np.rint(np.nanmedian(free, axis=0)).astype(np.uint8)
    if always.any():
        background = cv2.inpaint(background, always.astype(np.uint8), 2 * SEGMENT_MARGIN_PX, cv2.INPAINT_TELEA)
    distance = np.linalg.norm((frames.astype(np.float32) - background) / 255.0, axis=-1)
    masks = np.zeros(distance.shape, bool)
    opening = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    for t, frame_distance in enumerate(distance):
        foreground = cv2.morphologyEx((frame_distance > threshold).astype(np.uint8), cv2.MORPH_OPEN, opening)
        labels, count = ndimage.label(foreground)
        if count:
            sizes = ndimage.sum_labels(foreground, labels, index=np.arange(1, count + 1))
            masks[t] = labels == 1 + int(np.argmax(sizes))
    return masks


def trajectory_errors(masks: np.ndarray, centres: np.ndarray, depth: np.ndarray) -> tuple[float | None, float | None, int]:
    """(trajectory_error_px, size_log_error, frames used) of subject masks against a pose track."""
    found = masks.reshape(len(masks), -1).any(axis=1)
    if found.sum() < 2:
        return None, None, int(found.sum())
    rows, cols = np.mgrid[0 : masks.shape[1], 0 : masks.shape[2]]
    area = masks[found].sum(axis=(1, 2)).astype(np.float64)
    sums = np.stack([(masks[found] * cols).sum(axis=(1, 2)), (masks[found] * rows).sum(axis=(1, 2))], axis=-1)
    centroid = sums / area[:, None]
    offset = centroid - centres[found]
    trajectory = float(np.linalg.norm(offset - offset.mean(axis=0), axis=-1).mean())
    log_size = 0.5 * np.log(area) + np.log(depth[found])
    return trajectory, float(np.abs(log_size - log_size.mean()).mean()), int(found.sum())


# ---- one edit -----------------------------------------------------------------------------------


def evaluate_edit(
    source_frames: str | os.PathLike,
    source_mask: str | os.PathLike,
    edit: str | os.PathLike,
    out: str | os.PathLike,
    *,
    video: str,
    concept: str,
    method: str,
    category: str,
    kind: str,
    prompt: str,
    clip_model: str | None = None,
    device: str = "cpu",
    truth: str | os.PathLike | None = None,
    flow_method: str = "dis",
    still_px: float = STILL_PX,
    segment_threshold: float = SEGMENT_THRESHOLD,
    subjects: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Measure one edit against its source and write the record (JSON, atomically) to `out`.

    `source_frames`/`source_mask`: the priors group's `frames` and subject mask arrays; `edit`: the
    edited clip (video file or Zarr frames array, same frame count and size); `truth`: the rendered
    clip's truth.zarr, or None for real clips; `subjects`: the instance ids (`mask_given`) of a clip with
    several subjects, whose motion fidelity is then also measured per subject (the worst one is a metric:
    the union's hides a subject that lost its motion). Unavailable metrics are null with a reason."""
    if method not in METHODS:
        raise InputError(f"method {method!r} is unknown; choose one of {', '.join(METHODS)}")
    source, frames_attrs = read_array(source_frames)
    mask = read_array(source_mask)[0].astype(bool)
    edited = read_frames(edit)
    if edited.shape != source.shape:
        raise InputError(f"{edit}: edit frames {edited.shape} do not match the source frames {source.shape}")
    if len(source) < 2:
        raise InputError(f"{source_frames}: a clip needs at least 2 frames to measure motion, got {len(source)}")
    if mask.shape != source.shape[:3]:
        raise InputError(f"{source_mask}: mask {mask.shape} does not match the frames {source.shape[:3]}")

    metrics: dict[str, float | None] = dict.fromkeys(
        name for name in METRICS if subjects or name != "worst_subject_motion_fidelity"
    )
    not_available: dict[str, str] = {}
    details: dict[str, Any] = {"frames": len(source), "size": [source.shape[2], source.shape[1]]}

    if clip_model:
        scorer = ClipScorer(clip_model, device)
        embeddings = scorer.image_embeddings(edited)
        metrics["clip_text_alignment"] = text_alignment(embeddings, scorer.text_embedding(prompt))
        metrics["clip_temporal_consistency"] = temporal_consistency(embeddings)
        details["clip_model"] = clip_model
    else:
        for name in ("clip_text_alignment", "clip_temporal_consistency"):
            not_available[name] = "no CLIP model configured"

    metrics["warp_error"] = warp_error(edited, flow_method)
    details["flow_method"] = flow_method
    if metrics["warp_error"] is None:
        not_available["warp_error"] = "no frame pair has a flow-consistent pixel"

    points = grid_points(mask[0])
    details["tracked_points"] = len(points)
    if len(points):
        source_tracks, edit_tracks = track_points(source, points), track_points(edited, points)
        metrics["motion_fidelity"] = motion_fidelity(source_tracks, edit_tracks, still_px)
    else:
        not_available["motion_fidelity"] = "the source subject mask is empty in frame 0"
    if subjects is not None:
        labels, labels_attrs = read_array(subjects)
        per_subject = {}
        for subject in labels_attrs["subjects"]:
            subject_points = grid_points(labels[0] == subject)
            if len(subject_points):
                per_subject[str(subject)] = motion_fidelity(
                    track_points(source, subject_points), track_points(edited, subject_points), still_px
                )
        details["motion_fidelity_per_subject"] = per_subject
        if per_subject:
            metrics["worst_subject_motion_fidelity"] = min(per_subject.values())
        else:
            not_available["worst_subject_motion_fidelity"] = "no subject has a tracked point in frame 0"

    if truth is None:
        for name in ("trajectory_error_px", "size_log_error"):
            not_available[name] = "no ground truth (not a rendered clip)"
    else:
        centres, depth = pose_track(read_truth(truth), frames_attrs)
        subject = segment_subject(edited, mask, segment_threshold)
        trajectory, size, used = trajectory_errors(subject, centres, depth)
        details["segmented_frames"] = used
        if trajectory is None:
            for name in ("trajectory_error_px", "size_log_error"):
                not_available[name] = f"edit subject segmented in {used} frame(s), 2 needed"
        metrics["trajectory_error_px"], metrics["size_log_error"] = trajectory, size

    record = {
        "video": video,
        "concept": concept,
        "method": method,
        "category": category,
        "kind": kind,
        "prompt": prompt,
        "metrics": metrics,
        "not_available": not_available,
        "details": details,
    }
    bad = [name for name, value in metrics.items() if value is not None and not math.isfinite(value)]
    if bad:
        raise RuntimeError(f"{edit}: metrics {bad} are not finite: {metrics}")
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    log.info("%s %s %s: %s", video, concept, method, metrics)
    return record
