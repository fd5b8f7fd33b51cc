"""The ToyWorld long-clip check: clips of several motion-module windows, edited window by window.

Each clip (test seeds from `world.HELD_OUT_SEED`) is rendered at `frames` frames: the same kind of path
as an 8-frame clip, sampled more densely (`make_trajectory` counts cycles per clip). It runs through the
ToyWorld benchmark's own per-clip code (`benchmark.benchmark_clip`: priors from the render, fine-tuning
on a random window per step, inversion and sampling blended over the overlapping windows of
`config.window`), so the trajectory error (centroid error) is over the whole clip. Every row also gets
the seam score (`vidmp3.windows.seam_score`: frame-to-frame change across window borders over the
change inside windows; seams stand out above SEAM_LIMIT) and the phase seam score
(`vidmp3.windows.phase_seam_score`: the same ratio at the worst offset within the windows' period,
wherever the blending hands over). The chance levels are the benchmark's, scored the same way; the
seam scores' chance level is the rendered source's own (`unedited`).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path

import pandas as pd

from vidmp3.errors import InputError
from vidmp3.model.presets import ModelSpec
from vidmp3.toyworld.benchmark import (
    BASELINE,
    CHANCE_LEVELS,
    BenchmarkConfig,
    Timer,
    benchmark_clip,
    paired_differences,
    plan_clip,
    summary_table,
)
from vidmp3.toyworld.metrics import METRICS
from vidmp3.windows import phase_seam_score, seam_score

log = logging.getLogger(__name__)

SEAM_LIMIT = 1.5
"""Issue 17: change across window borders within 1.5x of the change inside windows."""

TABLE_METRICS = ("centroid_error", "shape_iou", "shape_correct", "change_ratio", "seam_score", "phase_seam_score")
LABELS = {name: f"{METRICS[name].label} {METRICS[name].arrow}" for name in TABLE_METRICS[:-2]}
LABELS["seam_score"] = f"seam score (border / inside change, ≤ {SEAM_LIMIT:g})"
LABELS["phase_seam_score"] = f"phase seam score (worst offset / rest, ≤ {SEAM_LIMIT:g})"


def run_long_clips(config: BenchmarkConfig, spec: ModelSpec, classifier) -> tuple[pd.DataFrame, Timer]:
    """Per-edit rows (the benchmark's columns, `seam_score` and `phase_seam_score`) of every method and chance level, and
    each stage's seconds."""
    if config.frames <= config.window.frames:
        raise InputError(
            f"long clips need more frames than the {config.window.frames}-frame window, got {config.frames}; fix: raise frames"
        )
    timer, rows = Timer(), []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="toyworld-long-clips-") as work:
        for index in range(config.clips):
            plan = plan_clip(config.first_seed + index, config.edits)
            clip_rows, scored = benchmark_clip(plan, config, spec, classifier, Path(work), timer)
            for row in clip_rows:
                row["seam_score"] = seam_score(scored[row["method"], row["edit"]], config.window)
                row["phase_seam_score"] = phase_seam_score(scored[row["method"], row["edit"]], config.window)
            rows += clip_rows
            log.info("long clip %d (%s): %.0f s so far", plan.seed, plan.caption, time.perf_counter() - started)
    return pd.DataFrame(rows), timer


def _cell(mean: float, low: float, high: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.3f}" + ("" if math.isnan(low) else f" [{low:.3f}, {high:.3f}]")


def long_clips_markdown(rows: pd.DataFrame, config: BenchmarkConfig) -> str:
    """Methods and chance levels x TABLE_METRICS (mean [95% bootstrap interval over clips]), then the
    paired differences to no-motionguide, with what was run."""
    order = [*config.methods, *CHANCE_LEVELS]
    summary = summary_table(rows, order, TABLE_METRICS)
    differences = paired_differences(rows, config.methods, TABLE_METRICS)
    clips = rows["clip_seed"].nunique()
    window = config.window
    moved = " (the grid moved one frame per DDIM step)" if window.shift else ""
    parts = [
        f"ToyWorld long clips: {clips} clips (seeds {config.first_seed}–{config.first_seed + clips - 1}) of "
        f"{config.frames} frames, {len(window.starts(config.frames))} windows of {window.frames} frames every "
        f"{window.stride}{moved}; {config.edits} edit(s) per clip; fine-tuning {config.finetune_steps} steps, DDIM "
        f"{config.inversion_steps} + {config.editing_steps}, guidance {config.guidance_scale:g}. Mean over edits "
        "[95% bootstrap interval, clips resampled]; chance levels in italics.",
        "",
        "| method | " + " | ".join(LABELS[m] for m in TABLE_METRICS) + " |",
        "|---" * (len(TABLE_METRICS) + 1) + "|",
    ]
    for method in order:
        mine = summary[summary["method"] == method].set_index("metric")
        cells = [_cell(mine.at[m, "mean"], mine.at[m, "ci_low"], mine.at[m, "ci_high"]) for m in TABLE_METRICS]
        name = f"*{method}*" if method in CHANCE_LEVELS else method
        parts.append(f"| {name} | " + " | ".join(cells) + " |")
    if len(differences):
        parts += ["", f"Paired differences, method − {BASELINE} (same clips, targets and fine-tuning seed):", ""]
        parts += ["| method | " + " | ".join(LABELS[m] for m in TABLE_METRICS) + " |", "|---" * (len(TABLE_METRICS) + 1) + "|"]
        for method in dict.fromkeys(differences["method"]):
            mine = differences[differences["method"] == method].set_index("metric")
            cells = [_cell(mine.at[m, "mean"], mine.at[m, "ci_low"], mine.at[m, "ci_high"]) for m in TABLE_METRICS]
            parts.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(parts) + "\n"
