"""Tiny randomly initialised SD-1.5- and SDXL-shaped components, so the whole method runs offline.

`build_tiny` saves them with `save_pretrained` in the diffusers folder layout (`base/unet`,
`base/vae`, ..., `motion_adapter/`); they are then loaded through the same `from_pretrained` path
as real weights (`vidmp3.model.presets.load_components`). The shapes mirror the real models at a
small scale: a VAE that downsamples by 8, CLIP text encoders (two for SDXL, the second with a
projection), SDXL's text-and-time added embedding, and a motion adapter with a module after every
resnet. The tokenizer is a byte-level CLIP tokenizer built from an in-memory vocabulary (no merges).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.model.spec import TINY_FAMILIES

TEXT_WIDTH = 32
MAX_TOKENS = 32
ADDED_TIME_WIDTH = 8


def tiny_tokenizer() -> CLIPTokenizer:
    """Byte-level CLIP tokenizer: every byte is a token (with and without the end-of-word mark)."""
    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": len(symbols) + index for index, symbol in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=MAX_TOKENS)


def tiny_text_encoder(with_projection: bool) -> CLIPTextModel | CLIPTextModelWithProjection:
    """A two-layer CLIP text encoder; SDXL's second encoder has a projection for the pooled embedding."""
    tokenizer_size = 2 * 256 + 2
    config = CLIPTextConfig(
        vocab_size=tokenizer_size,
        hidden_size=TEXT_WIDTH,
        intermediate_size=2 * TEXT_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=TEXT_WIDTH,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer_size - 2,
        eos_token_id=tokenizer_size - 1,
        pad_token_id=tokenizer_size - 1,
    )
    return CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)


def tiny_vae(family: str) -> AutoencoderKL:
    """Four blocks, so latents are 1/8 of the frame size as with the real VAE."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.13025 if family == "sdxl" else 0.18215,
    )


def tiny_unet2d(family: str) -> UNet2DConditionModel:
    """SD-1.5 shape: cross-attention block then plain block. SDXL shape: the reverse, linear projections,
    two transformer layers in the deeper block, and the text-and-time added embedding."""
    if family == "sd15":
        return UNet2DConditionModel(
            sample_size=8,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=TEXT_WIDTH,
            attention_head_dim=2,
            norm_num_groups=32,
        )
    if family == "sdxl":
        return UNet2DConditionModel(
            sample_size=8,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            transformer_layers_per_block=(1, 2),
            cross_attention_dim=2 * TEXT_WIDTH,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=ADDED_TIME_WIDTH,
            projection_class_embeddings_input_dim=TEXT_WIDTH + 6 * ADDED_TIME_WIDTH,
            norm_num_groups=32,
        )
    raise ValueError(f"unknown model family {family!r}")


def tiny_motion_adapter(family: str) -> MotionAdapter:
    """Like AnimateDiff v1.5-v2 (with a mid-block module) for SD-1.5, like the SDXL adapter (without)."""
    return MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=1,
        motion_num_attention_heads=2,
        motion_norm_num_groups=32,
        motion_max_seq_length=32,
        use_motion_mid_block=family == "sd15",
    )


def tiny_scheduler() -> DDIMScheduler:
    """The noise schedule of SD-1.5 and SDXL (scaled linear betas, epsilon prediction)."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


def build_tiny(preset: str, out_dir: str | os.PathLike, seed: int = 0) -> None:
    """Write the tiny preset's `base/` and `motion_adapter/` folders to `out_dir` (atomically).

    Every component is initialised from `seed` in a fixed order, so the same seed gives the same
    weights; the global random state is left as it was.
    """
    if preset not in TINY_FAMILIES:
        raise InputError(f"tiny preset {preset!r} is unknown; expected one of {sorted(TINY_FAMILIES)}")
    family = TINY_FAMILIES[preset]
    with atomic_path(out_dir) as tmp, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = Path(tmp) / "base"
        tiny_unet2d(family).save_pretrained(base / "unet")
        tiny_vae(family).save_pretrained(base / "vae")
        tiny_text_encoder(with_projection=False).save_pretrained(base / "text_encoder")
        tiny_tokenizer().save_pretrained(base / "tokenizer")
        if family == "sdxl":
            tiny_text_encoder(with_projection=True).save_pretrained(base / "text_encoder_2")
            tiny_tokenizer().save_pretrained(base / "tokenizer_2")
        tiny_scheduler().save_pretrained(base / "scheduler")
        tiny_motion_adapter(family).save_pretrained(Path(tmp) / "motion_adapter")
