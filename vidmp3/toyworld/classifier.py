"""The ToyWorld judge: a small CNN that names the shape and colour of a 32x32 frame.

Edit correctness in the benchmark and the shipped-weights check both ask "did the model draw a
blue sphere?"; this classifier answers from pixels. It is trained only on renders (fresh ones every
step) with mild blur, noise and brightness changes, because it must also judge generated frames,
which are softer and noisier than renders; its accuracy is measured on held-out seeds.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.toyworld.world import COLOURS, HELD_OUT_SEED, IMAGE_SIZE, SHAPES, render_images, render_toy_clip

WIDTHS = (16, 24, 48)
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
EVAL_IMAGES = 1024
EVAL_CLIPS = 32


class ToyClassifier(nn.Module):
    """Stages of 3x3 convolutions (batch-normalised), each followed by a 2x2 max pool; global average; a linear head.

    The first stage (full resolution) has one convolution, the others two: most of the cost of a
    small CNN is at full resolution, where one layer of colour and edge detectors is enough. Batch
    normalisation made shape accuracy climb several times faster in the same number of steps.
    """

    def __init__(self, widths: tuple[int, ...] = WIDTHS, image_size: int = IMAGE_SIZE):
        super().__init__()
        self.widths = tuple(int(width) for width in widths)
        self.image_size = int(image_size)
        stages, channels = [], 3
        for index, width in enumerate(self.widths):
            layers = [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            if index > 0:
                layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(channels, len(SHAPES) + len(COLOURS))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape logits (N, 4) and colour logits (N, 4) of images (N, 3, S, S) in [-1, 1]."""
        x = images
        for stage in self.stages:
            x = stage(x)
        logits = self.head(x.mean(dim=(2, 3)))
        return logits[:, : len(SHAPES)], logits[:, len(SHAPES) :]


class Classification(NamedTuple):
    """Per frame: the most likely shape and colour (indices into SHAPES and COLOURS) and all probabilities."""

    shapes: np.ndarray  # int64 (N,)
    colours: np.ndarray  # int64 (N,)
    probabilities: dict[str, np.ndarray]  # "shape" and "colour": float32 (N, 4)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> float32 (N, 3, S, S) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def degrade(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mild, random blur / noise / brightness and contrast changes, each on part of the batch.

    Generated frames are softer, noisier and slightly off in tone compared with renders; training
    on such versions keeps the judge fair to them.
    """
    n = len(images)

    def some(probability: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) < probability).float()[:, None, None, None]

    blur = some(0.4) * torch.rand(n, generator=generator)[:, None, None, None]  # share of a 3x3 box blur
    images = blur * F.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False) + (1.0 - blur) * images
    gain = 1.0 + 0.2 * (torch.rand(n, generator=generator) - 0.5)
    offset = 0.1 * (torch.rand(n, generator=generator) - 0.5)
    toned = some(0.5)
    images = toned * (images * gain[:, None, None, None] + offset[:, None, None, None]) + (1.0 - toned) * images
    noise_std = 0.08 * torch.rand(n, generator=generator)[:, None, None, None]
    images = images + some(0.4) * noise_std * torch.randn(images.shape, generator=generator)
    return images.clamp(-1.0, 1.0)


def classify(model: ToyClassifier, frames: np.ndarray, batch_size: int = 256) -> Classification:
    """Shape and colour of each frame, uint8 (N, S, S, 3) at the classifier's size (model in eval mode, as loaded)."""
    frames = np.asarray(frames)
    size = model.image_size
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (size, size, 3):
        raise InputError(f"frames to classify must be uint8 (N, {size}, {size}, 3), got {frames.dtype} {frames.shape}")
    shape_probs, colour_probs = [], []
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            shape_logits, colour_logits = model(_to_tensor(frames[start : start + batch_size]))
            shape_probs.append(shape_logits.softmax(-1).numpy())
            colour_probs.append(colour_logits.softmax(-1).numpy())
    shape_probs = np.concatenate(shape_probs) if shape_probs else np.zeros((0, len(SHAPES)), np.float32)
    colour_probs = np.concatenate(colour_probs) if colour_probs else np.zeros((0, len(COLOURS)), np.float32)
    return Classification(
        shapes=shape_probs.argmax(1).astype(np.int64),
        colours=colour_probs.argmax(1).astype(np.int64),
        probabilities={"shape": shape_probs, "colour": colour_probs},
    )


def _accuracy(model: ToyClassifier, frames: np.ndarray, shapes: np.ndarray, colours: np.ndarray) -> dict[str, float]:
    found = classify(model, frames)
    return {
        "shape": float(np.mean(found.shapes == shapes)),
        "colour": float(np.mean(found.colours == colours)),
        "both": float(np.mean((found.shapes == shapes) & (found.colours == colours))),
        "frames": len(frames),
    }


