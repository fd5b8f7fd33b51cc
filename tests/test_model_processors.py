"""The video attention processors against loop-over-frames references, and their install/context rules."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from vidmp3.model.processors import (
    FrameState,
    MotionGuideValueProcessor,
    SparseCausalAttnProcessor,
    install_processors,
)
from vidmp3.model.tiny import tiny_motion_adapter, tiny_unet2d
from vidmp3.model.video_unet import attention_layers, build_video_unet
from vidmp3.motionguide import MotionGuide

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def attention_reference(attn: Attention, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor):
    """Plain multi-head attention of queries (..., Lq, C) over inputs (..., Lk, C), with explicit softmax."""
    query, key, value = attn.to_q(queries), attn.to_k(keys), attn.to_v(values)
    head_dim = query.shape[-1] // attn.heads
    outputs = []
    for head in range(attn.heads):
        part = slice(head * head_dim, (head + 1) * head_dim)
        weights = torch.softmax(query[..., part] @ key[..., part].transpose(-1, -2) / head_dim**0.5, dim=-1)
        outputs.append(weights @ value[..., part])
    return attn.to_out[0](torch.cat(outputs, dim=-1))


def sparse_causal_reference(attn: Attention, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(batch * frames, L, C): frame i attends to [frame 0, frame i-1]; frame 0 to itself only."""
    videos = hidden_states.view(-1, num_frames, *hidden_states.shape[1:])
    out = []
    for video in videos:
        for i in range(num_frames):
            context = video[0] if i == 0 else torch.cat([video[0], video[i - 1]])
            out.append(attention_reference(attn, video[i], context, context))
    return torch.stack(out)


def value_injection_reference(attn: Attention, hidden_states: torch.Tensor, vectors: torch.Tensor, scale: float):
    """(pixels, frames, C): each pixel's frames attend to each other; frame j's value input gets scale * vectors[j]."""
    num_frames = hidden_states.shape[1]
    values = torch.stack([hidden_states[:, j] + scale * vectors[j] for j in range(num_frames)], dim=1)
    out = [attention_reference(attn, hidden_states[:, i : i + 1], hidden_states, values) for i in range(num_frames)]
    return torch.cat(out, dim=1)


@pytest.fixture
def attention_layer() -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=16, heads=2, dim_head=8)


def test_sparse_causal_matches_loop_reference(attention_layer):
    state = FrameState()
    state.num_frames = 5
    hidden_states = torch.randn(2 * 5, 6, 16)  # two videos of five frames, six tokens each
    with torch.no_grad():
        attention_layer.set_processor(SparseCausalAttnProcessor(state))
        out = attention_layer(hidden_states)
        expected = sparse_causal_reference(attention_layer, hidden_states, 5)
    torch.testing.assert_close(out, expected, **TOLERANCE)


def test_value_injection_matches_loop_reference(attention_layer):
    state = FrameState()
    state.num_frames = 4
    state.guide_vectors = {16: torch.randn(4, 16)}
    state.guide_strength = 0.3
    hidden_states = torch.randn(7, 4, 16)  # seven pixels, four frames
    with torch.no_grad():
        attention_layer.set_processor(MotionGuideValueProcessor(state))
        out = attention_layer(hidden_states)
        expected = value_injection_reference(attention_layer, hidden_states, state.guide_vectors[16], 0.3)
    torch.testing.assert_close(out, expected, **TOLERANCE)


def test_value_injection_with_zero_scale_equals_stock_attention_exactly(attention_layer):
    state = FrameState()
    state.num_frames = 4
    state.guide_vectors = {16: torch.randn(4, 16)}
    state.guide_strength = 0.0
    hidden_states = torch.randn(7, 4, 16)
    with torch.no_grad():
        attention_layer.set_processor(AttnProcessor2_0())
        stock = attention_layer(hidden_states)
        attention_layer.set_processor(MotionGuideValueProcessor(state))
        injected = attention_layer(hidden_states)
    assert torch.equal(injected, stock)


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def video_unet(request):
    torch.manual_seed(0)
    family = request.param
    unet = build_video_unet(tiny_unet2d(family), tiny_motion_adapter(family)).eval()
    return family, unet


def unet_inputs(family: str, batch: int, num_frames: int):
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(batch, 4, num_frames, 8, 8, generator=generator)
    width = 32 if family == "sd15" else 64
    text = torch.randn(batch, 5, width, generator=generator).repeat_interleave(num_frames, dim=0)
    added = None
    if family == "sdxl":
        added = {
            "text_embeds": torch.randn(batch, 32, generator=generator),
            "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * batch),
        }
    timestep = torch.tensor([500])
    return {"sample": sample, "timestep": timestep, "encoder_hidden_states": text, "added_cond_kwargs": added}


class LoopReferenceProcessor:
    """Test-side processor that runs the loop references with the frame count and vectors it is given."""

    def __init__(self, kind: str, num_frames: int, vectors: dict[int, torch.Tensor] | None, scale: float, shapes: list):
        self.kind, self.num_frames, self.vectors, self.scale, self.shapes = kind, num_frames, vectors, scale, shapes

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None):
        self.shapes.append((self.kind, tuple(hidden_states.shape)))
        if self.kind == "sparse_causal":
            return sparse_causal_reference(attn, hidden_states, self.num_frames)
        return value_injection_reference(attn, hidden_states, self.vectors[hidden_states.shape[-1]], self.scale)


