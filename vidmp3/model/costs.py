"""Counting the cost of a video UNet step without running it: saved activations, FLOPs, weight states.

Everything here runs on the meta device as well (shapes only, no memory, seconds even at full size).
`unet_flops` counts with torch's FlopCounterMode: 19.63 TFLOP for one SD-1.5 video UNet forward at
16x512x512 and 43.03 TFLOP for a fine-tune step (forward and backward, checkpointing's recompute not
included), the floors that `benchmarks/gpu.py` reports MFU against.

`SavedTensorCounter` sums the bytes autograd keeps for backward (through
`torch.autograd.graph.saved_tensors_hooks`), so a forward on the meta device says how much
activation memory a real step keeps. Each storage
is counted once (views count as their base; a tensor saved by several ops once) and parameters are
left out (they are weights, counted by `finetune_weight_bytes`). Checkpointed regions keep only
their inputs, which autograd saves through the same hooks, so they are counted too.

On the meta device `F.scaled_dot_product_attention` takes the math path, which saves the whole
attention matrix in float32; on a GPU the fused kernels save only q, k, v, the output and the
log-sum-exp. The counter therefore routes SDPA on meta tensors to the flash-attention op, whose
backward saves what the GPU kernels save.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import UNetMotionModel
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from vidmp3.methods import get_method
from vidmp3.model.processors import install_processors
from vidmp3.model.video_unet import enable_gradient_checkpointing, motion_widths, set_trainable

GiB = 2**30

CHECKPOINTING = ("none", "diffusers", "full")
"""Gradient checkpointing settings that `unet_step_activation_bytes` compares: none, diffusers' own
(`unet.enable_gradient_checkpointing()`), and `vidmp3.model.video_unet.enable_gradient_checkpointing`."""


class _FusedAttentionOnMeta(TorchFunctionMode):
    """SDPA on meta tensors as the GPU's fused kernels run it (see the module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and args[0].device.type == "meta":
            query, key, value = args
            if set(kwargs) - {"attn_mask", "dropout_p", "is_causal"} or kwargs.get("attn_mask") is not None:
                raise ValueError(f"the meta-device count supports SDPA without a mask, got {sorted(kwargs)}")
            if kwargs.get("dropout_p", 0.0) or kwargs.get("is_causal", False):
                raise ValueError("the meta-device count supports SDPA without dropout or a causal mask")
            return torch.ops.aten._scaled_dot_product_flash_attention(query, key, value)[0]
        return func(*args, **kwargs)


class SavedTensorCounter:
    """Context manager: inside, every tensor autograd saves for backward is counted (once per storage)."""

    def __init__(self):
        self.bytes = 0
        self.tensors = 0
        self._seen: dict[int, torch.Tensor] = {}  # keeps counted bases alive so their ids stay unique
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._attention = _FusedAttentionOnMeta()

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        base = tensor if tensor._base is None else tensor._base
        if not isinstance(base, nn.Parameter) and id(base) not in self._seen:
            self._seen[id(base)] = base
            self.bytes += base.untyped_storage().nbytes() if base.device.type != "meta" else _meta_nbytes(base)
            self.tensors += 1
        return tensor

    @staticmethod
    def _unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def __enter__(self) -> SavedTensorCounter:
        self._hooks.__enter__()
        self._attention.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._attention.__exit__(*exc)
        self._hooks.__exit__(*exc)
        self._seen.clear()


