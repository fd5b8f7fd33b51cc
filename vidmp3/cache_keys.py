"""Folders as inputs of jobs cached between workflows (Snakemake's `--cache`).

Snakemake keys a cached job by its script, params and software, by the provenance of the inputs
that another job of the same run makes, and by the content (sha256) of every other input. That
last part opens each input as a file, so a folder fails with IsADirectoryError (Snakemake 9.27).
Here almost every input is a folder (Zarr arrays, weights, latents, frame folders), and in a Slurm
job (or any remote job) *every* input counts as "not made in this run", since such a job's
Snakemake sees only its own job. Without help, `--cache` would therefore stop every cached stage.

`hash_folder_inputs()` (called by rules/common.smk) lets Snakemake's checksum take a folder: the
sha256 of its files' relative paths and bytes, in sorted order, following symlinks (a folder
taken from the cache holds symlinks to it) and skipping Snakemake's `.snakemake_timestamp`. It
changes only the checksum Snakemake computes for its output cache (the one call with
`force=True`); nothing else in Snakemake asks for a folder's checksum.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from vidmp3.errors import InputError

log = logging.getLogger(__name__)

LOCATION = "SNAKEMAKE_OUTPUT_CACHE"

SKIPPED = {".snakemake_timestamp"}
_MARK = "_vidmp3_hashes_folders"


def folder_checksum(path: str | os.PathLike) -> str:
    """`sha256:<hex>` of a folder's files (relative POSIX paths and contents, sorted)."""
    root = Path(path)
    files = []
    for folder, _, names in os.walk(root, followlinks=True):
        files += [Path(folder, name) for name in names if name not in SKIPPED]
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda file: file.relative_to(root).as_posix()):
        relative = file.relative_to(root).as_posix().encode()
        digest.update(len(relative).to_bytes(8, "little") + relative)
        digest.update(file.stat().st_size.to_bytes(8, "little"))
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def check_cache_location(cache_rules: list[str] | None, environ: dict[str, str] = os.environ) -> None:
    """Stop before any job runs where `--cache <rules>` cannot work: without SNAKEMAKE_OUTPUT_CACHE,
    Snakemake 9.27 warns that it will not cache and then fails every cached job ("Cache backend
    unavailable"); a location that is not a folder fails each job only after it has run."""
    if not cache_rules:
        return
    location = environ.get(LOCATION, "")
    if not location:
        raise InputError(
            f"--cache {' '.join(cache_rules)} needs the cache folder in ${LOCATION} "
            f"(export {LOCATION}=/shared/folder; README, 'Reusing results between workflows')"
        )
    if "://" not in location and not Path(location).is_dir():
        raise InputError(f"${LOCATION}={location}: not a folder (create it first: mkdir -p {location})")


def hash_folder_inputs() -> bool:
    """Teach Snakemake's cache checksum to hash folders; False (and a warning) where its API differs."""
    try:
        from snakemake.io import _IOFile
    except ImportError:
        log.warning("vidmp3: snakemake.io._IOFile not found: --cache cannot hash folder inputs")
        return False
    original = getattr(_IOFile, "checksum", None)
    if original is None:
        log.warning("vidmp3: snakemake's IOFile has no checksum(): --cache cannot hash folder inputs")
        return False
    if getattr(original, _MARK, False):
        return True

    async def checksum(self, threshold=None, force=False, algorithm=None):
        if force and algorithm is None and not self.is_storage and os.path.isdir(self.file):
            return folder_checksum(self.file)
        return await original(self, threshold=threshold, force=force, algorithm=algorithm)

    setattr(checksum, _MARK, True)
    checksum.__doc__ = original.__doc__
    _IOFile.checksum = checksum
    return True
