"""MotionGuide: a per-frame motion vector from correspondence (pose, 2D position) and depth (3D position).

Layout (paper, Sec. MotionGuide): bias-free convolutions over the guide C ⊙ D, a 2D positional
encoding P concatenated to the features, another bias-free convolution, spatial average pooling
divided by α (the subject's share of the pixels), and zero-initialised linear heads.

Why each piece:
- No bias and SiLU(0) = 0, and the features are multiplied by the subject support (pixels where the
  guide is non-zero) after each convolution: background pixels contribute exactly nothing, so
  `sum / (H * W * alpha)` is exactly the mean of the per-pixel features over the subject. The pooled
  vector therefore does not scale with the subject's size (approximately: boundary pixels and the
  coarser sampling of a small subject still differ).
- P is masked by the support too (unmasked, the background would add a size-dependent term); it is
  the only position-dependent input, so without it the module would be exactly invariant to integer
  shifts of the subject.
- Zero-initialised heads: the output is exactly zero at the first step, so injecting it into the
  video model's temporal attention starts as a no-op.

The video model needs one vector per temporal-attention width (320/640/1280 for SD-1.5 and SDXL, tiny
widths for test presets): one shared trunk computes the motion representation once per frame, and one
zero-initialised linear head per width maps it to that width. `forward` returns `{width: (N, width)}`.

Layouts (beyond the paper): `pooled` is the paper's. `spatial` keeps the trunk and the per-width
heads but pools the per-pixel features by area to the resolution of each motion-module slot
(width, downsample) instead of to one vector; each cell gets the head of its subject features' mean,
weighted by the cell's subject coverage (a mask downsampled to the layer), so it is injected on the
subject only: `forward` returns `{(width, downsample): (N, h, w, width)}`. A pooled vector broadcast
over every pixel and mixed almost uniformly across frames carries little trajectory; a per-pixel one
says where the subject is in each frame, at the cost of possibly carrying its silhouette too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidmp3.errors import InputError

VARIANT_CHANNELS = {"product": 3, "corr": 3, "depth": 1, "concat": 4}
"""Input variants (paper's ablations) and their channel count: C ⊙ D, C only, D only, C and D stacked."""

LAYOUTS = ("pooled", "spatial")
"""One vector per frame (the paper), or one per frame and pixel of each motion-module slot."""


def guide_input(corr: np.ndarray, depth: np.ndarray, variant: str = "product") -> np.ndarray:
    """The MotionGuide input (N, Cin, H, W) float32 from corr (N, H, W, 3) and depth (N, H, W).

    Both priors are 0 outside the subject (project convention), so every variant is too.
    """
    if variant not in VARIANT_CHANNELS:
        raise InputError(f"guide variant {variant!r} is unknown; expected one of {sorted(VARIANT_CHANNELS)}")
    corr = np.asarray(corr, dtype=np.float32)
    depth = np.asarray(depth, dtype=np.float32)
    if corr.ndim != 4 or corr.shape[-1] != 3:
        raise InputError(f"corr must have shape (N, H, W, 3), got {corr.shape}")
    if depth.shape != corr.shape[:3]:
        raise InputError(f"depth must have shape {corr.shape[:3]} to match corr, got {depth.shape}")
    if not (np.isfinite(corr).all() and np.isfinite(depth).all()):
        raise InputError("corr and depth must be finite (0 outside the subject, not NaN)")
    corr_first = corr.transpose(0, 3, 1, 2)
    depth_first = depth[:, None]
    if variant == "product":
        return np.ascontiguousarray(corr_first * depth_first)
    if variant == "corr":
        return np.ascontiguousarray(corr_first)
    if variant == "depth":
        return np.ascontiguousarray(depth_first)
    return np.ascontiguousarray(np.concatenate([corr_first, depth_first], axis=1))


def positional_encoding(
    height: int, width: int, num_frequencies: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Sinusoidal 2D encoding (4 * num_frequencies, H, W) of pixel centres in [-1, 1].

    Normalised coordinates make it resolution independent. The lowest frequency (pi/2) is monotonic
    across the image, so a mean over the subject still says where the subject is.
    """
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    frequencies = (math.pi / 2) * 2.0 ** torch.arange(num_frequencies, device=device, dtype=torch.float32)
    angles_x = frequencies[:, None, None] * grid_x
    angles_y = frequencies[:, None, None] * grid_y
    encoding = torch.cat([angles_x.sin(), angles_x.cos(), angles_y.sin(), angles_y.cos()], dim=0)
    return encoding.to(dtype=dtype)


class MotionGuide(ModelMixin, ConfigMixin):
    """Per-frame motion vectors `{width: (N, width)}` from a guide (N, Cin, H, W) and alpha (N,).

    The guide must be exactly 0 outside the subject and non-zero inside it (C ⊙ D with depth > 0 on the
    subject); its non-zero pixels define the support the features are pooled over.
    """

    @register_to_config
    def __init__(
        self,
        variant: str = "product",
        widths: Sequence[int] = (320, 640, 1280),
        hidden: int = 64,
        num_frequencies: int = 4,
        layout: str = "pooled",
        slots: Sequence[Sequence[int]] = (),
        latent_factor: int = 1,
    ):
        """`slots` and `latent_factor` are for the spatial layout: the (width, downsample) of the motion
        layers it feeds (widths among `widths`), and how many guide pixels make one latent pixel."""
        super().__init__()
        if variant not in VARIANT_CHANNELS:
            raise ValueError(f"variant {variant!r} is unknown; expected one of {sorted(VARIANT_CHANNELS)}")
        widths = tuple(int(w) for w in widths)
        if not widths or len(set(widths)) != len(widths) or min(widths) < 1:
            raise ValueError(f"widths must be distinct positive integers, got {widths}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout {layout!r} is unknown; expected one of {LAYOUTS}")
        self.slots = tuple((int(width), int(downsample)) for width, downsample in slots)
        if (layout == "spatial") != bool(self.slots):
            raise ValueError("the spatial layout needs its motion slots (width, downsample); the pooled one takes none")
        if any(width not in widths or downsample < 1 for width, downsample in self.slots) or latent_factor < 1:
            raise ValueError(f"slots {self.slots} need widths among {widths}, downsample and latent_factor >= 1")
        self.conv_in = nn.Conv2d(VARIANT_CHANNELS[variant], hidden, kernel_size=3, padding=1, bias=False)
        self.conv_mid = nn.Conv2d(hidden + 4 * num_frequencies, hidden, kernel_size=3, padding=1, bias=False)
        self.act = nn.SiLU()
        self.heads = nn.ModuleDict({str(w): nn.Linear(hidden, w) for w in widths})
        for head in self.heads.values():
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    @staticmethod
    def in_channels(variant: str) -> int:
        if variant not in VARIANT_CHANNELS:
            raise ValueError(f"variant {variant!r} is unknown; expected one of {sorted(VARIANT_CHANNELS)}")
        return VARIANT_CHANNELS[variant]

    def pixel_features(self, guide: torch.Tensor) -> tuple[torch.Tensor, list[tuple[slice, slice]]]:
        """Per-pixel features (N, hidden, h, w) on one window per frame, and the windows (rows, cols).

        Every window has the same size and contains its frame's subject support; outside the support
        the features are exactly 0. Computing on windows gives exactly the whole-frame result: outside
        the support the guide is 0 and the hidden features and P are masked to 0, so the convolutions'
        zero padding at a window's border reads what the whole frame holds there. The cost is the
        subject's area instead of the frame's.
        """
        expected = VARIANT_CHANNELS[self.config.variant]
        if guide.ndim != 4 or guide.shape[1] != expected:
            raise ValueError(
                f"guide must have shape (N, {expected}, H, W) for variant {self.config.variant!r}, got {tuple(guide.shape)}"
            )
        height, width = guide.shape[-2:]
        support = (guide != 0).any(dim=1, keepdim=True)
        windows = _subject_windows(support)
        encoding = positional_encoding(height, width, self.config.num_frequencies, guide.device, guide.dtype)
        guide_windows = torch.stack([guide[i, :, rows, cols] for i, (rows, cols) in enumerate(windows)])
        support_windows = torch.stack([support[i, :, rows, cols] for i, (rows, cols) in enumerate(windows)])
        support_windows = support_windows.to(guide.dtype)
        encoding_windows = torch.stack([encoding[:, rows, cols] for rows, cols in windows]) * support_windows

        hidden_states = self.act(self.conv_in(guide_windows)) * support_windows
        hidden_states = torch.cat([hidden_states, encoding_windows], dim=1)
        hidden_states = self.act(self.conv_mid(hidden_states)) * support_windows
        return hidden_states, windows

    def encode(self, guide: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The shared motion representation (N, hidden): pixel features summed and divided by H * W * alpha.

        With alpha = the support's share of pixels this is the mean over the subject. A frame without a
        subject (alpha == 0, empty guide) gets a zero vector.
        """
        if alpha.shape != (guide.shape[0],):
            raise ValueError(f"alpha must have shape ({guide.shape[0]},) to match guide, got {tuple(alpha.shape)}")
        if bool(((alpha < 0) | (alpha > 1)).any()):
            raise ValueError("alpha (subject share of pixels) must lie in [0, 1]")
        features, _ = self.pixel_features(guide)
        height, width = guide.shape[-2:]
        # in float32: in half precision a large subject's sum and pixel count overflow
        summed = features.sum(dim=(2, 3), dtype=torch.float32)
        area = alpha.to(torch.float32)[:, None] * (height * width)
        pooled = torch.where(area > 0, summed / area.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
        return pooled.to(features.dtype)

    def forward(self, guide: torch.Tensor, alpha: torch.Tensor) -> dict[int | tuple[int, int], torch.Tensor]:
        if self.config.layout == "spatial":
            return self.pixel_vectors(guide)
        motion = self.encode(guide, alpha)
        return {int(width): head(motion) for width, head in self.heads.items()}

    def pixel_vectors(self, guide: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
        """Spatial layout: {(width, downsample): (N, h, w, width)}, h = H / (latent_factor * downsample).

        Per cell: coverage * head(sum of the cell's subject features / its subject pixels), i.e. the
        head of the area-pooled features with its bias weighted by coverage; 0 where no subject is.
        """
        features, windows = self.pixel_features(guide)
        support = (guide != 0).any(dim=1, keepdim=True).to(features.dtype)
        frames = features.new_zeros(guide.shape[0], features.shape[1], *guide.shape[-2:])
        for index, (rows, cols) in enumerate(windows):
            frames[index, :, rows, cols] = features[index]
        vectors = {}
        for width, downsample in self.slots:
            stride = self.config.latent_factor * downsample
            if guide.shape[-2] % stride or guide.shape[-1] % stride:
                raise ValueError(f"guide of {tuple(guide.shape[-2:])} pixels does not divide into cells of {stride}")
            pooled = F.avg_pool2d(frames, stride).permute(0, 2, 3, 1)
            coverage = F.avg_pool2d(support, stride).permute(0, 2, 3, 1)
            head = self.heads[str(width)]
            vectors[(width, downsample)] = F.linear(pooled, head.weight) + coverage * head.bias
        return vectors


def _subject_windows(support: torch.Tensor) -> list[tuple[slice, slice]]:
    """One (rows, cols) window per frame, all of the same size, each containing its frame's support."""
    height, width = support.shape[-2:]
    rows_any = support.any(dim=(1, 3))  # (N, H)
    cols_any = support.any(dim=(1, 2))  # (N, W)
    windows_bounds = []
    for occupied, length in ((rows_any, height), (cols_any, width)):
        index = torch.arange(length, device=support.device)
        first = torch.where(occupied, index, length).amin(dim=1)
        last = torch.where(occupied, index, -1).amax(dim=1)
        extent = int((last - first + 1).clamp_min(1).max())
        starts = first.clamp(max=length - extent).clamp_min(0).tolist()
        windows_bounds.append([slice(start, start + extent) for start in starts])
    return list(zip(*windows_bounds))


def motion_guide_config(
    variant: str, layout: str, slots: Sequence[tuple[int, int]], latent_factor: int, hidden: int, coarse: bool
) -> dict:
    """MotionGuide's config for a video model with these motion slots ((width, downsample) per temporal
    layer): pooled, heads for every width; spatial, every slot, or with `coarse` only the lowest-resolution ones."""
    slots = sorted(set(slots))
    widths = sorted({width for width, _ in slots})
    if layout == "pooled":
        return {"variant": variant, "widths": widths, "hidden": hidden}
    if coarse:
        lowest = max(downsample for _, downsample in slots)
        slots = [slot for slot in slots if slot[1] == lowest]
    return {
        "variant": variant,
        "widths": sorted({width for width, _ in slots}),
        "hidden": hidden,
        "layout": layout,
        "slots": [list(slot) for slot in slots],
        "latent_factor": latent_factor,
    }


class SubjectMotionGuides(nn.Module):
    """One MotionGuide per subject of a clip, injected per token: V = W_V(z + lambda * sum_k m_k * phi_k).

    Subject k's MotionGuide sees only its own guide (C ⊙ D on its pixels, its alpha). The spatial layout's
    per-pixel vectors are already weighted by the subject's coverage of each cell and 0 elsewhere, so they
    are summed as they are; a pooled vector is placed on its subject's cells, weighted by the subject's
    mask area-pooled to the layer (m_k). The background gets none. With one subject and the spatial layout
    this is exactly that subject's MotionGuide (the same per-pixel path, `MotionGuideValueProcessor`).
    """

    def __init__(self, guide_config: dict, subjects: Sequence[int], slots: Sequence[Sequence[int]], latent_factor: int):
        super().__init__()
        self.subjects = tuple(int(subject) for subject in subjects)
        if not self.subjects or len(set(self.subjects)) != len(self.subjects):
            raise ValueError(f"subjects {self.subjects} must be distinct ids")
        self.slots = tuple((int(width), int(downsample)) for width, downsample in slots)
        self.latent_factor = int(latent_factor)
        self.guides = nn.ModuleList(MotionGuide(**guide_config) for _ in self.subjects)

    @property
    def guide_config(self) -> dict:
        return dict(self.guides[0].config)

    def forward(self, guide: torch.Tensor, alpha: torch.Tensor, labels: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
        """guide (N, Cin, H, W) of all subjects, alpha (N, K) each subject's share, labels (N, H, W) the
        subject ids -> per-pixel vectors {(width, downsample): (N, h, w, width)}."""
        if alpha.shape != (guide.shape[0], len(self.subjects)):
            raise ValueError(
                f"alpha must have shape ({guide.shape[0]}, {len(self.subjects)}) (frames, subjects), got {tuple(alpha.shape)}"
            )
        if labels.shape != (guide.shape[0], *guide.shape[-2:]):
            raise ValueError(f"labels must have shape {(guide.shape[0], *guide.shape[-2:])}, got {tuple(labels.shape)}")
        total: dict[tuple[int, int], torch.Tensor] = {}
        for index, (subject, motion_guide) in enumerate(zip(self.subjects, self.guides)):
            member = (labels == subject).unsqueeze(1).to(guide.dtype)
            own = motion_guide(guide * member, alpha[:, index])
            if motion_guide.config.layout == "pooled":
                own = {
                    (width, downsample): F.avg_pool2d(member, self.latent_factor * downsample)[:, 0, :, :, None]
                    * own[width][:, None, None, :]
                    for width, downsample in self.slots
                }
            for key, vectors in own.items():
                total[key] = vectors if key not in total else total[key] + vectors
        return total
