"""Pretraining of the ToyWorld models from the project's own renders: a text-to-image model, then a motion module.

No real weights can be had offline, so ToyWorld trains miniature versions of the real classes
(`UNet2DConditionModel`, `CLIPTextModel`, `MotionAdapter`) on renders of four shapes in four colours,
small enough for 2 CPU cores:

- `pretrain_image`: the UNet and the text encoder from scratch on still renders with their captions.
  The UNet predicts the clean latent (`prediction_type="sample"`; noise prediction was still noisy
  after the same time when ToyWorld was planned), 10% of captions are dropped to the empty prompt so
  classifier-free guidance works, and the saved weights are an exponential moving average (EMA).
  Latents are the 2x2 pixel-unshuffled frames (`PixelUnshuffleCodec`): exact, nothing to train.
- `pretrain_motion`: a `MotionAdapter` on the frozen image UNet (`build_video_unet`), on 8-frame clips
  of subjects moving, turning and changing depth, with the same objective. Spatial self-attention is
  the ordinary one, as AnimateDiff trains its motion modules: the ToyWorld preset then stands where the
  real AnimateDiff weights stand, and the project's fine-tuning switches to sparse-causal attention
  on top of it exactly as it does for them.
- `export_weights`: float16 copies in the preset layout, with the seeds, settings and measured quality.

Data seeds stay below `world.HELD_OUT_SEED`: the benchmark's clips are never seen in pretraining.
Each stage writes its folder atomically, with a loss curve, sample images and their classification by
the ToyWorld classifier (when given one).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import diffusers
import numpy as np
import torch
import torch.nn.functional as F
import transformers
from diffusers import DDIMScheduler, DDPMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.training_utils import EMAModel
from matplotlib.figure import Figure
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.model.codec import PixelUnshuffleCodec
from vidmp3.model.presets import TextConditioning
from vidmp3.model.tiny import tiny_scheduler
from vidmp3.model.video_unet import build_video_unet
from vidmp3.toyworld import world
from vidmp3.toyworld.classifier import classify, load_classifier
from vidmp3.toyworld.text import toyworld_tokenizer

log = logging.getLogger(__name__)

BLOCK_CHANNELS = (32, 64, 96)
TEXT_WIDTH = 64
MOTION_MAX_FRAMES = 32
"""Sinusoidal frame positions up to this many frames (AnimateDiff's 32); training clips have 8."""

BASE_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def toyworld_unet2d() -> UNet2DConditionModel:
    """SD-1.5's layout at 1/10 the width: plain convolutions at 16x16, cross-attention at 8x8 and 4x4
    (2.7 M parameters), on the codec's 12-channel 16x16 latents."""
    return UNet2DConditionModel(
        sample_size=world.IMAGE_SIZE // 2,
        in_channels=12,
        out_channels=12,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=BLOCK_CHANNELS,
        layers_per_block=1,
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=4,  # diffusers' legacy name: 4 heads
        norm_num_groups=32,
    )


def toyworld_text_encoder(tokenizer: CLIPTokenizer | None = None) -> CLIPTextModel:
    """A CLIP text encoder 64 wide with 2 layers over the word-level ToyWorld vocabulary (8 positions)."""
    tokenizer = tokenizer if tokenizer is not None else toyworld_tokenizer()
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_WIDTH,
        intermediate_size=2 * TEXT_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        projection_dim=TEXT_WIDTH,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def toyworld_motion_adapter() -> MotionAdapter:
    """AnimateDiff's motion adapter (a module after every resnet, and one in the mid block) at ToyWorld width.

    The output projection of every motion module starts at zero, as in AnimateDiff (diffusers
    initialises it randomly): the untrained video model is then exactly the image model per frame.
    """
    adapter = MotionAdapter(
        block_out_channels=BLOCK_CHANNELS,
        motion_layers_per_block=1,
        motion_num_attention_heads=4,
        motion_norm_num_groups=32,
        motion_max_seq_length=MOTION_MAX_FRAMES,
        use_motion_mid_block=True,
    )
    for name, module in adapter.named_modules():
        if name.endswith("proj_out"):
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
    return adapter


def toyworld_scheduler() -> DDIMScheduler:
    """SD-1.5's noise schedule; the UNet predicts the clean latent."""
    return DDIMScheduler.from_config(tiny_scheduler().config, prediction_type="sample")


def toyworld_codec() -> PixelUnshuffleCodec:
    return PixelUnshuffleCodec(factor=2, in_channels=3, scaling_factor=1.0, force_upcast=False)


def captions() -> list[str]:
    """Every ToyWorld caption, shape-major ("a red cube", "a green cube", ...)."""
    return [world.caption(shape, colour) for shape in world.SHAPES for colour in world.COLOURS]


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
    steps: int = 400
    batch_size: int = 8  # clips of world.CLIP_FRAMES frames
    learning_rate: float = 1e-3
    clips: int = 1500  # rendered once, then drawn at random
    large_share: float = 0.75  # clips with large motion (world.render_toy_clip), the rest small
    caption_dropout: float = 0.1
    ema_decay: float = 0.999
    guidance_scale: float = 2.0
    sample_steps: int = 25
    sample_clips: int = 8


def _check_settings(settings: ImageSettings | MotionSettings, stage: str, pool: str) -> None:
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


def _token_ids(tokenizer: CLIPTokenizer, prompts: list[str]) -> torch.Tensor:
    tokens = tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    return tokens.input_ids


CODEC = toyworld_codec()
"""Parameter-free, so one instance serves every stage (and is what base/vae's config describes)."""


def _to_latents(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (N, S, S, 3) -> codec latents (N, 12, S/2, S/2)."""
    pixels = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return CODEC.encode(pixels).latent_dist.mode()


def _to_frames(latents: torch.Tensor) -> np.ndarray:
    """Codec latents (N, 12, h, w) -> uint8 frames (N, 2h, 2w, 3)."""
    pixels = CODEC.decode(latents.float()).sample.clamp(-1, 1)
    return ((pixels + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _learning_rate_factor(step: int, steps: int, warmup: int = 100) -> float:
    """Linear warm-up, then a cosine decay to a tenth: the EMA of the last steps settles."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.45 * (1 + np.cos(np.pi * progress))


def _train(
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


def _write_loss_curve(folder: Path, rows: list[tuple[int, float, float]], title: str) -> None:
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
def _ddim_generate(
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


@torch.no_grad()
def _sample_images(
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    prompts: list[str],
    seed: int,
    steps: int,
    guidance_scale: float,
) -> np.ndarray:
    """One image per prompt, uint8 (N, S, S, 3), by guided DDIM from noise drawn from `seed`."""
    states = text_encoder(_token_ids(tokenizer, prompts + [""]))[0]
    size = unet.config.sample_size
    noise = torch.randn((len(prompts), unet.config.in_channels, size, size), generator=torch.Generator().manual_seed(seed))
    latents = _ddim_generate(
        lambda x, t, text: unet(x, t, text).sample,
        noise,
        states[:-1],
        states[-1:].expand(len(prompts), -1, -1),
        steps,
        guidance_scale,
    )
    return _to_frames(latents)


def draw_images(
    base: str | os.PathLike, prompts: list[str], seed: int = 0, steps: int = 25, guidance_scale: float = 2.0
) -> np.ndarray:
    """Draw one image per prompt with the text-to-image model saved in `base` (a preset's base folder,
    loaded in float32), as the sample grids do: the check that shipped weights still draw."""
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", torch_dtype=torch.float32).eval()
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", dtype=torch.float32).eval()
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    return _sample_images(unet, text_encoder, tokenizer, prompts, seed, steps, guidance_scale)


def _judge(classifier_dir: str | os.PathLike | None, frames: np.ndarray, prompts: list[str]) -> dict | None:
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


def _accuracy(verdict: dict) -> dict[str, float]:
    return {f"{name}_accuracy": float(right.mean()) for name, right in verdict.items()}


def _versions() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
    }


def _write_record(folder: Path, stage: str, settings, steps_seconds: float, extra: dict) -> None:
    record = {
        "stage": stage,
        "settings": asdict(settings),
        "seconds": round(steps_seconds, 1),
        "seconds_per_step": round(steps_seconds / settings.steps, 4),
        "threads": torch.get_num_threads(),
        "held_out_seed": world.HELD_OUT_SEED,
        "versions": _versions(),
        **extra,
    }
    (folder / "pretrain.json").write_text(json.dumps(record, indent=2))


def _image_grid(path: Path, frames: np.ndarray, prompts: list[str], per_prompt: int, scores: list[str] | None) -> None:
    """A 4x4 grid of captions, each cell its samples side by side (upscaled for viewing)."""
    size = frames.shape[1]
    figure = Figure(figsize=(1.1 * per_prompt * 4 + 0.4, 4 * 1.35))
    for index, prompt in enumerate(prompts):
        cell = frames[index * per_prompt : (index + 1) * per_prompt]
        row = np.concatenate([np.pad(image, ((0, 0), (0, 1), (0, 0)), constant_values=255) for image in cell], axis=1)
        axes = figure.add_subplot(4, 4, index + 1)
        axes.imshow(row[:, : per_prompt * (size + 1) - 1], interpolation="nearest")
        axes.set_title(prompt + (f" ({scores[index]})" if scores else ""), fontsize=8)
        axes.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def pretrain_image(
    settings: ImageSettings, out_dir: str | os.PathLike, classifier_dir: str | os.PathLike | None = None
) -> None:
    """Train the ToyWorld text-to-image model from scratch and write `out_dir` (atomically):

        base/{unet,vae,text_encoder,tokenizer,scheduler}/   save_pretrained folders (EMA weights)
        loss.csv, loss.png       the loss curve
        samples.png              samples_per_caption samples of each of the 16 captions (DDIM, guidance)
        samples.json             the classifier's shape/colour accuracy on them (with `classifier_dir`)
        pretrain.json            settings, timing, versions

    Same settings, same weights (on the same machine and thread count).
    """
    _check_settings(settings, "image", "images")
    prompts = captions()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        tokenizer = toyworld_tokenizer()
        unet = toyworld_unet2d()
        text_encoder = toyworld_text_encoder(tokenizer)
    log.info("rendering %d training images", settings.images)
    batch = world.render_images(settings.images, seed=settings.seed)
    images = torch.from_numpy(batch.images)
    colour_names = list(world.COLOURS)
    prompt_index = torch.tensor(
        [prompts.index(world.caption(world.SHAPES[s], colour_names[c])) for s, c in zip(batch.shapes, batch.colours)]
    )
    token_ids = _token_ids(tokenizer, prompts + [""])  # the empty prompt last: caption dropout and guidance
    empty = len(prompts)

    scheduler = DDPMScheduler.from_config(toyworld_scheduler().config)
    generator = torch.Generator().manual_seed(settings.seed)
    unet.train()
    text_encoder.train()
    parameters = [p for p in list(unet.parameters()) + list(text_encoder.parameters()) if p.requires_grad]

    def loss_of_step() -> torch.Tensor:
        chosen = torch.randint(0, settings.images, (settings.batch_size,), generator=generator)
        latents = _to_latents(images[chosen])
        dropped = torch.rand(settings.batch_size, generator=generator) < settings.caption_dropout
        which = torch.where(dropped, empty, prompt_index[chosen])
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (settings.batch_size,), generator=generator)
        states = text_encoder(token_ids)[0][which]  # 17 prompts encoded once per step, then gathered
        prediction = unet(scheduler.add_noise(latents, noise, timesteps), timesteps, states).sample
        return F.mse_loss(prediction, latents)

    ema, rows, seconds = _train(
        parameters, loss_of_step, settings.steps, settings.learning_rate, settings.ema_decay, "pretrain image model"
    )
    ema.copy_to(parameters)
    unet.eval()
    text_encoder.eval()

    sample_prompts = [prompt for prompt in prompts for _ in range(settings.samples_per_caption)]
    frames = _sample_images(
        unet, text_encoder, tokenizer, sample_prompts, settings.seed + 1, settings.sample_steps, settings.guidance_scale
    )
    verdict = _judge(classifier_dir, frames, sample_prompts)
    samples = {
        "samples": len(sample_prompts),
        "guidance_scale": settings.guidance_scale,
        "sample_steps": settings.sample_steps,
    }
    scores = None
    if verdict is not None:
        samples.update(_accuracy(verdict))
        per_caption = verdict["both"].reshape(len(prompts), settings.samples_per_caption).sum(axis=1)
        scores = [f"{right}/{settings.samples_per_caption}" for right in per_caption]
        log.info("image samples judged by the classifier: %s", samples)

    with atomic_path(out_dir) as tmp:
        base = tmp / "base"
        unet.save_pretrained(base / "unet")
        CODEC.save_pretrained(base / "vae")
        text_encoder.save_pretrained(base / "text_encoder")
        tokenizer.save_pretrained(base / "tokenizer")
        toyworld_scheduler().save_pretrained(base / "scheduler")
        _write_loss_curve(tmp, rows, "ToyWorld text-to-image pretraining")
        _image_grid(tmp / "samples.png", frames, prompts, settings.samples_per_caption, scores)
        (tmp / "samples.json").write_text(json.dumps(samples, indent=2))
        data = {"render_images_seed": settings.seed, "images": settings.images}
        _write_record(tmp, "image", settings, seconds, {"data": data, "samples": samples})


def render_training_clips(count: int, seed: int, large_share: float) -> tuple[np.ndarray, list[str]]:
    """`count` clips (count, CLIP_FRAMES, S, S, 3) of random subjects on random paths (large motion with
    probability `large_share`, else small; trajectory seeds below HELD_OUT_SEED), with their captions.
    Same arguments, same clips."""
    rng = np.random.default_rng(seed)
    colour_names = list(world.COLOURS)
    frames = np.empty((count, world.CLIP_FRAMES, world.IMAGE_SIZE, world.IMAGE_SIZE, 3), dtype=np.uint8)
    prompts = []
    for index in tqdm(range(count), desc="render training clips"):
        shape, colour = world.SHAPES[rng.integers(len(world.SHAPES))], colour_names[rng.integers(len(colour_names))]
        motion = "large" if rng.random() < large_share else "small"
        trajectory_seed = int(rng.integers(world.HELD_OUT_SEED))
        clip = world.render_toy_clip(shape, colour, trajectory_seed, frames=world.CLIP_FRAMES, motion=motion)
        frames[index] = clip.frames
        prompts.append(world.caption(shape, colour))
    return frames, prompts


def _video_latents(frames: torch.Tensor) -> torch.Tensor:
    """uint8 clips (B, N, S, S, 3) -> the video UNet's latents (B, 12, N, S/2, S/2)."""
    batch, num_frames = frames.shape[:2]
    return _to_latents(frames.flatten(0, 1)).unflatten(0, (batch, num_frames)).transpose(1, 2)


def _motion_parameters(unet: UNetMotionModel) -> list[torch.nn.Parameter]:
    """Freeze the video UNet except its motion modules; return those."""
    unet.requires_grad_(False)
    parameters = [parameter for name, parameter in unet.named_parameters() if ".motion_modules." in name]
    for parameter in parameters:
        parameter.requires_grad_(True)
    return parameters


def motion_statistics(frames: np.ndarray) -> dict[str, float]:
    """How much clips (B, N, S, S, 3) move: mean |frame t - frame t-1| (0-1 scale) and how far the
    subject's centroid (world.segment) travels from the first frame to the last, as a fraction of the width."""
    step = np.abs(np.diff(frames.astype(np.float32) / 255.0, axis=1)).mean()
    masks = world.segment(frames, size=frames.shape[2])
    travel = []
    for clip in masks:
        first, last = clip[0], clip[-1]
        if first.any() and last.any():
            centroid = [np.argwhere(mask).mean(axis=0) for mask in (first, last)]
            travel.append(np.linalg.norm(centroid[1] - centroid[0]) / frames.shape[3])
    return {"frame_step_l1": float(step), "centroid_travel": float(np.mean(travel)) if travel else float("nan")}


def _clip_strip(path: Path, samples: np.ndarray, truth: np.ndarray, prompts: list[str]) -> None:
    """Per caption, a clip sampled from noise (top row) above a rendered training clip (bottom row)."""

    def row(clip: np.ndarray) -> np.ndarray:
        return np.concatenate([np.pad(frame, ((0, 1), (0, 1), (0, 0)), constant_values=255) for frame in clip], axis=1)

    figure = Figure(figsize=(8, 2.3 * len(prompts) + 0.2))
    for index, prompt in enumerate(prompts):
        axes = figure.add_subplot(len(prompts), 1, index + 1)
        axes.imshow(np.concatenate([row(samples[index]), row(truth[index])], axis=0), interpolation="nearest")
        axes.set_title(f"{prompt}: sampled (top), rendered (bottom)", fontsize=9)
        axes.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def pretrain_motion(
    settings: MotionSettings,
    image_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    classifier_dir: str | os.PathLike | None = None,
) -> None:
    """Train a motion adapter on the frozen image model of `image_dir` (pretrain_image's folder) and
    write `out_dir` (atomically):

        motion_adapter/          save_pretrained folder (EMA weights)
        loss.csv, loss.png       the loss curve
        samples.png              clips sampled from noise beside rendered clips of the same captions
        samples.json             their motion against the rendered clips' (and the classifier's verdict)
        pretrain.json            settings, timing, versions
    """
    _check_settings(settings, "motion", "clips")
    if not 0 <= settings.large_share <= 1:
        raise InputError(f"toyworld pretrain motion large_share must be in [0, 1], got {settings.large_share}")
    base = Path(image_dir) / "base"
    for component in ("unet", "text_encoder", "tokenizer"):
        if not (base / component).is_dir():
            raise InputError(f"toyworld image model {image_dir}: no base/{component} (run pretrain_image first)")
    unet2d = UNet2DConditionModel.from_pretrained(base, subfolder="unet", use_safetensors=True)
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", use_safetensors=True).eval()
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    prompts = captions()
    with torch.no_grad():
        text_table = text_encoder(_token_ids(tokenizer, prompts + [""]))[0]
    empty = len(prompts)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        adapter = toyworld_motion_adapter()
    unet = build_video_unet(unet2d, adapter, where="toyworld motion adapter")
    parameters = _motion_parameters(unet)
    unet.train()

    clips, clip_prompts = render_training_clips(settings.clips, settings.seed, settings.large_share)
    clips_tensor = torch.from_numpy(clips)
    prompt_index = torch.tensor([prompts.index(prompt) for prompt in clip_prompts])
    num_frames = clips.shape[1]
    scheduler = DDPMScheduler.from_config(toyworld_scheduler().config)
    generator = torch.Generator().manual_seed(settings.seed)

    def loss_of_step() -> torch.Tensor:
        chosen = torch.randint(0, settings.clips, (settings.batch_size,), generator=generator)
        latents = _video_latents(clips_tensor[chosen])
        dropped = torch.rand(settings.batch_size, generator=generator) < settings.caption_dropout
        text = TextConditioning(text_table[torch.where(dropped, empty, prompt_index[chosen])], None)
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (settings.batch_size,), generator=generator)
        noisy = scheduler.add_noise(latents, noise, timesteps)  # one timestep per clip, for all its frames
        prediction = unet(noisy, timesteps, **text.unet_kwargs(num_frames)).sample
        return F.mse_loss(prediction, latents)

    ema, rows, seconds = _train(
        parameters, loss_of_step, settings.steps, settings.learning_rate, settings.ema_decay, "pretrain motion module"
    )
    ema.copy_to(parameters)
    unet.eval()
    adapter.load_state_dict({name: value for name, value in unet.state_dict().items() if ".motion_modules." in name})

    # Sample clips for the first sample_clips training captions, and compare with those rendered clips.
    count = min(settings.sample_clips, settings.clips)
    sample_prompts, truth = clip_prompts[:count], clips[:count]
    states = text_table[[prompts.index(prompt) for prompt in sample_prompts]]
    sample_generator = torch.Generator().manual_seed(settings.seed + 1)
    size = unet2d.config.sample_size
    noise = torch.randn((count, unet2d.config.in_channels, num_frames, size, size), generator=sample_generator)
    latents = _ddim_generate(
        lambda x, t, text: unet(x, t, **TextConditioning(text, None).unet_kwargs(num_frames)).sample,
        noise,
        states,
        text_table[empty:].expand(count, -1, -1),
        settings.sample_steps,
        settings.guidance_scale,
    )
    sampled = _to_frames(latents.transpose(1, 2).flatten(0, 1)).reshape(truth.shape)
    samples = {
        "clips": count,
        "guidance_scale": settings.guidance_scale,
        "sample_steps": settings.sample_steps,
        "sampled": motion_statistics(sampled),
        "rendered": motion_statistics(truth),
    }
    frame_prompts = [prompt for prompt in sample_prompts for _ in range(num_frames)]
    verdict = _judge(classifier_dir, sampled.reshape(-1, *sampled.shape[2:]), frame_prompts)
    if verdict is not None:
        samples.update(_accuracy(verdict))
    log.info("motion samples: %s", samples)

    with atomic_path(out_dir) as tmp:
        adapter.save_pretrained(tmp / "motion_adapter")
        _write_loss_curve(tmp, rows, "ToyWorld motion-module pretraining")
        _clip_strip(tmp / "samples.png", sampled, truth, sample_prompts)
        (tmp / "samples.json").write_text(json.dumps(samples, indent=2))
        _write_record(
            tmp,
            "motion",
            settings,
            seconds,
            {
                "image_model": str(image_dir),
                "data": {"clip_seed": settings.seed, "clips": settings.clips},
                "samples": samples,
            },
        )


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path} is missing (is {path.parent} a finished pretraining folder?)")
    return json.loads(path.read_text())


