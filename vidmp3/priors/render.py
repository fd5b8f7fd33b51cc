"""Exact priors for rendered clips, from the renderer's truth (`vidmp3.synthetic`).

The frames stage samples the rendered clip (frame_indices), crops it (crop_box) and resizes it to
`size`; the truth is taken through the same sampling here. Each pixel of a processed frame is
given the subject surface point of the source pixel nearest its centre (or, off the subject, the
nearest subject pixel's point, so a mask that is slightly larger than the rendered one still gets
a point). That object-space point, placed by frame 0's pose and projected by the camera, is its
exact match in frame 0 (even where frame 0 sees the point's face from behind: it projects inside
frame 0's silhouette); its camera z in its own frame is its exact depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from vidmp3.errors import InputError
from vidmp3.frames import crop_box
from vidmp3.scene import Camera, RenderedClip, pose_matrix


@dataclass
class AlignedTruth:
    """Render truth resampled onto the processed frames (N,H,W): what the render backends need."""

    object_coords: np.ndarray  # float32 (N,H,W,3) nearest subject point in object space, NaN if none
    first_depth: np.ndarray  # float32 (H_src,W_src) source depth of frame 0 (which points frame 0 sees)
    poses: np.ndarray  # float64 (N,6) pose of each processed frame
    camera: Camera  # the renderer's camera, in source pixels
    box: tuple[int, int, int, int]  # source box (left, top, right, bottom) resized to the frame size
    size: tuple[int, int]  # processed (width, height)

    def source_to_frame(self, uv: np.ndarray) -> np.ndarray:
        """Source pixel positions (..., 2) -> processed-frame pixel positions (integer pixel centres)."""
        left, top, right, bottom = self.box
        scale = np.array([self.size[0] / (right - left), self.size[1] / (bottom - top)])
        return (uv + 0.5 - np.array([left, top])) * scale - 0.5

    def frame_to_source(self, xy: np.ndarray) -> np.ndarray:
        left, top, right, bottom = self.box
        scale = np.array([(right - left) / self.size[0], (bottom - top) / self.size[1]])
        return (xy + 0.5) * scale + np.array([left, top]) - 0.5


def align_truth(truth: RenderedClip, frames_attrs: dict[str, Any]) -> AlignedTruth:
    """Resample `truth` like the frames stage sampled the clip (its attrs on the `frames` array)."""
    indices = list(frames_attrs["frame_indices"])
    source_width, source_height = frames_attrs["source_size"]
    if (truth.camera.width, truth.camera.height) != (source_width, source_height):
        raise InputError(
            f"render truth is {truth.camera.width}x{truth.camera.height} but the video's source "
            f"{frames_attrs['source']} is {source_width}x{source_height}: not the same clip"
        )
    if max(indices) >= len(truth.poses):
        raise InputError(f"render truth has {len(truth.poses)} frames but the video takes source frame {max(indices)}")
    size = tuple(frames_attrs["size"])
    aligned = AlignedTruth(
        object_coords=np.empty((len(indices), size[1], size[0], 3), np.float32),
        first_depth=truth.depth[indices[0]],
        poses=truth.poses[indices],
        camera=truth.camera,
        box=crop_box(source_width, source_height, size, frames_attrs["crop"]),
        size=size,
    )
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]]
    source = np.rint(aligned.frame_to_source(np.stack([xs, ys], axis=-1))).astype(int)
    columns = np.clip(source[..., 0], 0, source_width - 1)
    rows = np.clip(source[..., 1], 0, source_height - 1)
    for frame, index in enumerate(indices):
        subject = truth.mask[index]
        if not subject.any():
            aligned.object_coords[frame] = np.nan
            continue
        _, (near_rows, near_columns) = ndimage.distance_transform_edt(~subject, return_indices=True)
        aligned.object_coords[frame] = truth.object_coords[index][near_rows[rows, columns], near_columns[rows, columns]]
    return aligned


def _to_world(object_points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    matrix = pose_matrix(pose)
    return object_points @ matrix[:3, :3].T + matrix[:3, 3]


def render_matches(truth: AlignedTruth, mask: np.ndarray) -> np.ndarray:
    """Exact matches (N,H,W,2): each subject pixel's surface point projected into frame 0."""
    matches = np.full((*mask.shape, 2), np.nan, dtype=np.float32)
    for frame in range(len(mask)):
        points = truth.object_coords[frame][mask[frame]].astype(np.float64)
        uv, _ = truth.camera.project(_to_world(points, truth.poses[0]))
        matches[frame][mask[frame]] = truth.source_to_frame(uv)
    return matches


def render_visible_in_first(truth: AlignedTruth, mask: np.ndarray, tolerance: float = 0.01) -> np.ndarray:
    """bool (N,H,W): subject pixels whose surface point frame 0 sees (not turned away or hidden).

    A point is seen if its frame-0 camera z is within `tolerance` (relative) of frame 0's rendered
    depth at the source pixel it projects to. Only these points have a match that an image-based
    method (flow, feature matching) can find, so they are where correspondence error is measured.
    """
    visible = np.zeros(mask.shape, dtype=bool)
    height, width = truth.first_depth.shape
    for frame in range(len(mask)):
        points = truth.object_coords[frame][mask[frame]].astype(np.float64)
        uv, z = truth.camera.project(_to_world(points, truth.poses[0]))
        columns = np.clip(np.rint(uv[:, 0]).astype(int), 0, width - 1)
        rows = np.clip(np.rint(uv[:, 1]).astype(int), 0, height - 1)
        visible[frame][mask[frame]] = z <= truth.first_depth[rows, columns] * (1.0 + tolerance)
    return visible


def render_nearness(truth: AlignedTruth, mask: np.ndarray) -> np.ndarray:
    """Exact inverse depth 1/z (N,H,W) of each subject pixel's surface point in its own frame; 0 elsewhere
    (also on mask pixels of a frame whose render shows no subject at all)."""
    nearness = np.zeros(mask.shape, dtype=np.float32)
    for frame in range(len(mask)):
        points = truth.object_coords[frame][mask[frame]].astype(np.float64)
        _, z = truth.camera.project(_to_world(points, truth.poses[frame]))
        nearness[frame][mask[frame]] = np.nan_to_num(1.0 / z, nan=0.0)
    return nearness
