"""DDIM inversion and editing through a fine-tuned tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidmp3.editing import SourcePriors, ddim_invert, ddim_sample, edit_video, invert_video, load_video_model, write_video
from vidmp3.errors import InputError
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.frames import read_video
from vidmp3.model.presets import model_spec
from vidmp3.model.tiny import build_tiny
from vidmp3.motionguide import guide_input

NUM_FRAMES = 4
PROMPT = "a cube moving over a field"


@pytest.fixture(scope="module")
def video():
    """Four 32x32 frames of a moving square, with its correspondence, depth and alpha."""
    rng = np.random.default_rng(0)
    frames = np.full((NUM_FRAMES, 32, 32, 3), 90, np.uint8)
    corr = np.zeros((NUM_FRAMES, 32, 32, 3), np.float32)
    depth = np.zeros((NUM_FRAMES, 32, 32), np.float32)
    for t in range(NUM_FRAMES):
        frames[t, 8:20, 4 + 2 * t : 16 + 2 * t] = (200, 40, 40)
        corr[t, 8:20, 4 + 2 * t : 16 + 2 * t] = rng.uniform(0.1, 1.0, (12, 12, 3))
        depth[t, 8:20, 4 + 2 * t : 16 + 2 * t] = 0.5 + 0.1 * t
    alpha = np.full(NUM_FRAMES, 144 / 1024, np.float32)
    return frames, corr, depth, alpha


@pytest.fixture(scope="module", params=["vidmp3", "no-motionguide"])
def weights(request, tmp_path_factory, video):
    root = tmp_path_factory.mktemp("models")
    build_tiny("tiny", root / "tiny", seed=0)
    frames, corr, depth, alpha = video
    method = request.param
    guide = guide_input(corr, depth, "product") if method == "vidmp3" else None
    config = FinetuneConfig(method=method, steps=2, learning_rate=1e-2, motion_guide_hidden=8)
    out = root / "weights"
    finetune(frames, guide, alpha if guide is not None else None, PROMPT, model_spec("tiny", tiny_dir=root), config, out)
    return out


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
def test_inversion_round_trips_exactly_when_the_model_ignores_its_input(weights, video, prediction_type):
    """With conv_in zeroed, the UNet's output depends only on the timestep and text, so a DDIM step down
    exactly undoes a DDIM inverse step up: any error is in how the schedulers are wired. (Not so for
    v-prediction: there the implied noise depends on the latents even when the output does not.)"""
    _, corr, depth, alpha = video
    model = load_video_model(weights, NUM_FRAMES, SourcePriors(corr, depth, alpha), "cpu", torch.float64)
    components = model.finetuned.components
    components.scheduler_config["prediction_type"] = prediction_type
    torch.nn.init.zeros_(components.unet.conv_in.weight)
    torch.nn.init.zeros_(components.unet.conv_in.bias)
    latents = torch.randn(1, 4, NUM_FRAMES, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    text = components.encode_prompt([PROMPT], 32, 32)
    noise = ddim_invert(model, latents, text, steps=6)
    assert not torch.allclose(noise, latents, atol=1e-2)
    back = ddim_sample(model, noise, text, steps=6, guidance_scale=1.0)
    torch.testing.assert_close(back, latents, atol=1e-8, rtol=1e-8)


def test_invert_then_edit_writes_and_is_deterministic(weights, video, tmp_path):
    frames, corr, depth, alpha = video
    latents = tmp_path / "latents"
    priors = SourcePriors(corr, depth, alpha)
    invert_video(weights, frames, priors, PROMPT, steps=5, device="cpu", dtype=torch.float32, out_dir=latents)
    assert sorted(p.name for p in latents.iterdir()) == ["inversion.json", "latents.safetensors"]
    assert json.loads((latents / "inversion.json").read_text())["steps"] == 5
    edit = dict(weights=weights, latents=latents, priors=priors, steps=5, device="cpu", dtype=torch.float32)
    first = edit_video(prompt="a blue sphere", negative_prompt="", guidance_scale=3.0, **edit)
    again = edit_video(prompt="a blue sphere", negative_prompt="", guidance_scale=3.0, **edit)
    unguided = edit_video(prompt="a blue sphere", negative_prompt="", guidance_scale=1.0, **edit)
    assert first.shape == frames.shape and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, unguided)

    out = tmp_path / "edit.mp4"
    write_video(first, out, fps=6.0)
    decoded, fps, count = read_video(out, list(range(NUM_FRAMES)))
    assert count == NUM_FRAMES and fps == pytest.approx(6.0) and decoded.shape == frames.shape


def test_bad_inputs(weights, video, tmp_path):
    frames, corr, depth, alpha = video
    priors = SourcePriors(corr, depth, alpha)
    guided = json.loads((weights / "config.json").read_text())["finetune"]["method"] == "vidmp3"
    if guided:
        with pytest.raises(InputError, match="the clip has 3 frames but its priors have 4"):
            invert_video(weights, frames[:3], priors, PROMPT, 2, "cpu", torch.float32, tmp_path / "l")
        with pytest.raises(InputError, match="needs the source's priors"):
            invert_video(weights, frames, None, PROMPT, 2, "cpu", torch.float32, tmp_path / "l")
        assert not (tmp_path / "l").exists()
    with pytest.raises(InputError, match="priors disagree on the frame count"):
        SourcePriors(corr, depth[:3], alpha)
    with pytest.raises(InputError, match="edited prompt is empty"):
        edit_video(weights, tmp_path, priors, "  ", "", 1.0, 2, "cpu", torch.float32)
