"""Several subjects in one clip: the sheets' `subjects` and `subject_scales` cells, and a clip's subject map.

A video with several subjects names them in its `subjects` cell (`1=a red cube; 2=a green cone`:
subject id = its value in the instance-id masks, DAVIS-2017 style, 0 the background; each phrase
is held in the video's prompt). Each edit of such a video says what every subject becomes in its own
`subjects` cell, with phrases held in the edit's prompt, and may scale subjects with
`subject_scales` (`2=1.5`). A bad mapping stops the workflow when the sheets are parsed, naming the
sheet, line, column and fix.

Kept free of torch: the Snakefile reads it at parse time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vidmp3.errors import InputError

MAX_SUBJECT_ID = 255
"""Instance ids are the masks' pixel values (uint8, as DAVIS ships its palette PNGs)."""


def _entries(cell: str) -> list[tuple[str, str]]:
    return [tuple(part.strip() for part in entry.split("=", 1)) for entry in cell.split(";") if entry.strip()]


def parse_subjects(cell: str, where: str) -> dict[int, str]:
    """`1=a tiger; 2=a fox` -> {1: 'a tiger', 2: 'a fox'}; '' -> {} (one subject, the clip's whole mask)."""
    subjects: dict[int, str] = {}
    for entry in _entries(cell or ""):
        if len(entry) != 2 or not entry[1] or not re.fullmatch(r"[0-9]+", entry[0]):
            raise InputError(
                f"{where}: {'='.join(entry)!r} is not 'id=phrase'; fix: write e.g. '1=a tiger; 2=a fox' "
                "(ids are the subjects' values in the instance masks)"
            )
        subject = int(entry[0])
        if not 1 <= subject <= MAX_SUBJECT_ID:
            raise InputError(f"{where}: subject id {subject} must be 1-{MAX_SUBJECT_ID} (0 is the background); fix the id")
        if subject in subjects:
            raise InputError(f"{where}: subject {subject} is named twice; fix: one phrase per id")
        subjects[subject] = entry[1]
    return subjects


def parse_scales(cell: str, where: str) -> dict[int, float]:
    """`2=1.5` -> {2: 1.5}; subjects not named keep scale 1."""
    scales: dict[int, float] = {}
    for entry in _entries(cell or ""):
        try:
            subject, scale = int(entry[0]), float(entry[1])
        except (ValueError, IndexError):
            raise InputError(f"{where}: {'='.join(entry)!r} is not 'id=scale'; fix: write e.g. '2=1.5'") from None
        if subject in scales:
            raise InputError(f"{where}: subject {subject} is scaled twice; fix: one scale per id")
        if not (np.isfinite(scale) and 0.25 <= scale <= 4.0):
            raise InputError(f"{where}: subject {subject}'s scale {scale} must lie in [0.25, 4]; fix the scale")
        scales[subject] = scale
    return scales