def _model_card(record: dict) -> str:
    image, motion, classifier = record["image"], record["motion"], record["classifier"]["accuracy"]

    def percent(value) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    def held_out(split: str) -> str:
        return percent(classifier.get(split, {}).get("both"))

    image_samples, motion_samples = image["samples"], motion["samples"]
    return f"""# ToyWorld weights

Miniature text-to-video weights for the ToyWorld benchmark and demo: the same classes as the SD-1.5 +
AnimateDiff presets (`UNet2DConditionModel`, `CLIPTextModel`, `MotionAdapter`), trained from scratch
by the project on its own renders of four shapes (cube, sphere, cone, cylinder) in four colours (red,
green, blue, yellow) at 32x32 pixels, captions like "a red cube". The `vae` is `PixelUnshuffleCodec`
(2x2 pixel unshuffle, no weights); the UNet predicts the clean latent (`prediction_type: sample`).
`classifier/` names the shape and colour of a frame (`vidmp3.toyworld.classifier`). Weights are
stored in float16. Rebuild them from scratch with `make toyworld-weights`.

| part | training | seconds |
| --- | --- | --- |
| base (unet, text_encoder) | {image["settings"]["steps"]} steps of {image["settings"]["batch_size"]} images from {image["settings"]["images"]} renders, seed {image["settings"]["seed"]} | {image["seconds"]} ({image["threads"]} threads) |
| motion_adapter | {motion["settings"]["steps"]} steps of {motion["settings"]["batch_size"]} 8-frame clips from {motion["settings"]["clips"]} renders, seed {motion["settings"]["seed"]} | {motion["seconds"]} ({motion["threads"]} threads) |
| classifier | {classifier.get("steps")} steps, seed {classifier.get("seed")} | {classifier.get("train_seconds")} |

Pretraining data used seeds below {image["held_out_seed"]}; benchmark and demo clips use seeds from it up.

Quality when trained (DDIM {image_samples["sample_steps"]} steps, guidance {image_samples["guidance_scale"]}, judged by `classifier/`):
- images: right shape {percent(image_samples.get("shape_accuracy"))}, colour {percent(image_samples.get("colour_accuracy"))},
  both {percent(image_samples.get("both_accuracy"))} of {image_samples["samples"]} samples ({image["settings"]["samples_per_caption"]} per caption).
- clips sampled from noise ({motion_samples["clips"]}): both right in {percent(motion_samples.get("both_accuracy"))} of frames;
  mean frame-to-frame change {motion_samples["sampled"]["frame_step_l1"]:.4f} (rendered clips {motion_samples["rendered"]["frame_step_l1"]:.4f}),
  centroid travel {motion_samples["sampled"]["centroid_travel"]:.3f} of the width (rendered {motion_samples["rendered"]["centroid_travel"]:.3f}).
- classifier, both right on held-out renders: stills {held_out("stills")}, clip frames {held_out("clip_frames")}.

`pretrain.json` holds every setting, step count, timing and library version. These weights know only
ToyWorld: they draw nothing but the 16 captions' subjects on the ToyWorld backdrop.
"""


