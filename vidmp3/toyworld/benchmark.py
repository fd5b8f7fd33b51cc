"""The ToyWorld benchmark: every method edits held-out rendered clips; the edits are measured against the truth.

One process runs all clips x methods x edits: as Snakemake jobs, each edit would spend ~12 s importing
torch and diffusers, more than it computes. For each clip seed (from `first_seed`, never below
`world.HELD_OUT_SEED`, so no clip was seen in pretraining):

1. `plan_clip`: the source's shape and colour and the target captions are drawn from the seed. Every
   target differs from the source in shape and in colour; the first three targets have three
   different shapes and colours (like "a red cube" -> "a blue sphere", "a green cone", "a yellow cylinder").
2. `world.render_toy_clip` renders the source; `rendered_priors` computes its priors as the workflow does
   for a rendered clip: the mask is the render's own (the `given` backend on the clip's masks), corr and
   depth come from the `render` backends, stored as float16 like the priors stages store them, and
   alpha from `combine`.
3. Per method (`vidmp3.methods.METHODS`): `finetune` into a work folder, load the model once, invert the
   source once, and sample every edit from the same inverted latents (`vidmp3.editing`).
4. `vidmp3.toyworld.metrics.edit_metrics` on each edit: segmentation against the plain backdrop and
   the classifier's labels. The unedited source is scored against the same targets as a reference row
   (method `unedited`): it shows what "nothing changed" scores (IoU near 1, correctness near 0) and
   the segmentation's own error floor.

Outputs (each atomic): the per-edit rows (CSV), the methods x metrics table (mean ± std over edits, CSV
and Markdown), a plot of every edit's metrics per method, frame strips (source and each method's first
edit of the first clips) and the seconds each stage took (JSON).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.editing import SourcePriors, invert_frames, load_video_model, sample_edit
from vidmp3.errors import InputError
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.methods import METHODS, get_method
from vidmp3.model.presets import ModelSpec, resolve_dtype
from vidmp3.motionguide import guide_input
from vidmp3.priors import combine, compute_depth, compute_matches, matches_to_corr
from vidmp3.priors.render import align_truth
from vidmp3.strips import strip_image
from vidmp3.synthetic import RenderedClip
from vidmp3.toyworld import world
from vidmp3.toyworld.classifier import classify, load_classifier
from vidmp3.toyworld.metrics import METRICS, edit_metrics

log = logging.getLogger(__name__)

UNEDITED = "unedited"
"""The reference row: the source frames themselves, scored against each edit's target."""

MAX_EDITS = (len(world.SHAPES) - 1) * (len(world.COLOURS) - 1)
"""Targets differ from the source in shape and colour: 3 x 3 captions per clip."""

ROW_LABELS = ("clip_seed", "source", "method", "edit", "target")


@dataclass(frozen=True)
class BenchmarkConfig:
    clips: int = 10
    first_seed: int = world.HELD_OUT_SEED
    edits: int = 3
    methods: tuple[str, ...] = tuple(METHODS)
    motion: str = "large"
    finetune_steps: int = 20
    learning_rate: float = 5e-4
    guide_scale: float = 0.1
    motion_guide_hidden: int = 16
    finetune_seed: int = 0
    inversion_steps: int = 15
    editing_steps: int = 15
    guidance_scale: float = 2.0
    negative_prompt: str = ""
    segment_threshold: float = 0.2
    strip_clips: int = 2
    device: str = "cpu"
    dtype: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "methods", tuple(self.methods))
        for method in self.methods:
            get_method(method)
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise InputError(f"benchmark methods must be distinct and at least one, got {list(self.methods)}")
        if self.clips < 1:
            raise InputError(f"benchmark clips must be at least 1, got {self.clips}")
        if self.first_seed < world.HELD_OUT_SEED:
            raise InputError(
                f"benchmark first_seed {self.first_seed} is below world.HELD_OUT_SEED ({world.HELD_OUT_SEED}): "
                "those clips are pretraining data"
            )
        if not 1 <= self.edits <= MAX_EDITS:
            raise InputError(f"benchmark edits per clip must be in [1, {MAX_EDITS}], got {self.edits}")
        resolve_dtype(self.dtype, self.device)
        if not 1 <= self.strip_clips <= self.clips:
            raise InputError(f"benchmark strip_clips must be in [1, clips={self.clips}], got {self.strip_clips}")


