"""The scene of a synthetic clip and its exact truth: subject, backdrop, camera, poses and truth I/O.

What priors, metrics and experiments need to read a rendered clip, without the renderer
(`vidmp3.synthetic`). Conventions (world, camera, pose, object space) are in that module's docstring.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vidmp3.errors import InputError
from vidmp3.store import read_array, read_group_attrs, write_array, write_group

SHAPES = ("cube", "box", "sphere", "cylinder", "cone", "pyramid")
TEXTURES = ("gradient", "checker", "plain")
TRUTH_ARRAYS = ("frames", "depth", "mask", "coverage", "object_coords", "gradient", "poses")  # in the truth group

# Default view: a pinhole a few metres from the scene centre, slightly above it.
DEFAULT_EYE = (0.0, 1.35, 3.6)
DEFAULT_TARGET = (0.0, 0.55, 0.0)
DEFAULT_FOV_DEG = 50.0


@dataclass(frozen=True)
class SubjectSpec:
    """The one subject of a clip; `size` are its object-space extents (x, y, z) in metres."""

    shape: str = "cube"
    size: tuple[float, float, float] = (0.8, 0.8, 0.8)
    colour: tuple[float, float, float] = (0.85, 0.35, 0.2)
    texture: str = "gradient"

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise InputError(f"subject shape {self.shape!r} is not one of {SHAPES}")
        if self.texture not in TEXTURES:
            raise InputError(f"subject texture {self.texture!r} is not one of {TEXTURES}")
        size = tuple(float(v) for v in self.size)
        colour = tuple(float(v) for v in self.colour)
        if len(size) != 3 or not all(np.isfinite(v) and v > 0 for v in size):
            raise InputError(f"subject size {self.size!r} must be three positive extents")
        if self.shape in ("cube", "sphere") and not np.allclose(size, size[0]):
            raise InputError(f"subject size {self.size!r}: a {self.shape} needs three equal extents")
        if len(colour) != 3 or not all(0.0 <= v <= 1.0 for v in colour):
            raise InputError(f"subject colour {self.colour!r} must be three values in [0, 1]")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "colour", colour)

    @property
    def half_extents(self) -> np.ndarray:
        return np.asarray(self.size) / 2.0

    @property
    def bounding_radius(self) -> float:
        """Radius of the sphere around the bounding box: the subject never reaches beyond it."""
        return float(np.linalg.norm(self.half_extents))


@dataclass(frozen=True)
class Backdrop:
    """A plain scene: flat sky and flat ground colours (RGB in [0, 1]), no shading and no shadow."""

    sky: tuple[float, float, float]
    ground: tuple[float, float, float]

    def __post_init__(self) -> None:
        for name in ("sky", "ground"):
            colour = tuple(float(v) for v in getattr(self, name))
            if len(colour) != 3 or not all(0.0 <= v <= 1.0 for v in colour):
                raise InputError(f"backdrop {name} colour {getattr(self, name)!r} must be three values in [0, 1]")
            object.__setattr__(self, name, colour)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: intrinsics `K`, extrinsics `world_to_camera` (OpenCV axes), image size."""

    K: np.ndarray
    world_to_camera: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        world_to_camera = np.asarray(self.world_to_camera, dtype=np.float64)
        if K.shape != (3, 3) or not np.allclose(K[2], [0.0, 0.0, 1.0]):
            raise InputError(f"camera K must be a 3x3 intrinsics matrix with last row (0, 0, 1), got {K}")
        if world_to_camera.shape != (4, 4):
            raise InputError(f"camera world_to_camera must be 4x4, got shape {world_to_camera.shape}")
        if int(self.width) < 1 or int(self.height) < 1:
            raise InputError(f"camera size {self.width}x{self.height} must be positive")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "world_to_camera", world_to_camera)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def looking_at(cls, eye, target, fov_deg: float, width: int, height: int) -> Camera:
        """Camera at `eye` looking at `target`, world y up; `fov_deg` spans the shorter image side."""
        eye = np.asarray(eye, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - eye
        if np.linalg.norm(forward) == 0 or np.linalg.norm(np.cross(forward, [0.0, 1.0, 0.0])) == 0:
            raise InputError(f"camera eye {eye} and target {target} must differ and not be vertically aligned")
        if not 0.0 < fov_deg < 180.0:
            raise InputError(f"camera fov_deg {fov_deg} must be in (0, 180)")
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward])
        world_to_camera = np.eye(4)
        world_to_camera[:3, :3] = rotation
        world_to_camera[:3, 3] = -rotation @ eye
        focal = (min(width, height) / 2.0) / np.tan(np.radians(fov_deg) / 2.0)
        K = np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
        return cls(K=K, world_to_camera=world_to_camera, width=width, height=height)

    @property
    def centre(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        rotation, translation = self.world_to_camera[:3, :3], self.world_to_camera[:3, 3]
        return -rotation.T @ translation

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel positions (u, v) (integer pixel centres) and camera z of world points (M, 3)."""
        points = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        camera_points = points @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        z = camera_points[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = (camera_points @ self.K.T)[:, :2] / z[:, None]
        return pixels, z


def default_camera(width: int, height: int) -> Camera:
    """The view `render_clip` uses when given none; `make_trajectory` keeps the subject inside it."""
    return Camera.looking_at(DEFAULT_EYE, DEFAULT_TARGET, DEFAULT_FOV_DEG, width, height)


@dataclass
class RenderedClip:
    """A rendered clip and its exact truth (see the module docstring for the conventions)."""

    frames: np.ndarray  # uint8 (N, H, W, 3)
    depth: np.ndarray  # float32 (N, H, W) camera z of the nearest surface, +inf where nothing
    mask: np.ndarray  # bool (N, H, W) subject
    coverage: np.ndarray  # float32 (N, H, W) anti-aliased subject share of each pixel
    object_coords: np.ndarray  # float32 (N, H, W, 3) subject surface point in object space, NaN outside
    gradient: np.ndarray  # float32 (N, H, W, 3) object coords over the bounding box in [0, 1], 0 outside
    poses: np.ndarray  # float64 (N, 6)
    camera: Camera
    subject: SubjectSpec


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """R = Rz @ Ry @ Rx (extrinsic XYZ Euler angles, radians)."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    rot_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rot_z = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return rot_z @ rot_y @ rot_x


def pose_matrix(pose: np.ndarray) -> np.ndarray:
    """4x4 object_to_world matrix of one pose (tx, ty, tz, rx, ry, rz)."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (6,):
        raise InputError(f"pose must have 6 values (tx, ty, tz, rx, ry, rz), got shape {pose.shape}")
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_matrix(*pose[3:])
    matrix[:3, 3] = pose[:3]
    return matrix


def write_truth(clip: RenderedClip, path: Path, fps: float) -> None:
    """Write the clip's truth (frames, depth, mask, poses, ...) and its conventions as one Zarr group."""
    write_group(
        path,
        {
            "fps": float(fps),
            "camera": {
                "K": clip.camera.K,
                "world_to_camera": clip.camera.world_to_camera,
                "width": clip.camera.width,
                "height": clip.camera.height,
            },
            "subject": asdict(clip.subject),
            "pose_convention": "object_to_world = [Rz(rz) Ry(ry) Rx(rx) | (tx, ty, tz)], metres and radians",
            "pixel_convention": "pixel (row i, column j) is centred at (u, v) = (j, i); depth is camera z, +inf on sky",
        },
    )
    for name in TRUTH_ARRAYS:
        write_array(path / name, getattr(clip, name))


def read_truth(path: str | os.PathLike) -> RenderedClip:
    """The RenderedClip stored by `write_clip` (frames are the exact renders, not the lossy video)."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise InputError(f"truth {path} is not a Zarr group written by write_clip")
    attrs = read_group_attrs(path)
    arrays = {name: read_array(path / name)[0] for name in TRUTH_ARRAYS}
    return RenderedClip(**arrays, camera=Camera(**attrs["camera"]), subject=SubjectSpec(**attrs["subject"]))
