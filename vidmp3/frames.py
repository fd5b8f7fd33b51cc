"""The frames stage: decode a clip, sample it, resize it, and start the video's priors group.

Video files and frame folders (as DAVIS ships them) are read by `vidmp3.video_io`. Grayscale
or palette frames are converted to RGB rather than refused, since colour is only lost, never
invented. Everything is checked before anything is written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
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
    return resize_coverage(masks, size, crop) >= 0.5


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


def resize_labels(labels: np.ndarray, ids: Sequence[int], size: tuple[int, int], crop: str) -> np.ndarray:
    """Resample instance ids (N,H,W) like the frames: each pixel takes the label (an id or 0) covering most of it."""
    coverage = [resize_coverage(labels == subject, size, crop) for subject in ids]
    coverage.insert(0, 1.0 - np.sum(coverage, axis=0))
    return np.asarray((0, *ids), dtype=np.uint8)[np.argmax(np.stack(coverage), axis=0)]


def resize_coverage(masks: np.ndarray, size: tuple[int, int], crop: str) -> np.ndarray:
    """Each output pixel's share covered by the boolean masks (N,H,W), cropped and area-averaged like the frames."""
    box = crop_box(masks.shape[2], masks.shape[1], size, crop)
    return np.stack([np.asarray(Image.fromarray(m.astype(np.float32)).resize(size, Image.BOX, box=box)) for m in masks])


def _instance_ids(image: Image.Image, path: Path) -> np.ndarray:
    """A mask's pixel values as subject ids: a palette PNG's indices (DAVIS 2017) or grey values."""
    if image.mode not in ("P", "L"):
        raise InputError(
            f"{path}: an instance mask must be a palette or greyscale PNG whose pixel values are subject ids "
            f"(0 = background), not mode {image.mode}; fix: save the masks as DAVIS 2017 does"
        )
    return np.asarray(image, dtype=np.uint8)


def ingest_masks(masks: str | os.PathLike, group: str | os.PathLike, subjects: Sequence[int] = ()) -> None:
    """Write `{group}/mask_given` (N,H,W): the masks folder sampled and resized like the frames, bool
    (white = subject) or, for a video with `subjects`, uint8 instance ids (0 = background)."""
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
            mask = _instance_ids(image, files[index]) if subjects else np.asarray(image.convert("L")) > 127
        if (mask.shape[1], mask.shape[0]) != tuple(attrs["source_size"]):
            raise InputError(
                f"{files[index]}: mask is {mask.shape[1]}x{mask.shape[0]}, frames are "
                f"{attrs['source_size'][0]}x{attrs['source_size'][1]}"
            )
        unknown = sorted(set(np.unique(mask).tolist()) - {0, *subjects}) if subjects else []
        if unknown:
            raise InputError(
                f"{files[index]}: holds subject id(s) {', '.join(map(str, unknown))}, which the videos sheet's subjects "
                f"({', '.join(map(str, subjects))}) do not name; fix: name them in column subjects"
            )
        raw.append(mask)
    stack = np.stack(raw)
    size = tuple(attrs["size"])
    resized = resize_labels(stack, subjects, size, attrs["crop"]) if subjects else resize_masks(stack, size, attrs["crop"])
    record = {"masks": str(masks), "frame_indices": attrs["frame_indices"]}
    write_array(Path(group) / "mask_given", resized, record | ({"subjects": list(subjects)} if subjects else {}))
