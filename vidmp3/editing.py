"""DDIM inversion of a source clip and DDIM sampling of its edits, through the fine-tuned model.

The scheduler classes own the maths (`DDIMInverseScheduler` up, `DDIMScheduler` down, both built
from the base model's scheduler config, so its prediction type and noise schedule carry over). The
MotionGuide vectors come from the source's priors and are the same for inversion and every edit:
the edit keeps the source's pose and position while the prompt changes its appearance. A clip with
several subjects can also bind each subject's phrase to its pixels (`SubjectPrompts`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMInverseScheduler, DDIMScheduler
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.edit_schedule import check_edit_schedule, sampled_steps
from vidmp3.errors import InputError
from vidmp3.finetune import LATENTS_FILE, Finetuned, load_finetuned
from vidmp3.model.presets import Components, TextConditioning, configure_device, resolve_dtype
from vidmp3.model.processors import VideoAttention, install_processors
from vidmp3.methods import get_method
from vidmp3.motionguide import SubjectMotionGuides, guide_input
from vidmp3.subjects import SubjectMap, scale_about_centroid
from vidmp3.windows import Window, blend_windows


@dataclass
class SubjectPrompts:
    """Each subject's phrase where that subject is: what the cross-attentions of a model loaded with
    `subject_prompts` read (vidmp3.model.processors.SubjectPromptProcessor). Text conditioning is
    otherwise global, so without it nothing tells the UNet which phrase is which subject's."""

    text: torch.Tensor  # (K, prompts, tokens, width): each subject's phrase, batched like the prompt
    shares: torch.Tensor  # (K, N, h, w): each subject's share of every latent pixel

    def select(self, index: int) -> SubjectPrompts:
        """The phrases of one prompt of the batch (as `TextConditioning.select`)."""
        return SubjectPrompts(self.text[:, index : index + 1], self.shares)


def encode_subject_prompts(
    components: Components,
    subjects: SubjectMap,
    phrases: dict[int, str],
    negative_prompt: str | None,
    latent_size: tuple[int, int],
) -> SubjectPrompts:
    """`phrases` (subject id -> phrase) encoded as prompts, after the negative prompt when guidance is on
    (the unconditional prediction then sees the negative prompt everywhere, as without subject prompts),
    and each subject's map area-averaged to the latents' (h, w)."""
    if set(phrases) != set(subjects.ids):
        raise InputError(f"subject phrases name subjects {sorted(phrases)}; the clip's subjects are {list(subjects.ids)}")
    height, width = subjects.labels.shape[1:]
    text = torch.stack(
        [
            components.encode_prompt(
                [phrases[subject]] if negative_prompt is None else [negative_prompt, phrases[subject]], height, width
            ).hidden_states
            for subject in subjects.ids
        ]
    )
    masks = torch.from_numpy(subjects.masks()).to(device=text.device, dtype=torch.float32)
    shares = F.adaptive_avg_pool2d(masks, latent_size).to(text.dtype)
    return SubjectPrompts(text, shares)