def _half_safetensors(source: Path, target: Path) -> None:
    tensors = load_file(source)
    save_file({name: tensor.half() if tensor.is_floating_point() else tensor for name, tensor in tensors.items()}, target)


def export_weights(
    image_dir: str | os.PathLike,
    motion_dir: str | os.PathLike,
    classifier_dir: str | os.PathLike,
    shipped_dir: str | os.PathLike,
) -> None:
    """float16 copies of the pretrained ToyWorld models in the preset layout, written to `shipped_dir`
    (atomically): base/{unet,vae,text_encoder,tokenizer,scheduler}/, motion_adapter/, classifier/,
    pretrain.json (each stage's settings, seeds, step counts, timing, versions, sample quality) and MODEL_CARD.md."""
    image_dir, motion_dir, classifier_dir = Path(image_dir), Path(motion_dir), Path(classifier_dir)
    base = image_dir / "base"
    for folder in [base / component for component in BASE_COMPONENTS] + [motion_dir / "motion_adapter"]:
        if not folder.is_dir():
            raise InputError(f"toyworld export: {folder} is missing (run the pretraining stages first)")
    if not (classifier_dir / "model.safetensors").is_file():
        raise InputError(f"toyworld export: {classifier_dir}/model.safetensors is missing (train the classifier first)")
    record = {
        "image": _read_json(image_dir / "pretrain.json"),
        "motion": _read_json(motion_dir / "pretrain.json"),
        "classifier": {
            "config": _read_json(classifier_dir / "config.json"),
            "accuracy": _read_json(classifier_dir / "accuracy.json"),
        },
        "export": {"dtype": "float16", "versions": _versions()},
    }
    with atomic_path(shipped_dir) as tmp:
        unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", use_safetensors=True)
        unet.half().save_pretrained(tmp / "base" / "unet")
        text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", use_safetensors=True)
        text_encoder.half().save_pretrained(tmp / "base" / "text_encoder")
        for component in ("vae", "tokenizer", "scheduler"):
            shutil.copytree(base / component, tmp / "base" / component)
        adapter = MotionAdapter.from_pretrained(motion_dir / "motion_adapter", use_safetensors=True)
        adapter.half().save_pretrained(tmp / "motion_adapter")
        (tmp / "classifier").mkdir()
        _half_safetensors(classifier_dir / "model.safetensors", tmp / "classifier" / "model.safetensors")
        for name in ("config.json", "accuracy.json"):
            shutil.copy2(classifier_dir / name, tmp / "classifier" / name)
        (tmp / "pretrain.json").write_text(json.dumps(record, indent=2))
        (tmp / "MODEL_CARD.md").write_text(_model_card(record))