@dataclass(frozen=True)
class ClipPlan:
    seed: int
    shape: str
    colour: str
    targets: tuple[tuple[str, str], ...]  # (shape, colour) per edit

    @property
    def caption(self) -> str:
        return world.caption(self.shape, self.colour)

    def target_caption(self, edit: int) -> str:
        return world.caption(*self.targets[edit])


def plan_clip(seed: int, edits: int) -> ClipPlan:
    """The source subject and `edits` targets of the clip `seed`, drawn from the seed alone.

    The other three shapes and colours are shuffled and paired along the diagonals of their 3 x 3
    grid, so edits 1-3 use three different shapes and colours, and all nine pairs come before any repeats."""
    if not 1 <= edits <= MAX_EDITS:
        raise InputError(f"edits per clip must be in [1, {MAX_EDITS}], got {edits}")
    rng = np.random.default_rng(seed)
    colours = tuple(world.COLOURS)
    shape = world.SHAPES[rng.integers(len(world.SHAPES))]
    colour = colours[rng.integers(len(colours))]
    other_shapes = rng.permutation([s for s in world.SHAPES if s != shape])
    other_colours = rng.permutation([c for c in colours if c != colour])
    count = len(other_shapes)
    targets = [(str(other_shapes[i % count]), str(other_colours[(i + i // count) % count])) for i in range(edits)]
    return ClipPlan(seed, shape, colour, tuple(targets))


def rendered_priors(clip: RenderedClip) -> SourcePriors:
    """corr, depth and alpha of a rendered clip, as the priors stages compute and store them for a rendered
    video whose frames are the render itself: mask from the render, `render` backends for corr and depth."""
    frames, mask = clip.frames, clip.mask
    height, width = frames.shape[1:3]
    frames_attrs = {
        "frame_indices": list(range(len(frames))),
        "source_size": [width, height],
        "size": [width, height],
        "crop": "none",
        "source": "world.render_toy_clip",
    }
    truth = align_truth(clip, frames_attrs)
    corr = matches_to_corr(compute_matches(frames, mask, "render", {}, truth=truth)).astype(np.float16)
    depth = compute_depth(frames, mask, "render", {}, truth=truth).astype(np.float16)
    _, alpha = combine(corr, depth, mask)
    return SourcePriors(corr.astype(np.float32), depth.astype(np.float32), alpha)


@dataclass
class Timer:
    """Seconds per stage, summed over every time the stage ran."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[stage].append(now - started)
        return now

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            stage: {"runs": len(values), "total_s": round(sum(values), 3), "mean_s": round(sum(values) / len(values), 3)}
            for stage, values in self.seconds.items()
        }


def _score(classifier, frames, clip, plan, edit, threshold) -> dict[str, float]:
    masks = world.segment(frames, size=frames.shape[2], threshold=threshold)
    shapes, colours, _ = classify(classifier, frames)
    target = plan.targets[edit]
    target_index = (world.SHAPES.index(target[0]), tuple(world.COLOURS).index(target[1]))
    return edit_metrics(frames, masks, clip.frames, clip.mask, shapes, colours, target_index)


def _finetune_config(config: BenchmarkConfig, method: str) -> FinetuneConfig:
    guided = get_method(method).guide_variant is not None
    return FinetuneConfig(
        method=method,
        steps=config.finetune_steps,
        learning_rate=config.learning_rate,
        guide_scale=config.guide_scale if guided else 0.0,
        seed=config.finetune_seed,
        device=config.device,
        motion_guide_hidden=config.motion_guide_hidden,
    )


def benchmark_clip(
    plan: ClipPlan, config: BenchmarkConfig, spec: ModelSpec, classifier, work: Path, timer: Timer
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Every method's edits of one clip: metric rows, and each method's first edit (plus the source) for the strips."""
    started = time.perf_counter()
    clip = world.render_toy_clip(plan.shape, plan.colour, plan.seed, size=world.IMAGE_SIZE, motion=config.motion)
    priors = rendered_priors(clip)
    started = timer.add("render and priors", started)
    frames = clip.frames
    height, width = frames.shape[1:3]
    rows = []
    for edit in range(config.edits):
        rows.append({"method": UNEDITED, "edit": edit, **_score(classifier, frames, clip, plan, edit, config.segment_threshold)})
    firsts = {"source": frames}
    started = timer.add("metrics", started)
    dtype = resolve_dtype(config.dtype, config.device)
    for method in config.methods:
        variant = get_method(method).guide_variant
        weights = work / f"{method}-{plan.seed}"
        guide = guide_input(priors.corr, priors.depth, variant) if variant else None
        finetune(frames, guide, priors.alpha if variant else None, plan.caption, spec, _finetune_config(config, method), weights)
        started = timer.add("finetune", started)
        model = load_video_model(weights, len(frames), priors, config.device, dtype)
        started = timer.add("load", started)
        _, noise = invert_frames(model, frames, plan.caption, config.inversion_steps)
        started = timer.add("inversion", started)
        for edit in range(config.edits):
            edited = sample_edit(
                model, noise, plan.target_caption(edit), config.negative_prompt, config.guidance_scale,
                config.editing_steps, height, width,
            )
            started = timer.add("sampling", started)
            rows.append({"method": method, "edit": edit, **_score(classifier, edited, clip, plan, edit, config.segment_threshold)})
            if edit == 0:
                firsts[method] = edited
            started = timer.add("metrics", started)
        del model
    for row in rows:
        row.update(clip_seed=plan.seed, source=plan.caption, target=plan.target_caption(row["edit"]))
    return rows, firsts


@dataclass(frozen=True)
class BenchmarkOutputs:
    rows: str | os.PathLike  # per-edit CSV
    table: str | os.PathLike  # methods x metrics CSV
    markdown: str | os.PathLike
    plot: str | os.PathLike  # PNG
    strips: str | os.PathLike  # PNG
    timing: str | os.PathLike  # JSON


def run_benchmark(
    config: BenchmarkConfig, spec: ModelSpec, classifier_dir: str | os.PathLike, outputs: BenchmarkOutputs
) -> pd.DataFrame:
    """Run the whole benchmark and write its outputs; return the per-edit rows."""
    classifier = load_classifier(classifier_dir)
    plans = [plan_clip(config.first_seed + index, config.edits) for index in range(config.clips)]
    timer = Timer()
    started = time.perf_counter()
    rows, strips = [], []
    with tempfile.TemporaryDirectory(prefix="toyworld-benchmark-") as work:
        for index, plan in enumerate(tqdm(plans, desc="ToyWorld benchmark clips")):
            clip_rows, firsts = benchmark_clip(plan, config, spec, classifier, Path(work), timer)
            rows += clip_rows
            if index < config.strip_clips:
                strips.append((plan, firsts))
            log.info("clip %d (%s): %.1f s so far", plan.seed, plan.caption, time.perf_counter() - started)
    method_order = [*config.methods, UNEDITED]
    table = pd.DataFrame(rows, columns=[*ROW_LABELS, *METRICS])
    table["method"] = pd.Categorical(table["method"], method_order, ordered=True)
    table = table.sort_values(["clip_seed", "method", "edit"], ignore_index=True)
    table["method"] = table["method"].astype(str)
    summary = summary_table(table, method_order)
    timing = {
        "total_s": round(time.perf_counter() - started, 3),
        "stages": timer.summary(),
        "torch_threads": torch.get_num_threads(),
        "config": asdict(config),
        "model": asdict(spec),
    }
    log.info("ToyWorld benchmark timing: %s", json.dumps(timing["stages"]))
    _write_outputs(table, summary, strips, config, timing, outputs)
    return table


def summary_table(rows: pd.DataFrame, method_order: list[str]) -> pd.DataFrame:
    """method, metric, mean, std (ddof 1), count (edits with a value) for every metric of METRICS."""
    tidy = rows.melt(id_vars=["method"], value_vars=list(METRICS), var_name="metric").dropna(subset=["value"])
    stats = tidy.groupby(["method", "metric"])["value"].agg(mean="mean", std="std", count="count").reset_index()
    grid = pd.MultiIndex.from_product([method_order, list(METRICS)], names=["method", "metric"]).to_frame(index=False)
    stats = grid.merge(stats, on=["method", "metric"], how="left")
    stats["count"] = stats["count"].fillna(0).astype(int)
    return stats


def _cell(mean: float, std: float, count: int, total: int) -> str:
    if count == 0:
        return "–"
    text = f"{mean:.3g}" + ("" if math.isnan(std) else f" ± {std:.2g}")
    return text + (f" (n={count})" if count != total else "")


def table_markdown(summary: pd.DataFrame, rows: pd.DataFrame, config: BenchmarkConfig) -> str:
    """The methods x metrics table (mean ± std over edits; n where some edits have no value) with what was run."""
    totals = rows.groupby("method").size()
    wide = summary.assign(
        cell=[_cell(r.mean, r.std, r.count, totals[r.method]) for r in summary.itertuples(index=False)]
    ).pivot(index="method", columns="metric", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(summary["method"])), columns=list(METRICS))
    wide.columns = [f"{METRICS[m].label} {METRICS[m].arrow}" for m in wide.columns]
    clips = rows["clip_seed"].nunique()
    return "\n\n".join([
        "# ToyWorld benchmark",
        f"{clips} held-out clips (seeds {config.first_seed}-{config.first_seed + clips - 1}) x {config.edits} edits "
        f"per clip; fine-tuning {config.finetune_steps} steps (lr {config.learning_rate:g}, λ {config.guide_scale:g}), "
        f"DDIM inversion {config.inversion_steps} and sampling {config.editing_steps} steps, guidance "
        f"{config.guidance_scale:g}. Mean ± std over edits; `unedited` scores the source frames against the "
        "same targets; timing.json has each stage's seconds.",
        wide.reset_index().to_markdown(index=False),
    ]) + "\n"


def metrics_figure(rows: pd.DataFrame, method_order: list[str]) -> Figure:
    """One panel per metric: every edit's value per method (dots) and the mean ± std (bar)."""
    columns = 3
    figure = Figure(figsize=(4.2 * columns, 3.2 * math.ceil(len(METRICS) / columns)))
    jitter = np.random.default_rng(0)
    for panel, (metric, spec) in enumerate(METRICS.items()):
        axes = figure.add_subplot(math.ceil(len(METRICS) / columns), columns, panel + 1)
        for position, method in enumerate(method_order):
            values = rows.loc[rows["method"] == method, metric].dropna().to_numpy(float)
            if not values.size:
                continue
            axes.scatter(position + jitter.uniform(-0.15, 0.15, values.size), values, s=8, alpha=0.4, color="tab:blue")
            std = values.std(ddof=1) if values.size > 1 else 0.0
            axes.errorbar(position, values.mean(), yerr=std, fmt="o", color="black", capsize=3)
        axes.set_xticks(range(len(method_order)), method_order, rotation=40, ha="right", fontsize=8)
        axes.set_title(f"{spec.label} {spec.arrow}", fontsize=9)
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def strips_image(strips: list[tuple[ClipPlan, dict[str, np.ndarray]]]) -> np.ndarray:
    """The source and each method's first edit of each listed clip, one strip per clip, stacked."""
    images = []
    for plan, firsts in strips:
        rows = [(f"source: {plan.caption}", firsts["source"])]
        rows += [(method, frames) for method, frames in firsts.items() if method != "source"]
        images.append(strip_image(rows, title=f"clip {plan.seed}: {plan.caption} -> {plan.target_caption(0)}"))
    width = max(image.shape[1] for image in images)
    padded = [np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)), constant_values=255) for image in images]
    return np.concatenate(padded, axis=0)


def _write_outputs(rows, summary, strips, config, timing, outputs: BenchmarkOutputs) -> None:
    method_order = list(dict.fromkeys(summary["method"]))
    with atomic_path(outputs.rows) as tmp:
        rows.to_csv(tmp, index=False)
    with atomic_path(outputs.table) as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_path(outputs.markdown) as tmp:
        tmp.write_text(table_markdown(summary, rows, config))
    with atomic_path(outputs.plot) as tmp:
        metrics_figure(rows, method_order).savefig(tmp, dpi=100, format="png")
    with atomic_path(outputs.strips) as tmp:
        Image.fromarray(strips_image(strips)).save(tmp, format="PNG")
    with atomic_path(outputs.timing) as tmp:
        tmp.write_text(json.dumps(timing, indent=2))
