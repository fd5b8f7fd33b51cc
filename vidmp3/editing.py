"""DDIM inversion of a source clip and DDIM sampling of its edits, through the fine-tuned model.

The scheduler classes own the maths (`DDIMInverseScheduler` up, `DDIMScheduler` down, both built
from the base model's scheduler config, so its prediction type and noise schedule carry over). The
MotionGuide vectors come from the source's priors and are the same for inversion and every edit:
the edit keeps the source's pose and position while the prompt changes its appearance.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.finetune import Finetuned, load_finetuned
from vidmp3.model.presets import TextConditioning
from vidmp3.model.processors import VideoAttention, install_processors
from vidmp3.methods import get_method
from vidmp3.motionguide import guide_input

log = logging.getLogger(__name__)


@dataclass
class VideoModel:
    """A fine-tuned model with its video attention installed and the source's MotionGuide vectors."""

    finetuned: Finetuned
    attention: VideoAttention
    vectors: dict[int, torch.Tensor] | None
    num_frames: int

    @torch.no_grad()
    def predict(self, latents: torch.Tensor, timestep: torch.Tensor, text: TextConditioning) -> torch.Tensor:
        """The UNet's output for a batch of videos (B, C, N, h, w), all guided by the source's vectors."""
        with self.attention.frames(self.num_frames, self.vectors, self.finetuned.guide_scale):
            return self.finetuned.components.unet(latents, timestep, **text.unet_kwargs(self.num_frames)).sample


@dataclass
class SourcePriors:
    """What MotionGuide reads from the source clip: corr (N,H,W,3), depth (N,H,W), alpha (N,)."""

    corr: np.ndarray
    depth: np.ndarray
    alpha: np.ndarray

    def __post_init__(self):
        counts = (self.corr.shape[0], self.depth.shape[0], self.alpha.shape[0])
        if len(set(counts)) != 1:
            raise InputError(f"priors disagree on the frame count: corr {counts[0]}, depth {counts[1]}, alpha {counts[2]}")

    @classmethod
    def read(cls, corr: str | os.PathLike, depth: str | os.PathLike, alpha: str | os.PathLike) -> SourcePriors:
        from vidmp3.store import read_array  # zarr: imported by the workflow's jobs, not by in-process callers

        return cls(*(read_array(path)[0].astype(np.float32) for path in (corr, depth, alpha)))


def load_video_model(
    weights: str | os.PathLike, num_frames: int, priors: SourcePriors | None, device: str, dtype: torch.dtype
) -> VideoModel:
    """Load fine-tuned weights, install the video attention, and compute the source's MotionGuide
    vectors for the method's input variant (methods without MotionGuide take no priors)."""
    finetuned = load_finetuned(weights, device, dtype)
    variant = get_method(finetuned.method).guide_variant
    vectors = None
    if variant is not None:
        if priors is None:
            raise InputError(f"{weights}: method {finetuned.method!r} needs the source's priors (corr, depth, alpha)")
        if priors.corr.shape[0] != num_frames:
            raise InputError(f"the clip has {num_frames} frames but its priors have {priors.corr.shape[0]}")
        guide = torch.from_numpy(guide_input(priors.corr, priors.depth, variant)).to(device=device, dtype=dtype)
        alpha = torch.from_numpy(priors.alpha).to(device=device, dtype=dtype)
        with torch.no_grad():
            vectors = finetuned.motion_guide(guide, alpha)
    attention = install_processors(finetuned.components.unet, value_injection=vectors is not None)
    return VideoModel(finetuned, attention, vectors, num_frames)


@torch.no_grad()
def ddim_invert(model: VideoModel, latents: torch.Tensor, text: TextConditioning, steps: int) -> torch.Tensor:
    """Clean latents (1, C, N, h, w) -> the noise latents that DDIM sampling maps back to them."""
    scheduler = DDIMInverseScheduler.from_config(model.finetuned.components.scheduler_config)
    scheduler.set_timesteps(steps, device=latents.device)
    for timestep in tqdm(scheduler.timesteps, desc="DDIM inversion"):
        prediction = model.predict(latents, timestep, text)
        latents = scheduler.step(prediction, timestep, latents).prev_sample
    return latents


@torch.no_grad()
def ddim_sample(
    model: VideoModel, noise: torch.Tensor, text: TextConditioning, steps: int, guidance_scale: float
) -> torch.Tensor:
    """DDIM sampling from inverted latents. With guidance_scale > 1, `text` holds two prompts
    (negative first, then the edit) and classifier-free guidance mixes their predictions."""
    scheduler = DDIMScheduler.from_config(model.finetuned.components.scheduler_config)
    scheduler.set_timesteps(steps, device=noise.device)
    guided = guidance_scale > 1.0
    expected_prompts = 2 if guided else 1
    if text.hidden_states.shape[0] != expected_prompts:
        raise ValueError(f"guidance scale {guidance_scale} needs {expected_prompts} prompt(s), got {text.hidden_states.shape[0]}")
    latents = noise
    for timestep in tqdm(scheduler.timesteps, desc="DDIM sampling"):
        model_input = torch.cat([latents, latents]) if guided else latents
        prediction = model.predict(model_input, timestep, text)
        if guided:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance_scale * (conditional - unconditional)
        latents = scheduler.step(prediction, timestep, latents).prev_sample
    return latents


