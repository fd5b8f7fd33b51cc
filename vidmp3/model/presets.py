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

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from vidmp3.atomic import atomic_path
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
from vidmp3.precision import resolve_dtype_name


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

    def select(self, index: int) -> TextConditioning:
        """The conditioning of one of the prompts (e.g. the edit's, without the negative prompt)."""
        added = None if self.added_cond_kwargs is None else {k: v[index : index + 1] for k, v in self.added_cond_kwargs.items()}
        return TextConditioning(self.hidden_states[index : index + 1], added)

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

    def offload_encoders(self, vae: bool) -> None:
        """Move the text encoders (and with `vae` the VAE) to the CPU once prompts and frames are encoded,
        so that the card holds the UNet alone while it trains or samples; encoding again needs them back."""
        for encoder in (self.text_encoder, self.text_encoder_2, self.vae if vae else None):
            if encoder is not None:
                encoder.to("cpu")

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Scaled latents (1, C, N, h, w) -> uint8 frames (N, f·h, f·w, 3)."""
        frames = latents[0].permute(1, 0, 2, 3) / self.vae.config.scaling_factor
        pixels = self.vae.decode(frames.to(self.vae.dtype)).sample
        pixels = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).cpu().numpy()


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str, device: str | torch.device) -> torch.dtype:
    """The config's `dtype` (`auto`: bfloat16 on CUDA, float32 elsewhere) as a torch dtype."""
    return DTYPES[resolve_dtype_name(name, str(device))]


def configure_device(device: str | torch.device) -> None:
    """On CUDA, let float32 matmuls and convolutions use TF32 tensor cores (what fp32 leftovers, such
    as the trainable weights' optimizer maths and the VAE, run in)."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _variant(folder: Path, dtype: torch.dtype) -> str | None:
    """`fp16` when loading in half precision and the folder has fp16 files (half the bytes to read)."""
    if dtype in (torch.float16, torch.bfloat16) and any(folder.glob("*.fp16.safetensors")):
        return "fp16"
    return None


VIDEO_MODEL_FILE = "video_model.json"
"""Written beside a merged video UNet (`write_video_unet`): the ModelSpec it was built from."""


def build_components_unet(spec: ModelSpec, base: Path, adapter_folder: Path, dtype: torch.dtype) -> UNetMotionModel:
    """The video UNet of `spec` from its 2D UNet and motion adapter (built on the meta device, no random init)."""
    unet_folder = base / "unet"
    unet2d = UNet2DConditionModel.from_pretrained(
        unet_folder, torch_dtype=dtype, use_safetensors=True, variant=_variant(unet_folder, dtype)
    )
    if (unet2d.config.addition_embed_type == "text_time") != (spec.family == "sdxl"):
        raise InputError(f"model base {spec.base}: its UNet is not {spec.family}-shaped (preset {spec.preset!r})")
    motion_adapter = MotionAdapter.from_pretrained(
        adapter_folder, torch_dtype=dtype, use_safetensors=True, variant=_variant(adapter_folder, dtype)
    )
    return build_video_unet(unet2d, motion_adapter, where=f"model motion_adapter {spec.motion_adapter}")


def write_video_unet(spec: ModelSpec, dtype: torch.dtype, out_dir: str | os.PathLike) -> None:
    """Merge the base UNet and the motion adapter once into one video UNet folder (`save_pretrained`,
    safetensors, in `dtype`), which every model job then loads in one read (`load_components(video_unet=...)`)."""
    base, adapter_folder = check_model_files(spec)
    unet = build_components_unet(spec, base, adapter_folder, dtype)
    with atomic_path(out_dir) as tmp:
        unet.save_pretrained(tmp, safe_serialization=True)
        (tmp / VIDEO_MODEL_FILE).write_text(
            json.dumps({"model": asdict(spec), "dtype": str(dtype).removeprefix("torch.")}, indent=2)
        )


def _load_video_unet(spec: ModelSpec, folder: Path, dtype: torch.dtype) -> UNetMotionModel:
    record = folder / VIDEO_MODEL_FILE
    if not record.is_file():
        raise InputError(f"video model {folder}: no {VIDEO_MODEL_FILE}; rebuild it with: snakemake --cores 1 {folder}")
    built_from = json.loads(record.read_text())["model"]
    if built_from != asdict(spec):
        raise InputError(
            f"video model {folder} was built from {built_from}, not from {asdict(spec)}; "
            f"rebuild it with: snakemake --cores 1 --forcerun video_model {folder}"
        )
    return UNetMotionModel.from_pretrained(folder, torch_dtype=dtype, use_safetensors=True)


def load_components(
    spec: ModelSpec, device: str | torch.device, dtype: torch.dtype, video_unet: str | os.PathLike | None = None
) -> Components:
    """Load a preset's components (checked first), every weight frozen, eval mode, on `device` in `dtype`.

    The video UNet comes from `video_unet` (a `write_video_unet` folder: one read, no merging) or is
    built from the base's 2D UNet and the motion adapter.
    """
    base, adapter_folder = check_model_files(spec)
    if video_unet is None:
        unet = build_components_unet(spec, base, adapter_folder, dtype)
    else:
        unet = _load_video_unet(spec, Path(video_unet), dtype)
    is_sdxl = spec.family == "sdxl"
    load_text = {"dtype": dtype, "use_safetensors": True}
    codec = codec_class(spec, base / "vae")
    if codec is PixelUnshuffleCodec:
        vae = codec.from_config(codec.load_config(base, subfolder="vae"))  # exact in float32, whatever dtype
    else:
        vae = AutoencoderKL.from_pretrained(
            base, subfolder="vae", torch_dtype=dtype, use_safetensors=True, variant=_variant(base / "vae", dtype)
        )
        if dtype == torch.float16 and vae.config.force_upcast:
            vae.to(torch.float32)  # SDXL's VAE overflows in float16, as the diffusers pipelines know
    components = Components(
        spec=spec,
        unet=unet,
        vae=vae,
        text_encoder=CLIPTextModel.from_pretrained(base, subfolder="text_encoder", **load_text),
        tokenizer=CLIPTokenizer.from_pretrained(base, subfolder="tokenizer"),
        text_encoder_2=(
            CLIPTextModelWithProjection.from_pretrained(base, subfolder="text_encoder_2", **load_text) if is_sdxl else None
        ),
        tokenizer_2=CLIPTokenizer.from_pretrained(base, subfolder="tokenizer_2") if is_sdxl else None,
        scheduler_config=dict(DDPMScheduler.load_config(base, subfolder="scheduler")),
    )
    for model in (components.unet, components.vae, components.text_encoder, components.text_encoder_2):
        if model is not None:
            model.to(device).eval().requires_grad_(False)
    return components
