"""The video UNet (AnimateDiff: a text-to-image UNet plus a motion adapter) and what each method trains.

Methods (one naming scheme, used everywhere):
- `vidmp3`: MotionGuide on C ⊙ D injected into temporal attention values; trains MotionGuide, W_Q of
  spatial self- and cross-attention, W_V of temporal attention (SDXL: all of W_Q, W_K, W_V and the
  output projection of temporal attention; feed-forward layers stay frozen).
- `corr-only`, `depth-only`, `concat`: the same with MotionGuide fed C, D, or C and D stacked (ablations).
- `no-motionguide`: the same trainable UNet weights, no MotionGuide.
- `tune-a-video`: whole motion modules and W_Q of spatial attention trainable, no MotionGuide.
All methods use sparse-causal spatial self-attention (vidmp3.model.processors).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.utils.checkpoint
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.models.attention_processor import Attention
from torch import nn

from vidmp3.errors import InputError
from vidmp3.methods import get_method
from vidmp3.model.spec import check_video_layout


def build_video_unet(
    unet2d: UNet2DConditionModel, motion_adapter: MotionAdapter, where: str = "motion adapter"
) -> UNetMotionModel:
    """UNetMotionModel from a 2D UNet and a motion adapter, with every 2D weight kept.

    The model is built on the meta device and its tensors are then the 2D UNet's and the adapter's
    own (`load_state_dict(assign=True)`, strict): no random initialisation of 1.3 B parameters only to
    overwrite them (19 s for SD-1.5 on one CPU thread), no second copy in memory. diffusers 0.42
    `from_unet2d` would also leave SDXL's `add_embedding` (text and size conditioning) random; the
    merged state dict carries it.
    """
    check_video_layout(unet2d.config, motion_adapter.config, where)
    if motion_adapter.config.conv_in_channels:
        raise InputError(f"{where}: adapters with their own conv_in (PIA) are not supported")
    with torch.device("meta"):
        unet = UNetMotionModel.from_unet2d(unet2d, motion_adapter, load_weights=False)
    names = set(unet.state_dict())
    state = {name: tensor for name, tensor in unet2d.state_dict().items() if name in names}
    state |= {
        name: tensor.to(unet2d.dtype)  # in the UNet's dtype, as from_unet2d casts
        for name, tensor in motion_adapter.state_dict().items()
        if ".motion_modules." in name
    }
    unet.load_state_dict(state, strict=True, assign=True)
    return unet


def is_sdxl(unet: UNetMotionModel) -> bool:
    return unet.config.addition_embed_type == "text_time"


def attention_layers(unet: UNetMotionModel) -> tuple[dict[str, Attention], dict[str, Attention]]:
    """(spatial, temporal) attention layers by module name.

    Spatial: the `attn1` (self) and `attn2` (cross) layers of the image transformers. Temporal: both
    `attn1` and `attn2` of every motion module (both are self-attention across frames).
    """
    spatial, temporal = {}, {}
    for name, module in unet.named_modules():
        if isinstance(module, Attention):
            (temporal if ".motion_modules." in name else spatial)[name] = module
    return spatial, temporal


def motion_widths(unet: UNetMotionModel) -> tuple[int, ...]:
    """The channel widths of temporal attention inputs: one MotionGuide head each."""
    _, temporal = attention_layers(unet)
    return tuple(sorted({attn.to_v.in_features for attn in temporal.values()}))


def _downsample(name: str, blocks: int) -> int:
    """How many times smaller than the latents the frames of the attention layer `name` are (down block
    i: 2^i, mid block and up block j: 2^(blocks-1) and 2^(blocks-1-j); each block's attentions run
    before its resampler)."""
    kind, _, rest = name.partition(".")
    if kind == "down_blocks":
        level = int(rest.split(".")[0])
    elif kind == "up_blocks":
        level = blocks - 1 - int(rest.split(".")[0])
    elif kind == "mid_block":
        level = blocks - 1
    else:
        raise ValueError(f"attention {name} is in no down, mid or up block")
    return 2**level


def motion_slots(unet: UNetMotionModel) -> dict[str, tuple[int, int]]:
    """(width, downsample) of every temporal attention layer, by name: its input width and how many
    times smaller than the latents its frames are."""
    _, temporal = attention_layers(unet)
    return {name: (attn.to_v.in_features, _downsample(name, len(unet.down_blocks))) for name, attn in temporal.items()}


def cross_attention_downsamples(unet: UNetMotionModel) -> dict[str, int]:
    """How many times smaller than the latents the frames of every spatial cross-attention are, by name."""
    spatial, _ = attention_layers(unet)
    return {name: _downsample(name, len(unet.down_blocks)) for name in spatial if name.endswith(".attn2")}


def _linear_parameters(prefix: str, linear: nn.Module) -> dict[str, nn.Parameter]:
    return {f"{prefix}.{name}": parameter for name, parameter in linear.named_parameters()}


def trainable_unet_parameters(unet: UNetMotionModel, method: str) -> dict[str, nn.Parameter]:
    """The UNet parameters `method` fine-tunes, by name (MotionGuide's, when used, are all trained too)."""
    whole_motion_modules = get_method(method).whole_motion_modules
    spatial, temporal = attention_layers(unet)
    selected = {}
    for name, attn in spatial.items():
        selected.update(_linear_parameters(f"{name}.to_q", attn.to_q))
    if whole_motion_modules:
        selected.update({name: p for name, p in unet.named_parameters() if ".motion_modules." in name})
        return selected
    for name, attn in temporal.items():
        selected.update(_linear_parameters(f"{name}.to_v", attn.to_v))
        if is_sdxl(unet):
            selected.update(_linear_parameters(f"{name}.to_q", attn.to_q))
            selected.update(_linear_parameters(f"{name}.to_k", attn.to_k))
            selected.update(_linear_parameters(f"{name}.to_out.0", attn.to_out[0]))
    return selected


def set_trainable(unet: UNetMotionModel, method: str) -> dict[str, nn.Parameter]:
    """Freeze the UNet except `method`'s parameters; return those."""
    selected = trainable_unet_parameters(unet, method)
    unet.requires_grad_(False)
    for parameter in selected.values():
        parameter.requires_grad_(True)
    return selected


def checkpoint(module: Callable[..., torch.Tensor], *args: object) -> torch.Tensor:
    """One checkpointed call: only the inputs are kept and the forward reruns in backward.

    Non-reentrant, so gradients also reach tensors the forward reads from the processors' FrameState
    (the MotionGuide vectors); the recompute reads that state again, so backward must run inside
    `VideoAttention.frames(...)`.
    """
    return torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False)


