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
   source once, and sample every edit from the same inverted latents (`vidmp3.editing`). Clips of
   `frames` frames longer than `window` go through the same code window by window
   (`vidmp3.toyworld.long_clips`).
4. `vidmp3.toyworld.metrics.edit_metrics` on each edit: segmentation against the plain backdrop and
   the classifier's labels, against the source's truth and the ideal edit's (the target subject rendered
   on the source's trajectory). Chance levels (`CHANCE_LEVELS`), clips no model made, are scored against
   the same source and targets as reference rows: the source itself (`unedited`: what "nothing
   changed" scores, and the segmentation's own error floor), a static subject, the source shifted
   2 px, played backwards, another clip of the same subject on another trajectory, and the ideal edit
   itself (the best any method can score). A method preserves the source's motion only where its
   trajectory error is below the static row's.

Statistics are over clips (edits of one clip share its source, so they are not independent): the mean
over edits with a 95% bootstrap interval from resampling clips, and for every MotionGuide method the
paired difference to `no-motionguide` (the same clips, edits and fine-tuning seed; only the MotionGuide
differs), per metric, with its interval.

Outputs (each atomic): the per-edit rows (CSV), the methods x metrics table (CSV and Markdown), the
paired differences (CSV, also in the Markdown), a plot of every edit's metrics per method, frame strips
(source and each method's first edit of the first clips) and the seconds each stage took (JSON).
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
from vidmp3.edit_schedule import check_edit_schedule
from vidmp3.errors import InputError
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.methods import METHODS, get_method
from vidmp3.model.presets import ModelSpec, resolve_dtype
from vidmp3.motionguide import guide_input
from vidmp3.priors import combine, compute_depth, compute_matches, matches_to_corr
from vidmp3.priors.render import align_truth
from vidmp3.strips import strip_image
from vidmp3.scene import RenderedClip
from vidmp3.toyworld import world
from vidmp3.toyworld.classifier import classify, load_classifier
from vidmp3.toyworld.metrics import METRICS, edit_metrics
from vidmp3.windows import Window

log = logging.getLogger(__name__)

UNEDITED = "unedited"
"""The reference row: the source frames themselves, scored against each edit's target."""

OTHER_CLIP_OFFSET = 500_000
"""The `other-clip` chance level renders the source's subject on the trajectory of seed + this offset."""

SHIFT_PIXELS = 2


def _static(clip: RenderedClip, other: RenderedClip, ideal: RenderedClip) -> np.ndarray:
    return np.repeat(clip.frames[len(clip.frames) // 2][None], len(clip.frames), axis=0)


def _shifted(clip: RenderedClip, other: RenderedClip, ideal: RenderedClip) -> np.ndarray:
    """The subject moved SHIFT_PIXELS to the right, composited on the empty scene (no wrap-around)."""
    backdrop = world.background(clip.frames.shape[2])
    mask = np.zeros_like(clip.mask)
    mask[:, :, SHIFT_PIXELS:] = clip.mask[:, :, :-SHIFT_PIXELS]
    moved = np.zeros_like(clip.frames)
    moved[:, :, SHIFT_PIXELS:] = clip.frames[:, :, :-SHIFT_PIXELS]
    return np.where(mask[..., None], moved, backdrop[None])


def _backwards(clip: RenderedClip, other: RenderedClip, ideal: RenderedClip) -> np.ndarray:
    return clip.frames[::-1].copy()


def _other_clip(clip: RenderedClip, other: RenderedClip, ideal: RenderedClip) -> np.ndarray:
    return other.frames


def _unedited(clip: RenderedClip, other: RenderedClip, ideal: RenderedClip) -> np.ndarray:
    return clip.frames


def _ideal(clip: RenderedClip, other: RenderedClip, ideal: RenderedClip) -> np.ndarray:
    return ideal.frames


IDEAL_EDIT = "ideal-edit"
"""The reference row of a perfect edit: the target subject rendered on the source's trajectory."""

CHANCE_LEVELS = {
    "static": (_static, "the source's middle frame repeated: a subject that does not move"),
    "shifted-2px": (_shifted, f"the source moved {SHIFT_PIXELS} px to the right"),
    "backwards": (_backwards, "the source played backwards"),
    "other-clip": (_other_clip, "the source's subject on another clip's trajectory"),
    UNEDITED: (_unedited, "the source itself"),
    IDEAL_EDIT: (_ideal, "the target subject rendered on the source's trajectory: a perfect edit"),
}
"""Reference rows no model made, scored like the edits: name -> (frames from (source, other clip, ideal edit), what it is)."""

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
    frames: int = world.CLIP_FRAMES  # per clip; a longer clip than `window` is edited window by window (long_clips)
    window: Window = Window(world.CLIP_FRAMES, 4)  # the motion module's (trained on 8-frame clips), as config `window`
    finetune_steps: int = 100  # the paper's settings: 100 fine-tuning steps, DDIM 50 + 50
    learning_rate: float = 5e-4
    guide_strength: float = 0.1
    motion_guide_hidden: int = 16
    finetune_seed: int = 0
    inversion_steps: int = 50
    editing_steps: int = 50
    guidance_scale: float = 2.5  # chosen on validation clips 2 000 000-2 000 005 (README)
    unguided_steps: int = 0  # first (noisiest) sampling steps without classifier-free guidance
    strength: float = 1.0  # share of the DDIM schedule inverted and sampled back (1: the paper)
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
        if self.frames < 2:
            raise InputError(f"benchmark frames per clip must be at least 2, got {self.frames}")
        if self.first_seed < world.HELD_OUT_SEED:
            raise InputError(
                f"benchmark first_seed {self.first_seed} is below world.HELD_OUT_SEED ({world.HELD_OUT_SEED}): "
                "those clips are pretraining data"
            )
        if not 1 <= self.edits <= MAX_EDITS:
            raise InputError(f"benchmark edits per clip must be in [1, {MAX_EDITS}], got {self.edits}")
        resolve_dtype(self.dtype, self.device)
        check_edit_schedule(self.inversion_steps, self.editing_steps, self.strength, self.unguided_steps)
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


def ideal_edit(plan: ClipPlan, edit: int, frames: int, motion: str) -> RenderedClip:
    """The target subject of `edit` rendered on the source clip's trajectory (same seed, its own resting height)."""
    return world.render_toy_clip(*plan.targets[edit], plan.seed, frames=frames, size=world.IMAGE_SIZE, motion=motion)


def _score(classifier, frames, clip, ideal, plan, edit, threshold) -> dict[str, float]:
    masks = world.segment(frames, size=frames.shape[2], threshold=threshold)
    shapes, colours, _ = classify(classifier, frames)
    target = plan.targets[edit]
    target_index = (world.SHAPES.index(target[0]), tuple(world.COLOURS).index(target[1]))
    return edit_metrics(frames, masks, clip.frames, clip.mask, ideal.mask, shapes, colours, target_index)


def _finetune_config(config: BenchmarkConfig, method: str) -> FinetuneConfig:
    guided = get_method(method).guide_variant is not None
    return FinetuneConfig(
        method=method,
        steps=config.finetune_steps,
        learning_rate=config.learning_rate,
        guide_strength=config.guide_strength if guided else 0.0,
        seed=config.finetune_seed,
        device=config.device,
        motion_guide_hidden=config.motion_guide_hidden,
        window_frames=config.window.frames,
    )


def benchmark_clip(
    plan: ClipPlan, config: BenchmarkConfig, spec: ModelSpec, classifier, work: Path, timer: Timer
) -> tuple[list[dict], dict[tuple[str, int], np.ndarray]]:
    """Every method's edits of one clip: metric rows, and the frames each row scored by (method or chance
    level, edit)."""
    started = time.perf_counter()
    clip = world.render_toy_clip(
        plan.shape, plan.colour, plan.seed, frames=config.frames, size=world.IMAGE_SIZE, motion=config.motion
    )
    priors = rendered_priors(clip)
    started = timer.add("render and priors", started)
    frames = clip.frames
    height, width = frames.shape[1:3]
    other = world.render_toy_clip(
        plan.shape,
        plan.colour,
        plan.seed + OTHER_CLIP_OFFSET,
        frames=config.frames,
        size=world.IMAGE_SIZE,
        motion=config.motion,
    )
    ideals = [ideal_edit(plan, edit, config.frames, config.motion) for edit in range(config.edits)]
    rows, scored = [], {}
    for name, (make, _) in CHANCE_LEVELS.items():
        for edit, ideal in enumerate(ideals):
            reference = make(clip, other, ideal)
            rows.append(
                {"method": name, "edit": edit, **_score(classifier, reference, clip, ideal, plan, edit, config.segment_threshold)}
            )
            scored[name, edit] = reference
    started = timer.add("metrics", started)
    dtype = resolve_dtype(config.dtype, config.device)
    for method in config.methods:
        variant = get_method(method).guide_variant
        weights = work / f"{method}-{plan.seed}"
        guide = guide_input(priors.corr, priors.depth, variant) if variant else None
        finetune(frames, guide, priors.alpha if variant else None, plan.caption, spec, _finetune_config(config, method), weights)
        started = timer.add("finetune", started)
        model = load_video_model(weights, len(frames), priors, config.device, dtype, window=config.window)
        started = timer.add("load", started)
        _, noise = invert_frames(model, frames, plan.caption, config.inversion_steps, config.strength)
        started = timer.add("inversion", started)
        for edit in range(config.edits):
            edited = sample_edit(
                model,
                noise,
                plan.target_caption(edit),
                config.negative_prompt,
                config.guidance_scale,
                config.editing_steps,
                height,
                width,
                config.unguided_steps,
                config.strength,
            )
            started = timer.add("sampling", started)
            score = _score(classifier, edited, clip, ideals[edit], plan, edit, config.segment_threshold)
            rows.append({"method": method, "edit": edit, **score})
            scored[method, edit] = edited
            started = timer.add("metrics", started)
        del model
    for row in rows:
        row.update(clip_seed=plan.seed, source=plan.caption, target=plan.target_caption(row["edit"]))
    return rows, scored


@dataclass(frozen=True)
class BenchmarkOutputs:
    rows: str | os.PathLike  # per-edit CSV
    table: str | os.PathLike  # methods x metrics CSV
    differences: str | os.PathLike  # paired differences to no-motionguide, CSV
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
            clip_rows, scored = benchmark_clip(plan, config, spec, classifier, Path(work), timer)
            rows += clip_rows
            if index < config.strip_clips:
                firsts = {"source": scored[UNEDITED, 0]} | {method: scored[method, 0] for method in config.methods}
                strips.append((plan, firsts))
            log.info("clip %d (%s): %.1f s so far", plan.seed, plan.caption, time.perf_counter() - started)
    method_order = [*config.methods, *CHANCE_LEVELS]
    table = pd.DataFrame(rows, columns=[*ROW_LABELS, *METRICS])
    table["method"] = pd.Categorical(table["method"], method_order, ordered=True)
    table = table.sort_values(["clip_seed", "method", "edit"], ignore_index=True)
    table["method"] = table["method"].astype(str)
    summary = summary_table(table, method_order)
    differences = paired_differences(table, config.methods)
    timing = {
        "total_s": round(time.perf_counter() - started, 3),
        "stages": timer.summary(),
        "torch_threads": torch.get_num_threads(),
        "config": asdict(config),
        "model": asdict(spec),
    }
    log.info("ToyWorld benchmark timing: %s", json.dumps(timing["stages"]))
    _write_outputs(table, summary, differences, strips, config, timing, outputs)
    return table


BOOTSTRAP_SAMPLES = 2000
BASELINE = "no-motionguide"
"""The paired differences compare every MotionGuide method with this one."""


def bootstrap_interval(values: pd.Series, clips: pd.Series, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of `values` when whole clips are resampled with replacement
    (NaN values are left out; (nan, nan) with fewer than two clips)."""
    frame = pd.DataFrame({"value": values.to_numpy(float), "clip": clips.to_numpy()}).dropna()
    groups = frame.groupby("clip")["value"].agg(["sum", "count"])
    if len(groups) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(groups), (BOOTSTRAP_SAMPLES, len(groups)))
    means = groups["sum"].to_numpy()[picks].sum(axis=1) / groups["count"].to_numpy()[picks].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def summary_table(rows: pd.DataFrame, method_order: list[str], metrics: tuple[str, ...] = tuple(METRICS)) -> pd.DataFrame:
    """method, metric, mean, std (ddof 1), count (edits with a value), ci_low, ci_high (95% bootstrap
    over clips) for every metric of `metrics` (columns of `rows`)."""
    records = []
    for method in method_order:
        mine = rows[rows["method"] == method]
        for metric in metrics:
            values = mine[metric].dropna()
            low, high = bootstrap_interval(mine[metric], mine["clip_seed"])
            records.append(
                {
                    "method": method,
                    "metric": metric,
                    "mean": values.mean() if len(values) else float("nan"),
                    "std": values.std(ddof=1) if len(values) > 1 else float("nan"),
                    "count": int(len(values)),
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pd.DataFrame(records)


def paired_differences(rows: pd.DataFrame, methods: tuple[str, ...], metrics: tuple[str, ...] = tuple(METRICS)) -> pd.DataFrame:
    """method, metric, mean, ci_low, ci_high, count: edit by edit, method minus BASELINE, for every
    MotionGuide method benchmarked beside the baseline (empty without the baseline), per metric of `metrics`."""
    columns = ["method", "metric", "mean", "ci_low", "ci_high", "count"]
    if BASELINE not in methods:
        return pd.DataFrame(columns=columns)
    keys = ["clip_seed", "edit"]
    baseline = rows[rows["method"] == BASELINE].set_index(keys)
    records = []
    for method in methods:
        if get_method(method).guide_variant is None:
            continue
        difference = rows[rows["method"] == method].set_index(keys)[list(metrics)] - baseline[list(metrics)]
        difference = difference.reset_index()
        for metric in metrics:
            values = difference[metric].dropna()
            low, high = bootstrap_interval(difference[metric], difference["clip_seed"])
            records.append(
                {
                    "method": method,
                    "metric": metric,
                    "mean": values.mean() if len(values) else float("nan"),
                    "ci_low": low,
                    "ci_high": high,
                    "count": int(len(values)),
                }
            )
    return pd.DataFrame(records, columns=columns)


def _cell(mean: float, low: float, high: float, count: int, total: int) -> str:
    if count == 0:
        return "–"
    text = f"{mean:.3g}" + ("" if math.isnan(low) else f" [{low:.3g}, {high:.3g}]")
    return text + (f" (n={count})" if count != total else "")


def _wide(stats: pd.DataFrame, totals: pd.Series) -> pd.DataFrame:
    wide = stats.assign(
        cell=[_cell(r.mean, r.ci_low, r.ci_high, r.count, totals[r.method]) for r in stats.itertuples(index=False)]
    ).pivot(index="method", columns="metric", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(stats["method"])), columns=list(METRICS))
    wide.columns = [f"{METRICS[m].label} {METRICS[m].arrow}" for m in wide.columns]
    return wide.reset_index()


def table_markdown(summary: pd.DataFrame, differences: pd.DataFrame, rows: pd.DataFrame, config: BenchmarkConfig) -> str:
    """The methods x metrics table and the paired differences (mean [95% bootstrap interval over clips];
    n where some edits have no value), with what was run and what the chance rows are."""
    totals = rows.groupby("method").size()
    clips = rows["clip_seed"].nunique()
    chance = "; ".join(f"`{name}`: {description}" for name, (_, description) in CHANCE_LEVELS.items())
    parts = [
        "# ToyWorld benchmark",
        f"{clips} held-out clips (seeds {config.first_seed}-{config.first_seed + clips - 1}) x {config.edits} edits "
        f"per clip; fine-tuning {config.finetune_steps} steps (lr {config.learning_rate:g}, λ {config.guide_strength:g}), "
        f"DDIM inversion {config.inversion_steps} and sampling {config.editing_steps} steps, guidance "
        f"{config.guidance_scale:g}. Mean over edits [95% bootstrap interval, clips resampled]. Chance levels, "
        f"scored against the same source and targets: {chance}. A method keeps the source's motion only "
        "where its centroid error is below the `static` row's. timing.json has each stage's seconds.",
        _wide(summary, totals).to_markdown(index=False),
    ]
    if len(differences):
        parts += [
            f"## Paired differences: method − {BASELINE}",
            "Edit by edit on the same clips and targets; mean [95% bootstrap interval over clips]. An "
            "interval that contains 0 shows no measurable effect of the MotionGuide.",
            _wide(differences, differences.groupby("method")["count"].max()).to_markdown(index=False),
        ]
    return "\n\n".join(parts) + "\n"


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
            colour = "tab:grey" if method in CHANCE_LEVELS else "black"
            axes.errorbar(position, values.mean(), yerr=std, fmt="o", color=colour, capsize=3)
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


def _write_outputs(rows, summary, differences, strips, config, timing, outputs: BenchmarkOutputs) -> None:
    method_order = list(dict.fromkeys(summary["method"]))
    with atomic_path(outputs.rows) as tmp:
        rows.to_csv(tmp, index=False)
    with atomic_path(outputs.table) as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_path(outputs.differences) as tmp:
        differences.to_csv(tmp, index=False)
    with atomic_path(outputs.markdown) as tmp:
        tmp.write_text(table_markdown(summary, differences, rows, config))
    with atomic_path(outputs.plot) as tmp:
        metrics_figure(rows, method_order).savefig(tmp, dpi=100, format="png")
    with atomic_path(outputs.strips) as tmp:
        Image.fromarray(strips_image(strips)).save(tmp, format="PNG")
    with atomic_path(outputs.timing) as tmp:
        tmp.write_text(json.dumps(timing, indent=2))
