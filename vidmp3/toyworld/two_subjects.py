"""ToyWorld with two subjects: two shapes on crossing or diverging paths, with per-subject truth.

Each subject is rendered alone over the plain backdrop (which takes no shadow, so nothing one subject
does shows on the other's pixels) and the two renders are composited per frame far to near (painter's
order by the subjects' camera depth): where the paths cross, the nearer subject hides the farther one,
and the truth's subject map says which subject every pixel shows. Subject 1 walks nearer the camera
than subject 2. Captions name both: "a red cube a green cone" (six words: the ToyWorld text encoder
holds eight tokens; it was pretrained on one-subject captions only, so such captions are new to it).

Edits are scored per subject from pixels: the frame is segmented against the backdrop and each
subject pixel is given to the caption colour its chromaticity is nearest to, so subject k of an edit
is the pixels of its target colour. Per subject: trajectory (centroid) error against its own true
track, whether it took the other subject's path (path swap) or shape (shape swap), how much of its
true region shows the other subject's colour (leakage), and its size error against the truth size
(the target rendered on the source path at the edit's scale). Chance levels are rendered with the
same renderer and scored the same way (`CHANCE_LEVELS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidmp3.editing import SourcePriors
from vidmp3.errors import InputError
from vidmp3.priors import compute_depth, compute_matches, matches_to_corr
from vidmp3.priors.depth import normalise_depth
from vidmp3.priors.render import align_truth, render_nearness
from vidmp3.scene import RenderedClip, rotation_matrix
from vidmp3.subjects import SubjectMap
from vidmp3.synthetic import render_clip, resting_height
from vidmp3.toyworld import world
from vidmp3.toyworld.classifier import classify
from vidmp3.toyworld.metrics import centroids_and_sizes, trajectory_errors

SUBJECTS = (1, 2)
PATHS = ("crossing", "diverging")
SUBJECT_SCALE = 0.7
"""Both subjects at 0.7 of the one-subject clip size, so two fit the 32x32 view side by side."""

_LANES = {1: 0.3, 2: -0.3}  # z (metres): subject 1 nearer the camera, so it hides subject 2 where they cross
_X_PATHS = {"crossing": {1: (-0.5, 0.5), 2: (0.5, -0.5)}, "diverging": {1: (-0.12, -0.6), 2: (0.12, 0.6)}}


@dataclass(frozen=True)
class TwoSubjectPlan:
    """One two-subject clip: its seed, path kind, the sources and the targets ((shape, colour) per subject)
    and the edit's scale per subject (target size over source size)."""

    seed: int
    paths: str
    sources: tuple[tuple[str, str], tuple[str, str]]
    targets: tuple[tuple[str, str], tuple[str, str]]
    scales: tuple[float, float] = (1.0, 1.0)

    @property
    def caption(self) -> str:
        return " ".join(world.caption(*source) for source in self.sources)

    @property
    def target_caption(self) -> str:
        return " ".join(world.caption(*target) for target in self.targets)


def plan_two_subjects(seed: int, scales: tuple[float, float] = (1.0, 1.0)) -> TwoSubjectPlan:
    """Sources of two different shapes and colours, targets of the two other colours, each target shape
    differing from its source's and from the other target's; crossing or diverging by the seed."""
    rng = np.random.default_rng(seed)
    colours = list(rng.permutation(list(world.COLOURS)))
    shapes = list(rng.permutation(list(world.SHAPES)))
    sources = ((str(shapes[0]), str(colours[0])), (str(shapes[1]), str(colours[1])))
    # targets: the other two shapes (so neither subject keeps its own or takes the other's), the other two colours
    targets = ((str(shapes[2]), str(colours[2])), (str(shapes[3]), str(colours[3])))
    return TwoSubjectPlan(int(seed), PATHS[int(rng.integers(2))], sources, targets, tuple(float(s) for s in scales))


def subject_poses(subject_id: int, subject, seed: int, paths: str, frames: int = world.CLIP_FRAMES) -> np.ndarray:
    """A subject's poses: the small ToyWorld motion (hop, lean, turn) along a straight lane across the view."""
    if paths not in PATHS:
        raise InputError(f"two-subject paths {paths!r} are not one of {PATHS}")
    poses = world.toy_trajectory(subject, seed * 2 + subject_id, frames, motion="small")
    start, stop = _X_PATHS[paths][subject_id]
    poses[:, 0] += np.linspace(start, stop, frames)
    poses[:, 2] += _LANES[subject_id]
    return poses


@dataclass
class TwoSubjectClip:
    """The composite frames, its subject map and each subject's own render (its truth where it shows)."""

    frames: np.ndarray  # uint8 (N, S, S, 3)
    labels: np.ndarray  # uint8 (N, S, S): 0 backdrop, 1 or 2 the subject that pixel shows
    renders: tuple[RenderedClip, RenderedClip]  # each subject alone over the backdrop

    def visible(self, subject: int) -> np.ndarray:
        return self.labels == subject