def invert_frames(model: VideoModel, frames: np.ndarray, prompt: str, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames (N, H, W, 3) -> their clean latents and the inverted noise latents, through a loaded
    model (so one load serves the inversion and every edit of an in-process run, as the ToyWorld benchmark does)."""
    components = model.finetuned.components
    source = components.encode_frames(frames)
    text = components.encode_prompt([prompt], frames.shape[1], frames.shape[2])
    return source, ddim_invert(model, source, text, steps)


def sample_edit(
    model: VideoModel,
    noise: torch.Tensor,
    prompt: str,
    negative_prompt: str,
    guidance_scale: float,
    steps: int,
    height: int,
    width: int,
) -> np.ndarray:
    """The edited clip (uint8 (N, H, W, 3)) sampled from inverted latents through a loaded model."""
    if not prompt.strip():
        raise InputError("the edited prompt is empty")
    prompts = [negative_prompt, prompt] if guidance_scale > 1.0 else [prompt]
    text = model.finetuned.components.encode_prompt(prompts, height, width)
    return model.finetuned.components.decode_latents(ddim_sample(model, noise, text, steps, guidance_scale))


def invert_video(
    weights: str | os.PathLike,
    frames: np.ndarray,
    priors: SourcePriors | None,
    prompt: str,
    steps: int,
    device: str,
    dtype: torch.dtype,
    out_dir: str | os.PathLike,
) -> None:
    """Write `out_dir/latents.safetensors` (source and inverted latents) and `inversion.json`."""
    model = load_video_model(weights, frames.shape[0], priors, device, dtype)
    source, inverted = invert_frames(model, frames, prompt, steps)
    meta = {"prompt": prompt, "steps": steps, "weights": str(weights), "frames": frames.shape[0], "height": frames.shape[1], "width": frames.shape[2]}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        tensors = {"source": source.float().cpu().contiguous(), "inverted": inverted.float().cpu().contiguous()}
        save_file(tensors, tmp / "latents.safetensors")
        (tmp / "inversion.json").write_text(json.dumps(meta, indent=2))


def edit_video(
    weights: str | os.PathLike,
    latents: str | os.PathLike,
    priors: SourcePriors | None,
    prompt: str,
    negative_prompt: str,
    guidance_scale: float,
    steps: int,
    device: str,
    dtype: torch.dtype,
) -> np.ndarray:
    """Sample the edited clip (uint8 (N, H, W, 3)) from the inverted latents of its source."""
    if not prompt.strip():
        raise InputError("the edited prompt is empty")
    meta = json.loads((Path(latents) / "inversion.json").read_text())
    model = load_video_model(weights, meta["frames"], priors, device, dtype)
    noise = load_file(Path(latents) / "latents.safetensors")["inverted"].to(device=device, dtype=dtype)
    return sample_edit(model, noise, prompt, negative_prompt, guidance_scale, steps, meta["height"], meta["width"])


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float) -> None:
    """The edited clip as an H.264 mp4, atomically."""
    from vidmp3.frames import encode_video  # av: only jobs that write videos import it

    with atomic_path(path) as tmp:
        encode_video(frames, tmp, fps, crf=16)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def invert_job(frames, weights, priors: dict, prompt: str, steps: int, device: str, dtype: str, out_dir) -> None:
    """The inversion rule: paths in, latents folder out. `priors` maps corr/depth/alpha to arrays (or is empty)."""
    from vidmp3.store import read_array

    frame_array, _ = read_array(frames)
    source_priors = SourcePriors.read(**priors) if priors else None
    invert_video(weights, frame_array, source_priors, prompt, steps, device, DTYPES[dtype], out_dir)


def edit_job(frames, weights, latents, priors: dict, settings: dict, video_out, strip_out, title: str) -> None:
    """The edit rule: sample the edit, write it as mp4 at the source's sampled frame rate, and its strip."""
    from vidmp3.store import read_array
    from vidmp3.strips import write_edit_strip

    frame_array, attrs = read_array(frames)
    source_priors = SourcePriors.read(**priors) if priors else None
    edited = edit_video(
        weights, latents, source_priors, settings["prompt"], settings["negative_prompt"], settings["guidance_scale"],
        settings["steps"], settings["device"], DTYPES[settings["dtype"]],
    )
    fps = (attrs["fps"] or settings["folder_fps"]) / attrs["stride"]
    write_video(edited, video_out, fps)
    write_edit_strip(frames, video_out, strip_out, title)
