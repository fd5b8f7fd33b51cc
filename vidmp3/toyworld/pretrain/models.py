"""The ToyWorld models: miniature SD-1.5 UNet, CLIP text encoder and AnimateDiff motion adapter, their
noise schedule and codec, and the 16 captions they are trained on.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, MotionAdapter, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from vidmp3.model.codec import PixelUnshuffleCodec
from vidmp3.model.tiny import tiny_scheduler
from vidmp3.toyworld import world
from vidmp3.toyworld.text import toyworld_tokenizer

BLOCK_CHANNELS = (32, 64, 96)


TEXT_WIDTH = 64


MOTION_MAX_FRAMES = 32
"""Sinusoidal frame positions up to this many frames (AnimateDiff's 32); training clips have 8."""


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
