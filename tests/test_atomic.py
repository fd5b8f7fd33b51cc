"""Atomic outputs under crashes: kill -9 mid-write and full disks leave nothing a Zarr group lists."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr
import zarr.storage._local as zarr_local
from safetensors import SafetensorError

from vidmp3.atomic import atomic_path
from vidmp3.errors import OutputError
from vidmp3.store import read_array, write_array, write_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def priors_group(root):
    group = root / "results" / "priors" / "clip.zarr"
    write_group(group, {"video": "clip"})
    write_array(group / "frames", np.zeros((4, 8, 8, 3), np.uint8))
    return group


def debris(root):
    return [path for path in root.rglob("*") if ".tmp-" in path.name]


def test_the_temporary_of_a_group_member_is_outside_the_group(tmp_path):
    group = priors_group(tmp_path)
    with atomic_path(group / "mask") as tmp:
        assert tmp.parent == group.parent
        write_array(tmp, np.ones((4, 8, 8), bool))
        assert sorted(zarr.open_group(str(group), mode="r").keys()) == ["frames"]
    assert sorted(zarr.open_group(str(group), mode="r").keys()) == ["frames", "mask"]
    assert debris(tmp_path) == []


def test_kill_9_mid_write_leaves_no_debris_in_the_group(tmp_path):
    group = priors_group(tmp_path)
    writer = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {REPO!r})
        import numpy as np
        import zarr.storage._local as zarr_local
        from vidmp3.store import write_array
        put = zarr_local._put
        def slow_put(*args, **kwargs):
            time.sleep(0.2)  # a chunk at a time, so the kill lands mid-write
            return put(*args, **kwargs)
        zarr_local._put = slow_put
        write_array({str(group / "mask")!r}, np.ones((50, 8, 8), bool))
    """)
    process = subprocess.Popen([sys.executable, "-c", writer])
    try:
        deadline = time.monotonic() + 60
        while not any((path / "c").is_dir() for path in debris(tmp_path)):
            assert process.poll() is None and time.monotonic() < deadline, "the writer never started writing chunks"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert sorted(zarr.open_group(str(group), mode="r").keys()) == ["frames"]
    [stale] = debris(tmp_path)
    assert stale.parent == group.parent
    # the next write of the same output removes what the killed process left
    write_array(group / "mask", np.ones((4, 8, 8), bool))
    assert debris(tmp_path) == []
    assert sorted(zarr.open_group(str(group), mode="r").keys()) == ["frames", "mask"]


def test_a_full_disk_names_the_path_and_leaves_nothing(tmp_path, monkeypatch):
    group = priors_group(tmp_path)
    put, written = zarr_local._put, []

    def filling_put(path, value, exclusive=False):
        if "/c/" in path.as_posix():
            written.append(path)
            if len(written) == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            time.sleep(0.05)  # writers still busy when the failure comes back
        return put(path, value, exclusive=exclusive)

    monkeypatch.setattr(zarr_local, "_put", filling_put)
    with pytest.raises(OutputError, match="No space left on device") as raised:
        write_array(group / "mask", np.ones((8, 8, 8), bool))
    assert str(group / "mask") in str(raised.value) and raised.value.errno == errno.ENOSPC
    assert debris(tmp_path) == [] and not (group / "mask").exists()
    assert sorted(zarr.open_group(str(group), mode="r").keys()) == ["frames"]
    assert read_array(group / "frames")[0].shape == (4, 8, 8, 3)


def test_a_library_reporting_a_full_disk_in_words_names_the_path(tmp_path):
    """safetensors raises SafetensorError, not OSError, on a full disk: the path is still named."""
    out = tmp_path / "weights"
    with pytest.raises(OutputError, match="No space left on device") as raised:
        with atomic_path(out) as tmp:
            tmp.mkdir()
            (tmp / "config.json").write_text("{}")
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert str(out) in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("{}")
            raise KeyError("a bug")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 256 KiB tmpfs (needs root; skipped elsewhere, the patched writer above covers the same path)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_disk(tiny_filesystem):
    group = priors_group(tiny_filesystem)
    noise = np.random.default_rng(0).integers(0, 255, (16, 64, 64, 3), dtype=np.uint8)  # 196 KiB, incompressible
    with pytest.raises(OutputError, match="No space left on device") as raised:
        write_array(group / "corr", np.concatenate([noise, noise]))
    assert str(group / "corr") in str(raised.value)
    assert debris(tiny_filesystem) == [] and sorted(zarr.open_group(str(group), mode="r").keys()) == ["frames"]
