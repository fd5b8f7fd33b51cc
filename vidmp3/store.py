"""Zarr v3 layout of a video's priors: one group, one array per stage, one chunk per frame.

`results/priors/{video}.zarr` is a group; each stage writes its own array folder in it
(`frames`, `mask_given`, `corr`, `mask`, `depth`, `guide`, `alpha`), atomically (its temporary
outside the group, `vidmp3.atomic`), so stages can rerun independently and a failed or killed
stage leaves nothing the group would list.

A video with several subjects (`vidmp3.subjects`) keeps this layout: `mask_given` holds its instance ids
(uint8, 0 = background, attribute `subjects`), `mask` their union; `corr`, `depth` and `guide` hold each
subject's own prior on its own pixels (subjects never share a pixel, so one array holds them all:
each matched within itself and coloured by its own frame-0 box, depth normalised per subject), and
`alpha` is (N, K), each subject's share, in the order of `subjects`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from vidmp3.atomic import atomic_path

COMPRESSOR = BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")


def write_group(path: str | os.PathLike, attrs: dict[str, Any]) -> None:
    """Write (or replace) the group's own metadata file `zarr.json`, keeping its arrays."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {"zarr_format": 3, "node_type": "group", "attributes": _jsonable(attrs)}
    with atomic_path(path / "zarr.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))


def write_array(path: str | os.PathLike, data: np.ndarray, attrs: dict[str, Any] | None = None) -> None:
    """Write `data` as a Zarr v3 array at `path` (e.g. `.../{video}.zarr/frames`), one chunk per frame."""
    data = np.asarray(data)
    chunks = (1, *data.shape[1:]) if data.ndim > 1 else data.shape
    with atomic_path(path) as tmp:
        array = zarr.create_array(
            store=str(tmp),
            shape=data.shape,
            dtype=data.dtype,
            chunks=chunks,
            compressors=COMPRESSOR,
            zarr_format=3,
        )
        # One chunk (frame) per call: zarr writes a call's chunks from several threads, and a failure in
        # one (a full disk) would return while the others still write into the temporary folder.
        if data.ndim > 1:
            for index, frame in enumerate(data):
                array[index] = frame
        else:
            array[...] = data  # one chunk
        array.attrs.update(_jsonable(attrs or {}))


def read_array(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a whole array written by `write_array` and its attributes."""
    array = zarr.open_array(store=str(path), mode="r")
    return array[...], dict(array.attrs)


def read_group_attrs(path: str | os.PathLike) -> dict[str, Any]:
    return dict(zarr.open_group(store=str(path), mode="r").attrs)


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and paths inside attributes to plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
