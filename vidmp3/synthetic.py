"""Synthetic clips with exact ground truth: one textured 3D primitive moving over a ground plane.

A small numpy ray caster (no GPU, no OpenGL). Each frame comes with exact depth, the subject mask,
the subject's object-space coordinate at every pixel (so one surface point keeps one colour in every
frame: the paper's gradient-coloured cube) and the 6-DoF pose, so the correspondence, depth and
mask priors can be checked against the truth.

Conventions
- World: metres, y up, the ground is the plane y = 0.
- Camera: OpenCV pinhole (x right, y down, z forward); `depth` is camera z, not ray length.
  Pixel (row i, column j) has its centre at u = j, v = i (integer centres, like the `matches` of
  the correspondence backends), so a pixel spans [j - 0.5, j + 0.5].
- Pose (tx, ty, tz, rx, ry, rz): object_to_world = [R | t] with R = Rz(rz) @ Ry(ry) @ Rx(rx)
  (extrinsic x, then y, then z: scipy's `Rotation.from_euler("xyz", ...)`).
- Object space: the subject is centred on its bounding box, whose extents are `SubjectSpec.size`;
  cylinders, cones and pyramids have their axis along object y, apex (if any) at +y.

Anti-aliasing: every pixel casts supersample x supersample rays on a regular grid; frames are the
box-filtered mean and `coverage` is the subject share of the rays; `mask` = coverage >= 0.5. For a
subject pixel, `depth`, `object_coords` and `gradient` come from the subject ray nearest the pixel
centre: a true surface point (no averaging), within (s - 1) / 2s pixel of the centre per axis and
exactly at the centre wherever the centre ray hits the subject (odd s). For any other pixel `depth`
is the ground's (or +inf for sky) along the ray nearest the centre, so depth never mixes surfaces.

Shading is Lambert + ambient under one fixed light; the subject casts a soft contact shadow (frames
only; the truth has no shadow term). A `Backdrop` replaces the random sky and checkered ground with two
flat colours and no shadow, so a subject can be segmented by its colour distance to the empty scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.scene import (
    SHAPES,
    Backdrop,
    Camera,
    RenderedClip,
    SubjectSpec,
    default_camera,
    pose_matrix,
    rotation_matrix,
    write_truth,
)
from vidmp3.video_io import encode_video

MOTIONS = ("large", "small")

LIGHT_DIRECTION = np.array([-0.45, 1.0, 0.6]) / np.linalg.norm([-0.45, 1.0, 0.6])  # towards the light
AMBIENT = 0.45
DIFFUSE = 0.6


_CORNERS = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T.astype(np.float64)


# Trajectory extents: (x, z) half-ranges of the path, how high the subject lifts off the ground,
# steady spin and wobble (radians), and the frequencies of the curves (cycles per clip).
_MOTION = {
    "large": {"half_range_xz": (0.62, 0.45), "lift": 0.45, "spin": np.pi, "wobble": 0.6, "cycles": (0.3, 1.1)},
    "small": {"half_range_xz": (0.12, 0.08), "lift": 0.08, "spin": 0.2, "wobble": 0.1, "cycles": (0.3, 0.9)},
}


def resting_height(subject: SubjectSpec, rotation: np.ndarray) -> float:
    """Height of the centre above the lowest point of the rotated subject (circles slightly widened)."""
    half = subject.half_extents
    if subject.shape == "sphere":
        return float(half[0])
    if subject.shape in ("cube", "box"):
        unit = _CORNERS
    elif subject.shape == "pyramid":
        unit = np.array([[0, 1, 0], [-1, -1, -1], [-1, -1, 1], [1, -1, -1], [1, -1, 1]], np.float64)
    else:
        sides = 64  # circumscribed polygon: never below the true circle
        angle = 2.0 * np.pi * np.arange(sides) / sides
        circle = np.stack([np.cos(angle), np.zeros(sides), np.sin(angle)], 1) / np.cos(np.pi / sides)
        top = [[0.0, 1.0, 0.0]] if subject.shape == "cone" else circle + [0.0, 1.0, 0.0]
        unit = np.concatenate([circle - [0.0, 1.0, 0.0], top])
    return float(-((unit * half) @ rotation[1]).min())


def make_trajectory(
    n_frames: int,
    seed: int,
    motion: str = "large",
    subject: SubjectSpec | None = None,
    reach: float = 1.0,
    tilt: float | None = None,
) -> np.ndarray:
    """Smooth random poses (N, 6) that keep the subject on or above the ground and in the default view.

    Each coordinate is a sum of three low-frequency sinusoids (in cycles per clip, so the path does
    not depend on `n_frames`); each angle also spins steadily. The height is the subject's resting
    height at that rotation plus a lift that is sometimes zero, so the subject hops, rests and slides
    on the ground. `subject` (default `SubjectSpec()`) sets the resting height; the path fits the
    default camera for subjects no larger than the default one. `reach` scales the path's
    translations (for a closer camera); with `tilt` (radians) the subject stays upright: it spins
    about the vertical axis only and leans at most `tilt` about x and z, so its silhouette keeps
    telling its shape.
    """
    if int(n_frames) != n_frames or n_frames < 1:
        raise InputError(f"n_frames {n_frames} must be a positive integer")
    if motion not in MOTIONS:
        raise InputError(f"motion {motion!r} is not one of {MOTIONS}")
    if not (np.isfinite(reach) and reach > 0):
        raise InputError(f"trajectory reach {reach} must be positive")
    if tilt is not None and not (np.isfinite(tilt) and tilt >= 0):
        raise InputError(f"trajectory tilt {tilt} must be a non-negative angle or None")
    subject = SubjectSpec() if subject is None else subject
    extent = _MOTION[motion]
    rng = np.random.default_rng(seed)
    time = np.linspace(0.0, 1.0, int(n_frames))

    def smooth_curve() -> np.ndarray:
        """A smooth curve whose largest magnitude over the clip is 1."""
        cycles = rng.uniform(*extent["cycles"], size=3)
        phases = rng.uniform(0.0, 2.0 * np.pi, size=3)
        amplitudes = rng.uniform(0.5, 1.0, size=3)

        def curve(at: np.ndarray) -> np.ndarray:
            return (amplitudes[:, None] * np.sin(2.0 * np.pi * cycles[:, None] * at[None] + phases[:, None])).sum(0)

        return curve(time) / np.abs(curve(np.linspace(0.0, 1.0, 1025))).max()

    poses = np.zeros((len(time), 6))
    for axis in range(3):
        start = rng.uniform(-np.pi, np.pi)
        spin = extent["spin"] * rng.uniform(-1.0, 1.0)
        if tilt is None or axis == 1:
            poses[:, 3 + axis] = start + spin * time + extent["wobble"] * smooth_curve()
        else:
            poses[:, 3 + axis] = tilt * smooth_curve()
    poses[:, 0] = reach * extent["half_range_xz"][0] * smooth_curve()
    poses[:, 2] = reach * extent["half_range_xz"][1] * smooth_curve()
    resting = np.array([resting_height(subject, rotation_matrix(*angles)) for angles in poses[:, 3:]])
    lift = reach * extent["lift"] * np.clip((smooth_curve() + 0.3) / 1.3, 0.0, 1.0)
    poses[:, 1] = resting + lift
    return poses


def random_poses(
    subjects: Sequence[SubjectSpec],
    seed: int,
    motion: str = "large",
    reach: float = 1.0,
    tilt: float | None = None,
) -> np.ndarray:
    """Independent poses (N, 6), one per subject, spread over the places and turns `make_trajectory` visits.

    For still-image datasets: the same arguments as a trajectory, one random instant each (uniform
    over the path's ranges), so stills and clips show subjects in the same places.
    """
    if motion not in MOTIONS:
        raise InputError(f"motion {motion!r} is not one of {MOTIONS}")
    if not (np.isfinite(reach) and reach > 0):
        raise InputError(f"pose reach {reach} must be positive")
    if tilt is not None and not (np.isfinite(tilt) and tilt >= 0):
        raise InputError(f"pose tilt {tilt} must be a non-negative angle or None")
    extent = _MOTION[motion]
    rng = np.random.default_rng(seed)
    count = len(subjects)
    poses = np.zeros((count, 6))
    poses[:, 3:] = rng.uniform(-np.pi, np.pi, size=(count, 3))
    if tilt is not None:
        poses[:, [3, 5]] = rng.uniform(-tilt, tilt, size=(count, 2))
    poses[:, 0] = reach * extent["half_range_xz"][0] * rng.uniform(-1.0, 1.0, size=count)
    poses[:, 2] = reach * extent["half_range_xz"][1] * rng.uniform(-1.0, 1.0, size=count)
    lift = reach * extent["lift"] * np.clip((rng.uniform(-1.0, 1.0, size=count) + 0.3) / 1.3, 0.0, 1.0)
    resting = [resting_height(subject, rotation_matrix(*angles)) for subject, angles in zip(subjects, poses[:, 3:])]
    poses[:, 1] = np.asarray(resting) + lift
    return poses


# ---------------------------------------------------------------------------------------------
# Ray casting. Shapes live in "unit space": object space divided by the half extents, where every
# shape fits [-1, 1]^3. A linear map keeps the ray parameter, so t stays the camera z throughout.
# The origin is one point (3,) for all rays or one per ray (M, 3), so many stills go in one call.

_CUBE_PLANES = (np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float), np.ones(6))
_PYRAMID_PLANES = (np.array([[0, -1, 0], [2, 1, 0], [-2, 1, 0], [0, 1, 2], [0, 1, -2]], float), np.ones(5))


def _intersect_planes(origin, directions, normals, offsets):
    """Entry of rays into the convex set {p : normals @ p <= offsets}; t = inf where missed."""
    along = directions @ normals.T  # (M, P)
    start = offsets - origin @ normals.T  # (P,) or (M, P)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_plane = start / along
    entering, leaving = along < 0, along > 0
    t_enter_per_plane = np.where(entering, t_plane, -np.inf)
    face = np.argmax(t_enter_per_plane, axis=1)
    t_enter = np.take_along_axis(t_enter_per_plane, face[:, None], axis=1)[:, 0]
    t_leave = np.where(leaving, t_plane, np.inf).min(axis=1)
    parallel_outside = ((along == 0) & (start < 0)).any(axis=1)
    hit = (t_enter <= t_leave) & (t_enter > 0) & ~parallel_outside
    return np.where(hit, t_enter, np.inf), normals[face]


def _quadratic_roots(a, b, c):
    """Both roots (smaller first) of a t^2 + b t + c = 0; NaN where there are none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.sqrt(b * b - 4.0 * a * c)
        first = (-b - root) / (2.0 * a)
        second = (-b + root) / (2.0 * a)
        linear = np.abs(a) < 1e-12
        first = np.where(linear, -c / b, first)
        second = np.where(linear, np.nan, second)
    return np.minimum(first, second), np.maximum(first, second)


def _nearest(candidates):
    """Smallest positive finite candidate per ray and which candidate it was."""
    stacked = np.stack(candidates, axis=1)
    stacked = np.where(np.isfinite(stacked) & (stacked > 0), stacked, np.inf)
    which = np.argmin(stacked, axis=1)
    return np.take_along_axis(stacked, which[:, None], axis=1)[:, 0], which


def _intersect_round(shape, origin, directions):
    """Entry t and unit-space normal for the sphere, cylinder and cone (axis along y)."""
    ox, oy, oz = origin.T
    dx, dy, dz = directions.T
    if shape == "sphere":
        along = (directions * origin).sum(-1)
        near, _ = _quadratic_roots((directions**2).sum(1), 2.0 * along, (origin * origin).sum(-1) - 1.0)
        t, _ = _nearest([near])
        return t, origin + np.where(np.isfinite(t), t, 0.0)[:, None] * directions

    def y_at(t):
        return oy + t * dy

    def xz_radius2_at(t):
        return (ox + t * dx) ** 2 + (oz + t * dz) ** 2

    with np.errstate(divide="ignore", invalid="ignore"):
        t_bottom = (-1.0 - oy) / dy
        t_bottom = np.where(xz_radius2_at(t_bottom) <= 1.0, t_bottom, np.nan)
        if shape == "cylinder":
            side = _quadratic_roots(dx * dx + dz * dz, 2.0 * (ox * dx + oz * dz), ox * ox + oz * oz - 1.0)
            t_top = (1.0 - oy) / dy
            t_top = np.where(xz_radius2_at(t_top) <= 1.0, t_top, np.nan)
            caps = [t_top, t_bottom]
        else:  # cone: x^2 + z^2 = ((1 - y) / 2)^2, apex at y = 1
            w = 1.0 - oy
            side = _quadratic_roots(
                dx * dx + dz * dz - dy * dy / 4.0,
                2.0 * (ox * dx + oz * dz) + w * dy / 2.0,
                ox * ox + oz * oz - w * w / 4.0,
            )
            caps = [t_bottom]
        side = [np.where(np.abs(y_at(root)) <= 1.0, root, np.nan) for root in side]
    t, which = _nearest(side + caps)
    points = origin + np.where(np.isfinite(t), t, 0.0)[:, None] * directions
    x, y, z = points.T
    if shape == "cylinder":
        normals = np.stack([x, np.zeros_like(y), z], axis=1)
        normals[which == 2] = (0.0, 1.0, 0.0)
        normals[which == 3] = (0.0, -1.0, 0.0)
    else:
        normals = np.stack([2.0 * x, (1.0 - y) / 2.0, 2.0 * z], axis=1)
        normals[which == 2] = (0.0, -1.0, 0.0)
    return t, normals


def _intersect_subject(shape, origin, directions):
    """Entry t (inf where missed) and unit-space outward normal of rays against a unit-space shape."""
    if shape in ("cube", "box"):
        return _intersect_planes(origin, directions, *_CUBE_PLANES)
    if shape == "pyramid":
        return _intersect_planes(origin, directions, *_PYRAMID_PLANES)
    return _intersect_round(shape, origin, directions)


def _checker(values: np.ndarray) -> np.ndarray:
    """1 on odd cells of a unit checkerboard over the last axis' coordinates, else 0."""
    return (np.floor(values).sum(-1) % 2).astype(np.float64)


@dataclass(frozen=True)
class _Background:
    """Per-sample colour, depth and ground position (x, z; inf off the ground) of the static scene."""

    colour: np.ndarray  # (H, W, S, 3) float32
    depth: np.ndarray  # (H, W, S)
    ground_xz: np.ndarray  # (H, W, S, 2)


def _background(camera: Camera, directions: np.ndarray, background_seed: int, backdrop: Backdrop | None) -> _Background:
    """Sky gradient and checkered ground whose colours are drawn from `background_seed`, or `backdrop`."""
    eye = camera.centre
    on_ground = (directions[..., 1] < 0) & (eye[1] > 0)
    with np.errstate(divide="ignore"):
        t_ground = np.where(on_ground, -eye[1] / directions[..., 1], np.inf)
    ground_xz = np.where(on_ground[..., None], eye[[0, 2]] + t_ground[..., None] * directions[..., [0, 2]], np.inf)
    if backdrop is not None:
        colour = np.where(on_ground[..., None], backdrop.ground, backdrop.sky)
        return _Background(colour=colour.astype(np.float32), depth=t_ground, ground_xz=ground_xz)

    rng = np.random.default_rng(background_seed)
    zenith = rng.uniform([0.15, 0.3, 0.55], [0.45, 0.6, 0.95])
    horizon = rng.uniform([0.65, 0.65, 0.65], [0.95, 0.92, 0.9])
    ground_light = rng.uniform(0.45, 0.8, size=3)
    ground_dark = ground_light * rng.uniform(0.55, 0.8)
    cell = rng.uniform(0.35, 0.7)
    angle = rng.uniform(0.0, np.pi / 2)
    length = np.linalg.norm(directions, axis=-1)
    elevation = np.clip(directions[..., 1] / length, 0.0, 1.0) ** 0.6
    sky = horizon + (zenith - horizon) * elevation[..., None]
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    cells = np.where(on_ground[..., None], ground_xz, 0.0) @ (rotation.T / cell)
    ground = ground_dark + (ground_light - ground_dark) * _checker(cells)[..., None]
    ground = ground * (AMBIENT + DIFFUSE * LIGHT_DIRECTION[1])
    haze = 1.0 - np.exp(-np.where(on_ground, t_ground * length, 0.0) / 25.0)  # far checks fade out
    ground = ground + (horizon - ground) * haze[..., None]
    colour = np.where(on_ground[..., None], ground, sky)
    return _Background(colour=colour.astype(np.float32), depth=t_ground, ground_xz=ground_xz)  # colour ends as uint8


def _sample_offsets(supersample: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel (du, dv) of the supersample grid, ordered from the pixel centre outwards."""
    steps = (np.arange(supersample) + 0.5) / supersample - 0.5
    du, dv = np.meshgrid(steps, steps, indexing="xy")
    du, dv = du.ravel(), dv.ravel()
    order = np.lexsort((np.arange(du.size), du * du + dv * dv))
    return du[order], dv[order]


def _rays_through(camera: Camera, pixels: np.ndarray) -> np.ndarray:
    """World directions of the rays through pixel positions (..., 2), scaled so the ray parameter is camera z."""
    homogeneous = np.concatenate([pixels, np.ones((*pixels.shape[:-1], 1))], axis=-1)
    return homogeneous @ (camera.world_to_camera[:3, :3].T @ np.linalg.inv(camera.K)).T


def _ray_directions(camera: Camera, supersample: int) -> np.ndarray:
    """World directions (H, W, S, 3) of every pixel's supersample rays."""
    du, dv = _sample_offsets(supersample)
    rows, cols = np.meshgrid(np.arange(camera.height), np.arange(camera.width), indexing="ij")
    return _rays_through(camera, np.stack([cols[..., None] + du, rows[..., None] + dv], axis=-1))


def _pixel_window(points_world: np.ndarray, camera: Camera) -> tuple[slice, slice] | None:
    """Rows and columns covering the projection of a convex set's corner points (None if outside)."""
    pixels, z = camera.project(points_world)
    if np.any(z <= 1e-6):
        return slice(0, camera.height), slice(0, camera.width)
    low = np.floor(pixels.min(0)).astype(int) - 1
    high = np.ceil(pixels.max(0)).astype(int) + 2
    rows = slice(max(low[1], 0), min(high[1], camera.height))
    cols = slice(max(low[0], 0), min(high[0], camera.width))
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return None
    return rows, cols


def _union(first: tuple[slice, slice] | None, second: tuple[slice, slice] | None) -> tuple[slice, slice] | None:
    if first is None or second is None:
        return first or second
    return tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(first, second))


def _within(inner: tuple[slice, slice], outer: tuple[slice, slice]) -> tuple[slice, slice]:
    """`inner` in the coordinates of the `outer` window that contains it."""
    return tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))


