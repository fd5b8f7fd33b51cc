"""Temporal windows: clips of any length through a motion module that knows a fixed number of frames.

A clip longer than the window is covered by overlapping windows (`starts`). Fine-tuning trains on a
random window per step; DDIM inversion and sampling run every window at each timestep and blend the
overlapping predictions with weights that fall off towards a window's edges, so that each step moves
one consistent latent video (MultiDiffusion-style fusion along time) rather than stitched pieces.
Memory is that of one window, time grows with the number of windows. torch is imported where
tensors are made, so that the Snakefile can check a window at parse time without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vidmp3.errors import InputError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Window:
    """`frames` frames per window, consecutive windows `stride` frames apart; with `shift`, the grid of
    windows moves by one frame per DDIM step (`offset`), so no frame pair sits on a window's edge at
    every step and the hand-over between windows is spread over the clip instead of repeating at the
    same frames (a fixed grid leaves seams there, issue 17)."""

    frames: int = 16
    stride: int = 8
    shift: bool = True

    def __post_init__(self):
        if self.frames < 1:
            raise InputError(f"window frames must be positive, got {self.frames}")
        if not 1 <= self.stride <= self.frames:
            raise InputError(f"window stride must be between 1 and the window's {self.frames} frames, got {self.stride}")

    def starts(self, num_frames: int, offset: int = 0) -> list[int]:
        """First frame of each window: every `stride` frames from `offset` (the first window, cut off
        before frame 0, pushed to start there), the last one flush with the clip's end (one window,
        starting at 0, for a clip no longer than a window)."""
        if not 0 <= offset < self.stride:
            raise ValueError(f"window offset must be in [0, {self.stride}), got {offset}")
        if num_frames <= self.frames:
            return [0]
        last = num_frames - self.frames
        starts = [0] + [start for start in range(offset, last + 1, self.stride) if start > 0]
        if starts[-1] != last:
            starts.append(last)
        return starts

    def offset(self, step: int) -> int:
        """The grid's offset at DDIM step `step` (counted from the clean end of the schedule, so that
        inversion and sampling use the same windows at the same timestep): 0 without `shift`."""
        return step % self.stride if self.shift else 0

    def borders(self, num_frames: int) -> list[int]:
        """Frames t (0 < t < num_frames) where a window starts or ends: the pair of frames t - 1 and t
        straddles a window's edge, where a seam would show."""
        edges = set()
        for start in self.starts(num_frames):
            edges.update((start, min(start + self.frames, num_frames)))
        return sorted(t for t in edges if 0 < t < num_frames)

    def weights(self, length: int) -> torch.Tensor:
        """Blending weight of each frame of a window of `length` frames: 1, 4, 9, ... up to the middle and
        down again, so a frame counts most in the window where it is farthest from the edges, and a
        window's edge frames, which see the least temporal context, hardly at all (squared rather than
        linear: lower seam scores on all six validation clips, README)."""
        import torch

        index = torch.arange(length, dtype=torch.float64)
        return torch.minimum(index + 1, length - index) ** 2


def blend_windows(
    window: Window,
    num_frames: int,
    predict: Callable[[int, int], torch.Tensor],
    frame_dim: int = 2,
    offset: int = 0,
) -> torch.Tensor:
    """One prediction for the whole clip from `predict(start, stop)` of each window (tensors whose
    dimension `frame_dim` holds the window's frames; windows from `offset`), averaged with the
    windows' weights per frame."""
    import torch

    total = weight_sum = None
    for start in window.starts(num_frames, offset):
        stop = min(start + window.frames, num_frames)
        prediction = predict(start, stop)
        shape = [1] * prediction.ndim
        shape[frame_dim] = stop - start
        weights = window.weights(stop - start).to(device=prediction.device, dtype=torch.float32).view(shape)
        if total is None:
            full = list(prediction.shape)
            full[frame_dim] = num_frames
            total = torch.zeros(full, device=prediction.device, dtype=torch.float32)
            weight_sum = torch.zeros(
                [num_frames if d == frame_dim else 1 for d in range(prediction.ndim)],
                device=prediction.device,
                dtype=torch.float32,
            )
        total.narrow(frame_dim, start, stop - start).add_(prediction.float() * weights)
        weight_sum.narrow(frame_dim, start, stop - start).add_(weights)
    return (total / weight_sum).to(prediction.dtype)


def phase_seam_score(frames: np.ndarray, window: Window) -> float:
    """The seam score at the worst offset within the windows' period: frame pairs t-1 -> t grouped by
    t mod `stride` (offset 0 holds the borders of windows that start every `stride` frames), the mean
    change of the group that changes most over the mean change of the rest. Blending weights that
    peak in a window's middle move the hand-over between windows off the borders, where `seam_score`
    does not look; this score finds it wherever it lands. NaN for one window, stride 1 or no change."""
    frames = np.asarray(frames, dtype=np.float32)
    if len(window.starts(len(frames))) == 1 or window.stride == 1:
        return float("nan")
    change = np.abs(np.diff(frames, axis=0)).reshape(len(frames) - 1, -1).mean(axis=1)  # change[t - 1]: t-1 -> t
    phases = np.arange(1, len(frames)) % window.stride
    ratios = []
    for phase in range(window.stride):
        group = phases == phase
        if not group.any() or group.all() or change[~group].mean() == 0:
            return float("nan")
        ratios.append(change[group].mean() / change[~group].mean())
    return float(max(ratios))


def seam_score(frames: np.ndarray, window: Window) -> float:
    """Mean frame-to-frame change (mean |I_t - I_{t-1}|) across window borders over the mean change inside
    windows: about 1 when the windows join without seams. NaN for a clip with no borders or no change inside."""
    frames = np.asarray(frames, dtype=np.float32)
    change = np.abs(np.diff(frames, axis=0)).reshape(len(frames) - 1, -1).mean(axis=1)  # change[t - 1]: t-1 -> t
    border = np.zeros(len(change), bool)
    border[[t - 1 for t in window.borders(len(frames))]] = True
    if not border.any() or border.all() or change[~border].mean() == 0:
        return float("nan")
    return float(change[border].mean() / change[~border].mean())