def render_two_subjects(
    shapes_colours,
    seed: int,
    paths: str,
    scales: tuple[float, float] = (1.0, 1.0),
    size: int = world.IMAGE_SIZE,
    frames: int = world.CLIP_FRAMES,
    poses: tuple[np.ndarray, np.ndarray] | None = None,
) -> TwoSubjectClip:
    """Two subjects ((shape, colour) each, at `scales` of the two-subject size) on their paths of `seed`
    (or on given `poses`), composited far to near."""
    renders = []
    for index, (subject_id, (shape, colour)) in enumerate(zip(SUBJECTS, shapes_colours)):
        subject = world.subject_spec(shape, colour, SUBJECT_SCALE * scales[index])
        base = world.subject_spec(shape, colour, SUBJECT_SCALE)
        own = subject_poses(subject_id, base, seed, paths, frames) if poses is None else poses[index].copy()
        # a resized subject keeps its path and rests on the ground as the unresized one does
        own[:, 1] += [
            resting_height(subject, rotation_matrix(*angles)) - resting_height(base, rotation_matrix(*angles))
            for angles in own[:, 3:]
        ]
        renders.append(render_clip(subject, own, size, size, camera=world.camera(size), supersample=2, backdrop=world.BACKDROP))
    composite = renders[0].frames.copy()
    labels = np.zeros(composite.shape[:3], np.uint8)
    for frame in range(len(composite)):
        composite[frame] = world.background(size)
        distance = [
            np.median(render.depth[frame][render.mask[frame]]) if render.mask[frame].any() else np.inf for render in renders
        ]
        for index in np.argsort(distance)[::-1]:  # far to near
            render = renders[index]
            # its pixels, and its anti-aliased edge where only the backdrop lies behind
            painted = render.mask[frame] | ((render.coverage[frame] > 0) & (labels[frame] == 0))
            composite[frame][painted] = render.frames[frame][painted]
            labels[frame][render.mask[frame]] = SUBJECTS[index]
    return TwoSubjectClip(composite, labels, tuple(renders))


def source_clip(plan: TwoSubjectPlan, size: int = world.IMAGE_SIZE) -> TwoSubjectClip:
    return render_two_subjects(plan.sources, plan.seed, plan.paths, size=size)


def _frames_attrs(frames: np.ndarray) -> dict:
    height, width = frames.shape[1:3]
    return {
        "frame_indices": list(range(len(frames))),
        "source_size": [width, height],
        "size": [width, height],
        "crop": "none",
        "source": "two_subjects",
    }


def subject_priors(clip: TwoSubjectClip) -> SourcePriors:
    """Per-subject priors as the priors stages store them for a video with subjects: each subject's exact
    matches within itself, coloured by its own frame-0 box, depth normalised per subject, alpha (N, 2)."""
    attrs = _frames_attrs(clip.frames)
    corr = np.zeros((*clip.labels.shape, 3), np.float32)
    depth = np.zeros(clip.labels.shape, np.float32)
    for subject, render in zip(SUBJECTS, clip.renders):
        visible = clip.visible(subject)
        truth = align_truth(render, attrs)
        corr[visible] = matches_to_corr(compute_matches(clip.frames, visible, "render", {}, truth=truth))[visible]
        depth[visible] = compute_depth(clip.frames, visible, "render", {}, truth=truth)[visible]
    alpha = np.stack([clip.visible(subject).mean(axis=(1, 2)) for subject in SUBJECTS], axis=1).astype(np.float32)
    return SourcePriors(
        corr.astype(np.float16).astype(np.float32),
        depth.astype(np.float16).astype(np.float32),
        alpha,
        subjects=SubjectMap(SUBJECTS, clip.labels),
    )


def shared_priors(clip: TwoSubjectClip) -> SourcePriors:
    """The same clip as one subject (the union of both): what today's one-MotionGuide method makes of it —
    one colour box over the union in frame 0, depth normalised over the union, one alpha."""
    attrs = _frames_attrs(clip.frames)
    union = clip.labels > 0
    matches = np.full((*union.shape, 2), np.nan, np.float32)
    nearness = np.zeros(union.shape, np.float32)
    for subject, render in zip(SUBJECTS, clip.renders):
        visible = clip.visible(subject)
        truth = align_truth(render, attrs)
        matches[visible] = compute_matches(clip.frames, visible, "render", {}, truth=truth)[visible]
        nearness[visible] = render_nearness(truth, visible)[visible]
    corr = matches_to_corr(matches)
    depth = normalise_depth(nearness, union)
    alpha = union.mean(axis=(1, 2)).astype(np.float32)
    return SourcePriors(corr.astype(np.float16).astype(np.float32), depth.astype(np.float16).astype(np.float32), alpha)


