"""A job's own benchmark file, for the stages cached between workflows.

Snakemake refuses `benchmark:` on a rule that may be cached between workflows (a result taken
from the cache has no run to measure), so the cached stages (priors_mask, priors_corr,
priors_depth, finetune) measure themselves and write the file as one of their outputs,
in the place and the format of Snakemake's benchmark files (`results/benchmarks/<stage>/...tsv`,
columns `s`, `h:m:s`, `max_rss` in MB, `cpu_time`). The time-cost table reads both kinds alike.
A result taken from the cache brings the file of the run that computed it: the table then
shows what the stage cost, not the seconds the cache lookup took.

Wall time counts from the start of the job's Python process (its imports included, as
Snakemake's benchmark does) where /proc tells it, else from entering `record_time`.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidmp3.atomic import atomic_path

COLUMNS = ("s", "h:m:s", "max_rss", "cpu_time")


def process_age() -> float | None:
    """Seconds since this process started, from /proc (None where that is not available)."""
    try:
        # Field 22 of /proc/self/stat (starttime, in clock ticks after boot); the fields after the
        # command name, which may hold spaces, start at field 3.
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _hms(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def benchmark_row(seconds: float) -> dict[str, float | str]:
    """s, h:m:s, max_rss (MB, the largest of this process and its children) and cpu_time (s, both)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "s": round(seconds, 4),
        "h:m:s": _hms(seconds),
        "max_rss": round(max(own.ru_maxrss, children.ru_maxrss) / 1024, 2),  # Linux: KiB
        "cpu_time": round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 2),
    }


def write_benchmark(path: str | os.PathLike, row: dict[str, float | str]) -> None:
    """One header line and one row, tab-separated, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("\t".join(COLUMNS) + "\n" + "\t".join(str(row[column]) for column in COLUMNS) + "\n")


@contextmanager
def record_time(path: str | os.PathLike) -> Iterator[None]:
    """Write `path` as a Snakemake benchmark file when the block succeeds (nothing when it fails)."""
    entered = time.monotonic()
    age = process_age()
    yield
    seconds = time.monotonic() - entered + (age if age is not None else 0.0)
    write_benchmark(path, benchmark_row(seconds))