def _contact_shadow(ground_xz: np.ndarray, centre: np.ndarray, clearance: float, radius: float) -> np.ndarray:
    """Soft dark blob on the ground under the subject, fading as it rises: it grounds the subject."""
    strength = 0.5 * np.exp(-max(clearance, 0.0) / radius)
    spread = 0.6 * radius
    distance2 = ((ground_xz - centre[[0, 2]]) ** 2).sum(-1)
    return 1.0 - strength * np.exp(-distance2 / (2.0 * spread**2))


@dataclass(frozen=True)
class _View:
    """What every frame seen by one camera shares: its rays and the empty scene they meet."""

    camera: Camera
    directions: np.ndarray  # (H, W, S, 3)
    background: _Background
    empty: np.ndarray  # (H, W, 3) float32 colour of the empty scene
    shadow: bool  # whether the subject darkens the ground under it


def _view(
    poses: np.ndarray,
    height: int,
    width: int,
    camera: Camera | None,
    background_seed: int,
    backdrop: Backdrop | None,
    supersample: int,
) -> _View:
    """Check the render inputs and prepare the rays and background they share."""
    if poses.ndim != 2 or poses.shape[1] != 6 or len(poses) == 0 or not np.all(np.isfinite(poses)):
        raise InputError(f"poses must be a finite (N, 6) array with N >= 1, got shape {poses.shape}")
    if height % 8 or width % 8 or height < 8 or width < 8:
        raise InputError(f"frame size {width}x{height} must be positive multiples of 8")
    if int(supersample) != supersample or supersample < 1:
        raise InputError(f"supersample {supersample} must be a positive integer")
    camera = default_camera(width, height) if camera is None else camera
    if (camera.width, camera.height) != (width, height):
        raise InputError(f"camera size {camera.width}x{camera.height} differs from the frame size {width}x{height}")
    directions = _ray_directions(camera, int(supersample))
    background = _background(camera, directions, background_seed, backdrop)
    empty = background.colour.mean(axis=2)
    return _View(camera=camera, directions=directions, background=background, empty=empty, shadow=backdrop is None)


