"""Toy experiment (paper Fig. 2): MotionGuide represents motion, not shape.

MotionGuide with one zero-initialised linear head of width 6 is trained on ONE rendered video of a
gradient-coloured cube to predict its poses T (N, 6) from (C, D) by minimising ||T - phi(C, D)||^2
(eq. 1). After every iteration's forward pass the same loss, against the training poses T, is also
evaluated on
- positive videos: another shape (larger cube, elongated box, pyramid, sphere) with the same poses;
- a negative video: the same cube following another trajectory.
If the module reads motion rather than shape, the positive losses follow the training loss down while
the negative loss rises: the module reads the negative's own motion, which is not T.

Inputs, the same for every video:
- C is the renderer's `gradient` field (object coordinates over the bounding box in [0, 1], 0 outside).
- D is z_near / z on the subject and 0 elsewhere, near is large, with z_near the nearest subject depth
  of the TRAINING video, shared by all videos (so D is in (0, 1] on the training video). Per-video
  normalisation would rescale each video by its own nearest depth: every frame would carry information
  from the whole clip's trajectory, the absolute depth that tz is read from would be hidden, and a
  larger subject (which comes nearer) would be rescaled by its size rather than its motion.
- alpha is the mask's share of the pixels.
- T is standardised per dimension with the training video's mean and (population) std, applied to all
  videos, so the zero-initialised model starts at loss exactly 1 on each of them.

`layout="spatial"` runs the same experiment for the spatial MotionGuide (vidmp3-spatial): its per-cell
vectors (width 6, cells of `cell` pixels, zero-initialised head) are read out by a linear map of the
whole grid (randomly initialised weights, zero bias, so the loss still starts at exactly 1). The
readout may use where each vector is, as temporal attention does per pixel; if the per-cell vectors
carry the silhouette, the positives' losses stay high: that is the shape leakage this measures.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.motionguide import VARIANT_CHANNELS, MotionGuide, guide_input
from vidmp3.scene import RenderedClip, SubjectSpec
from vidmp3.synthetic import make_trajectory, render_clip

TRAIN_SUBJECT = SubjectSpec("cube", (0.55, 0.55, 0.55))
POSITIVE_SUBJECTS = {
    "large_cube": SubjectSpec("cube", (0.8, 0.8, 0.8)),
    "elongated_box": SubjectSpec("box", (0.95, 0.4, 0.4)),
    "pyramid": SubjectSpec("pyramid", (0.75, 0.75, 0.75)),
    "sphere": SubjectSpec("sphere", (0.65, 0.65, 0.65)),
}
NEGATIVE_SEED_OFFSET = 10_000
"""The negative video's trajectory seed is the run's seed plus this, so it never equals a training one."""

POSE_DIMENSIONS = 6


def depth_prior(clip: RenderedClip, z_near: float) -> np.ndarray:
    """D = z_near / z on the subject, 0 elsewhere (near is large)."""
    with np.errstate(divide="ignore"):
        return np.where(clip.mask, z_near / clip.depth, 0.0).astype(np.float32)


def _model_inputs(clip: RenderedClip, z_near: float, variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    guide = guide_input(clip.gradient, depth_prior(clip, z_near), variant)
    alpha = clip.mask.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
    return torch.from_numpy(guide), torch.from_numpy(alpha)


LAYOUTS = ("pooled", "spatial")


class SpatialPoseModel(torch.nn.Module):
    """The spatial MotionGuide's per-cell pose vectors, read out by one linear map of the whole grid."""

    def __init__(self, variant: str, hidden: int, size: int, cell: int):
        super().__init__()
        self.guide = MotionGuide(
            variant=variant,
            widths=(POSE_DIMENSIONS,),
            hidden=hidden,
            layout="spatial",
            slots=[(POSE_DIMENSIONS, 1)],
            latent_factor=cell,
        )
        self.readout = torch.nn.Linear((size // cell) ** 2 * POSE_DIMENSIONS, POSE_DIMENSIONS)
        torch.nn.init.zeros_(self.readout.bias)

    def forward(self, guide: torch.Tensor, alpha: torch.Tensor) -> dict[int, torch.Tensor]:
        cells = self.guide(guide, alpha)[(POSE_DIMENSIONS, 1)]
        return {POSE_DIMENSIONS: self.readout(cells.flatten(1))}


def _loss(model: torch.nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    prediction = model(*inputs)[POSE_DIMENSIONS]
    return ((targets - prediction) ** 2).mean()


def render_videos(seed: int, shapes: list[str], size: int, frames: int) -> dict[str, RenderedClip]:
    """The training cube, one positive video per shape (same poses) and the negative (other poses)."""
    largest = max([TRAIN_SUBJECT, *(POSITIVE_SUBJECTS[s] for s in shapes)], key=lambda s: s.bounding_radius)
    poses = make_trajectory(frames, seed, "large", subject=largest)  # every subject clears the ground
    negative_poses = make_trajectory(frames, seed + NEGATIVE_SEED_OFFSET, "large", subject=largest)
    videos = {"train": render_clip(TRAIN_SUBJECT, poses, size, size)}
    videos.update({shape: render_clip(POSITIVE_SUBJECTS[shape], poses, size, size) for shape in shapes})
    videos["negative"] = render_clip(TRAIN_SUBJECT, negative_poses, size, size)
    return videos


def train_and_evaluate(
    videos: dict[str, RenderedClip],
    seed: int,
    iterations: int,
    lr: float,
    hidden: int,
    variant: str = "product",
    progress: tqdm | None = None,
    layout: str = "pooled",
    cell: int = 8,
) -> dict[str, np.ndarray]:
    """Loss per iteration (iterations,) for every video, all against the training poses T."""
    train = videos["train"]
    z_near = float(train.depth[train.mask].min())
    inputs = {name: _model_inputs(clip, z_near, variant) for name, clip in videos.items()}
    mean, std = train.poses.mean(axis=0), train.poses.std(axis=0)
    targets = torch.from_numpy(((train.poses - mean) / std).astype(np.float32))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if layout == "spatial":
            model = SpatialPoseModel(variant, hidden, train.frames.shape[2], cell)
        else:
            model = MotionGuide(variant=variant, widths=(POSE_DIMENSIONS,), hidden=hidden)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    curves = {name: np.empty(iterations) for name in videos}
    for iteration in range(iterations):
        optimiser.zero_grad()
        loss = _loss(model, inputs["train"], targets)
        loss.backward()
        curves["train"][iteration] = loss.item()
        with torch.no_grad():
            for name in videos:
                if name != "train":
                    curves[name][iteration] = _loss(model, inputs[name], targets).item()
        optimiser.step()
        if progress is not None:
            progress.update()
    return curves


def shape_invariance(
    out_png: str | os.PathLike,
    out_csv: str | os.PathLike,
    seeds: list[int],
    iterations: int,
    size: int,
    frames: int,
    shapes: list[str],
    lr: float,
    hidden: int,
    variant: str = "product",
    layout: str = "pooled",
    cell: int = 8,
) -> pd.DataFrame:
    """Run the experiment for every seed; write the Fig. 2-style plot and the final-loss table atomically.

    `variant` picks the MotionGuide input (the paper's ablations: product, corr, depth, concat);
    `layout` the paper's pooled MotionGuide or the spatial one (cells of `cell` pixels).
    Returns the table: one row per (seed, shape) with the final train, positive and negative losses and
    the ratios positive/train and negative/train.
    """
    unknown = [s for s in shapes if s not in POSITIVE_SUBJECTS]
    if not shapes or unknown:
        raise InputError(f"shape_invariance shapes {shapes} must be a non-empty subset of {sorted(POSITIVE_SUBJECTS)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(f"shape_invariance seeds {seeds} must be a non-empty list of distinct integers")
    if iterations < 1 or frames < 2 or hidden < 1 or not lr > 0:
        raise InputError(
            f"shape_invariance needs iterations >= 1, frames >= 2, hidden >= 1 and lr > 0; "
            f"got iterations={iterations}, frames={frames}, hidden={hidden}, lr={lr}"
        )
    if size < 8 or size % 8:
        raise InputError(f"shape_invariance size {size} must be a positive multiple of 8")
    if variant not in VARIANT_CHANNELS:
        raise InputError(f"shape_invariance variant {variant!r} is not one of {sorted(VARIANT_CHANNELS)}")
    if layout not in LAYOUTS:
        raise InputError(f"shape_invariance layout {layout!r} is not one of {LAYOUTS}")
    if layout == "spatial" and (cell < 1 or size % cell):
        raise InputError(f"shape_invariance cell {cell} must divide the size {size}")

    curves_by_seed = {}
    examples = None
    with tqdm(total=len(seeds) * iterations, desc="shape invariance", unit="it") as progress:
        for seed in seeds:
            videos = render_videos(seed, shapes, size, frames)
            examples = examples or videos
            curves_by_seed[seed] = train_and_evaluate(videos, seed, iterations, lr, hidden, variant, progress, layout, cell)

    rows = []
    for seed, curves in curves_by_seed.items():
        train, negative = curves["train"][-1], curves["negative"][-1]
        for shape in shapes:
            positive = curves[shape][-1]
            rows.append(
                {
                    "seed": seed,
                    "shape": shape,
                    "train_loss": train,
                    "positive_loss": positive,
                    "negative_loss": negative,
                    "positive_over_train": positive / train,
                    "negative_over_train": negative / train,
                }
            )
    table = pd.DataFrame(rows)

    figure = _plot(curves_by_seed, examples, shapes, variant if layout == "pooled" else f"{variant}, spatial ({cell} px cells)")
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return table


def _plot(
    curves_by_seed: dict[int, dict[str, np.ndarray]], examples: dict[str, RenderedClip], shapes: list[str], variant: str
) -> Figure:
    """Top: the videos (C of the middle frame). Bottom: one Fig. 2 panel per positive shape."""
    names = ["train", *shapes, "negative"]
    figure = Figure(figsize=(3.6 * len(shapes), 5.8), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[1, 2.3])
    middle = len(examples["train"].poses) // 2
    crops = _thumbnail_crops([examples[name].mask[middle] for name in names])
    for axis, name, crop in zip(top.subplots(1, len(names)), names, crops):
        axis.imshow(np.clip(examples[name].gradient[middle][crop], 0.0, 1.0))
        title = {"train": "train: cube", "negative": "negative: cube,\nother motion"}.get(name, f"positive: {name}")
        axis.set_title(title, fontsize=8)
        axis.set_axis_off()
    top.suptitle("C (gradient colours), middle frame", fontsize=9)

    seeds = list(curves_by_seed)
    steps = np.arange(1, len(curves_by_seed[seeds[0]]["train"]) + 1)
    axes = np.atleast_1d(bottom.subplots(1, len(shapes), sharey=True))
    colours = {"train": "tab:blue", "positive": "tab:green", "negative": "tab:red"}
    for axis, shape in zip(axes, shapes):
        for label, key in (("train", "train"), (f"positive ({shape})", shape), ("negative", "negative")):
            stacked = np.stack([curves_by_seed[s][key] for s in seeds])
            colour = colours[label.split(" ")[0]]
            axis.plot(steps, stacked.mean(axis=0), color=colour, label=label)
            axis.fill_between(steps, stacked.min(axis=0), stacked.max(axis=0), color=colour, alpha=0.2, linewidth=0)
        axis.set_yscale("log")
        axis.set_xlabel("iteration")
        axis.set_title(shape, fontsize=9)
        axis.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("loss ||T - phi(C, D)||^2 (standardised T)")
    bottom.suptitle(f"MotionGuide input: {variant}; mean over {len(seeds)} seeds, band: min to max", fontsize=9)
    return figure


def _thumbnail_crops(masks: list[np.ndarray]) -> list[tuple[slice, slice]]:
    """One square per mask, all the same size, centred on its subject: the shapes keep their relative size."""
    boxes = [(rows.min(), rows.max(), cols.min(), cols.max()) for rows, cols in (np.nonzero(m) for m in masks)]
    half = max(max(r1 - r0, c1 - c0) for r0, r1, c0, c1 in boxes) // 2 + 3
    crops = []
    for (r0, r1, c0, c1), mask in zip(boxes, masks):
        top = int(np.clip((r0 + r1) // 2 - half, 0, max(mask.shape[0] - 2 * half, 0)))
        left = int(np.clip((c0 + c1) // 2 - half, 0, max(mask.shape[1] - 2 * half, 0)))
        crops.append((slice(top, top + 2 * half), slice(left, left + 2 * half)))
    return crops
