"""Model presets and the one path that loads them.

A preset names a model family (SD-1.5 or SDXL shape), a diffusers-format base (unet, vae, text
encoder(s), tokenizer(s), scheduler) and an AnimateDiff motion adapter. Each component is a
Hugging Face hub id or a local folder. Hub ids are only ever read from the local cache (jobs run
with HF_HUB_OFFLINE=1): a missing component fails before anything is loaded, naming the path and
the command that fetches it. The tiny presets are built by the workflow (`vidmp3.model.tiny`) and
then load exactly like real weights. What a preset names and the checks that need no torch live in
`vidmp3.model.spec` (the workflow runs them at parse time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from vidmp3.errors import InputError
from vidmp3.model.codec import PixelUnshuffleCodec
from vidmp3.model.spec import (  # noqa: F401 (the preset names and checks, importable from here as before)
    BASE_COMPONENTS,
    PRESETS,
    TOYWORLD_WEIGHTS,
    ModelSpec,
    Preset,
    check_model_files,
    codec_name,
    model_spec,
)
from vidmp3.model.video_unet import build_video_unet


CODECS = {"AutoencoderKL": AutoencoderKL, "PixelUnshuffleCodec": PixelUnshuffleCodec}
"""What a base model's `vae/` may hold (its config's `_class_name`): a VAE, or ToyWorld's exact codec."""


def codec_class(spec: ModelSpec, vae_folder: Path) -> type[AutoencoderKL] | type[PixelUnshuffleCodec]:
    """The class named by `vae/config.json`."""
    return CODECS[codec_name(spec, vae_folder)]


@dataclass(frozen=True)
class TextConditioning:
    """A prompt's embeddings for the video UNet: per-token states and, for SDXL, the added conditions."""

    hidden_states: torch.Tensor  # (batch, tokens, width)
    added_cond_kwargs: dict[str, torch.Tensor] | None  # SDXL: text_embeds (batch, width), time_ids (batch, 6)

    def unet_kwargs(self, num_frames: int) -> dict:
        """Keyword arguments of UNetMotionModel.forward: it attends to text per frame (batch * frames)."""
        return {
            "encoder_hidden_states": self.hidden_states.repeat_interleave(num_frames, dim=0),
            "added_cond_kwargs": self.added_cond_kwargs,
        }


@dataclass
class Components:
    """Everything loaded for one preset; all frozen (requires_grad False) and in eval mode."""

    spec: ModelSpec
    unet: UNetMotionModel
    vae: AutoencoderKL | PixelUnshuffleCodec
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    text_encoder_2: CLIPTextModelWithProjection | None
    tokenizer_2: CLIPTokenizer | None
    scheduler_config: dict

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str], height: int, width: int) -> TextConditioning:
        """Text embeddings as the SD-1.5 / SDXL pipelines compute them (SDXL: both encoders'
        penultimate layers concatenated, the second one's pooled projection, and size time ids)."""
        if self.text_encoder_2 is None:
            ids = self._token_ids(self.tokenizer, prompts)
            return TextConditioning(self.text_encoder(ids)[0], None)
        states = []
        for tokenizer, encoder in ((self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2)):
            output = encoder(self._token_ids(tokenizer, prompts), output_hidden_states=True)
            states.append(output.hidden_states[-2])
        pooled = output.text_embeds
        time_ids = torch.tensor([[height, width, 0, 0, height, width]] * len(prompts), device=self.device)
        return TextConditioning(
            torch.cat(states, dim=-1),
            {"text_embeds": pooled, "time_ids": time_ids.to(pooled.dtype)},
        )

    def _token_ids(self, tokenizer: CLIPTokenizer, prompts: list[str]) -> torch.Tensor:
        tokens = tokenizer(
            prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        return tokens.input_ids.to(self.device)

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames (N, H, W, 3) -> scaled latents (1, C, N, H/f, W/f) in the UNet's dtype (f: 8 for the
        VAEs, 2 for ToyWorld's codec), the posterior mean (deterministic, so it is computed once per video)."""
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        pixels = pixels.permute(0, 3, 1, 2).to(self.vae.dtype) / 127.5 - 1.0
        latents = self.vae.encode(pixels).latent_dist.mean * self.vae.config.scaling_factor
        return latents.permute(1, 0, 2, 3)[None].to(self.unet.dtype)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Scaled latents (1, C, N, h, w) -> uint8 frames (N, f·h, f·w, 3)."""
        frames = latents[0].permute(1, 0, 2, 3) / self.vae.config.scaling_factor
        pixels = self.vae.decode(frames.to(self.vae.dtype)).sample
        pixels = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).cpu().numpy()


def load_components(spec: ModelSpec, device: str | torch.device, dtype: torch.dtype) -> Components:
    """Load a preset's components (checked first), with the video UNet built from the 2D UNet and
    the motion adapter; every weight frozen, eval mode, on `device` in `dtype`."""
    base, adapter_folder = check_model_files(spec)
    load = {"torch_dtype": dtype, "use_safetensors": True}
    load_text = {"dtype": dtype, "use_safetensors": True}
    unet2d = UNet2DConditionModel.from_pretrained(base, subfolder="unet", **load)
    is_sdxl = unet2d.config.addition_embed_type == "text_time"
    if is_sdxl != (spec.family == "sdxl"):
        raise InputError(f"model base {spec.base}: its UNet is not {spec.family}-shaped (preset {spec.preset!r})")
    motion_adapter = MotionAdapter.from_pretrained(adapter_folder, **load)
    unet = build_video_unet(unet2d, motion_adapter, where=f"model motion_adapter {spec.motion_adapter}")
    codec = codec_class(spec, base / "vae")
    if codec is PixelUnshuffleCodec:
        vae = codec.from_config(codec.load_config(base, subfolder="vae"))  # exact in float32, whatever dtype
    else:
        vae = AutoencoderKL.from_pretrained(base, subfolder="vae", **load)
        if dtype == torch.float16 and vae.config.force_upcast:
            vae.to(torch.float32)  # SDXL's VAE overflows in float16, as the diffusers pipelines know
    components = Components(
        spec=spec,
        unet=unet,
        vae=vae,
        text_encoder=CLIPTextModel.from_pretrained(base, subfolder="text_encoder", **load_text),
        tokenizer=CLIPTokenizer.from_pretrained(base, subfolder="tokenizer"),
        text_encoder_2=(
            CLIPTextModelWithProjection.from_pretrained(base, subfolder="text_encoder_2", **load_text)
            if is_sdxl
            else None
        ),
        tokenizer_2=CLIPTokenizer.from_pretrained(base, subfolder="tokenizer_2") if is_sdxl else None,
        scheduler_config=dict(DDPMScheduler.load_config(base, subfolder="scheduler")),
    )
    for model in (components.unet, components.vae, components.text_encoder, components.text_encoder_2):
        if model is not None:
            model.to(device).eval().requires_grad_(False)
    return components
