"""The frames stage: decode a clip, sample it, resize it, and start the video's priors group.

Video files are decoded with PyAV and frame folders (as DAVIS ships them) with Pillow. Grayscale
or palette frames are converted to RGB rather than refused, since colour is only lost, never
invented. Everything is checked before anything is written.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
import logging
import os
from pathlib import Path

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from vidmp3.config import ALL_FRAMES
from vidmp3.errors import InputError
from vidmp3.store import read_array, write_array, write_group

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def frame_indices(first_frame: int, frames: int, stride: int) -> list[int]:
    return list(range(first_frame, first_frame + frames * stride, stride))


def count_frames(source: Path) -> int:
    """How many frames a frame folder or a video file holds (a video is decoded: its packets may not say)."""
    if source.is_dir():
        return len(list_images(source))
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise InputError(f"{source}: file has no video stream")
            return sum(1 for _ in container.decode(container.streams.video[0]))
    except av.error.FFmpegError as error:
        raise InputError(f"{source}: not a readable video ({error})") from None


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


def _check_count(source: Path, available: int, indices: list[int]) -> None:
    if indices[-1] >= available:
        raise InputError(
            f"{source}: has {available} frames, but first frame {indices[0]}, {len(indices)} frames "
            f"and stride {indices[1] - indices[0] if len(indices) > 1 else 1} need {indices[-1] + 1}"
        )


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_video(source: Path, indices: list[int]) -> tuple[np.ndarray, float, int]:
    """Decode the wanted frames of a video file as RGB; also return its fps and frame count."""
    if source.stat().st_size == 0:
        raise InputError(f"{source}: video file is empty (0 bytes)")
    wanted = set(indices)
    frames: dict[int, np.ndarray] = {}
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise InputError(f"{source}: file has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            count = 0
            for frame in tqdm(container.decode(stream), desc=f"decode {source.name}", unit="frame"):
                if count in wanted:
                    frames[count] = frame.to_ndarray(format="rgb24")
                count += 1
    except av.error.FFmpegError as error:
        raise InputError(f"{source}: not a readable video ({error})") from None
    if count == 0:
        raise InputError(f"{source}: video has no decodable frames")
    _check_count(source, count, indices)
    return np.stack([frames[i] for i in indices]), fps, count


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.mode != "RGB":
                log.info("%s: converting %s frame to RGB", path, image.mode)
            return np.asarray(image.convert("RGB"))
    except OSError as error:
        raise InputError(f"{path}: not a readable image ({error})") from None


def read_frame_folder(source: Path, indices: list[int]) -> tuple[np.ndarray, int]:
    """Read the wanted frames of a folder of images (sorted by name); all must share one size."""
    files = list_images(source)
    if not files:
        raise InputError(f"{source}: frame folder has no JPEG or PNG files")
    _check_count(source, len(files), indices)
    frames = [_read_rgb(files[i]) for i in tqdm(indices, desc=f"read {source.name}", unit="frame")]
    first_shape = frames[0].shape
    for index, frame in zip(indices, frames):
        if frame.shape != first_shape:
            raise InputError(
                f"{source}: frames differ in size: {files[index].name} is {frame.shape[1]}x{frame.shape[0]}, "
                f"{files[indices[0]].name} is {first_shape[1]}x{first_shape[0]}"
            )
    return np.stack(frames), len(files)


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
    resized = [
        np.asarray(Image.fromarray(m.astype(np.float32)).resize(size, Image.BOX, box=box)) >= 0.5 for m in masks
    ]
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


def encode_video(frames: np.ndarray, path: str | os.PathLike, fps: float, crf: int) -> None:
    """Write uint8 RGB frames (N, H, W, 3) as an H.264 mp4 (yuv420p; H and W must be even)."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
