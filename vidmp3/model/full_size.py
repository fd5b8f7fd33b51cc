"""The configs of the real full-size models, so their shapes can be built without their weights.

SD-1.5 (stable-diffusion-v1-5) with AnimateDiff's `animatediff-motion-adapter-v1-5`, and SDXL base
1.0 with `animatediff-motion-adapter-sdxl-beta`, as diffusers/transformers constructor arguments.
They serve the meta-device tests (shapes, trainable sets, memory counts; `tests/test_full_size.py`)
and `benchmarks/gpu.py`, which builds random SD-1.5 weights of these shapes locally (no downloads).
The tokenizer's vocabulary is data, not a config: random text encoders get a small one.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from vidmp3.atomic import atomic_path
from vidmp3.model.tiny import tiny_scheduler, tiny_tokenizer

UNET = {
    "sd15": {
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    },
    "sdxl": {
        "sample_size": 128,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "block_out_channels": (320, 640, 1280),
        "layers_per_block": 2,
        "transformer_layers_per_block": (1, 2, 10),
        "cross_attention_dim": 2048,
        "attention_head_dim": (5, 10, 20),
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
        "norm_num_groups": 32,
    },
}
"""UNet2DConditionModel arguments of the SD-1.5 and SDXL base UNets (the rest are diffusers' defaults)."""

MOTION_ADAPTER = {
    "sd15": {
        "block_out_channels": (320, 640, 1280, 1280),
        "motion_layers_per_block": 2,
        "motion_num_attention_heads": 8,
        "motion_norm_num_groups": 32,
        "motion_max_seq_length": 24,
        "use_motion_mid_block": False,
    },
    "sdxl": {
        "block_out_channels": (320, 640, 1280),
        "motion_layers_per_block": 2,
        "motion_num_attention_heads": 8,
        "motion_norm_num_groups": 32,
        "motion_max_seq_length": 32,
        "use_motion_mid_block": False,
    },
}
"""MotionAdapter arguments of AnimateDiff v1-5 (no mid-block module) and sdxl-beta."""

VAE = {
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
"""AutoencoderKL arguments of the SD-1.5 VAE."""

TEXT_ENCODER = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
"""CLIP ViT-L/14's text tower, SD-1.5's text encoder."""

MAX_TOKENS = 77


def unet2d(family: str) -> UNet2DConditionModel:
    return UNet2DConditionModel(**UNET[family])


def motion_adapter(family: str) -> MotionAdapter:
    return MotionAdapter(**MOTION_ADAPTER[family])


def sd15_vae() -> AutoencoderKL:
    return AutoencoderKL(**VAE)


def sd15_text_encoder(vocab_size: int) -> CLIPTextModel:
    """SD-1.5's text encoder for a tokenizer of `vocab_size` tokens (the real one has 49408; random
    weights are used with `tiny_tokenizer`, whose last two tokens are start and end)."""
    config = CLIPTextConfig(
        **TEXT_ENCODER,
        vocab_size=vocab_size,
        max_position_embeddings=MAX_TOKENS,
        hidden_act="quick_gelu",
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    return CLIPTextModel(config)


def build_random_sd15(out_dir: str | os.PathLike, dtype: torch.dtype, device: str | torch.device, seed: int = 0) -> None:
    """Random weights of SD-1.5 + AnimateDiff v1-5 shapes in `out_dir/base` and `out_dir/motion_adapter`
        (the `tiny` presets' layout; saved in `dtype`), initialised on `device` (fast on a GPU) from `seed`;
    the global random state is left as it was.

        The tokenizer is `tiny_tokenizer` at SD-1.5's 77 tokens and the text encoder's vocabulary fits it.
    """
    device = torch.device(device)
    rng_devices = [device] if device.type == "cuda" else []
    with atomic_path(out_dir) as tmp, torch.random.fork_rng(devices=rng_devices), device:
        torch.manual_seed(seed)
        out = Path(tmp)
        tokenizer = tiny_tokenizer()
        tokenizer.model_max_length = MAX_TOKENS
        for model, folder in (
            (unet2d("sd15"), "base/unet"),
            (sd15_vae(), "base/vae"),
            (sd15_text_encoder(len(tokenizer)), "base/text_encoder"),
            (motion_adapter("sd15"), "motion_adapter"),
        ):
            model.to(dtype).save_pretrained(out / folder)
            del model
        tokenizer.save_pretrained(out / "base" / "tokenizer")
        tiny_scheduler().save_pretrained(out / "base" / "scheduler")