@dataclass
class VideoModel:
    """A fine-tuned model with its video attention installed, the source's MotionGuide vectors, and the
    temporal window its motion module sees (a clip longer than that is predicted window by window)."""

    finetuned: Finetuned
    attention: VideoAttention
    vectors: dict[int, torch.Tensor] | None
    num_frames: int
    window: Window

    def with_priors(self, priors: SourcePriors) -> VideoModel:
        """The same loaded model guided by other priors (an edit's scaled subjects)."""
        return replace(self, vectors=guide_vectors(self.finetuned, priors, self.num_frames, "edit"))

    @torch.no_grad()
    def predict(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text: TextConditioning,
        subject_prompts: SubjectPrompts | None = None,
        step: int = 0,
    ) -> torch.Tensor:
        """The UNet's output for a batch of videos (B, C, N, h, w), all guided by the source's vectors
        (and with `subject_prompts`, each subject attending to its phrase); for a clip longer than the
        window, every window's output blended into one (vidmp3.windows), the windows placed for DDIM
        step `step` (counted from the clean end of the schedule)."""
        if subject_prompts is not None and subject_prompts.text.shape[1] != text.hidden_states.shape[0]:
            raise ValueError(
                f"{subject_prompts.text.shape[1]} subject prompt(s) per subject for {text.hidden_states.shape[0]} prompt(s)"
            )
        offset = self.window.offset(step)
        if len(self.window.starts(self.num_frames, offset)) == 1:
            return self._predict_frames(latents, timestep, text, subject_prompts, 0, self.num_frames)
        return blend_windows(
            self.window,
            self.num_frames,
            lambda start, stop: self._predict_frames(latents, timestep, text, subject_prompts, start, stop),
            offset=offset,
        )

    def _predict_frames(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text: TextConditioning,
        subject_prompts: SubjectPrompts | None,
        start: int,
        stop: int,
    ) -> torch.Tensor:
        frames = stop - start
        vectors = None if self.vectors is None else {width: v[start:stop] for width, v in self.vectors.items()}
        subject_text = subject_shares = None
        if subject_prompts is not None:
            subject_text = subject_prompts.text.repeat_interleave(frames, dim=1)  # as the UNet repeats the prompt
            subject_shares = subject_prompts.shares[:, start:stop]
        with self.attention.frames(frames, vectors, self.finetuned.guide_strength, subject_text, subject_shares):
            return self.finetuned.components.unet(latents[:, :, start:stop], timestep, **text.unet_kwargs(frames)).sample


@dataclass
class SourcePriors:
    """What MotionGuide reads from the source clip: corr (N,H,W,3), depth (N,H,W), alpha (N,); for a clip
    with several subjects, their map (`vidmp3.subjects.SubjectMap`) and alpha (N, K)."""

    corr: np.ndarray
    depth: np.ndarray
    alpha: np.ndarray
    subjects: SubjectMap | None = None

    def __post_init__(self):
        counts = (self.corr.shape[0], self.depth.shape[0], self.alpha.shape[0])
        if len(set(counts)) != 1:
            raise InputError(f"priors disagree on the frame count: corr {counts[0]}, depth {counts[1]}, alpha {counts[2]}")
        expected = 1 if self.subjects is None else 2
        if self.alpha.ndim != expected or (self.subjects is not None and self.alpha.shape[1] != len(self.subjects.ids)):
            raise InputError(
                f"alpha {self.alpha.shape} does not fit the subjects {None if self.subjects is None else self.subjects.ids}"
            )

    @classmethod
    def read(
        cls,
        corr: str | os.PathLike,
        depth: str | os.PathLike,
        alpha: str | os.PathLike,
        subjects: str | os.PathLike | None = None,
    ) -> SourcePriors:
        """`subjects`: the instance ids (`mask_given`) of a clip with several subjects."""
        from vidmp3.store import read_array  # Zarr: only where the workflow's arrays are read

        arrays = [read_array(path)[0].astype(np.float32) for path in (corr, depth, alpha)]
        subject_map = None
        if subjects is not None:
            labels, attrs = read_array(subjects)
            subject_map = SubjectMap(tuple(attrs["subjects"]), labels)
        return cls(*arrays, subjects=subject_map)

    def scaled(self, scales: dict[int, float]) -> SourcePriors:
        """An edit's priors with each named subject's region (map, corr, depth) scaled about its centroid
        (`vidmp3.subjects.scale_about_centroid`): the edit's `subject_scales`. Alpha follows the regions."""
        if not scales or all(scale == 1.0 for scale in scales.values()):
            return self
        if self.subjects is None or not set(scales) <= set(self.subjects.ids):
            raise InputError(
                f"subject scales {scales} need those subjects in the priors (subjects {self.subjects and self.subjects.ids})"
            )
        labels, arrays = self.subjects.labels, [self.corr, self.depth]
        for subject, scale in scales.items():
            labels, arrays = scale_about_centroid(labels, arrays, subject, scale)
        alpha = np.stack([(labels == subject).mean(axis=(1, 2)) for subject in self.subjects.ids], axis=1).astype(np.float32)
        return SourcePriors(*arrays, alpha, subjects=SubjectMap(self.subjects.ids, labels))


