"""Video I/O: decode video files and frame folders, read frames back from a video or a Zarr array, and
encode H.264 mp4. Ingest (`vidmp3.frames`), the renderer, editing, the strips and the metrics all read
and write videos here, so one decoder and one encoder decide what a frame is.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.store import read_array

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def _check_count(source: Path, available: int, indices: list[int]) -> None:
    if indices[-1] >= available:
        raise InputError(
            f"{source}: has {available} frames, but first frame {indices[0]}, {len(indices)} frames "
            f"and stride {indices[1] - indices[0] if len(indices) > 1 else 1} need {indices[-1] + 1}"
        )


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


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


def read_frames(path: str | os.PathLike) -> np.ndarray:
    """All frames, uint8 (N,H,W,3) RGB, of a Zarr array folder (`write_array`) or a video file."""
    path = Path(path)
    if (path / "zarr.json").is_file():
        frames = read_array(path)[0]
    elif path.is_file():
        try:
            with av.open(str(path)) as container:
                frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
        except (av.error.FFmpegError, ValueError) as error:
            raise InputError(f"{path}: not a readable video ({error})") from None
    else:
        raise InputError(f"{path}: no such video file or Zarr frames array")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"{path}: frames must be uint8 (N,H,W,3), got {frames.dtype} {frames.shape}")
    return frames


def encode_video(frames: np.ndarray, path: str | os.PathLike, fps: float, crf: int) -> None:
    """Write uint8 RGB frames (N, H, W, 3) as an H.264 mp4 (yuv420p; H and W must be even)."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float) -> None:
    """Frames as a near-lossless (crf 16) H.264 mp4, atomically: how the edits are written."""
    with atomic_path(path) as tmp:
        encode_video(frames, tmp, fps, crf=16)