def test_installed_processors_match_loop_references_in_the_unet(video_unet):
    family, unet = video_unet
    batch, num_frames = 2, 3
    inputs = unet_inputs(family, batch, num_frames)
    generator = torch.Generator().manual_seed(2)
    video_attention = install_processors(unet, value_injection=True)
    vectors = {width: torch.randn(num_frames, width, generator=generator) for width in video_attention.guide_widths}
    try:
        with torch.no_grad(), video_attention.frames(num_frames, vectors, 0.7):
            out = unet(**inputs).sample
    finally:
        video_attention.restore()

    shapes = []
    spatial, temporal = attention_layers(unet)
    processors = unet.attn_processors
    for name in spatial:
        if name.endswith(".attn1"):
            processors[f"{name}.processor"] = LoopReferenceProcessor("sparse_causal", num_frames, None, 0.7, shapes)
    for name in temporal:
        processors[f"{name}.processor"] = LoopReferenceProcessor("value", num_frames, vectors, 0.7, shapes)
    original = unet.attn_processors
    unet.set_attn_processor(processors)
    try:
        with torch.no_grad():
            expected = unet(**inputs).sample
    finally:
        unet.set_attn_processor(original)

    torch.testing.assert_close(out, expected, **TOLERANCE)
    # The layouts the processors rely on: spatial (batch * frames, pixels, C), temporal (batch * pixels, frames, C).
    for kind, shape in shapes:
        if kind == "sparse_causal":
            assert shape[0] == batch * num_frames
        else:
            assert shape[1] == num_frames and shape[0] % batch == 0
    assert {kind for kind, _ in shapes} == {"sparse_causal", "value"}


def test_zero_scale_or_zero_heads_equals_the_model_without_injection_exactly(video_unet):
    family, unet = video_unet
    num_frames = 4
    inputs = unet_inputs(family, 1, num_frames)
    without_injection = install_processors(unet, value_injection=False)
    with torch.no_grad(), without_injection.frames(num_frames):
        reference = unet(**inputs).sample
    without_injection.restore()

    injection = install_processors(unet, value_injection=True)
    random_vectors = {width: torch.randn(num_frames, width) for width in injection.guide_widths}
    motion_guide = MotionGuide("product", widths=injection.guide_widths, hidden=8)  # zero-initialised heads
    guide = torch.rand(num_frames, 3, 16, 16) + 0.1
    with torch.no_grad():
        zero_head_vectors = motion_guide(guide, torch.ones(num_frames))
        with injection.frames(num_frames, random_vectors, 0.0):
            zero_scale = unet(**inputs).sample
        with injection.frames(num_frames, zero_head_vectors, 0.1):
            zero_heads = unet(**inputs).sample
        with injection.frames(num_frames, random_vectors, 0.1):
            injected = unet(**inputs).sample
    injection.restore()

    assert torch.equal(zero_scale, reference)
    assert torch.equal(zero_heads, reference)
    assert not torch.allclose(injected, reference)


def test_restore_puts_back_the_original_processor_objects(video_unet):
    _, unet = video_unet
    before = unet.attn_processors
    video_attention = install_processors(unet, value_injection=True)
    installed = unet.attn_processors
    assert any(isinstance(p, SparseCausalAttnProcessor) for p in installed.values())
    assert any(isinstance(p, MotionGuideValueProcessor) for p in installed.values())
    with pytest.raises(RuntimeError, match="already installed"):
        install_processors(unet, value_injection=False)
    video_attention.restore()
    after = unet.attn_processors
    assert after.keys() == before.keys()
    assert all(after[name] is before[name] for name in before)


def test_only_the_intended_layers_get_the_video_processors(video_unet):
    _, unet = video_unet
    video_attention = install_processors(unet, value_injection=True)
    try:
        for name, processor in unet.attn_processors.items():
            temporal = ".motion_modules." in name
            if temporal:
                assert isinstance(processor, MotionGuideValueProcessor), name
            elif name.endswith("attn1.processor"):
                assert isinstance(processor, SparseCausalAttnProcessor), name
            else:
                assert isinstance(processor, AttnProcessor2_0), name  # spatial cross-attention stays stock
    finally:
        video_attention.restore()


def test_processors_refuse_to_run_outside_the_frame_context(video_unet):
    family, unet = video_unet
    inputs = unet_inputs(family, 1, 2)
    video_attention = install_processors(unet, value_injection=True)
    try:
        with torch.no_grad(), pytest.raises(RuntimeError, match="outside VideoAttention.frames"):
            unet(**inputs)
        vectors = {width: torch.zeros(2, width) for width in video_attention.guide_widths}
        with video_attention.frames(2, vectors, 0.1):
            with pytest.raises(RuntimeError, match="already active"):
                with video_attention.frames(2, vectors, 0.1):
                    pass
        assert video_attention.state.num_frames is None and video_attention.state.guide_vectors is None
    finally:
        video_attention.restore()


def test_frame_context_checks_the_vectors(video_unet):
    _, unet = video_unet
    video_attention = install_processors(unet, value_injection=True)
    try:
        widths = video_attention.guide_widths
        with pytest.raises(ValueError, match="needs the MotionGuide vectors"):
            with video_attention.frames(3):
                pass
        with pytest.raises(ValueError, match="widths"):
            with video_attention.frames(3, {widths[0]: torch.zeros(3, widths[0])}, 0.1):
                pass
        with pytest.raises(ValueError, match="expected \\(3, "):
            with video_attention.frames(3, {w: torch.zeros(4, w) for w in widths}, 0.1):
                pass
    finally:
        video_attention.restore()
    without_injection = install_processors(unet, value_injection=False)
    try:
        with pytest.raises(ValueError, match="not installed"):
            with without_injection.frames(3, {w: torch.zeros(3, w) for w in widths}, 0.1):
                pass
    finally:
        without_injection.restore()