_SHADOW_SQUARE = np.array([[-2.0, 0.0, -2.0], [-2.0, 0.0, 2.0], [2.0, 0.0, -2.0], [2.0, 0.0, 2.0]])


def render_clip(
    subject: SubjectSpec,
    poses: np.ndarray,
    height: int,
    width: int,
    camera: Camera | None = None,
    background_seed: int = 0,
    supersample: int = 3,
    backdrop: Backdrop | None = None,
) -> RenderedClip:
    """Render `subject` at each pose (N, 6) over the ground and sky (or `backdrop`); frames plus exact truth."""
    poses = np.asarray(poses, dtype=np.float64)
    view = _view(poses, height, width, camera, background_seed, backdrop, supersample)
    camera, directions, background = view.camera, view.directions, view.background
    eye = camera.centre
    background_depth = background.depth[:, :, 0]  # the sample nearest the pixel centre

    n_frames = len(poses)
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    depth = np.empty((n_frames, height, width), np.float32)
    coverage = np.zeros((n_frames, height, width), np.float32)
    object_coords = np.full((n_frames, height, width, 3), np.nan, np.float32)
    half = subject.half_extents
    radius = subject.bounding_radius
    for index in tqdm(range(n_frames), desc="render", unit="frame", leave=False, disable=n_frames < 32):
        colour = view.empty.copy()
        depth[index] = background_depth
        object_to_world = pose_matrix(poses[index])
        rotation, translation = object_to_world[:3, :3], object_to_world[:3, 3]
        subject_window = _pixel_window(_CORNERS * half @ rotation.T + translation, camera)
        window = subject_window
        if view.shadow:
            shadow_window = _pixel_window(_SHADOW_SQUARE * radius + translation * [1.0, 0.0, 1.0], camera)
            window = _union(subject_window, shadow_window)
        if window is None:
            frames[index] = np.round(np.clip(colour, 0.0, 1.0) * 255.0).astype(np.uint8)
            continue
        samples = background.colour[window].copy()
        if view.shadow:
            clearance = translation[1] - resting_height(subject, rotation)
            shadow = _contact_shadow(background.ground_xz[window], translation, clearance, radius)
            samples *= shadow[..., None].astype(np.float32)
        if subject_window is not None:
            shape = directions[subject_window].shape[:3]
            unit_origin = (rotation.T @ (eye - translation)) / half
            unit_directions = (directions[subject_window].reshape(-1, 3) @ rotation) / half
            t, unit_normals = _intersect_subject(subject.shape, unit_origin, unit_directions)
            hit = t < background.depth[subject_window].reshape(-1)  # the ground may hide a sunken subject
            t = np.where(hit, t, 0.0)
            unit_points = unit_origin + t[:, None] * unit_directions
            subject_samples = samples[_within(subject_window, window)].reshape(-1, 3)
            subject_samples[hit] = _shade(subject, unit_points[hit], unit_normals[hit], rotation)
            samples[_within(subject_window, window)] = subject_samples.reshape(*shape, 3)

            hit = hit.reshape(shape)
            window_coverage = hit.mean(axis=2)
            subject_pixel = window_coverage >= 0.5
            nearest = np.argmax(hit, axis=2)[..., None]  # samples are ordered from the centre outwards
            chosen_t = np.take_along_axis(t.reshape(shape), nearest, axis=2)[..., 0]
            chosen_points = np.take_along_axis(unit_points.reshape(*shape, 3), nearest[..., None], axis=2)[:, :, 0]
            coverage[index][subject_window] = window_coverage
            depth[index][subject_window] = np.where(subject_pixel, chosen_t, background_depth[subject_window])
            object_coords[index][subject_window] = np.where(subject_pixel[..., None], chosen_points * half, np.nan)
        colour[window] = samples.mean(axis=2)
        frames[index] = np.round(np.clip(colour, 0.0, 1.0) * 255.0).astype(np.uint8)

    mask = coverage >= 0.5
    gradient = np.where(mask[..., None], (object_coords / half + 1.0) / 2.0, 0.0).astype(np.float32)
    return RenderedClip(
        frames=frames,
        depth=depth,
        mask=mask,
        coverage=coverage,
        object_coords=object_coords,
        gradient=gradient,
        poses=poses.copy(),
        camera=camera,
        subject=subject,
    )