class _CheckpointedForward:
    """A module's own forward, checkpointed whenever gradients are recorded (as diffusers' blocks do)."""

    def __init__(self, forward: Callable[..., torch.Tensor]):
        self.forward = forward

    def __call__(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        if torch.is_grad_enabled():
            return checkpoint(self.forward, hidden_states, None, None, None, num_frames)
        return self.forward(hidden_states, None, None, None, num_frames)


def enable_gradient_checkpointing(unet: UNetMotionModel) -> None:
    """diffusers' gradient checkpointing plus the motion modules it leaves out.

    diffusers 0.42 checkpoints the resnets, the spatial transformer blocks and the mid block's motion
    module, but the down and up blocks call their motion modules (AnimateDiffTransformer3D) directly:
    at 16 frames of 512x512 (SD-1.5) those keep about 9 GiB of activations (`benchmarks/memory_count.py`).
    Each of them is checkpointed here as a whole, the way diffusers' mid block does it; parameter names
    do not change.
    """
    unet.enable_gradient_checkpointing(checkpoint)
    for block in (*unet.down_blocks, *unet.up_blocks):
        for motion_module in block.motion_modules:
            if not isinstance(motion_module.forward, _CheckpointedForward):
                motion_module.forward = _CheckpointedForward(motion_module.forward)
