"""The frames stage: decode a clip, sample it, resize it, and start the video's priors group.

Video files and frame folders (as DAVIS ships them) are read by `vidmp3.video_io`. Grayscale
or palette frames are converted to RGB rather than refused, since colour is only lost, never
invented. Everything is checked before anything is written.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from vidmp3.errors import InputError
from vidmp3.store import read_array, write_array, write_group
from vidmp3.video_io import VIDEO_SUFFIXES, count_frames, list_images, read_frame_folder, read_video


def frame_indices(first_frame: int, frames: int, stride: int) -> list[int]:
    return list(range(first_frame, first_frame + frames * stride, stride))


ALL_FRAMES = "all"
"""The videos sheet's `frames` value that takes every stride-th frame from first_frame to the clip's end."""


def all_frames(source: Path, first_frame: int, stride: int) -> int:
    """How many frames `frames: all` takes: every stride-th from first_frame to the clip's end. Any
    length of at least 2 fits the method (a clip longer than the window is edited window by window)."""
    available = count_frames(source)
    frames = len(range(first_frame, available, stride))
    if frames < 2:
        raise InputError(
            f"{source}: has {available} frames, so frames all from first frame {first_frame} every {stride} "
            f"gives {frames}; the frames stage needs at least 2: lower first_frame or stride in the videos sheet"
        )
    return frames


def crop_box(width: int, height: int, size: tuple[int, int], crop: str) -> tuple[int, int, int, int]:
    """The source box (left, top, right, bottom) that is resized to `size`."""
    if crop == "none":
        return 0, 0, width, height
    target_aspect = size[0] / size[1]
    if width / height > target_aspect:
        new_width = round(height * target_aspect)
        left = (width - new_width) // 2
        return left, 0, left + new_width, height
    new_height = round(width / target_aspect)
    top = (height - new_height) // 2
    return 0, top, width, top + new_height


def resize_frames(frames: np.ndarray, size: tuple[int, int], crop: str) -> np.ndarray:
    """Crop (if asked) and resize uint8 RGB frames to size=(width, height) with a Lanczos filter."""
    box = crop_box(frames.shape[2], frames.shape[1], size, crop)
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS, box=box)) for f in frames])


def resize_masks(masks: np.ndarray, size: tuple[int, int], crop: str) -> np.ndarray:
    """Resample boolean masks exactly as the frames: area-average the coverage, keep >= 0.5."""
    box = crop_box(masks.shape[2], masks.shape[1], size, crop)
    resized = [np.asarray(Image.fromarray(m.astype(np.float32)).resize(size, Image.BOX, box=box)) >= 0.5 for m in masks]
    return np.stack(resized)


def sha256_of(source: Path) -> str:
    """Hash of a file, or of a folder's image names and bytes, to record what was ingested."""
    digest = hashlib.sha256()
    files = list_images(source) if source.is_dir() else [source]
    for path in files:
        if source.is_dir():
            digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def ingest_frames(
    source: str | os.PathLike,
    group: str | os.PathLike,
    first_frame: int,
    frames: int | str,
    stride: int,
    size: tuple[int, int],
    crop: str,
) -> None:
    """Write `{group}/frames` uint8 (N,H,W,3) and the group's metadata for one source clip; `frames`
    ALL_FRAMES takes every stride-th frame from first_frame to the clip's end."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: no such video file or frame folder")
    if not source.is_dir() and source.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"{source}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))}) or a frame folder")
    if frames == ALL_FRAMES:
        frames = all_frames(source, first_frame, stride)
    indices = frame_indices(first_frame, frames, stride)
    if source.is_dir():
        raw, total = read_frame_folder(source, indices)
        fps = None
    else:
        raw, fps, total = read_video(source, indices)
    attrs = {
        "source": str(source),
        "sha256": sha256_of(source),
        "fps": fps,
        "source_frames": total,
        "source_size": [raw.shape[2], raw.shape[1]],
        "frame_indices": indices,
        "stride": stride,
        "size": list(size),
        "crop": crop,
    }
    write_array(Path(group) / "frames", resize_frames(raw, size, crop), attrs)
    write_group(group, {"video_source": str(source)})


def ingest_masks(masks: str | os.PathLike, group: str | os.PathLike) -> None:
    """Write `{group}/mask_given` bool (N,H,W): the masks folder sampled and resized like the frames."""
    masks = Path(masks)
    if not masks.is_dir():
        raise InputError(f"{masks}: masks folder not found")
    _, attrs = read_array(Path(group) / "frames")
    files = list_images(masks)
    if len(files) != attrs["source_frames"]:
        raise InputError(
            f"{masks}: has {len(files)} mask images but the source {attrs['source']} has {attrs['source_frames']} frames"
        )
    raw = []
    for index in attrs["frame_indices"]:
        with Image.open(files[index]) as image:
            mask = np.asarray(image.convert("L")) > 127
        if (mask.shape[1], mask.shape[0]) != tuple(attrs["source_size"]):
            raise InputError(
                f"{files[index]}: mask is {mask.shape[1]}x{mask.shape[0]}, frames are "
                f"{attrs['source_size'][0]}x{attrs['source_size'][1]}"
            )
        raw.append(mask)
    resized = resize_masks(np.stack(raw), tuple(attrs["size"]), attrs["crop"])
    write_array(Path(group) / "mask_given", resized, {"masks": str(masks), "frame_indices": attrs["frame_indices"]})
