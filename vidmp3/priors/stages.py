"""One function per workflow rule: read a video's arrays, compute one prior, write its array folder.

Each stage computes everything before it writes, and writes atomically, so bad input leaves no
partial output. Arrays live in the video's group `results/priors/{video}.zarr` (`vidmp3.store`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.priors import combine, compute_depth, compute_mask, compute_matches, matches_to_corr
from vidmp3.priors.correspondence import subject_box
from vidmp3.priors.depth import DEPTH_FLOOR
from vidmp3.priors.figure import priors_figure
from vidmp3.priors.render import AlignedTruth, align_truth
from vidmp3.store import read_array, write_array
from vidmp3.scene import read_truth
from vidmp3.subjects import SubjectMap

PathLike = str | os.PathLike

CORR_COLOURS = (
    "frame-0 position (x, y) -> R = (x - x0)/w, G = (y - y0)/h, B = 1 - (R+G)/2 (clamped to [0, 1]) with colour_box "
    "[x0, y0, w, h] frame 0's subject bounding box, looked up at each pixel's match; 0 outside the subject"
)
DEPTH_CONVENTION = (
    f"near is large; per video, subject pixels span [{DEPTH_FLOOR}, 1] (1st-99th percentile); 0 outside the subject"
)


def _aligned_truth(truth: PathLike | None, frames_attrs: dict[str, Any]) -> AlignedTruth | None:
    """The rendered clip's truth (for the `render` backends), sampled like the video's frames."""
    return None if truth is None else align_truth(read_truth(truth), frames_attrs)


def mask_stage(
    frames: PathLike,
    out: PathLike,
    backend: str,
    options: dict[str, Any],
    given: PathLike | None = None,
    class_name: str = "",
) -> None:
    """Write `mask` bool (N,H,W) from the `frames` array (and the `mask_given` array for backend given);
    for a video with subjects, the union of its instance masks, every subject shown in frame 0."""
    frame_array, frames_attrs = read_array(frames)
    given_array, given_attrs = read_array(given) if given is not None else (None, {})
    subjects = given_attrs.get("subjects", [])
    labels = given_array if subjects else None
    mask = compute_mask(frame_array, backend, options, given=labels > 0 if subjects else given_array, class_name=class_name)
    if not mask[0].any():
        _empty_first_mask(Path(out).parent.stem, backend, given_attrs.get("masks"), class_name, frames_attrs)
    for subject in subjects:
        if not (labels[0] == subject).any():
            raise InputError(
                f"video {Path(out).parent.stem}: subject {subject} is not in its instance mask of frame 0 "
                f"(source frame {frames_attrs['frame_indices'][0]}) in {given_attrs.get('masks')}; frame 0 defines "
                "each subject's correspondence colours. Fix: choose a first_frame where every subject is visible"
            )
    attrs = {"backend": backend, "options": options, "class_name": class_name}
    write_array(out, mask, attrs | ({"subjects": subjects} if subjects else {}))


def _subject_labels(subjects: PathLike | None) -> SubjectMap | None:
    """The instance ids of a video with subjects (its `mask_given`), None for one subject."""
    if subjects is None:
        return None
    labels, attrs = read_array(subjects)
    return SubjectMap(tuple(attrs["subjects"]), labels)


def _render_one_subject(backend: str, subjects: SubjectMap | None) -> None:
    if backend == "render" and subjects is not None:
        raise InputError("the render backends know one subject per clip; for a video with subjects choose flow / mask-area")


def _empty_first_mask(video: str, backend: str, folder: str | None, class_name: str, frames_attrs: dict[str, Any]) -> None:
    """Frame 0 defines the correspondence colours, so its subject must be there: say so at the mask stage."""
    frame = f"frame 0 (source frame {frames_attrs['frame_indices'][0]})"
    if backend == "given":
        problem = f"its mask of {frame} in {folder} is empty (mask backend 'given')"
        fix = "choose a first_frame where the subject is visible, or check that the subject is white in that mask"
    else:
        looked_for = f"{class_name!r}" if class_name else "subject"
        problem = f"mask backend {backend!r} found no {looked_for} in {frame}"
        fix = "choose a first_frame where the subject is visible, give the video a masks folder, or set another mask_backend"
    raise InputError(f"video {video}: {problem}; frame 0 defines the correspondence colours. Fix: {fix}")


def corr_stage(
    frames: PathLike,
    mask: PathLike,
    out: PathLike,
    backend: str,
    options: dict[str, Any],
    truth: PathLike | None = None,
    subjects: PathLike | None = None,
) -> None:
    """Write `corr` float16 (N,H,W,3): the colour of each subject pixel's match in frame 0. With
    `subjects` (instance ids), per subject: each is matched within itself and coloured by its own
    frame-0 box, packed into one array (subjects never share a pixel)."""
    frame_array, frames_attrs = read_array(frames)
    mask_array, _ = read_array(mask)
    labels = _subject_labels(subjects)
    _render_one_subject(backend, labels)
    aligned = _aligned_truth(truth, frames_attrs)
    masks = [mask_array] if labels is None else list(labels.masks())
    corr = np.zeros((*mask_array.shape, 3), np.float32)
    boxes, matched = [], 0
    for subject_mask in masks:
        matches = compute_matches(frame_array, subject_mask, backend, options, truth=aligned)
        matched += int(np.isfinite(matches[..., 0]).sum())
        origin, size = subject_box(matches[0])
        boxes.append([*origin.tolist(), *size.tolist()])
        corr[subject_mask] = matches_to_corr(matches)[subject_mask]
    attrs = {
        "backend": backend,
        "options": options,
        "colours": CORR_COLOURS,
        "colour_box": boxes[0],
        "matched_share": float(matched / max(mask_array.sum(), 1)),
    }
    if labels is not None:
        attrs |= {"subjects": list(labels.ids), "colour_boxes": boxes}
    write_array(out, corr.astype(np.float16), attrs)


def depth_stage(
    frames: PathLike,
    mask: PathLike,
    out: PathLike,
    backend: str,
    options: dict[str, Any],
    truth: PathLike | None = None,
    subjects: PathLike | None = None,
) -> None:
    """Write `depth` float16 (N,H,W): normalised per video, near is large, 0 outside the subject. With
    `subjects`, normalised per subject (each as if it were the clip's one subject), packed into one array."""
    frame_array, frames_attrs = read_array(frames)
    mask_array, _ = read_array(mask)
    labels = _subject_labels(subjects)
    _render_one_subject(backend, labels)
    aligned = _aligned_truth(truth, frames_attrs)
    depth = np.zeros(mask_array.shape, np.float32)
    for subject_mask in [mask_array] if labels is None else labels.masks():
        depth[subject_mask] = compute_depth(frame_array, subject_mask, backend, options, truth=aligned)[subject_mask]
    attrs = {"backend": backend, "options": options, "convention": DEPTH_CONVENTION}
    write_array(out, depth.astype(np.float16), attrs | ({"subjects": list(labels.ids)} if labels else {}))


def guide_stage(
    frames: PathLike,
    corr: PathLike,
    depth: PathLike,
    mask: PathLike,
    guide_out: PathLike,
    alpha_out: PathLike,
    figure_out: PathLike,
    subjects: PathLike | None = None,
) -> None:
    """Write `guide` float16 (N,3,H,W) = corr ⊙ depth, `alpha` float32 (N,), and the Fig. 4 strip PNG.
    With `subjects`, alpha is (N, K): each subject's share, in the order of the subject ids."""
    frame_array, _ = read_array(frames)
    corr_array, _ = read_array(corr)
    depth_array, _ = read_array(depth)
    mask_array, _ = read_array(mask)
    labels = _subject_labels(subjects)
    guide, alpha = combine(corr_array, depth_array, mask_array)
    alpha_attrs = {"definition": "subject share of the frame's pixels; 0 for a frame without subject"}
    if labels is not None:
        alpha = labels.masks().mean(axis=(2, 3), dtype=np.float64).T.astype(np.float32)
        alpha_attrs |= {"layout": "N,K", "subjects": list(labels.ids)}
    with atomic_path(guide_out) as guide_tmp, atomic_path(alpha_out) as alpha_tmp, atomic_path(figure_out) as figure_tmp:
        write_array(guide_tmp, guide, {"layout": "N,3,H,W", "formula": "corr * depth on the subject, 0 elsewhere"})
        write_array(alpha_tmp, alpha, alpha_attrs)
        priors_figure(frame_array, corr_array, depth_array, guide, Path(figure_tmp))
