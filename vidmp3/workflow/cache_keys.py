"""The keys of jobs cached between workflows (Snakemake's `--cache`): one key per job, wherever it runs.

Snakemake 9.27 keys a cached job by its script, params and software, by the keys of the jobs of
the same run that make its inputs, and by the content (sha256) of every other input. A Slurm job's
Snakemake sees only its own job, so there every input counts as "not made in this run": local and
Slurm runs of the same job got different keys. And Snakemake opens each input as a file, so a
folder (Zarr arrays, weights, latents, frame folders: almost every input here) failed with
IsADirectoryError.

`key_by_content()` (called by rules/common.smk) replaces that key: the script, the params (which
hold only config values and sheet cells, no absolute path), the conda environment when one is
used, the versions of vidmp3, torch, diffusers and transformers, and the content of every input:
a file's sha256, a folder's `folder_checksum`. When a cached job runs, its inputs are there, so local and Slurm
jobs compute the same key from the same bytes. Only a dry run, which runs nothing, lets an input
whose job needs to run stand for that job's key: what it predicts for a stage downstream of one
that has to run is a miss, even where the real run will then find the entry.

Snakemake has no supported hook for this (README, "Reusing results between workflows"), so the key
replaces a private method, and only where `--cache` names rules (`check_cache_keys`, at parse time):
a Snakemake whose method differs stops the run there instead of missing the cache inside the jobs.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path

from vidmp3.errors import InputError

LOCATION = "SNAKEMAKE_OUTPUT_CACHE"

SKIPPED = {".snakemake_timestamp"}
_MARK = "_vidmp3_keys_by_content"


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


def check_cache_keys(cache_rules: list[str] | None) -> None:
    """With `--cache <rules>`, put the content key in place or stop before any job runs: Snakemake's own key
    fails on folder inputs and differs between a local run and a Slurm job, so a cache entry would be
    missed (or the job fail) only once the job runs. Without `--cache`, Snakemake is left as it is."""
    if cache_rules and not key_by_content():
        from importlib.metadata import version

        raise InputError(
            f"--cache {' '.join(cache_rules)}: snakemake {version('snakemake')} computes cache keys in a way this "
            "workflow's content key (vidmp3/workflow/cache_keys.py) was not written for; install the snakemake of "
            "requirements.txt, or run without --cache"
        )


KEY_LIBRARIES = ("vidmp3", "torch", "diffusers", "transformers")
"""Packages whose versions are part of every key (a new version can change every output)."""


def library_versions() -> str:
    """`vidmp3=0.1.0 torch=... diffusers=... transformers=...` as installed (no import of torch)."""
    from importlib.metadata import PackageNotFoundError, version

    import vidmp3

    found = {"vidmp3": vidmp3.__version__}
    for name in KEY_LIBRARIES[1:]:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return " ".join(f"{name}={found[name]}" for name in KEY_LIBRARIES)


def _file_checksum(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def key_by_content() -> bool:
    """Make Snakemake's cache key the one described above; False where Snakemake's (private) hook differs
    from the one this was written for (Snakemake 9.27: `async ProvenanceHashMap._get_provenance_hash(self, job)`)."""
    try:
        from snakemake import script
        from snakemake.caching.hash import ProvenanceHashMap
        from snakemake.settings.types import DeploymentMethod
    except ImportError:
        return False
    original = getattr(ProvenanceHashMap, "_get_provenance_hash", None)
    if original is None:
        return False
    if getattr(original, _MARK, False):
        return True
    if not inspect.iscoroutinefunction(original) or list(inspect.signature(original).parameters) != ["self", "job"]:
        return False
    versions = library_versions()

    async def content_key(self, job):
        if job in self._hashes:
            return self._hashes[job]
        if not job.is_script:
            return await original(self, job)
        digest = hashlib.sha256()
        _, source, _, _, _ = script.get_source(
            job.rule.script,
            job.rule.workflow.sourcecache,
            basedir=job.rule.basedir,
            wildcards=job.wildcards,
            params=job.params,
        )
        digest.update(source.encode())
        for name, value in sorted(job.params._allitems(), key=lambda item: str(item[0])):
            digest.update(str(name).encode() + json.dumps(value, sort_keys=True).encode())
        workflow = job.dag.workflow
        if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method and job.conda_env:
            digest.update(job.conda_env.content)
        digest.update(versions.encode())
        # A dry run predicts: an input whose job needs to run stands for that job's key.
        pending = {
            file: dependency
            for dependency, files in job.dag.dependencies[job].items()
            if workflow.dryrun and job.dag.needrun(dependency)
            for file in files
        }
        keys = []
        for file in job.input:
            if file in pending:
                keys.append(await content_key(self, pending[file]))
            elif file.is_storage:
                keys.append(await file.checksum(force=True))
            elif os.path.isdir(file):
                keys.append(folder_checksum(file))
            else:
                keys.append(_file_checksum(file))
        for key in sorted(keys):
            digest.update(key.encode())
        self._hashes[job] = digest.hexdigest()
        return self._hashes[job]

    setattr(content_key, _MARK, True)
    content_key.__doc__ = "vidmp3.workflow.cache_keys: script, params, software and every input's content."
    ProvenanceHashMap._get_provenance_hash = content_key
    return True
