"""A causal probe of the MotionGuide on ToyWorld: does the guide it is fed steer the sample's motion?

Per clip, the method is fine-tuned once on the source; then the source prompt is sampled from fresh
noise and from the source's inverted latents (inverted with its true guide) under four guides:

- `true`: the source's own guide (what editing does);
- `off`: lambda = 0 (no MotionGuide term);
- `reversed`: the guide of the source played backwards;
- `other`: the guide of the same subject on another clip's trajectory (seed + OTHER_CLIP_OFFSET).

Each sample's subject track (centroid per frame, `world.segment`) is scored against every track
(source, reversed, other). The probe's answer is the paired difference, per clip, between a guide's
error against the track it was fed and the `off` sample's error against that same track: below 0
means the guide pulls the sample towards its track. Differences are summarised over clips with a 95%
bootstrap interval. Validation clips only: seeds from VALIDATION_SEED, disjoint from the benchmark's
test clips (from world.HELD_OUT_SEED) and from pretraining.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from vidmp3.editing import SourcePriors, invert_frames, load_video_model, sample_edit
from vidmp3.errors import InputError
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.methods import get_method
from vidmp3.model.presets import ModelSpec, resolve_dtype
from vidmp3.motionguide import guide_input
from vidmp3.toyworld import world
from vidmp3.toyworld.benchmark import OTHER_CLIP_OFFSET, bootstrap_interval, plan_clip, rendered_priors
from vidmp3.toyworld.metrics import trajectory_errors

VALIDATION_SEED = 2_000_000
"""Probe and setting choices use clips from here: never benchmark test clips (1 000 000 + clips)."""

GUIDES = ("true", "off", "reversed", "other")
STARTS = ("noise", "inverted")
TRACKS = ("source", "reversed", "other")
FED = {"true": "source", "reversed": "reversed", "other": "other"}
"""The track each guide carries; `off` carries none and is the paired reference."""


@dataclass(frozen=True)
class ProbeConfig:
    clips: int = 3
    first_seed: int = VALIDATION_SEED
    method: str = "vidmp3"
    motion: str = "large"
    finetune_steps: int = 100
    learning_rate: float = 5e-4
    guide_learning_rate: float | None = None  # None: the method's
    guide_strength: float = 0.1
    motion_guide_hidden: int = 16
    finetune_seed: int = 0
    inversion_steps: int = 50
    sampling_steps: int = 50
    guidance_scale: float = 2.0
    noise_seed: int = 0
    segment_threshold: float = 0.2
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self):
        if get_method(self.method).guide_variant is None:
            raise InputError(f"probe method {self.method!r} has no MotionGuide to probe")
        if self.first_seed < VALIDATION_SEED:
            raise InputError(
                f"probe first_seed {self.first_seed} is below VALIDATION_SEED ({VALIDATION_SEED}): test or pretraining clips"
            )
        if self.clips < 1:
            raise InputError(f"probe clips must be at least 1, got {self.clips}")


def reversed_priors(priors: SourcePriors) -> SourcePriors:
    return SourcePriors(priors.corr[::-1].copy(), priors.depth[::-1].copy(), priors.alpha[::-1].copy())


def probe_clip(seed: int, config: ProbeConfig, spec: ModelSpec, work: Path) -> list[dict]:
    """Rows (clip_seed, start, guide, error against each track) for one clip."""
    plan = plan_clip(seed, 1)
    clip = world.render_toy_clip(plan.shape, plan.colour, seed, size=world.IMAGE_SIZE, motion=config.motion)
    other = world.render_toy_clip(plan.shape, plan.colour, seed + OTHER_CLIP_OFFSET, size=world.IMAGE_SIZE, motion=config.motion)
    priors = rendered_priors(clip)
    guides = {"true": priors, "reversed": reversed_priors(priors), "other": rendered_priors(other)}
    tracks = {"source": clip.mask, "reversed": clip.mask[::-1], "other": other.mask}
    variant = get_method(config.method).guide_variant
    finetune_config = FinetuneConfig(
        method=config.method,
        steps=config.finetune_steps,
        learning_rate=config.learning_rate,
        guide_strength=config.guide_strength,
        seed=config.finetune_seed,
        device=config.device,
        motion_guide_hidden=config.motion_guide_hidden,
        guide_learning_rate=config.guide_learning_rate,
    )
    weights = work / f"{config.method}-{seed}"
    guide = guide_input(priors.corr, priors.depth, variant)
    finetune(clip.frames, guide, priors.alpha, plan.caption, spec, finetune_config, weights)
    dtype = resolve_dtype(config.dtype, config.device)
    model = load_video_model(weights, len(clip.frames), priors, config.device, dtype)
    motion_guide = model.finetuned.motion_guide
    models = {}
    for name, source in guides.items():
        guide = torch.from_numpy(guide_input(source.corr, source.depth, variant)).to(config.device, dtype)
        with torch.no_grad():
            vectors = motion_guide(guide, torch.from_numpy(source.alpha).to(config.device, dtype))
        models[name] = replace(model, vectors=vectors)
    models["off"] = replace(model, finetuned=replace(model.finetuned, guide_strength=0.0))
    _, inverted = invert_frames(model, clip.frames, plan.caption, config.inversion_steps)
    generator = torch.Generator().manual_seed(config.noise_seed + seed)
    starts = {"noise": torch.randn(inverted.shape, generator=generator).to(inverted), "inverted": inverted}
    height, width = clip.frames.shape[1:3]
    rows = []
    for start, latents in starts.items():
        for name in GUIDES:
            sample = sample_edit(
                models[name], latents, plan.caption, "", config.guidance_scale, config.sampling_steps, height, width
            )
            masks = world.segment(sample, size=width, threshold=config.segment_threshold)
            errors = {f"error_{track}": trajectory_errors(masks, truth)[0] for track, truth in tracks.items()}
            rows.append({"clip_seed": seed, "start": start, "guide": name, **errors})
    return rows


def run_probe(config: ProbeConfig, spec: ModelSpec) -> pd.DataFrame:
    """Every clip's rows (see `probe_clip`)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="motionguide-probe-") as work:
        for index in range(config.clips):
            rows += probe_clip(config.first_seed + index, config, spec, Path(work))
    return pd.DataFrame(rows)


def probe_differences(rows: pd.DataFrame) -> pd.DataFrame:
    """start, guide, track, mean, ci_low, ci_high, clips: per clip, error(guide vs its track) minus
    error(off vs that track), summarised over clips (negative: the guide steers towards its track)."""
    records = []
    for start in STARTS:
        mine = rows[rows["start"] == start].set_index(["clip_seed", "guide"])
        for guide, track in FED.items():
            column = f"error_{track}"
            if guide not in mine.index.get_level_values("guide"):
                continue
            difference = (mine.xs(guide, level="guide")[column] - mine.xs("off", level="guide")[column]).dropna()
            low, high = bootstrap_interval(difference, pd.Series(difference.index, index=difference.index))
            records.append(
                {
                    "start": start,
                    "guide": guide,
                    "track": track,
                    "mean": float(difference.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    "clips": int(len(difference)),
                }
            )
    return pd.DataFrame(records)
