"""The ToyWorld scene: captions, subjects, still images and clips rendered over a plain backdrop.

Everything is drawn by `vidmp3.synthetic` with one fixed camera (closer than the default one, so a
subject fills a fair part of a 32x32 frame) over a flat two-tone backdrop without shadows: every
pixel off the subject is exactly `background()`, so `segment` finds the subject by colour distance
alone, in renders and in generated frames alike. Subjects stay upright
(they spin about the vertical axis and lean a little), so a cone, a cylinder and a cube stay
tellable by their silhouettes. Seeds below `HELD_OUT_SEED` are for pretraining, seeds from it up
for the benchmark and the demo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidmp3.errors import InputError
from vidmp3.scene import Backdrop, Camera, RenderedClip, SubjectSpec
from vidmp3.synthetic import make_trajectory, random_poses, render_clip, render_empty, render_stills, write_clip

SHAPES = ("cube", "sphere", "cone", "cylinder")
COLOURS = {
    "red": (0.86, 0.13, 0.1),
    "green": (0.12, 0.68, 0.18),
    "blue": (0.14, 0.3, 0.92),
    "yellow": (0.95, 0.82, 0.1),
}
"""Colour name -> albedo (RGB in [0, 1]); far apart in hue so they stay apart from shade 0.45 to 1.05."""

IMAGE_SIZE = 32
CLIP_FRAMES = 8
HELD_OUT_SEED = 1_000_000
"""Pretraining uses seeds below this; benchmark and demo clips use seeds from it up."""

BACKDROP = Backdrop(sky=(0.97, 0.97, 0.96), ground=(0.9, 0.9, 0.9))
"""Bright neutral greys, lighter than every caption colour in every shade. The codec is pixels, so an
edit that changes colour moves each latent by (new colour - backdrop) where the source had
(old colour - backdrop): on a bright backdrop these point the same way (cosine over 0.5 at mid
shade for every pair), so the inverted source is evidence for any subject at its place. On the
mid-grey ground of the first weights (0.52) blue and yellow pointed apart (cosine -0.69) and colour
edits lost the source's position."""

# Object-space extents (x, y, z) in metres, chosen so the four shapes show comparable areas.
_SIZES = {
    "cube": (0.76, 0.76, 0.76),
    "sphere": (1.0, 1.0, 1.0),
    "cone": (1.0, 1.25, 1.0),
    "cylinder": (0.76, 1.02, 0.76),
}
_EYE = (0.0, 1.25, 2.6)
_TARGET = (0.0, 0.6, 0.0)
_FOV_DEG = 52.0
_REACH = 0.6  # the default path's translations fit the default (farther) camera; scaled for this one
_TILT = {"large": 0.3, "small": 0.08}  # radians of lean: enough to see it, not enough to hide the shape
_SCALE_RANGE = (0.85, 1.15)  # still images vary the subject's size around its clip size
_SUPERSAMPLE = 2  # 2x2 rays per pixel: smooth enough edges at 32x32, and half the cost of 3x3


@dataclass
class ImageBatch:
    """Still renders for text-to-image training: frames with their labels and exact subject masks."""

    images: np.ndarray  # uint8 (N, S, S, 3)
    shapes: np.ndarray  # int64 (N,) index into SHAPES
    colours: np.ndarray  # int64 (N,) index into COLOURS
    masks: np.ndarray  # bool (N, S, S)


def _check_shape_colour(shape: str, colour: str) -> None:
    if shape not in SHAPES:
        raise InputError(f"toyworld shape {shape!r} is not one of {SHAPES}")
    if colour not in COLOURS:
        raise InputError(f"toyworld colour {colour!r} is not one of {tuple(COLOURS)}")


def _check_size(size: int) -> None:
    if int(size) != size or size < 8 or size % 8:
        raise InputError(f"toyworld image size {size} must be a positive multiple of 8")


def caption(shape: str, colour: str) -> str:
    """The caption of a subject, e.g. "a red cube"."""
    _check_shape_colour(shape, colour)
    return f"a {colour} {shape}"


def parse_caption(text: str) -> tuple[str, str]:
    """(shape, colour) of a caption written like `caption` makes them (case and spacing are free)."""
    words = str(text).lower().split()
    if len(words) != 3 or words[0] != "a" or words[1] not in COLOURS or words[2] not in SHAPES:
        raise InputError(
            f"caption {text!r} is not a toyworld caption 'a <colour> <shape>' with colour in "
            f"{tuple(COLOURS)} and shape in {SHAPES}"
        )
    return words[2], words[1]