def guide_vectors(finetuned: Finetuned, priors: SourcePriors | None, num_frames: int, where: str) -> dict | None:
    """The MotionGuide vectors of `priors` for the method's input variant (None for methods without MotionGuide),
    on the model's device and dtype; one MotionGuide per subject where the model was trained so."""
    variant = get_method(finetuned.method).guide_variant
    if variant is None:
        return None
    if priors is None:
        raise InputError(f"{where}: method {finetuned.method!r} needs the source's priors (corr, depth, alpha)")
    if priors.corr.shape[0] != num_frames:
        raise InputError(f"the clip has {num_frames} frames but its priors have {priors.corr.shape[0]}")
    parameter = next(finetuned.motion_guide.parameters())  # loaded on the caller's device and dtype
    device, dtype = parameter.device, parameter.dtype
    guide = torch.from_numpy(guide_input(priors.corr, priors.depth, variant)).to(device=device, dtype=dtype)
    inputs = (guide, torch.from_numpy(priors.alpha).to(device=device, dtype=dtype))
    if isinstance(finetuned.motion_guide, SubjectMotionGuides):
        if priors.subjects is None or priors.subjects.ids != finetuned.motion_guide.subjects:
            raise InputError(
                f"{where}: trained for subjects {finetuned.motion_guide.subjects}; the priors have {priors.subjects and priors.subjects.ids}"
            )
        inputs += (torch.from_numpy(priors.subjects.labels).to(device),)
    elif priors.subjects is not None:
        raise InputError(f"{where}: trained with one MotionGuide; the priors have subjects {priors.subjects.ids}")
    with torch.no_grad():
        return finetuned.motion_guide(*inputs)


def load_video_model(
    weights: str | os.PathLike,
    num_frames: int,
    priors: SourcePriors | None,
    device: str | torch.device,
    dtype: torch.dtype,
    video_unet: str | os.PathLike | None = None,
    window: Window | None = None,
    subject_prompts: bool = False,
) -> VideoModel:
    """Load fine-tuned weights (on the merged `video_unet` when given), install the video attention, and
    compute the source's MotionGuide vectors for the method's input variant (methods without
    MotionGuide take no priors). `window`: the motion module's temporal window (None: the whole clip
    in one, as far as the motion module reaches). `subject_prompts`: cross-attention that can bind
    each subject's phrase to its pixels (`SubjectPrompts`)."""
    finetuned = load_finetuned(weights, device, dtype, video_unet=video_unet)
    vectors = guide_vectors(finetuned, priors, num_frames, f"{weights}")
    max_frames = finetuned.components.unet.config.motion_max_seq_length
    window = window or Window(frames=num_frames, stride=num_frames)
    if min(window.frames, num_frames) > max_frames:
        raise InputError(
            f"window of {min(window.frames, num_frames)} frames: the motion adapter handles at most {max_frames}; "
            "set window: frames"
        )
    attention = install_processors(
        finetuned.components.unet, value_injection=vectors is not None, subject_prompts=subject_prompts
    )
    return VideoModel(finetuned, attention, vectors, num_frames, window)


