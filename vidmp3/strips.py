"""Frame strips for the report: labelled rows of frames (source above edit), as one PNG.

The Snakemake report shows images inline but not videos, so each edit is shown as a strip of a
few evenly spaced frames. `strip_image` takes any rows of equally shaped uint8 frames, so the
priors (colour maps turned into images by their owner) can be laid out the same way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.store import read_array
from vidmp3.video_io import read_frames

MIN_TILE_HEIGHT = 128  # small clips are enlarged (nearest neighbour) so their pixels stay visible
GAP = 4
MARGIN = 8
FONT_SIZE = 14


def picked_frames(count: int, columns: int) -> list[int]:
    """`columns` evenly spaced frame indices from first to last (all frames if there are fewer)."""
    return sorted({round(index) for index in np.linspace(0, count - 1, min(columns, count))})


def strip_image(rows: Sequence[tuple[str, np.ndarray]], columns: int = 8, title: str | None = None) -> np.ndarray:
    """uint8 (H,W,3) image: a title, a header of frame numbers, then one labelled row per (label, frames)."""
    if not rows:
        raise InputError("a frame strip needs at least one row")
    shape = rows[0][1].shape
    for label, frames in rows:
        if frames.shape != shape or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"strip row {label!r}: frames {frames.dtype} {frames.shape} differ from uint8 {shape}")
    indices = picked_frames(shape[0], columns)
    scale = max(1, math.ceil(MIN_TILE_HEIGHT / shape[1]))
    tile_w, tile_h = shape[2] * scale, shape[1] * scale
    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), FONT_SIZE)  # ships with matplotlib
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(measure.textbbox((0, 0), label, font=font)[2] for label, _ in rows) + MARGIN
    line_h = FONT_SIZE + GAP
    top = MARGIN + (line_h if title else 0) + line_h
    width = MARGIN + label_w + len(indices) * (tile_w + GAP) - GAP + MARGIN
    height = top + len(rows) * (tile_h + GAP) - GAP + MARGIN
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((MARGIN, MARGIN), title, fill="black", font=font)
    left = MARGIN + label_w
    for column, index in enumerate(indices):
        draw.text((left + column * (tile_w + GAP), top - line_h), f"frame {index}", fill="black", font=font)
    for row, (label, frames) in enumerate(rows):
        y = top + row * (tile_h + GAP)
        draw.text((MARGIN, y + tile_h // 2 - FONT_SIZE // 2), label, fill="black", font=font)
        for column, index in enumerate(indices):
            tile = Image.fromarray(frames[index]).resize((tile_w, tile_h), Image.NEAREST)
            canvas.paste(tile, (left + column * (tile_w + GAP), y))
    return np.asarray(canvas)


def write_edit_strip(
    source_frames: str | os.PathLike,
    edit: str | os.PathLike,
    out: str | os.PathLike,
    title: str,
    columns: int = 8,
) -> None:
    """PNG strip of the source frames (a priors `frames` array) above the edit (video file or Zarr array)."""
    source = read_array(source_frames)[0]
    edited = read_frames(edit)
    if edited.shape != source.shape:
        raise InputError(f"{edit}: edit frames {edited.shape} do not match the source frames {source.shape}")
    image = strip_image([("source", source), ("edit", edited)], columns, title)
    with atomic_path(out) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
