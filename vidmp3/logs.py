"""Logging for workflow jobs: everything a job says goes to its Snakemake `log:` file."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def log_to(path: str | os.PathLike) -> Iterator[None]:
    """Route logging, warnings and stderr (tqdm bars) into `path`; log a failure's traceback there too."""
    with open(path, "w", buffering=1) as handle:
        saved_stderr = sys.stderr
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        sys.stderr = handle
        try:
            yield
        except BaseException:
            handle.write(traceback.format_exc())
            raise
        finally:
            sys.stderr = saved_stderr
            root.removeHandler(handler)
