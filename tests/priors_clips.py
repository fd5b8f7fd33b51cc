"""Small rendered clips with exact truth, shared by the priors tests (cached per test session)."""

from __future__ import annotations

from functools import cache

import numpy as np

from vidmp3.priors.render import AlignedTruth, align_truth
from vidmp3.scene import RenderedClip, SubjectSpec
from vidmp3.synthetic import make_trajectory, render_clip

SHAPES = {"cube": (0.8, 0.8, 0.8), "box": (1.2, 0.5, 0.5), "sphere": (0.8, 0.8, 0.8)}


@cache
def rendered(shape: str, texture: str, motion: str, seed: int, size: int = 96, frames: int = 8) -> RenderedClip:
    subject = SubjectSpec(shape, SHAPES[shape], texture=texture)
    return render_clip(subject, make_trajectory(frames, seed=seed, motion=motion, subject=subject), size, size, supersample=2)


@cache
def rendered_long(shape: str, motion: str, seed: int, size: int = 48, frames: int = 64) -> RenderedClip:
    """A long checker clip; motion "spin" is large motion kept upright (0.3 rad of lean) plus a full extra
    turn about the vertical axis, like `benchmarks/priors_drift.py`'s."""
    subject = SubjectSpec(shape, SHAPES[shape], texture="checker")
    if motion == "spin":
        poses = make_trajectory(frames, seed=seed, motion="large", subject=subject, tilt=0.3)
        poses[:, 4] += 2.0 * np.pi * np.linspace(0.0, 1.0, frames)
    else:
        poses = make_trajectory(frames, seed=seed, motion=motion, subject=subject)
    return render_clip(subject, poses, size, size, supersample=2)


def native_attrs(clip: RenderedClip) -> dict:
    """Frames-stage attrs of a video that takes every rendered frame at its own size."""
    width, height = clip.camera.width, clip.camera.height
    return {
        "source": "rendered",
        "frame_indices": list(range(len(clip.frames))),
        "source_size": [width, height],
        "size": [width, height],
        "crop": "none",
    }


def aligned(clip: RenderedClip) -> AlignedTruth:
    return align_truth(clip, native_attrs(clip))


def iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per-frame IoU of two mask stacks (1 where both are empty)."""
    union = (first | second).sum(axis=(1, 2))
    return np.where(union > 0, (first & second).sum(axis=(1, 2)) / np.maximum(union, 1), 1.0)