def render_empty(
    height: int,
    width: int,
    camera: Camera | None = None,
    background_seed: int = 0,
    supersample: int = 3,
    backdrop: Backdrop | None = None,
) -> np.ndarray:
    """The scene without its subject, uint8 (H, W, 3); over a backdrop (no shadow) frames show exactly this off it."""
    view = _view(np.zeros((1, 6)), height, width, camera, background_seed, backdrop, supersample)
    return np.round(np.clip(view.empty, 0.0, 1.0) * 255.0).astype(np.uint8)


def render_stills(
    subjects: Sequence[SubjectSpec],
    poses: np.ndarray,
    height: int,
    width: int,
    backdrop: Backdrop,
    camera: Camera | None = None,
    supersample: int = 3,
    chunk: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 (N,H,W,3) and masks bool (N,H,W) of one subject per pose, as `render_clip` draws them.

    For image datasets, far faster than one frame at a time: stills of one shape are ray cast
    `chunk` at a time, only the rays that pass within the subject's bounding sphere. Only over a
    `backdrop`, which takes no shadow.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if len(subjects) != len(poses):
        raise InputError(f"render_stills got {len(subjects)} subjects for {len(poses)} poses")
    if int(chunk) != chunk or chunk < 1:
        raise InputError(f"render_stills chunk {chunk} must be a positive integer")
    view = _view(poses, height, width, camera, 0, backdrop, supersample)
    directions = view.directions.reshape(-1, 3)
    unit_view = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    background_colour = view.background.colour.reshape(-1, 3)
    background_depth = view.background.depth.reshape(-1)
    eye = view.camera.centre
    frames = np.empty((len(poses), height, width, 3), np.uint8)
    masks = np.empty((len(poses), height, width), bool)
    shapes = np.array([subject.shape for subject in subjects])
    groups = [np.flatnonzero(shapes == shape) for shape in SHAPES]
    groups = [group[at : at + int(chunk)] for group in groups for at in range(0, len(group), int(chunk))]
    for group in tqdm(groups, desc="render", unit="chunk", leave=False, disable=len(groups) < 64):
        rotations = np.stack([pose_matrix(poses[index])[:3, :3] for index in group])
        half = np.stack([subjects[index].half_extents for index in group])
        radius = np.linalg.norm(half, axis=1)
        offsets = poses[group, :3] - eye
        along = offsets @ unit_view.T  # (n, rays) distance along each ray to the point nearest the centre
        near = ((offsets**2).sum(1)[:, None] - along**2 <= (radius[:, None] * 1.001) ** 2) & (along > -radius[:, None])
        image, ray = np.nonzero(near)
        unit_origins = (np.swapaxes(rotations, 1, 2) @ -offsets[..., None])[..., 0] / half
        unit_directions = np.einsum("mj,mji->mi", directions[ray], rotations[image]) / half[image]
        t, unit_normals = _intersect_subject(shapes[group[0]], unit_origins[image], unit_directions)
        hit = t < background_depth[ray]
        image, ray, unit_normals = image[hit], ray[hit], unit_normals[hit]
        unit_points = unit_origins[image] + t[hit, None] * unit_directions[hit]
        samples = np.tile(background_colour, (len(group), 1, 1))
        covered = np.zeros((len(group), len(directions)), bool)
        covered[image, ray] = True
        bounds = np.searchsorted(image, np.arange(len(group) + 1))  # hits come sorted by image
        for row, index in enumerate(group):
            mine = slice(bounds[row], bounds[row + 1])
            samples[row, ray[mine]] = _shade(subjects[index], unit_points[mine], unit_normals[mine], rotations[row])
        samples = samples.reshape(len(group), height, width, -1, 3)
        frames[group] = np.round(np.clip(samples.mean(axis=3), 0.0, 1.0) * 255.0).astype(np.uint8)
        masks[group] = covered.reshape(len(group), height, width, -1).mean(axis=3) >= 0.5
    return frames, masks


def true_matches(clip: RenderedClip, reference: int = 0) -> np.ndarray:
    """Exact `matches` (N, H, W, 2): where each subject pixel's surface point shows in frame `reference`.

    The point is moved by the two poses and projected; it counts as shown only if the reference
    frame's ray through that position meets the subject first exactly there (not self-occluded,
    not hidden by the ground, inside the image). NaN elsewhere, like the correspondence backends.
    """
    if not 0 <= reference < len(clip.poses):
        raise InputError(f"reference frame {reference} is outside the clip's {len(clip.poses)} frames")
    camera, half = clip.camera, clip.subject.half_extents
    object_to_world = pose_matrix(clip.poses[reference])
    rotation, translation = object_to_world[:3, :3], object_to_world[:3, 3]
    matches = np.full((*clip.mask.shape, 2), np.nan, np.float32)
    frame, rows, cols = np.nonzero(clip.mask)
    points = clip.object_coords[frame, rows, cols].astype(np.float64)
    pixels, z = camera.project(points @ rotation.T + translation)
    inside = (z > 0) & (pixels[:, 0] >= -0.5) & (pixels[:, 0] <= camera.width - 0.5)
    inside &= (pixels[:, 1] >= -0.5) & (pixels[:, 1] <= camera.height - 0.5)
    rays = _rays_through(camera, pixels)
    eye = camera.centre
    t, _ = _intersect_subject(clip.subject.shape, (rotation.T @ (eye - translation)) / half, (rays @ rotation) / half)
    with np.errstate(divide="ignore", invalid="ignore"):
        ground = np.where(rays[:, 1] < 0, -eye[1] / rays[:, 1], np.inf)
    shown = inside & (np.abs(t - z) <= 1e-6 * z) & (t < ground)
    matches[frame[shown], rows[shown], cols[shown]] = pixels[shown]
    return matches


def _shade(subject: SubjectSpec, unit_points: np.ndarray, unit_normals: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Lambert + ambient colour of subject samples; the texture follows the object-space point."""
    if subject.texture == "gradient":
        albedo = (unit_points + 1.0) / 2.0
    elif subject.texture == "checker":
        albedo = np.asarray(subject.colour) * (0.55 + 0.45 * _checker((unit_points + 1.0) * 2.0))[:, None]
    else:
        albedo = np.broadcast_to(np.asarray(subject.colour), unit_points.shape)
    normals = unit_normals / subject.half_extents  # unit space back to object space (inverse transpose)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    lambert = np.clip(normals @ (rotation.T @ LIGHT_DIRECTION), 0.0, 1.0)
    return albedo * (AMBIENT + DIFFUSE * lambert)[:, None]


# ---------------------------------------------------------------------------------------------
# Files.


def write_clip(clip: RenderedClip, out_video, out_masks_dir, out_truth_zarr, fps: float) -> None:
    """Write the H.264 video, DAVIS-style 0/255 mask PNGs and the Zarr truth; all or nothing."""
    if not fps > 0:
        raise InputError(f"fps {fps} must be positive")
    # Nested: a failure in any writer removes all three temporaries, so nothing is left behind.
    with atomic_path(out_video) as video_tmp, atomic_path(out_masks_dir) as masks_tmp:
        with atomic_path(out_truth_zarr) as truth_tmp:
            encode_video(clip.frames, video_tmp, fps, crf=10)
            _write_masks(clip.mask, masks_tmp)
            write_truth(clip, truth_tmp, fps)


def _write_masks(mask: np.ndarray, folder: Path) -> None:
    folder.mkdir()
    for index, frame_mask in enumerate(mask):
        if not cv2.imwrite(str(folder / f"{index:05d}.png"), frame_mask.astype(np.uint8) * 255):
            raise OSError(f"could not write mask {index:05d}.png")


def render_configured_clip(spec: dict, video, masks, truth) -> None:
    """Render one clip of the config's `render: clips:` section and write it like a real clip."""
    subject = SubjectSpec(shape=spec["shape"], size=tuple(spec["size"]), colour=tuple(spec["colour"]), texture=spec["texture"])
    poses = make_trajectory(spec["frames"], seed=spec["trajectory_seed"], motion=spec["motion"], subject=subject)
    clip = render_clip(
        subject, poses, spec["height"], spec["width"], background_seed=spec["background_seed"], supersample=spec["supersample"]
    )
    write_clip(clip, video, masks, truth, fps=spec["fps"])