_CHROMA = np.array([np.asarray(rgb) / np.sum(rgb) for rgb in world.COLOURS.values()])


def colour_labels(frames: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """int (N, S, S): each subject pixel's nearest caption colour (index into world.COLOURS) by
    chromaticity, -1 on the backdrop."""
    foreground = world.segment(frames, size=frames.shape[2], threshold=threshold)
    rgb = frames.astype(np.float32) + 1.0
    chroma = rgb / rgb.sum(axis=-1, keepdims=True)
    nearest = np.argmin(((chroma[..., None, :] - _CHROMA) ** 2).sum(-1), axis=-1)
    return np.where(foreground, nearest, -1)


def _isolated(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The frames with everything but `mask` replaced by the backdrop: one subject for the classifier."""
    return np.where(mask[..., None], frames, world.background(frames.shape[2])[None])


METRICS = ("trajectory_error", "path_swap", "shape_correct", "shape_swap", "leakage", "size_error", "found")
"""Per subject and edit; trajectory and size errors over the frames where the subject is found."""


def subject_metrics(
    classifier, frames: np.ndarray, source: TwoSubjectClip, truth: TwoSubjectClip, plan: TwoSubjectPlan
) -> list[dict]:
    """One row per subject of an edit (`frames`): see the module docstring. `truth` is the target subjects
    rendered on the source paths at the plan's scales (the size truth)."""
    colours = colour_labels(frames)
    names = tuple(world.COLOURS)
    rows = []
    for index, subject in enumerate(SUBJECTS):
        other = 1 - index
        own_colour, other_colour = names.index(plan.targets[index][1]), names.index(plan.targets[other][1])
        mask = colours == own_colour
        track, other_track = source.visible(subject), source.visible(SUBJECTS[other])
        error, _ = trajectory_errors(mask, track)
        other_error, _ = trajectory_errors(mask, other_track)
        _, sizes = centroids_and_sizes(mask)
        _, true_sizes = centroids_and_sizes(truth.visible(subject))
        both = np.isfinite(sizes) & np.isfinite(true_sizes)
        size_error = float(np.mean(np.abs(sizes[both] - true_sizes[both]) / true_sizes[both])) if both.any() else float("nan")
        found = mask.any(axis=(1, 2))
        shapes = classify(classifier, _isolated(frames, mask)).shapes[found] if found.any() else np.zeros(0, int)
        region = track.sum()
        rows.append(
            {
                "subject": subject,
                "trajectory_error": error,
                "path_swap": float(other_error < error) if np.isfinite(error) and np.isfinite(other_error) else float("nan"),
                "shape_correct": float(np.mean(shapes == world.SHAPES.index(plan.targets[index][0]))) if len(shapes) else 0.0,
                "shape_swap": float(np.mean(shapes == world.SHAPES.index(plan.targets[other][0]))) if len(shapes) else 0.0,
                "leakage": float(((colours == other_colour) & track).sum() / region) if region else float("nan"),
                "size_error": size_error,
                "found": float(found.mean()),
            }
        )
    return rows


def _static(plan: TwoSubjectPlan, source: TwoSubjectClip) -> TwoSubjectClip:
    poses = tuple(np.repeat(render.poses[:1], len(render.poses), axis=0) for render in source.renders)
    return render_two_subjects(plan.targets, plan.seed, plan.paths, plan.scales, poses=poses)


def _swapped(plan: TwoSubjectPlan, source: TwoSubjectClip) -> TwoSubjectClip:
    poses = (source.renders[1].poses, source.renders[0].poses)
    return render_two_subjects(plan.targets, plan.seed, plan.paths, plan.scales, poses=poses)


def _unscaled(plan: TwoSubjectPlan, source: TwoSubjectClip) -> TwoSubjectClip:
    return render_two_subjects(plan.targets, plan.seed, plan.paths, poses=tuple(r.poses for r in source.renders))


CHANCE_LEVELS = {
    "static": (_static, "both targets standing still at their first poses"),
    "swapped-tracks": (_swapped, "each target on the other subject's path: an identity swap"),
    "unscaled": (_unscaled, "the targets on their own paths at the source size (the edit's scale ignored)"),
}
"""Rendered references scored like the edits: name -> (clip from (plan, source), what it is)."""


def size_truth(plan: TwoSubjectPlan, source: TwoSubjectClip) -> TwoSubjectClip:
    """The ideal edit: the targets on the source paths at the edit's scales."""
    return render_two_subjects(plan.targets, plan.seed, plan.paths, plan.scales, poses=tuple(r.poses for r in source.renders))
