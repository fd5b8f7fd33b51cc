"""Evaluation tables from the per-edit records and Snakemake's benchmark files (never typed in).

- summary: method x category x metric -> mean, std (sample, ddof 1), count over edits;
- ablation: the VidMP3 variants (method x metric, over all edits), as the paper's Fig. 6 compares;
- time cost: stage x seconds (mean and std per run, total, per video, per edit) and peak memory,
  as the paper's time-cost analysis. A stage is a benchmark file's folder below the benchmarks
  root (`results/benchmarks/{stage...}/{job}.tsv`), so put the method in the folder of per-method
  stages (e.g. `edit/vidmp3/`); per video and per edit divide a stage's total seconds by the
  number of videos and of edits.

A metric that an edit lacks (null in its record) gives no row: counts show what is missing, and the
Markdown page lists what was not computed and why (the records' `not_available`), so that an edit
never checked against its prompt (no CLIP model) cannot pass for a good one on motion alone.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.metrics import METHODS, METRICS

LABELS = ("video", "concept", "method", "category", "kind")
ABLATIONS = (
    "vidmp3",
    "vidmp3-lr",
    "vidmp3-spatial",
    "vidmp3-spatial-coarse",
    "vidmp3-spatial-tav",
    "no-motionguide",
    "corr-only",
    "depth-only",
    "concat",
)
BENCHMARK_COLUMNS = ("s", "max_rss")


def read_edit_metrics(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Tidy rows (video, concept, method, category, kind, metric, value), one per available metric."""
    rows, seen = [], {}
    for path in paths:
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"{path}: not a readable metrics record ({error})") from None
        missing = [key for key in (*LABELS, "metrics") if key not in record]
        if missing:
            raise InputError(f"{path}: metrics record lacks {', '.join(missing)}")
        if record["method"] not in METHODS:
            raise InputError(f"{path}: method {record['method']!r} is not one of {', '.join(METHODS)}")
        unknown = sorted(set(record["metrics"]) - set(METRICS))
        if unknown:
            raise InputError(f"{path}: unknown metrics {', '.join(unknown)}")
        edit = (record["video"], record["concept"], record["method"])
        if edit in seen:
            raise InputError(f"{path} and {seen[edit]} are two records of the edit {'/'.join(edit)}")
        seen[edit] = path
        for metric, value in record["metrics"].items():
            if value is not None:
                rows.append({**{key: record[key] for key in LABELS}, "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=[*LABELS, "metric", "value"])


def read_not_computed(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """method, metric, reason, edits (lacking it), of (the method's edits): the records' `not_available`."""
    rows, totals = [], {}
    for path in paths:
        record = json.loads(Path(path).read_text())
        totals[record["method"]] = totals.get(record["method"], 0) + 1
        rows += [
            {"method": record["method"], "metric": metric, "reason": reason}
            for metric, reason in record.get("not_available", {}).items()
        ]
    frame = pd.DataFrame(rows, columns=["method", "metric", "reason"])
    table = frame.groupby(["method", "metric", "reason"], sort=False).size().reset_index(name="edits")
    return _ordered(table.assign(of=table["method"].map(totals)))


def _order_key(column: pd.Series) -> pd.Series:
    if column.name == "method":
        return column.map(METHODS.index)
    if column.name == "metric":
        return column.map(list(METRICS).index)
    return column


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Methods and metrics in their declared order, categories alphabetical."""
    by = [column for column in ("method", "category", "metric") if column in frame]
    return frame.sort_values(by, key=_order_key, ignore_index=True)


def _statistics(tidy: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    grouped = tidy.groupby(by, sort=False)["value"]
    table = grouped.agg(mean="mean", std="std", count="count").reset_index()
    return _ordered(table)


def summary_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """method, category, metric, mean, std, count."""
    return _statistics(tidy, ["method", "category", "metric"])


def ablation_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """method, metric, mean, std, count over all edits, for the VidMP3 variants that have records."""
    return _statistics(tidy[tidy["method"].isin(ABLATIONS)], ["method", "metric"])


def read_benchmarks(paths: Iterable[str | os.PathLike], root: str | os.PathLike) -> pd.DataFrame:
    """stage, job, s, max_rss (MB) per Snakemake benchmark file (the mean of its repeats)."""
    root = Path(root)
    rows = []
    for path in map(Path, paths):
        try:
            stage = path.parent.relative_to(root).as_posix()
        except ValueError:
            raise InputError(f"{path}: benchmark file is not under {root}") from None
        if stage == ".":
            raise InputError(f"{path}: benchmark file must be in a stage folder below {root}")
        try:
            table = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise InputError(f"{path}: not a readable benchmark file ({error})") from None
        missing = [column for column in BENCHMARK_COLUMNS if column not in table]
        if missing or table.empty:
            raise InputError(f"{path}: benchmark file lacks {', '.join(missing) or 'rows'}")
        rows.append({"stage": stage, "job": path.stem, **table[list(BENCHMARK_COLUMNS)].mean().to_dict()})
    return pd.DataFrame(rows, columns=["stage", "job", *BENCHMARK_COLUMNS])


def time_cost_table(benchmarks: pd.DataFrame, videos: int, edits: int) -> pd.DataFrame:
    """stage, runs, seconds_mean, seconds_std, seconds_total, seconds_per_video, seconds_per_edit, max_rss_mb."""
    if videos < 1 or edits < 1:
        raise InputError(f"time costs need at least one video and one edit, got {videos} and {edits}")
    grouped = benchmarks.groupby("stage", sort=True)
    table = grouped["s"].agg(runs="count", seconds_mean="mean", seconds_std="std", seconds_total="sum").reset_index()
    table["seconds_per_video"] = table["seconds_total"] / videos
    table["seconds_per_edit"] = table["seconds_total"] / edits
    table["max_rss_mb"] = grouped["max_rss"].max().to_numpy()
    return table


def _cell(mean: float, std: float, count: int) -> str:
    spread = "" if math.isnan(std) else f" ± {std:.3g}"
    return f"{mean:.4g}{spread} (n={count})"


def _metric_header(metric: str) -> str:
    return f"{METRICS[metric].label} {'↑' if METRICS[metric].higher_is_better else '↓'}"


def _pivot_markdown(table: pd.DataFrame, rows: list[str]) -> str:
    """Rows in the table's order, one column per metric in METRICS order; `–` where a row lacks it."""
    if table.empty:
        return "_No edit has a value for these metrics yet._"
    cells = table.assign(cell=[_cell(*values) for values in table[["mean", "std", "count"]].itertuples(index=False)])
    wide = cells.pivot(index=rows, columns="metric", values="cell")
    order = cells[rows].drop_duplicates()
    wide = wide.reindex(pd.MultiIndex.from_frame(order) if len(rows) > 1 else pd.Index(order[rows[0]]))
    wide = wide[[metric for metric in METRICS if metric in wide.columns]]
    wide.columns = [_metric_header(metric) for metric in wide.columns]
    return wide.fillna("–").reset_index().to_markdown(index=False)


CLIP_METRICS = ("clip_text_alignment", "clip_temporal_consistency")
CLIP_MISSING = (
    "**No edit was checked against its prompt**: the CLIP metrics need `evaluation: clip_model` (a local "
    'CLIP folder or a cached hub id; README, "Text metrics offline"). Motion and warp scores alone do not '
    "show that an edit shows its prompt."
)


def _not_computed_markdown(not_computed: pd.DataFrame) -> str:
    if not_computed.empty:
        return "Every metric was computed for every edit."
    rows = [
        {
            "method": row.method,
            "metric": METRICS[row.metric].label,
            "not computed for": f"{row.edits} of {row.of} edits",
            "why": row.reason,
        }
        for row in not_computed.itertuples()
    ]
    text = pd.DataFrame(rows).to_markdown(index=False)
    if not_computed["metric"].isin(CLIP_METRICS).any():
        text = CLIP_MISSING + "\n\n" + text
    return text


def tables_markdown(summary: pd.DataFrame, ablation: pd.DataFrame, time_cost: pd.DataFrame, not_computed: pd.DataFrame) -> str:
    """The three tables and what was not computed, as one Markdown page (cells: mean ± std (n=count))."""
    rounded = time_cost.round(2).astype(object).where(time_cost.notna(), "–")
    costs = rounded.to_markdown(index=False) if not time_cost.empty else "_No benchmark files._"
    return (
        "\n\n".join(
            [
                "# Evaluation",
                "Every number is computed from the per-edit metric records and Snakemake benchmark files.",
                "## Not computed\n\n" + _not_computed_markdown(not_computed),
                "## Methods by subject category\n\n" + _pivot_markdown(summary, ["method", "category"]),
                "## Ablation (VidMP3 variants, all edits)\n\n" + _pivot_markdown(ablation, ["method"]),
                "## Time cost (seconds; per video and per edit = stage total / number of videos or edits)\n\n" + costs,
            ]
        )
        + "\n"
    )


def write_tables(
    edit_metrics: Sequence[str | os.PathLike],
    benchmarks: Sequence[str | os.PathLike],
    benchmarks_root: str | os.PathLike,
    videos: int,
    edits: int,
    summary_csv: str | os.PathLike,
    ablation_csv: str | os.PathLike,
    time_cost_csv: str | os.PathLike,
    markdown: str | os.PathLike,
) -> None:
    """Read the per-edit records and benchmark files; write the three CSV tables and their Markdown."""
    tidy = read_edit_metrics(edit_metrics)
    summary, ablation = summary_table(tidy), ablation_table(tidy)
    time_cost = time_cost_table(read_benchmarks(benchmarks, benchmarks_root), videos, edits)
    for table, out in ((summary, summary_csv), (ablation, ablation_csv), (time_cost, time_cost_csv)):
        with atomic_path(out) as tmp:
            table.to_csv(tmp, index=False)
    with atomic_path(markdown) as tmp:
        tmp.write_text(tables_markdown(summary, ablation, time_cost, read_not_computed(edit_metrics)))
