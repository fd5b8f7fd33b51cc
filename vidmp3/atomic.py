"""Atomic outputs: write to a temporary path, rename into place only on success.

A failed job never leaves a half-written file or folder behind. The temporary lives beside the
output, or, for a member of a Zarr group (`results/priors/{video}.zarr/mask`), beside the group,
so that a process killed mid-write (kill -9) leaves no debris that the group would list as an
array. Such stale temporaries are removed by the next write of the same output.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidmp3.errors import OutputError

OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_OUT_OF_SPACE_TEXT = ("No space left on device", "Disk quota exceeded", "os error 28")
"""How libraries that do not raise OSError (safetensors) report a full disk."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def staging_folder(final: Path) -> Path:
    """The folder for `final`'s temporary: its parent, or the folder holding the outermost Zarr group it is in."""
    folder = final.parent
    while folder.parent != folder and (
        (folder / "zarr.json").is_file() or (folder == final.parent and final.name == "zarr.json")
    ):
        folder = folder.parent
    return folder


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(staging: Path, prefix: str) -> None:
    """Remove temporaries of `prefix` left by processes that no longer run (killed mid-write)."""
    for stale in staging.glob(f"{prefix}*"):
        pid = stale.name[len(prefix) :].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _is_running(int(pid)):
            _remove(stale)


def _out_of_space(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in OUT_OF_SPACE:
        return True
    return any(text in str(error) for text in _OUT_OF_SPACE_TEXT)


@contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for `final` (file or folder) on its file system; move it onto `final` on success.

    On failure the temporary is removed; a full disk raises OutputError naming `final` and the
    operating system's own message.
    """
    shown, final = final, Path(final).absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(final)
    prefix = f".{final.relative_to(staging).as_posix().replace('/', '.')}.tmp-"
    _remove_stale(staging, prefix)
    tmp = staging / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to the temporary path for {final}")
        _remove(final)
        os.replace(tmp, final)
    except Exception as error:
        if _out_of_space(error):
            _remove(tmp)
            raise OutputError(
                error.errno if isinstance(error, OSError) else errno.ENOSPC,
                f"{shown} could not be written: {error}. Nothing was left behind; free space on that "
                f"file system (or set another working directory) and rerun",
            ) from error
        raise
    finally:
        _remove(tmp)
