"""The spatial MotionGuide: per-pixel vectors per motion-module slot, injected per pixel into temporal values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention
from safetensors.torch import load_file

from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.model.presets import model_spec
from vidmp3.model.processors import FrameState, MotionGuideValueProcessor, install_processors
from vidmp3.model.tiny import build_tiny, tiny_motion_adapter, tiny_unet2d
from vidmp3.model.video_unet import build_video_unet, motion_slots
from vidmp3.motionguide import MotionGuide, motion_guide_config
from test_model_processors import TOLERANCE, unet_inputs, value_injection_reference


def pixel_injection_reference(attn, hidden_states, pixel_vectors, scale):
    """Token by token: token t of a pixel-major (batch * h * w) layout is pixel t mod h*w, whose frames get its vectors."""
    _, height, width, _ = pixel_vectors.shape
    out = []
    for token in range(hidden_states.shape[0]):
        pixel = token % (height * width)
        vectors = pixel_vectors[:, pixel // width, pixel % width]
        out.append(value_injection_reference(attn, hidden_states[token : token + 1], vectors, scale))
    return torch.cat(out)


def test_per_pixel_injection_matches_a_loop_over_pixels():
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8)
    state = FrameState()
    state.num_frames = 3
    state.guide_vectors = {(16, 2): torch.randn(3, 2, 5, 16)}
    state.guide_strength = 0.4
    hidden_states = torch.randn(2 * 2 * 5, 3, 16)  # two videos of 2x5 pixels, three frames
    with torch.no_grad():
        attn.set_processor(MotionGuideValueProcessor(state, downsample=2))
        out = attn(hidden_states)
        expected = pixel_injection_reference(attn, hidden_states, state.guide_vectors[(16, 2)], 0.4)
        attn.set_processor(MotionGuideValueProcessor(state, downsample=1))  # no entry for this slot: no injection
        plain = attn(hidden_states)
        state.guide_strength = 0.0
        expected_plain = attn(hidden_states)
    torch.testing.assert_close(out, expected, **TOLERANCE)
    torch.testing.assert_close(plain, expected_plain, rtol=0, atol=0)


def test_cells_are_coverage_times_the_head_of_the_subject_mean():
    torch.manual_seed(0)
    guide = torch.zeros(2, 3, 16, 16)
    guide[0, :, 3:9, 2:7] = torch.rand(3, 6, 5) + 0.1
    guide[1, :, 8:14, 9:15] = torch.rand(3, 6, 6) + 0.1
    model = MotionGuide(hidden=6, widths=(5, 7), layout="spatial", slots=[(5, 1), (7, 2)], latent_factor=2)
    for head in model.heads.values():
        torch.nn.init.normal_(head.weight)
        torch.nn.init.normal_(head.bias)
    with torch.no_grad():
        vectors = model(guide, torch.zeros(2))
        features, windows = model.pixel_features(guide)
    full = torch.zeros(2, 6, 16, 16)
    for index, (rows, cols) in enumerate(windows):
        full[index, :, rows, cols] = features[index]
    support = (guide != 0).any(dim=1)
    assert set(vectors) == {(5, 1), (7, 2)}
    for (width, downsample), cells in vectors.items():
        stride = 2 * downsample
        assert cells.shape == (2, 16 // stride, 16 // stride, width)
        head = model.heads[str(width)]
        for n in range(2):
            for y in range(16 // stride):
                for x in range(16 // stride):
                    window = (slice(y * stride, (y + 1) * stride), slice(x * stride, (x + 1) * stride))
                    subject = support[n][window]
                    if not subject.any():
                        assert torch.equal(cells[n, y, x], torch.zeros(width))
                        continue
                    mean = full[n][(slice(None), *window)][:, subject].mean(dim=1)
                    expected = subject.float().mean() * head(mean)
                    torch.testing.assert_close(cells[n, y, x], expected, rtol=1e-5, atol=1e-5)


def test_a_zero_initialised_spatial_guide_leaves_the_model_unchanged_and_a_trained_one_does_not():
    torch.manual_seed(0)
    unet = build_video_unet(tiny_unet2d("sd15"), tiny_motion_adapter("sd15")).eval()
    num_frames = 4
    inputs = unet_inputs("sd15", 2, num_frames)  # latents 8x8; the guide is at 16x16 pixels (factor 2)
    plain = install_processors(unet, value_injection=False)
    with torch.no_grad(), plain.frames(num_frames):
        reference = unet(**inputs).sample
    plain.restore()

    config = motion_guide_config("product", "spatial", motion_slots(unet).values(), 2, 8, coarse=False)
    model = MotionGuide(**config)
    guide = torch.zeros(num_frames, 3, 16, 16)
    for t in range(num_frames):
        guide[t, :, 4:10, 2 + 2 * t : 8 + 2 * t] = 0.5
    injection = install_processors(unet, value_injection=True)
    try:
        with torch.no_grad():
            zero = model(guide, torch.full((num_frames,), 36 / 256))
            with injection.frames(num_frames, zero, 0.1):
                zero_heads = unet(**inputs).sample
            for head in model.heads.values():
                torch.nn.init.normal_(head.weight)
            with injection.frames(num_frames, model(guide, torch.zeros(num_frames)), 1.0):
                trained = unet(**inputs).sample
    finally:
        injection.restore()
    assert torch.equal(zero_heads, reference)
    assert not torch.allclose(trained, reference)


def test_the_coarse_form_feeds_only_the_lowest_resolution():
    unet = build_video_unet(tiny_unet2d("sd15"), tiny_motion_adapter("sd15"))
    slots = motion_slots(unet).values()
    coarse = motion_guide_config("product", "spatial", slots, 2, 8, coarse=True)
    every = motion_guide_config("product", "spatial", slots, 2, 8, coarse=False)
    lowest = max(downsample for _, downsample in slots)
    assert every["slots"] == [list(slot) for slot in sorted(set(slots))]
    assert coarse["slots"] == [list(slot) for slot in sorted(set(slots)) if slot[1] == lowest]
    assert MotionGuide(**coarse).heads.keys() == {str(width) for width, _ in coarse["slots"]}


def test_frame_context_refuses_per_pixel_vectors_for_slots_the_model_lacks():
    unet = build_video_unet(tiny_unet2d("sd15"), tiny_motion_adapter("sd15"))
    attention = install_processors(unet, value_injection=True)
    try:
        with pytest.raises(ValueError, match="slots"):
            with attention.frames(2, {(32, 4): torch.zeros(2, 2, 2, 32)}, 0.1):
                pass
        with pytest.raises(ValueError, match="expected"):
            with attention.frames(2, {(32, 1): torch.zeros(3, 8, 8, 32)}, 0.1):
                pass
    finally:
        attention.restore()


@pytest.mark.parametrize("method", ["vidmp3-spatial", "vidmp3-spatial-coarse", "vidmp3-spatial-tav"])
def test_fine_tuning_trains_and_saves_the_spatial_heads(tmp_path, method):
    build_tiny("tiny", tmp_path / "models" / "tiny", seed=0)
    spec = model_spec("tiny", tiny_dir=tmp_path / "models")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    guide = np.zeros((4, 3, 32, 32), np.float32)
    for t in range(4):
        guide[t, :, 8:20, 4 + 2 * t : 16 + 2 * t] = rng.uniform(0.1, 1.0, (3, 12, 12))
    config = FinetuneConfig(method=method, steps=2, learning_rate=1e-2, guide_strength=0.1, motion_guide_hidden=8)
    finetune(frames, guide, np.full(4, 144 / 1024, np.float32), "a cube", spec, config, tmp_path / "weights")
    tensors = load_file(tmp_path / "weights" / "motion_guide.safetensors")
    heads = {name for name in tensors if name.startswith("heads.")}
    assert heads and all(tensors[name].abs().sum() > 0 for name in heads if name.endswith(".weight"))
    expected = {"64"} if method == "vidmp3-spatial-coarse" else {"32", "64"}  # tiny: width 32 at 1x, 64 at 2x down
    assert {name.split(".")[1] for name in heads} == expected
    trainable = load_file(tmp_path / "weights" / "trainable.safetensors")
    beyond_values = [name for name in trainable if ".motion_modules." in name and ".to_v." not in name]
    assert bool(beyond_values) == (method == "vidmp3-spatial-tav")  # tune-a-video's whole motion modules


def test_codec_factor_is_pixels_per_latent_pixel():
    from diffusers import AutoencoderKL

    from vidmp3.model.codec import PixelUnshuffleCodec, codec_factor

    assert codec_factor(PixelUnshuffleCodec(factor=2)) == 2
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        norm_num_groups=4,
        latent_channels=4,
    )
    with torch.no_grad():
        latents = vae.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mean
    assert codec_factor(vae) == 32 // latents.shape[-1] == 4
