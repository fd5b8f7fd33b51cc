"""The priors strip of one video, like the paper's Fig. 4: frame, correspondence, segmented depth, C ⊙ D."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vidmp3.atomic import atomic_path

ROWS = ("frame", "correspondence C", "depth D (near bright)", "C ⊙ D")


def priors_figure(
    frames: np.ndarray,
    corr: np.ndarray,
    depth: np.ndarray,
    guide: np.ndarray,
    path: str | os.PathLike,
    columns: int = 4,
) -> None:
    """Write a PNG with one column per sampled frame (first and last included) and one row per prior."""
    count = len(frames)
    picked = np.unique(np.linspace(0, count - 1, min(columns, count)).round().astype(int))
    height, width = frames.shape[1:3]
    panel = 2.0
    figure = Figure(figsize=(panel * len(picked) * width / height + 1.2, panel * len(ROWS)))
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(ROWS), len(picked), squeeze=False)
    for column, index in enumerate(picked):
        images = (
            frames[index],
            corr[index].astype(np.float32),
            depth[index].astype(np.float32),
            guide[index].astype(np.float32).transpose(1, 2, 0),
        )
        for row, image in enumerate(images):
            axis = axes[row, column]
            axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(f"frame {index}", fontsize=9)
            if column == 0:
                axis.set_ylabel(ROWS[row], fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