def _held_in(phrase: str, prompt: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", prompt.lower()) is not None


def check_video_subjects(video: str, subjects: dict[int, str], prompt: str, masks: str, mask_backend: str, where: str) -> None:
    """A video's subjects: phrases in its prompt, instance masks given (only the sheet's masks tell subjects apart)."""
    if not subjects:
        return
    for subject, phrase in subjects.items():
        if not _held_in(phrase, prompt):
            raise InputError(
                f"{where}, column subjects: subject {subject}'s phrase {phrase!r} is not in the prompt {prompt!r}; fix the phrase or the prompt"
            )
    if not masks:
        raise InputError(
            f"{where}, column subjects: video {video} has subjects but no masks; fix: give a masks folder of instance-id masks"
        )
    if mask_backend not in ("", "given"):
        raise InputError(
            f"{where}, column subjects: video {video} has subjects, which need mask_backend given (the instance masks), not {mask_backend!r}; fix mask_backend"
        )


def check_edit_subjects(
    edit: str, video_subjects: dict[int, str], subjects: dict[int, str], scales: dict[int, float], prompt: str, where: str
) -> None:
    """An edit's mapping covers exactly its video's subjects, with phrases held in its prompt."""
    known = ", ".join(map(str, sorted(video_subjects))) or "none"
    if not video_subjects and (subjects or scales):
        column = "subjects" if subjects else "subject_scales"
        raise InputError(
            f"{where}, column {column}: edit {edit}: its video has no subjects column; fix: name the video's subjects in the videos sheet or leave this cell empty"
        )
    for column, mapping in (("subjects", subjects), ("subject_scales", scales)):
        unknown = sorted(set(mapping) - set(video_subjects))
        if unknown:
            raise InputError(
                f"{where}, column {column}: edit {edit}: subject {unknown[0]} is not a subject of its video (its subjects: {known}); fix the id"
            )
    missing = sorted(set(video_subjects) - set(subjects))
    if missing:
        raise InputError(
            f"{where}, column subjects: edit {edit}: subject {missing[0]} is missing (its video's subjects: {known}); fix: say what every subject becomes"
        )
    for subject, phrase in subjects.items():
        if not _held_in(phrase, prompt):
            raise InputError(
                f"{where}, column subjects: edit {edit}: subject {subject}'s phrase {phrase!r} is not in the prompt {prompt!r}; fix the phrase or the prompt"
            )


@dataclass(frozen=True)
class SubjectMap:
    """A clip's subjects: their ids and each pixel's subject (uint8 (N, H, W), 0 the background)."""

    ids: tuple[int, ...]
    labels: np.ndarray

    def __post_init__(self):
        if not self.ids or len(set(self.ids)) != len(self.ids) or min(self.ids) < 1:
            raise InputError(f"subject ids {self.ids} must be distinct and at least 1")
        if self.labels.ndim != 3:
            raise InputError(f"the subject map must be (N, H, W), got {self.labels.shape}")

    def mask(self, subject: int) -> np.ndarray:
        return self.labels == subject

    def masks(self) -> np.ndarray:
        """bool (K, N, H, W), subject by subject in the order of `ids`."""
        return np.stack([self.mask(subject) for subject in self.ids])

    def scaled(self, scales: dict[int, float]) -> SubjectMap:
        """The map with each named subject grown or shrunk about its centroid (`scale_about_centroid`)."""
        labels = self.labels
        for subject, scale in scales.items():
            labels, _ = scale_about_centroid(labels, [], subject, scale)
        return SubjectMap(self.ids, labels)


def scale_about_centroid(
    labels: np.ndarray, arrays: list[np.ndarray], subject: int, scale: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Subject `subject` grown or shrunk by `scale` about its centroid in every frame, in the subject map
    and in per-pixel `arrays` ((N, H, W, ...) each, e.g. corr and depth).

    Why the centroid: it is the subject's trajectory in the image, so a resized subject keeps its
    path (the motion the MotionGuide carries) and changes only its extent. Each output pixel p takes
    the value at c + (p - c) / scale (nearest pixel) from the subject's own pixels; the grown subject
    covers the background only, never another subject, which keeps its own pixels.
    """
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"subject {subject}'s scale {scale} must be positive")
    labels = labels.copy()
    arrays = [array.copy() for array in arrays]
    height, width = labels.shape[1:]
    ys, xs = np.mgrid[0:height, 0:width]
    for frame in range(len(labels)):
        own = labels[frame] == subject
        if not own.any():
            continue
        cy, cx = ys[own].mean(), xs[own].mean()
        source_y = np.rint(cy + (ys - cy) / scale).astype(int)
        source_x = np.rint(cx + (xs - cx) / scale).astype(int)
        inside = (source_y >= 0) & (source_y < height) & (source_x >= 0) & (source_x < width)
        reached = np.zeros_like(own)
        reached[inside] = own[source_y[inside], source_x[inside]]
        free = (labels[frame] == 0) | own
        target = reached & free
        vacated = own & ~reached
        for array in arrays:
            values = array[frame][source_y[target], source_x[target]]
            array[frame][vacated] = 0
            array[frame][target] = values
        labels[frame][vacated] = 0
        labels[frame][target] = subject
    return labels, arrays
