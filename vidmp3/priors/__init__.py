"""The priors MotionGuide needs, per video: subject mask, correspondence to frame 0, depth, C ⊙ D.

One dispatch function per prior picks a backend by name; whatever the backend, the result follows
the project's conventions:

- `compute_mask` -> bool (N,H,W);
- `compute_matches` -> float32 (N,H,W,2), each subject pixel's (x, y) in frame 0, NaN where none;
  `matches_to_corr` turns them into the colour map `corr` (see `vidmp3.priors.correspondence`);
- `compute_depth` -> float32 (N,H,W) normalised per video, NEAR IS LARGE, in [DEPTH_FLOOR, 1] on the
  subject and 0 outside (see `vidmp3.priors.depth`);
- `combine` -> guide float16 (N,3,H,W) = corr ⊙ depth, alpha float32 (N,) = subject share of pixels.

A frame whose mask is empty gets corr 0, depth 0, guide 0 and alpha 0 (never NaN); MotionGuide
receives exactly that and gives such a frame a zero motion vector. Frame 0 must show the subject:
it defines the correspondence colours.

Learned backends live in `vidmp3.priors.learned` (torch, transformers, diffusers) and are imported
only when asked for, so the offline backends work without loading them. Each backend's `options`
are its function's keyword arguments; unknown keys are errors, and learned backends name their
model files with the `*weights` keys (a local folder or a hub id), which must be set.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from vidmp3.errors import InputError
from vidmp3.priors.correspondence import endpoint_error, matches_to_corr
from vidmp3.priors.depth import DEPTH_FLOOR, mask_area_nearness, normalise_depth
from vidmp3.priors.flow import flow_matches
from vidmp3.priors.motion_mask import motion_masks
from vidmp3.priors.render import AlignedTruth, render_matches, render_nearness

__all__ = [
    "CORR_BACKENDS",
    "DEPTH_BACKENDS",
    "DEPTH_FLOOR",
    "LEARNED_BACKENDS",
    "MASK_BACKENDS",
    "combine",
    "compute_depth",
    "compute_mask",
    "compute_matches",
    "endpoint_error",
    "matches_to_corr",
]

CORR_BACKENDS = ("sd-dino", "dinov2", "flow", "render")
MASK_BACKENDS = ("given", "motion", "mask2former", "clipseg")
DEPTH_BACKENDS = ("depth-anything-v2", "render", "mask-area")

# Learned backend -> (function in vidmp3.priors.learned, {options key naming weights: its parameter}).
LEARNED_BACKENDS = {
    "dinov2": ("dinov2_matches", {"weights": "model"}),
    "sd-dino": ("sd_dino_matches", {"dino_weights": "dino_model", "sd_weights": "sd_model"}),
    "mask2former": ("segment_class", {"weights": "model"}),
    "clipseg": ("segment_foreground", {"weights": "model"}),
    "depth-anything-v2": ("depth_anything", {"weights": "model"}),
}


def _check_backend(prior: str, backend: str, known: tuple[str, ...]) -> None:
    if backend not in known:
        raise InputError(f"{prior} backend {backend!r} is unknown; choose one of {', '.join(known)}")


def _check_frames(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise InputError(f"frames must be uint8 (N, H, W, 3) with N >= 1, got {frames.dtype} {frames.shape}")


def _check_mask(name: str, mask: np.ndarray, frames: np.ndarray) -> None:
    if mask.dtype != np.bool_ or mask.shape != frames.shape[:3]:
        raise InputError(f"{name} must be bool {frames.shape[:3]} like the frames, got {mask.dtype} {mask.shape}")


def _run(
    prior: str,
    backend: str,
    function: Callable,
    options: dict[str, Any],
    data: dict[str, Any],
    weights: dict[str, str] | None = None,
) -> np.ndarray:
    """Call a backend with `data` (arrays) and its `options`, checking the option names first."""
    weights = weights or {}
    allowed = [name for name in inspect.signature(function).parameters if name not in data]
    allowed = [next((key for key, parameter in weights.items() if parameter == name), name) for name in allowed]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(
            f"{prior} backend {backend!r}: unknown option(s) {', '.join(unknown)}; "
            f"it takes {', '.join(allowed) if allowed else 'no options'}"
        )
    arguments = {weights.get(key, key): value for key, value in options.items()}
    if weights and isinstance(arguments.get("dtype"), str):
        import torch

        dtype = getattr(torch, arguments["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise InputError(f"{prior} backend {backend!r}: dtype {arguments['dtype']!r} is not a torch dtype")
        arguments["dtype"] = dtype
    return function(**data, **arguments)


def _learned(prior: str, backend: str, options: dict[str, Any], data: dict[str, Any]) -> np.ndarray:
    """Run a backend of `vidmp3.priors.learned`, refusing missing weights before torch is imported."""
    function_name, weights = LEARNED_BACKENDS[backend]
    missing = [key for key in weights if not options.get(key)]
    if missing:
        raise InputError(
            f"{prior} backend {backend!r} has no weights: set option(s) {', '.join(missing)} "
            "to a local folder or a hub id of the model"
        )
    learned = importlib.import_module("vidmp3.priors.learned")
    return _run(prior, backend, getattr(learned, function_name), options, data, weights)


def _need_truth(prior: str, truth: AlignedTruth | None) -> AlignedTruth:
    if truth is None:
        raise InputError(f"{prior} backend 'render' needs the rendered clip's truth; this video has none")
    return truth


def compute_mask(
    frames: np.ndarray,
    backend: str,
    options: dict[str, Any],
    given: np.ndarray | None = None,
    class_name: str = "",
) -> np.ndarray:
    """Subject masks bool (N,H,W). `given`: the sheet's masks; `class_name`: what learned segmenters look for."""
    _check_backend("mask", backend, MASK_BACKENDS)
    _check_frames(frames)
    if backend == "given":
        if given is None:
            raise InputError("mask backend 'given' needs the sheet's masks (column masks); this video has none")
        if options:
            raise InputError(f"mask backend 'given' takes no options, got {', '.join(sorted(options))}")
        _check_mask("given masks", given, frames)
        return given
    if backend == "motion":
        mask = _run("mask", backend, motion_masks, options, {"frames": frames})
    else:
        if not class_name.strip():
            raise InputError(f"mask backend {backend!r} needs the subject's class name (sheet column subject_class)")
        key = "class_name" if backend == "mask2former" else "prompt"
        mask = _learned("mask", backend, options, {"frames": frames, key: class_name})
    _check_mask(f"{backend} masks", mask, frames)
    return mask


