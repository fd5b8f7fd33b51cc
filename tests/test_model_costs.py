"""Gradient checkpointing of the whole video UNet, and the saved-tensor counter that measures it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidmp3.model.costs import SavedTensorCounter, unet_step_activation_bytes
from vidmp3.model.processors import install_processors
from vidmp3.model.tiny import TEXT_WIDTH, tiny_motion_adapter, tiny_unet2d
from vidmp3.model.video_unet import (
    attention_layers,
    build_video_unet,
    enable_gradient_checkpointing,
    motion_widths,
    set_trainable,
)


def tiny_video_unet(family: str = "sd15"):
    torch.manual_seed(0)
    return build_video_unet(tiny_unet2d(family), tiny_motion_adapter(family))


def step_gradients(unet, checkpointing: str) -> dict[str, torch.Tensor]:
    """One fine-tune-like step (vidmp3's trainable set, value injection); the gradients by name."""
    trainable = set_trainable(unet, "vidmp3")
    if checkpointing == "diffusers":
        unet.enable_gradient_checkpointing()
    elif checkpointing == "full":
        enable_gradient_checkpointing(unet)
    unet.train()
    generator = torch.Generator().manual_seed(1)
    num_frames = 3
    vectors = {w: torch.randn(num_frames, w, generator=generator).requires_grad_() for w in motion_widths(unet)}
    latents = torch.randn(1, 4, num_frames, 8, 8, generator=generator)
    text = torch.randn(1, 5, TEXT_WIDTH, generator=generator)
    attention = install_processors(unet, value_injection=True)
    try:
        with attention.frames(num_frames, vectors, 0.5):
            prediction = unet(latents, torch.tensor([300]), encoder_hidden_states=text.repeat_interleave(num_frames, 0)).sample
            F.mse_loss(prediction, torch.zeros_like(prediction)).backward()
    finally:
        attention.restore()
    gradients = {name: p.grad.clone() for name, p in trainable.items()}
    gradients.update({f"vector {w}": v.grad.clone() for w, v in vectors.items()})
    return gradients


def test_checkpointing_gives_the_same_gradients():
    reference = step_gradients(tiny_video_unet(), "none")
    checkpointed = step_gradients(tiny_video_unet(), "full")
    assert reference.keys() == checkpointed.keys()
    assert all(reference[name].abs().sum() > 0 for name in reference if name.startswith("vector"))
    for name in reference:
        torch.testing.assert_close(checkpointed[name], reference[name], rtol=1e-5, atol=1e-7, msg=name)


def test_checkpointing_covers_the_motion_modules_diffusers_leaves_out():
    """Counted on the tiny model: diffusers' checkpointing keeps the down/up motion modules' activations,
    ours does not; each motion module then keeps its input alone."""
    text = torch.zeros(1, 5, TEXT_WIDTH)
    counts = {
        setting: unet_step_activation_bytes(tiny_video_unet(), "vidmp3", 4, 8, 8, text, setting)
        for setting in ("none", "diffusers", "full")
    }
    assert counts["none"] > counts["diffusers"] > counts["full"] > 0


def test_checkpointed_backward_needs_the_frame_context():
    """The recompute in backward runs the processors again: outside VideoAttention.frames it must fail."""
    unet = tiny_video_unet()
    set_trainable(unet, "vidmp3")
    enable_gradient_checkpointing(unet)
    vectors = {w: torch.zeros(2, w, requires_grad=True) for w in motion_widths(unet)}
    attention = install_processors(unet, value_injection=True)
    with attention.frames(2, vectors, 0.1):
        prediction = unet(
            torch.zeros(1, 4, 2, 8, 8), torch.tensor([1]), encoder_hidden_states=torch.zeros(2, 5, TEXT_WIDTH)
        ).sample
    with pytest.raises(RuntimeError, match="ran outside VideoAttention.frames"):
        prediction.sum().backward()
    attention.restore()


def test_enabling_twice_checkpoints_once():
    unet = tiny_video_unet()
    enable_gradient_checkpointing(unet)
    forward = unet.down_blocks[0].motion_modules[0].forward
    enable_gradient_checkpointing(unet)
    assert unet.down_blocks[0].motion_modules[0].forward is forward
    assert forward.forward.__self__ is unet.down_blocks[0].motion_modules[0]


def test_counter_counts_saved_activations_once_and_no_parameters():
    linear = torch.nn.Linear(8, 16)
    x = torch.randn(4, 8, requires_grad=True)
    with SavedTensorCounter() as counter:
        hidden = linear(x)  # saves x (and the weight: a parameter, not counted)
        (hidden * hidden).sum()  # saves hidden, twice: counted once
    assert counter.bytes == (4 * 8 + 4 * 16) * 4
    assert counter.tensors == 2


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_counter_counts_attention_as_the_fused_kernels_save_it(device):
    """q, k, v, output and the float32 log-sum-exp (the GPU's flash kernel, which the meta device stands in
    for, adds its random seed and offset: 24 bytes); never the (queries x keys) attention matrix."""
    q = torch.zeros(2, 4, 64, 8, device=device, dtype=torch.bfloat16, requires_grad=True)
    kv = torch.zeros(2, 4, 128, 8, device=device, dtype=torch.bfloat16, requires_grad=True)
    with SavedTensorCounter() as counter:
        F.scaled_dot_product_attention(q, kv, kv)
    expected = (2 * q.numel() + kv.numel()) * 2 + 2 * 4 * 64 * 4
    assert counter.bytes - expected == (24 if device == "meta" else 0)


def test_meta_count_equals_the_count_of_a_real_step():
    """The meta device counts what a real CPU step saves (same tiny model, same shapes), plus the flash
    kernel's 24 bytes of random state per attention layer."""
    text = torch.zeros(1, 5, TEXT_WIDTH)
    real = unet_step_activation_bytes(tiny_video_unet(), "vidmp3", 3, 8, 8, text, "none")
    with torch.device("meta"):
        meta_unet = build_video_unet(tiny_unet2d("sd15"), tiny_motion_adapter("sd15"))
    meta = unet_step_activation_bytes(meta_unet, "vidmp3", 3, 8, 8, text.to("meta"), "none")
    spatial, temporal = attention_layers(meta_unet)
    assert meta - real == 24 * (len(spatial) + len(temporal))