def subject_spec(shape: str, colour: str, scale: float = 1.0) -> SubjectSpec:
    """The plain-coloured subject of a caption, at its clip size times `scale`."""
    _check_shape_colour(shape, colour)
    size = tuple(scale * extent for extent in _SIZES[shape])
    return SubjectSpec(shape=shape, size=size, colour=COLOURS[colour], texture="plain")


def camera(size: int = IMAGE_SIZE) -> Camera:
    """The one ToyWorld view at `size` x `size` pixels."""
    _check_size(size)
    return Camera.looking_at(_EYE, _TARGET, _FOV_DEG, size, size)


def toy_trajectory(subject: SubjectSpec, seed: int, frames: int = CLIP_FRAMES, motion: str = "large") -> np.ndarray:
    """Poses (frames, 6) of an upright subject moving, turning and changing depth inside the ToyWorld view."""
    if motion not in _TILT:
        raise InputError(f"toyworld motion {motion!r} is not one of {tuple(_TILT)}")
    return make_trajectory(frames, seed=seed, motion=motion, subject=subject, reach=_REACH, tilt=_TILT[motion])


def render_images(count: int, seed: int, size: int = IMAGE_SIZE) -> ImageBatch:
    """`count` stills of random subjects (shape, colour, size) at random poses.

    Poses spread over the places, turns and depths that `render_toy_clip` paths visit, so a model
    trained on stills has seen every frame a clip can show. The same seed gives the same batch.
    """
    if int(count) != count or count < 1:
        raise InputError(f"image count {count} must be a positive integer")
    _check_size(size)
    rng = np.random.default_rng(seed)
    shapes = rng.integers(len(SHAPES), size=int(count))
    colours = rng.integers(len(COLOURS), size=int(count))
    scales = rng.uniform(*_SCALE_RANGE, size=int(count))
    names = tuple(COLOURS)
    subjects = [subject_spec(SHAPES[s], names[c], scale) for s, c, scale in zip(shapes, colours, scales)]
    poses = random_poses(subjects, seed=int(rng.integers(2**63)), motion="large", reach=_REACH, tilt=_TILT["large"])
    images, masks = render_stills(subjects, poses, size, size, BACKDROP, camera=camera(size), supersample=_SUPERSAMPLE)
    return ImageBatch(images=images, shapes=shapes.astype(np.int64), colours=colours.astype(np.int64), masks=masks)


def render_toy_clip(
    shape: str,
    colour: str,
    seed: int,
    frames: int = CLIP_FRAMES,
    size: int = IMAGE_SIZE,
    motion: str = "large",
) -> RenderedClip:
    """A clip of one subject on a trajectory drawn from `seed` (translation, spin, lean, depth), with its truth."""
    subject = subject_spec(shape, colour)
    poses = toy_trajectory(subject, seed, frames, motion)
    return render_clip(subject, poses, size, size, camera=camera(size), supersample=_SUPERSAMPLE, backdrop=BACKDROP)


def write_toy_clip(spec: dict, video, masks, truth) -> None:
    """Render one clip of the config's `toyworld: clips:` section and write it like a real clip
    (video, mask folder, truth group), so the workflow ingests it like any source."""
    if spec["seed"] < HELD_OUT_SEED:
        raise InputError(f"toyworld clip seed {spec['seed']} is below {HELD_OUT_SEED}: pretraining has seen it")
    clip = render_toy_clip(spec["shape"], spec["colour"], spec["seed"], frames=spec["frames"], motion=spec["motion"])
    write_clip(clip, video, masks, truth, fps=spec["fps"])


def background(size: int = IMAGE_SIZE) -> np.ndarray:
    """The empty ToyWorld scene, uint8 (size, size, 3): every render shows exactly this off its subject."""
    return render_empty(size, size, camera=camera(size), supersample=_SUPERSAMPLE, backdrop=BACKDROP)


def segment(frames: np.ndarray, size: int = IMAGE_SIZE, threshold: float = 0.2) -> np.ndarray:
    """Subject masks bool (..., S, S): pixels whose RGB distance (0-1 scale) from `background()` exceeds `threshold`.

    Every shade of every caption colour is at least 0.46 from both backdrop greys, so the default
    (about half that) keeps an edge pixel half covered by the subject, like the truth's mask does.
    """
    frames = np.asarray(frames)
    if frames.ndim < 3 or frames.shape[-3:] != (size, size, 3):
        raise InputError(f"frames to segment must be (..., {size}, {size}, 3) RGB, got shape {frames.shape}")
    if not 0.0 < threshold < np.sqrt(3.0):
        raise InputError(f"segment threshold {threshold} must be in (0, sqrt(3))")
    distance = np.linalg.norm((frames.astype(np.float32) - background(size).astype(np.float32)) / 255.0, axis=-1)
    return distance > threshold
