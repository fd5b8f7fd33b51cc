"""Stage 1: the ToyWorld text-to-image model (UNet and text encoder) from scratch on still renders."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from matplotlib.figure import Figure
from transformers import CLIPTextModel, CLIPTokenizer

from vidmp3.atomic import atomic_path
from vidmp3.toyworld import world
from vidmp3.toyworld.pretrain.models import captions, toyworld_scheduler, toyworld_text_encoder, toyworld_unet2d
from vidmp3.toyworld.pretrain.settings import ImageSettings, check_settings
from vidmp3.toyworld.pretrain.training import (
    CODEC,
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
from vidmp3.toyworld.text import toyworld_tokenizer

log = logging.getLogger(__name__)


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
    states = text_encoder(prompt_token_ids(tokenizer, prompts + [""]))[0]
    size = unet.config.sample_size
    noise = torch.randn((len(prompts), unet.config.in_channels, size, size), generator=torch.Generator().manual_seed(seed))
    latents = ddim_generate(
        lambda x, t, text: unet(x, t, text).sample,
        noise,
        states[:-1],
        states[-1:].expand(len(prompts), -1, -1),
        steps,
        guidance_scale,
    )
    return to_frames(latents)


def draw_images(
    base: str | os.PathLike, prompts: list[str], seed: int = 0, steps: int = 25, guidance_scale: float = 2.0
) -> np.ndarray:
    """Draw one image per prompt with the text-to-image model saved in `base` (a preset's base folder,
    loaded in float32), as the sample grids do: the check that shipped weights still draw."""
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", torch_dtype=torch.float32).eval()
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", dtype=torch.float32).eval()
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    return _sample_images(unet, text_encoder, tokenizer, prompts, seed, steps, guidance_scale)


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


def pretrain_image(settings: ImageSettings, out_dir: str | os.PathLike, classifier_dir: str | os.PathLike | None = None) -> None:
    """Train the ToyWorld text-to-image model from scratch and write `out_dir` (atomically):

        base/{unet,vae,text_encoder,tokenizer,scheduler}/   save_pretrained folders (EMA weights)
        loss.csv, loss.png       the loss curve
        samples.png              samples_per_caption samples of each of the 16 captions (DDIM, guidance)
        samples.json             the classifier's shape/colour accuracy on them (with `classifier_dir`)
        pretrain.json            settings, timing, versions

    Same settings, same weights (on the same machine and thread count).
    """
    check_settings(settings, "image", "images")
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
    token_ids = prompt_token_ids(tokenizer, prompts + [""])  # the empty prompt last: caption dropout and guidance
    empty = len(prompts)

    scheduler = DDPMScheduler.from_config(toyworld_scheduler().config)
    generator = torch.Generator().manual_seed(settings.seed)
    unet.train()
    text_encoder.train()
    parameters = [p for p in list(unet.parameters()) + list(text_encoder.parameters()) if p.requires_grad]

    def loss_of_step() -> torch.Tensor:
        chosen = torch.randint(0, settings.images, (settings.batch_size,), generator=generator)
        latents = to_latents(images[chosen])
        dropped = torch.rand(settings.batch_size, generator=generator) < settings.caption_dropout
        which = torch.where(dropped, empty, prompt_index[chosen])
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (settings.batch_size,), generator=generator)
        states = text_encoder(token_ids)[0][which]  # 17 prompts encoded once per step, then gathered
        prediction = unet(scheduler.add_noise(latents, noise, timesteps), timesteps, states).sample
        return F.mse_loss(prediction, latents)

    ema, rows, seconds = train(
        parameters, loss_of_step, settings.steps, settings.learning_rate, settings.ema_decay, "pretrain image model"
    )
    ema.copy_to(parameters)
    unet.eval()
    text_encoder.eval()

    sample_prompts = [prompt for prompt in prompts for _ in range(settings.samples_per_caption)]
    frames = _sample_images(
        unet, text_encoder, tokenizer, sample_prompts, settings.seed + 1, settings.sample_steps, settings.guidance_scale
    )
    verdict = judge(classifier_dir, frames, sample_prompts)
    samples = {
        "samples": len(sample_prompts),
        "guidance_scale": settings.guidance_scale,
        "sample_steps": settings.sample_steps,
    }
    scores = None
    if verdict is not None:
        samples.update(accuracy(verdict))
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
        write_loss_curve(tmp, rows, "ToyWorld text-to-image pretraining")
        _image_grid(tmp / "samples.png", frames, prompts, settings.samples_per_caption, scores)
        (tmp / "samples.json").write_text(json.dumps(samples, indent=2))
        data = {"render_images_seed": settings.seed, "images": settings.images}
        write_record(tmp, "image", settings, seconds, {"data": data, "samples": samples})
