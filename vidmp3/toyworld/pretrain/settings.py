"""The settings of the two training stages (the workflow's `toyworld: pretrain:` config) and their checks."""

from __future__ import annotations

from dataclasses import dataclass

from vidmp3.errors import InputError
from vidmp3.toyworld import world


@dataclass(frozen=True)
class ImageSettings:
    """Text-to-image pretraining (the workflow's `toyworld: pretrain:` config)."""

    seed: int = 0
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 1e-3
    images: int = 20000  # rendered once, then drawn at random
    caption_dropout: float = 0.1
    ema_decay: float = 0.999
    guidance_scale: float = 2.0
    sample_steps: int = 25
    samples_per_caption: int = 4


@dataclass(frozen=True)
class MotionSettings:
    """Motion-module pretraining (the workflow's `toyworld: pretrain:` config)."""

    seed: int = 0
    steps: int = 800
    batch_size: int = 8  # clips of world.CLIP_FRAMES frames
    learning_rate: float = 1e-3
    clips: int = 1500  # rendered once, then drawn at random
    large_share: float = 0.75  # clips with large motion (world.render_toy_clip), the rest small
    caption_dropout: float = 0.1
    ema_decay: float = 0.999
    guidance_scale: float = 2.0
    sample_steps: int = 25
    sample_clips: int = 8


def check_settings(settings: ImageSettings | MotionSettings, stage: str, pool: str) -> None:
    where = f"toyworld pretrain {stage}"
    if not 0 <= settings.seed < world.HELD_OUT_SEED:
        raise InputError(
            f"{where} seed {settings.seed} must be in [0, {world.HELD_OUT_SEED}) (held-out seeds are for the benchmark)"
        )
    for name in ("steps", "batch_size", pool, "sample_steps"):
        if getattr(settings, name) < 1:
            raise InputError(f"{where} {name} must be positive, got {getattr(settings, name)}")
    if not settings.learning_rate > 0:
        raise InputError(f"{where} learning_rate must be positive, got {settings.learning_rate}")
    if not 0 <= settings.caption_dropout < 1:
        raise InputError(f"{where} caption_dropout must be in [0, 1), got {settings.caption_dropout}")
    if not 0 <= settings.ema_decay < 1:
        raise InputError(f"{where} ema_decay must be in [0, 1), got {settings.ema_decay}")
    if settings.guidance_scale < 1:
        raise InputError(f"{where} guidance_scale must be at least 1, got {settings.guidance_scale}")