def evaluate(
    model: ToyClassifier,
    seed: int,
    images: int = EVAL_IMAGES,
    clips: int = EVAL_CLIPS,
) -> dict[str, dict[str, float]]:
    """Accuracy on held-out renders: stills, clip frames, and the stills degraded like in training."""
    stills = render_images(images, seed=HELD_OUT_SEED + seed)
    clip_frames, clip_shapes, clip_colours = [], [], []
    colour_names = tuple(COLOURS)
    for index in range(clips):
        shape, colour = index % len(SHAPES), index // len(SHAPES) % len(COLOURS)
        clip = render_toy_clip(SHAPES[shape], colour_names[colour], HELD_OUT_SEED + seed + index)
        clip_frames.append(clip.frames)
        clip_shapes += [shape] * len(clip.frames)
        clip_colours += [colour] * len(clip.frames)
    generator = torch.Generator().manual_seed(HELD_OUT_SEED + seed)
    degraded = degrade(_to_tensor(stills.images), generator)
    degraded = ((degraded + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return {
        "stills": _accuracy(model, stills.images, stills.shapes, stills.colours),
        "clip_frames": _accuracy(model, np.concatenate(clip_frames), np.array(clip_shapes), np.array(clip_colours)),
        "degraded_stills": _accuracy(model, degraded, stills.shapes, stills.colours),
    }


def train_classifier(
    seed: int,
    steps: int,
    out_dir: str | os.PathLike,
    eval_images: int = EVAL_IMAGES,
    eval_clips: int = EVAL_CLIPS,
) -> dict:
    """Train on fresh renders (seeds below HELD_OUT_SEED), check on held-out ones, write `out_dir` atomically.

    `out_dir` gets model.safetensors, config.json and accuracy.json (the `evaluate` result on
    `eval_images` stills and `eval_clips` clips, the training time and settings). The same seed and
    steps give the same weights.
    """
    if int(steps) != steps or steps < 1:
        raise InputError(f"classifier steps {steps} must be a positive integer")
    if int(seed) != seed or not 0 <= seed < HELD_OUT_SEED:
        raise InputError(f"classifier seed {seed} must be an integer in [0, {HELD_OUT_SEED})")
    if int(eval_images) != eval_images or eval_images < 1 or int(eval_clips) != eval_clips or eval_clips < 1:
        raise InputError(f"classifier eval_images {eval_images} and eval_clips {eval_clips} must be positive integers")
    started, started_cpu = time.perf_counter(), time.process_time()
    batch_seeds = np.random.default_rng(seed).integers(HELD_OUT_SEED, size=int(steps))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ToyClassifier()
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser,
            max_lr=LEARNING_RATE,
            total_steps=int(steps),
            pct_start=0.1,
        )
        progress = tqdm(batch_seeds, desc="toyworld classifier", unit="step", mininterval=5.0)
        for batch_seed in progress:
            batch = render_images(BATCH_SIZE, seed=int(batch_seed))
            images = degrade(_to_tensor(batch.images), generator)
            shape_logits, colour_logits = model(images)
            loss = F.cross_entropy(shape_logits, torch.from_numpy(batch.shapes))
            loss = loss + F.cross_entropy(colour_logits, torch.from_numpy(batch.colours))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    model.eval()
    train_seconds, train_cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    accuracy = evaluate(model, seed, int(eval_images), int(eval_clips))
    record = {
        **accuracy,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "steps": int(steps),
        "seed": int(seed),
        "batch_size": BATCH_SIZE,
        "torch_threads": torch.get_num_threads(),
    }
    config = {
        "widths": list(model.widths),
        "image_size": model.image_size,
        "shapes": list(SHAPES),
        "colours": list(COLOURS),
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        save_file({name: value.contiguous() for name, value in model.state_dict().items()}, tmp / "model.safetensors")
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "accuracy.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def load_classifier(folder: str | os.PathLike) -> ToyClassifier:
    """The classifier saved by `train_classifier` (float32 in eval mode, also from fp16 shipped weights)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise InputError(f"classifier folder {folder} needs config.json and model.safetensors (made by train_classifier)")
    config = json.loads((folder / "config.json").read_text())
    if tuple(config["shapes"]) != SHAPES or tuple(config["colours"]) != tuple(COLOURS):
        raise InputError(
            f"classifier {folder} names shapes {config['shapes']} and colours {config['colours']}, "
            f"not ToyWorld's {list(SHAPES)} and {list(COLOURS)}"
        )
    model = ToyClassifier(widths=tuple(config["widths"]), image_size=config["image_size"])
    state = {name: value.float() for name, value in load_file(folder / "model.safetensors").items()}
    model.load_state_dict(state)
    return model.eval()