@torch.no_grad()
def ddim_invert(
    model: VideoModel,
    latents: torch.Tensor,
    text: TextConditioning,
    steps: int,
    strength: float = 1.0,
    subject_prompts: SubjectPrompts | None = None,
) -> torch.Tensor:
    """Clean latents (1, C, N, h, w) -> the noise latents that DDIM sampling maps back to them; with
    `strength` below 1, the partly noised latents at the timestep where that share of the schedule ends."""
    scheduler = DDIMInverseScheduler.from_config(model.finetuned.components.scheduler_config)
    scheduler.set_timesteps(steps, device=latents.device)
    for step, timestep in enumerate(tqdm(scheduler.timesteps[: sampled_steps(steps, strength)], desc="DDIM inversion")):
        prediction = model.predict(latents, timestep, text, subject_prompts, step)
        latents = scheduler.step(prediction, timestep, latents).prev_sample
    return latents


@torch.no_grad()
def ddim_sample(
    model: VideoModel,
    noise: torch.Tensor,
    text: TextConditioning,
    steps: int,
    guidance_scale: float,
    unguided_steps: int = 0,
    strength: float = 1.0,
    subject_prompts: SubjectPrompts | None = None,
) -> torch.Tensor:
    """DDIM sampling from inverted latents. With guidance_scale > 1, `text` holds two prompts
    (negative first, then the edit) and classifier-free guidance mixes their predictions, except in
    the first `unguided_steps` (the noisiest), which take the edit prompt's prediction alone: guidance
    pulls the sample off the path its inverted latents encode (issue 14: the trajectory is lost).
    With `strength` below 1 only the last share of the schedule is sampled, from latents that
    `ddim_invert` stopped at the same timestep (same `steps` and `strength`)."""
    scheduler = DDIMScheduler.from_config(model.finetuned.components.scheduler_config)
    scheduler.set_timesteps(steps, device=noise.device)
    guided = guidance_scale > 1.0
    expected_prompts = 2 if guided else 1
    if text.hidden_states.shape[0] != expected_prompts:
        raise ValueError(f"guidance scale {guidance_scale} needs {expected_prompts} prompt(s), got {text.hidden_states.shape[0]}")
    count = sampled_steps(steps, strength)
    if not 0 <= unguided_steps <= count:
        raise InputError(f"editing unguided_steps must be between 0 and the {count} sampled steps, got {unguided_steps}")
    edit_text = text.select(expected_prompts - 1)
    edit_subjects = None if subject_prompts is None else subject_prompts.select(expected_prompts - 1)
    latents = noise
    for index, timestep in enumerate(tqdm(scheduler.timesteps[steps - count :], desc="DDIM sampling")):
        step = count - 1 - index  # the inversion's step at this timestep
        if guided and index >= unguided_steps:
            both = model.predict(torch.cat([latents, latents]), timestep, text, subject_prompts, step)
            unconditional, conditional = both.chunk(2)
            prediction = unconditional + guidance_scale * (conditional - unconditional)
        else:
            prediction = model.predict(latents, timestep, edit_text, edit_subjects, step)
        latents = scheduler.step(prediction, timestep, latents).prev_sample
    return latents


