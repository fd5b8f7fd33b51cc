"""The pieces that let stages be cached between workflows: folder checksums and own benchmark files."""

from __future__ import annotations

import os

import pytest

from vidmp3.workflow.cache_keys import check_cache_keys, folder_checksum, key_by_content, library_versions
from vidmp3.tables import read_benchmarks
from vidmp3.timing import record_time


def test_folder_checksum_follows_content_and_names_not_place(tmp_path):
    first = tmp_path / "first"
    (first / "c" / "0").mkdir(parents=True)
    (first / "zarr.json").write_text("{}")
    (first / "c" / "0" / "0").write_bytes(b"\x01\x02")
    key = folder_checksum(first)
    assert key.startswith("sha256:")
    # the same files elsewhere, a Snakemake timestamp and symlinks (a folder taken from the cache) give the same key
    second = tmp_path / "second"
    second.mkdir()
    os.symlink(first / "zarr.json", second / "zarr.json")
    os.symlink(first / "c", second / "c")
    (second / ".snakemake_timestamp").touch()
    assert folder_checksum(second) == key
    (first / "c" / "0" / "0").write_bytes(b"\x01\x03")
    assert folder_checksum(first) != key
    (first / "c" / "0" / "0").write_bytes(b"\x01\x02")
    (first / "c" / "0" / "0").rename(first / "c" / "0" / "1")
    assert folder_checksum(first) != key


def test_the_key_holds_the_library_versions_and_replaces_snakemakes_once():
    from importlib.metadata import version

    from snakemake.caching.hash import ProvenanceHashMap

    import vidmp3

    versions = library_versions()
    assert f"vidmp3={vidmp3.__version__}" in versions and f"torch={version('torch')}" in versions
    assert f"diffusers={version('diffusers')}" in versions and f"transformers={version('transformers')}" in versions
    assert key_by_content() and key_by_content()  # idempotent
    assert "vidmp3.workflow.cache_keys" in ProvenanceHashMap._get_provenance_hash.__doc__


def test_record_time_writes_a_benchmark_file_the_tables_read(tmp_path):
    path = tmp_path / "benchmarks" / "finetune" / "vidmp3" / "clip.tsv"
    with record_time(path):
        sum(range(1000))
    table = read_benchmarks([path], tmp_path / "benchmarks")
    assert table["stage"].tolist() == ["finetune/vidmp3"] and table["job"].tolist() == ["clip"]
    assert table["s"].iloc[0] > 0 and table["max_rss"].iloc[0] > 1  # MB; the process age counts


def test_record_time_writes_nothing_when_the_job_fails(tmp_path):
    path = tmp_path / "timing.tsv"
    with pytest.raises(RuntimeError):
        with record_time(path):
            raise RuntimeError("stage failed")
    assert not path.exists() and not list(tmp_path.iterdir())


def test_named_cache_rules_need_a_cache_folder(tmp_path):
    from vidmp3.workflow.cache_keys import check_cache_location
    from vidmp3.errors import InputError

    check_cache_location(None, {})  # no --cache
    check_cache_location([], {})  # a bare --cache names no rule here: nothing is cached
    check_cache_location(["finetune"], {"SNAKEMAKE_OUTPUT_CACHE": str(tmp_path)})
    with pytest.raises(InputError, match=r"--cache finetune invert needs the cache folder in \$SNAKEMAKE_OUTPUT_CACHE"):
        check_cache_location(["finetune", "invert"], {})
    with pytest.raises(InputError, match="not a folder"):
        check_cache_location(["finetune"], {"SNAKEMAKE_OUTPUT_CACHE": str(tmp_path / "missing")})


def test_named_cache_rules_stop_where_snakemakes_key_hook_differs(monkeypatch):
    """A Snakemake whose private hook changed stops the run before any job, rather than missing the
    cache or failing on a folder input inside the job; without --cache it is not touched."""
    from importlib.metadata import version

    from snakemake.caching.hash import ProvenanceHashMap

    from vidmp3.errors import InputError

    async def changed(self, job, extra):
        return ""

    monkeypatch.setattr(ProvenanceHashMap, "_get_provenance_hash", changed)
    check_cache_keys(None)
    check_cache_keys([])
    assert ProvenanceHashMap._get_provenance_hash is changed
    with pytest.raises(InputError, match=rf"--cache finetune: snakemake {version('snakemake')} computes cache keys"):
        check_cache_keys(["finetune"])
    monkeypatch.delattr(ProvenanceHashMap, "_get_provenance_hash")
    with pytest.raises(InputError, match="install the snakemake of requirements.txt"):
        check_cache_keys(["finetune"])
