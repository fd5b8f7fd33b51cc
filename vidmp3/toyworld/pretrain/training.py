"""What the pretraining stages share: the codec's latents, the AdamW + EMA loop, loss
curves, guided DDIM sampling, the classifier's verdict and the stage record (`pretrain.json`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import diffusers
import numpy as np
import torch
import transformers
from diffusers import DDIMScheduler
from diffusers.training_utils import EMAModel
from matplotlib.figure import Figure
from tqdm import tqdm
from transformers import CLIPTokenizer

from vidmp3.toyworld import world
from vidmp3.toyworld.classifier import classify, load_classifier
from vidmp3.toyworld.pretrain.models import toyworld_codec, toyworld_scheduler

log = logging.getLogger(__name__)


def prompt_token_ids(tokenizer: CLIPTokenizer, prompts: list[str]) -> torch.Tensor:
    tokens = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt")
    return tokens.input_ids


CODEC = toyworld_codec()
"""Parameter-free, so one instance serves every stage (and is what base/vae's config describes)."""


def to_latents(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (N, S, S, 3) -> codec latents (N, 12, S/2, S/2)."""
    pixels = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return CODEC.encode(pixels).latent_dist.mode()


def to_frames(latents: torch.Tensor) -> np.ndarray:
    """Codec latents (N, 12, h, w) -> uint8 frames (N, 2h, 2w, 3)."""
    pixels = CODEC.decode(latents.float()).sample.clamp(-1, 1)
    return ((pixels + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _learning_rate_factor(step: int, steps: int, warmup: int = 100) -> float:
    """Linear warm-up, then a cosine decay to a tenth: the EMA of the last steps settles."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.45 * (1 + np.cos(np.pi * progress))


def train(
    parameters: list[torch.nn.Parameter],
    loss_of_step: Callable[[], torch.Tensor],
    steps: int,
    learning_rate: float,
    ema_decay: float,
    desc: str,
) -> tuple[EMAModel, list[tuple[int, float, float]], float]:
    """AdamW with gradient clipping and an EMA of `parameters`; returns the EMA, (step, loss, lr) rows, seconds."""
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _learning_rate_factor(step, steps))
    ema = EMAModel(parameters, decay=ema_decay, foreach=True)
    rows = []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, mininterval=10.0)  # a log line every 10 s, not every step
    for step in bar:
        loss = loss_of_step()
        if not torch.isfinite(loss):
            raise RuntimeError(f"{desc}: loss is {loss.item()} at step {step}; nothing written")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        rows.append((step, float(loss.item()), float(schedule.get_last_lr()[0])))
        schedule.step()
        ema.step(parameters)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean([row[1] for row in rows[-50:]]):.4f}")
    seconds = time.perf_counter() - start
    log.info("%s: %d steps in %.0f s (%.3f s/step)", desc, steps, seconds, seconds / steps)
    return ema, rows, seconds


def write_loss_curve(folder: Path, rows: list[tuple[int, float, float]], title: str) -> None:
    with open(folder / "loss.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss", "learning_rate"])
        writer.writerows(rows)
    steps = np.array([row[0] for row in rows])
    values = np.array([row[1] for row in rows])
    window = max(1, min(50, len(values) // 5))  # each step's loss depends on its sampled timesteps
    figure = Figure(figsize=(6, 3.5))
    axes = figure.add_subplot()
    axes.plot(steps, values, lw=0.6, alpha=0.35, label="per step")
    running = np.convolve(values, np.ones(window) / window, mode="valid")
    axes.plot(steps[window - 1 :], running, lw=1.5, label=f"mean of {window}")
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("clean-latent MSE")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(folder / "loss.png", dpi=100)


@torch.no_grad()
def ddim_generate(
    predict: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    conditional: torch.Tensor,
    unconditional: torch.Tensor,
    steps: int,
    guidance_scale: float,
) -> torch.Tensor:
    """DDIM from `noise` (batch first) with classifier-free guidance between the two text embeddings."""
    scheduler = DDIMScheduler.from_config(toyworld_scheduler().config)
    scheduler.set_timesteps(steps)
    latents = noise
    text = torch.cat([unconditional, conditional])
    for timestep in scheduler.timesteps:
        both = predict(torch.cat([latents, latents]), timestep, text)
        uncond, cond = both.chunk(2)
        latents = scheduler.step(uncond + guidance_scale * (cond - uncond), timestep, latents).prev_sample
    return latents


def judge(classifier_dir: str | os.PathLike | None, frames: np.ndarray, prompts: list[str]) -> dict | None:
    """The classifier's verdict on frames (N, S, S, 3) drawn for `prompts` (one each): per frame whether
    it found the caption's shape, its colour, and both; None without a classifier."""
    if classifier_dir is None:
        return None
    parsed = [world.parse_caption(prompt) for prompt in prompts]
    colour_names = list(world.COLOURS)
    shape_found, colour_found, _ = classify(load_classifier(classifier_dir), frames)
    shape_right = np.asarray(shape_found) == np.array([world.SHAPES.index(shape) for shape, _ in parsed])
    colour_right = np.asarray(colour_found) == np.array([colour_names.index(colour) for _, colour in parsed])
    return {"shape": shape_right, "colour": colour_right, "both": shape_right & colour_right}


def accuracy(verdict: dict) -> dict[str, float]:
    return {f"{name}_accuracy": float(right.mean()) for name, right in verdict.items()}


def versions() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
    }


def write_record(folder: Path, stage: str, settings, steps_seconds: float, extra: dict) -> None:
    record = {
        "stage": stage,
        "settings": asdict(settings),
        "seconds": round(steps_seconds, 1),
        "seconds_per_step": round(steps_seconds / settings.steps, 4),
        "threads": torch.get_num_threads(),
        "held_out_seed": world.HELD_OUT_SEED,
        "versions": versions(),
        **extra,
    }
    (folder / "pretrain.json").write_text(json.dumps(record, indent=2))