def invert_frames(
    model: VideoModel,
    frames: np.ndarray,
    prompt: str,
    steps: int,
    strength: float = 1.0,
    subjects: SubjectMap | None = None,
    phrases: dict[int, str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames (N, H, W, 3) -> their clean latents and the inverted noise latents, through a loaded
    model (so one load serves the inversion and every edit of an in-process run, as the ToyWorld benchmark does);
    with `subjects` and their `phrases`, each subject attends to its own phrase."""
    components = model.finetuned.components
    source = components.encode_frames(frames)
    text = components.encode_prompt([prompt], frames.shape[1], frames.shape[2])
    regional = None if subjects is None else encode_subject_prompts(components, subjects, phrases, None, source.shape[-2:])
    return source, ddim_invert(model, source, text, steps, strength, regional)


def sample_edit(
    model: VideoModel,
    noise: torch.Tensor,
    prompt: str,
    negative_prompt: str,
    guidance_scale: float,
    steps: int,
    height: int,
    width: int,
    unguided_steps: int = 0,
    strength: float = 1.0,
    subjects: SubjectMap | None = None,
    phrases: dict[int, str] | None = None,
) -> np.ndarray:
    """The edited clip (uint8 (N, H, W, 3)) sampled from inverted latents through a loaded model; with
    `subjects` and their `phrases`, each subject attends to its own phrase."""
    if not prompt.strip():
        raise InputError("the edited prompt is empty")
    components = model.finetuned.components
    guided = guidance_scale > 1.0
    text = components.encode_prompt([negative_prompt, prompt] if guided else [prompt], height, width)
    regional = None
    if subjects is not None:
        regional = encode_subject_prompts(components, subjects, phrases, negative_prompt if guided else None, noise.shape[-2:])
    latents = ddim_sample(model, noise, text, steps, guidance_scale, unguided_steps, strength, regional)
    return components.decode_latents(latents)


@dataclass(frozen=True)
class EditSettings:
    """How one video's edits are made: its inversion, then DDIM sampling of each edit."""

    inversion_steps: int
    steps: int
    guidance_scale: float
    negative_prompt: str
    device: str
    dtype: str  # auto, float32, bfloat16 or float16
    unguided_steps: int = 0  # the first (noisiest) sampling steps without classifier-free guidance
    strength: float = 1.0  # share of the DDIM schedule inverted and sampled back (1: to the last timestep)
    window: Window = Window()
    subject_prompts: bool = True  # a clip with several subjects: each subject's pixels attend to its own phrase

    def __post_init__(self) -> None:
        check_edit_schedule(self.inversion_steps, self.steps, self.strength, self.unguided_steps)


def edit_video(
    weights: str | os.PathLike,
    video_unet: str | os.PathLike | None,
    priors: SourcePriors | None,
    source_prompt: str,
    edits: dict[str, str],
    settings: EditSettings,
    scales: dict[str, dict[int, float]] | None = None,
    subjects: SubjectMap | None = None,
    source_phrases: dict[int, str] | None = None,
    phrases: dict[str, dict[int, str]] | None = None,
) -> tuple[torch.Tensor, dict[str, np.ndarray], dict[str, float]]:
    """Invert the source once and sample every edit (concept -> prompt) through one loaded model;
    `scales` (concept -> {subject: scale}): an edit's subjects resized about their centroids in its guide
    (and its subject map). A clip with `subjects` (its map) and `settings.subject_prompts` binds each
    subject to its phrase: the video's `source_phrases` in the inversion, each edit's `phrases`
    (concept -> {subject: phrase}) in its sampling.

    One load per video instead of one per edit: on a GPU a load costs more than an edit. Returns the
    inverted latents, each concept's frames (uint8 (N, H, W, 3)) and each edit's sampling seconds.
    """
    for concept, prompt in edits.items():
        if not prompt.strip():
            raise InputError(f"edit {concept!r}: the edited prompt is empty")
    device = torch.device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    configure_device(device)
    weights = Path(weights)
    source = load_file(weights / LATENTS_FILE)["source"]
    num_frames = source.shape[2]
    regional = settings.subject_prompts and subjects is not None
    model = load_video_model(
        weights, num_frames, priors, device, dtype, video_unet=video_unet, window=settings.window, subject_prompts=regional
    )
    components = model.finetuned.components
    height, width = model.finetuned.config["video"]["height"], model.finetuned.config["video"]["width"]
    guided = settings.guidance_scale > 1.0
    negative = settings.negative_prompt if guided else None
    source_text = components.encode_prompt([source_prompt], height, width)
    texts = {
        concept: components.encode_prompt([settings.negative_prompt, prompt] if guided else [prompt], height, width)
        for concept, prompt in edits.items()
    }
    source_regions, edit_regions = None, {}
    if regional:
        latent_size = tuple(source.shape[-2:])
        source_regions = encode_subject_prompts(components, subjects, source_phrases or {}, None, latent_size)
        for concept in edits:
            scaled = (scales or {}).get(concept) or {}
            edit_subjects = subjects.scaled(scaled)
            edit_regions[concept] = encode_subject_prompts(
                components, edit_subjects, (phrases or {}).get(concept, {}), negative, latent_size
            )
    components.offload_encoders(vae=False)
    inverted = ddim_invert(
        model, source.to(device=device, dtype=dtype), source_text, settings.inversion_steps, settings.strength, source_regions
    )
    clips, seconds = {}, {}
    for concept, text in texts.items():
        start = time.perf_counter()
        scaled = (scales or {}).get(concept)
        edit_model = model.with_priors(priors.scaled(scaled)) if scaled and model.vectors is not None else model
        latents = ddim_sample(
            edit_model,
            inverted,
            text,
            settings.steps,
            settings.guidance_scale,
            settings.unguided_steps,
            settings.strength,
            edit_regions.get(concept),
        )
        clips[concept] = components.decode_latents(latents)
        seconds[concept] = time.perf_counter() - start
    return inverted, clips, seconds


def edit_job(
    frames,
    weights,
    video_unet,
    priors: dict,
    subjects,
    source_prompt: str,
    source_subjects: dict,
    edits: dict,
    settings: dict,
    out_dir,
) -> None:
    """The edit rule: one video's inversion and all its edits (concept -> {prompt, title, scales, subjects})
    into `out_dir`: `<concept>.mp4` at the source's sampled frame rate, `<concept>.png` (source above
    edit), `latents.safetensors` (source and inverted) and `edits.json`. `priors`: corr, depth and
    alpha for the methods with MotionGuide; `subjects`: the instance ids of a clip with several
    subjects (None otherwise), whose phrases are `source_subjects` and each edit's `subjects`."""
    from vidmp3.store import read_array  # Zarr, PyAV and the strips: only in the workflow's jobs
    from vidmp3.strips import write_edit_strip
    from vidmp3.video_io import write_video

    _, attrs = read_array(frames)
    source_priors = SourcePriors.read(**priors, subjects=subjects) if priors else None
    subject_map = None
    if subjects is not None:
        labels, subject_attrs = read_array(subjects)
        subject_map = SubjectMap(tuple(subject_attrs["subjects"]), labels)
    fields = [name for name in EditSettings.__dataclass_fields__ if name != "window"]
    edit_settings = EditSettings(**{name: settings[name] for name in fields}, window=Window(**settings["window"]))
    scales = {concept: {int(subject): scale for subject, scale in edit["scales"].items()} for concept, edit in edits.items()}
    phrases = {concept: {int(subject): phrase for subject, phrase in edit["subjects"].items()} for concept, edit in edits.items()}
    inverted, clips, seconds = edit_video(
        weights,
        video_unet,
        source_priors,
        source_prompt,
        {concept: edit["prompt"] for concept, edit in edits.items()},
        edit_settings,
        scales,
        subject_map,
        {int(subject): phrase for subject, phrase in source_subjects.items()},
        phrases,
    )
    source = load_file(Path(weights) / LATENTS_FILE)["source"]
    fps = (attrs["fps"] or settings["folder_fps"]) / attrs["stride"]
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        save_file({"source": source.contiguous(), "inverted": inverted.float().cpu().contiguous()}, tmp / "latents.safetensors")
        for concept, edited in clips.items():
            write_video(edited, tmp / f"{concept}.mp4", fps)
            write_edit_strip(frames, tmp / f"{concept}.mp4", tmp / f"{concept}.png", edits[concept]["title"])
        record = {
            "source_prompt": source_prompt,
            "settings": settings,
            "edits": {
                concept: {
                    "prompt": edits[concept]["prompt"],
                    "subjects": phrases[concept],
                    "subject_scales": scales[concept],
                    "seconds": seconds[concept],
                }
                for concept in clips
            },
        }
        (tmp / "edits.json").write_text(json.dumps(record, indent=2))