def compute_matches(
    frames: np.ndarray,
    mask: np.ndarray,
    backend: str,
    options: dict[str, Any],
    truth: AlignedTruth | None = None,
) -> np.ndarray:
    """float32 (N,H,W,2): each subject pixel's (x, y) in frame 0, NaN where none and outside the mask."""
    _check_backend("correspondence", backend, CORR_BACKENDS)
    _check_frames(frames)
    _check_mask("mask", mask, frames)
    if not mask[0].any():
        raise InputError("the mask of frame 0 is empty: the correspondence colours are defined on frame 0's subject")
    data = {"frames": frames, "mask": mask}
    if backend == "flow":
        matches = _run("correspondence", backend, flow_matches, options, data)
    elif backend == "render":
        truth = _need_truth("correspondence", truth)
        matches = _run("correspondence", backend, render_matches, options, {"truth": truth, "mask": mask})
    else:
        matches = _learned("correspondence", backend, options, data)
    if matches.shape != (*mask.shape, 2) or np.isfinite(matches[~mask]).any():
        raise RuntimeError(f"correspondence backend {backend!r} broke the matches convention (shape {matches.shape})")
    return matches.astype(np.float32, copy=False)


def compute_depth(
    frames: np.ndarray,
    mask: np.ndarray,
    backend: str,
    options: dict[str, Any],
    truth: AlignedTruth | None = None,
) -> np.ndarray:
    """float32 (N,H,W): per-video normalised depth on the subject, NEAR IS LARGE, 0 outside."""
    _check_backend("depth", backend, DEPTH_BACKENDS)
    _check_frames(frames)
    _check_mask("mask", mask, frames)
    if backend == "mask-area":
        nearness = _run("depth", backend, mask_area_nearness, options, {"mask": mask})
    elif backend == "render":
        truth = _need_truth("depth", truth)
        nearness = _run("depth", backend, render_nearness, options, {"truth": truth, "mask": mask})
    else:
        nearness = _learned("depth", backend, options, {"frames": frames})
    return normalise_depth(nearness, mask)


def combine(corr: np.ndarray, depth: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """guide float16 (N,3,H,W) = corr ⊙ depth on the subject (0 elsewhere), alpha float32 (N,) = its pixel share."""
    if corr.shape != (*mask.shape, 3) or depth.shape != mask.shape:
        raise InputError(f"corr {corr.shape}, depth {depth.shape} and mask {mask.shape} do not fit together")
    corr = corr.astype(np.float32)
    depth = depth.astype(np.float32)
    if not (np.isfinite(corr).all() and np.isfinite(depth).all()):
        raise InputError("corr and depth must be finite")
    guide = corr * (depth * mask)[..., None]
    alpha = mask.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
    return guide.transpose(0, 3, 1, 2).astype(np.float16), alpha
