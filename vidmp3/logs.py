"""Logging for workflow jobs: everything a job says goes to its Snakemake `log:` file.

A failing job's own error (`InputError`, `OutputError`) reaches the terminal once, as one short message naming
the job; its traceback stays in the log. Any other exception keeps its traceback on the terminal too.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidmp3.errors import InputError, OutputError

LIBRARY_LOGGERS = ("diffusers", "transformers", "huggingface_hub")
"""Libraries whose loggers print straight to the terminal (own handler, no propagation): routed into the log."""

HARMLESS = (
    # diffusers 0.42 ModelMixin.to(dtype) on a model with no float32-only module: the list it names is empty.
    re.compile(r"^There are modules in \w+ that should be kept in float32: \[\]\."),
)
"""Library messages that say nothing about this run's results; dropped."""


class _DropHarmless(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern.search(message) for pattern in HARMLESS)


def job_name(log_path: str | os.PathLike) -> str:
    """'priors_corr folder' from `results/logs/priors_corr/folder.log` (logs are `logs/<rule>/<wildcards>.log`)."""
    parts = Path(log_path).with_suffix("").parts
    if "logs" not in parts[:-1]:
        return str(log_path)
    start = len(parts) - 1 - parts[-2::-1].index("logs")
    rule, *wildcards = parts[start:]
    return f"{rule} {'/'.join(wildcards)}" if wildcards else rule


@contextmanager
def log_to(path: str | os.PathLike) -> Iterator[None]:
    """Route logging, warnings and stderr (tqdm bars) into `path`; log a failure's traceback there too.

    The project's own errors (InputError, OutputError) end the process with exit status 1 after one
    line on the terminal, `vidmp3: <job>: <message>`, and where the traceback is.
    """
    with open(path, "w", buffering=1) as handle:
        saved_stderr = sys.stderr
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_DropHarmless())
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        libraries = {name: logging.getLogger(name) for name in LIBRARY_LOGGERS}
        saved_libraries = {name: (logger.handlers[:], logger.propagate) for name, logger in libraries.items()}
        for logger in libraries.values():
            logger.handlers, logger.propagate = [], True
        logging.captureWarnings(True)
        sys.stderr = handle
        try:
            yield
        except (InputError, OutputError) as error:
            handle.write(traceback.format_exc())
            sys.stderr = saved_stderr
            print(f"vidmp3: {job_name(path)}: {error}\n  (traceback in {path})", file=saved_stderr)
            raise SystemExit(1) from None
        except BaseException:
            handle.write(traceback.format_exc())
            raise
        finally:
            sys.stderr = saved_stderr
            root.removeHandler(handler)
            for name, (handlers, propagate) in saved_libraries.items():
                libraries[name].handlers, libraries[name].propagate = handlers, propagate


@contextmanager
def exit_on_input_error() -> Iterator[None]:
    """For the workflow's parse-time checks and the helpers Snakemake calls while it plans jobs (also as a
    decorator): an InputError ends Snakemake with `vidmp3: <message>` alone, before any job runs."""
    try:
        yield
    except InputError as error:
        raise SystemExit(f"vidmp3: {error}") from None
