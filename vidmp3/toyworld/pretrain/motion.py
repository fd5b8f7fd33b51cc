"""Stage 2: a `MotionAdapter` on the frozen image UNet, on clips of subjects moving, turning and changing depth."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel, UNetMotionModel
from matplotlib.figure import Figure
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.model.presets import TextConditioning
from vidmp3.model.video_unet import build_video_unet
from vidmp3.toyworld import world
from vidmp3.toyworld.pretrain.models import captions, toyworld_motion_adapter, toyworld_scheduler
from vidmp3.toyworld.pretrain.settings import MotionSettings, check_settings
from vidmp3.toyworld.pretrain.training import (
    accuracy,
    ddim_generate,
    judge,
    prompt_token_ids,
    to_frames,
    to_latents,
    train,
    write_loss_curve,
    write_record,
)

log = logging.getLogger(__name__)


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
    return to_latents(frames.flatten(0, 1)).unflatten(0, (batch, num_frames)).transpose(1, 2)


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
    check_settings(settings, "motion", "clips")
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
        text_table = text_encoder(prompt_token_ids(tokenizer, prompts + [""]))[0]
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

    ema, rows, seconds = train(
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
    latents = ddim_generate(
        lambda x, t, text: unet(x, t, **TextConditioning(text, None).unet_kwargs(num_frames)).sample,
        noise,
        states,
        text_table[empty:].expand(count, -1, -1),
        settings.sample_steps,
        settings.guidance_scale,
    )
    sampled = to_frames(latents.transpose(1, 2).flatten(0, 1)).reshape(truth.shape)
    samples = {
        "clips": count,
        "guidance_scale": settings.guidance_scale,
        "sample_steps": settings.sample_steps,
        "sampled": motion_statistics(sampled),
        "rendered": motion_statistics(truth),
    }
    frame_prompts = [prompt for prompt in sample_prompts for _ in range(num_frames)]
    verdict = judge(classifier_dir, sampled.reshape(-1, *sampled.shape[2:]), frame_prompts)
    if verdict is not None:
        samples.update(accuracy(verdict))
    log.info("motion samples: %s", samples)

    with atomic_path(out_dir) as tmp:
        adapter.save_pretrained(tmp / "motion_adapter")
        write_loss_curve(tmp, rows, "ToyWorld motion-module pretraining")
        _clip_strip(tmp / "samples.png", sampled, truth, sample_prompts)
        (tmp / "samples.json").write_text(json.dumps(samples, indent=2))
        write_record(
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