def _meta_nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _step_inputs(
    unet: UNetMotionModel,
    value_injection: bool,
    num_frames: int,
    latent_height: int,
    latent_width: int,
    text_states: torch.Tensor,
) -> tuple[dict[int, torch.Tensor] | None, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MotionGuide vectors (leaves that require grad, as MotionGuide trains), latents, timestep and the
    per-frame text states of one step, in the UNet's device and dtype."""
    device, dtype = unet.device, unet.dtype
    vectors = (
        {width: torch.zeros(num_frames, width, device=device, dtype=dtype, requires_grad=True) for width in motion_widths(unet)}
        if value_injection
        else None
    )
    latents = torch.zeros(1, unet.config.in_channels, num_frames, latent_height, latent_width, device=device, dtype=dtype)
    timestep = torch.tensor([500], device=device)
    text = text_states.to(device=device, dtype=dtype).repeat_interleave(num_frames, dim=0)
    return vectors, latents, timestep, text


def unet_step_activation_bytes(
    unet: UNetMotionModel,
    method: str,
    num_frames: int,
    latent_height: int,
    latent_width: int,
    text_states: torch.Tensor,
    checkpointing: str,
    added_cond_kwargs: dict[str, torch.Tensor] | None = None,
) -> int:
    """Bytes of activations one fine-tune step of `method` keeps for backward through the video UNet.

    The UNet (on the meta device, or any device) gets the method's trainable set, the video processors
    and `checkpointing` (one of CHECKPOINTING). MotionGuide's own activations are not included. The
    UNet is left with the processors restored.
    """
    if checkpointing not in CHECKPOINTING:
        raise ValueError(f"checkpointing {checkpointing!r} is unknown; expected one of {CHECKPOINTING}")
    set_trainable(unet, method)
    if checkpointing == "diffusers":
        unet.enable_gradient_checkpointing()
    elif checkpointing == "full":
        enable_gradient_checkpointing(unet)
    unet.train()
    value_injection = get_method(method).guide_variant is not None
    vectors, latents, timestep, text = _step_inputs(unet, value_injection, num_frames, latent_height, latent_width, text_states)
    attention = install_processors(unet, value_injection=value_injection)
    try:
        with attention.frames(num_frames, vectors, 0.1), SavedTensorCounter() as counter:
            unet(latents, timestep, encoder_hidden_states=text, added_cond_kwargs=added_cond_kwargs)
            return counter.bytes
    finally:
        attention.restore()


def unet_flops(
    unet: UNetMotionModel,
    method: str,
    num_frames: int,
    latent_height: int,
    latent_width: int,
    text_states: torch.Tensor,
    train: bool,
    added_cond_kwargs: dict[str, torch.Tensor] | None = None,
) -> int:
    """FLOPs of one video UNet call for `method`: a forward (`train` False: inversion and sampling, per
    prompt) or a fine-tune step's forward and backward (`train` True; without the recompute of gradient
    checkpointing, which the floor does not need)."""
    value_injection = get_method(method).guide_variant is not None
    if train:
        set_trainable(unet, method)
    vectors, latents, timestep, text = _step_inputs(unet, value_injection, num_frames, latent_height, latent_width, text_states)
    attention = install_processors(unet, value_injection=value_injection)
    try:
        with attention.frames(num_frames, vectors, 0.1), FlopCounterMode(display=False) as counter:
            with torch.set_grad_enabled(train):
                prediction = unet(latents, timestep, encoder_hidden_states=text, added_cond_kwargs=added_cond_kwargs).sample
                if train:
                    prediction.float().square().mean().backward()
        return counter.get_total_flops()
    finally:
        attention.restore()


def finetune_weight_bytes(unet: UNetMotionModel, trainable: dict[str, nn.Parameter], extra_trainable: int = 0) -> dict[str, int]:
    """Bytes of the weight states of a fine-tune with Adam: frozen weights in bf16, trainable ones in
    fp32 with an fp32 gradient and Adam's two moments (16 bytes a parameter). `extra_trainable` counts
    parameters trained outside the UNet (MotionGuide)."""
    trainable_ids = {id(p) for p in trainable.values()}
    frozen = sum(p.numel() for p in unet.parameters() if id(p) not in trainable_ids)
    trained = sum(p.numel() for p in trainable.values()) + extra_trainable
    return {"frozen_bf16": 2 * frozen, "trainable_fp32": 4 * trained, "gradients_fp32": 4 * trained, "adam_fp32": 8 * trained}
