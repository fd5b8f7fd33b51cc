"""DDIM inversion and editing through a fine-tuned tiny model."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from vidmp3.editing import EditSettings, SourcePriors, ddim_invert, ddim_sample, edit_video, load_video_model
from vidmp3.errors import InputError
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.model.presets import ModelSpec, load_components, model_spec, write_video_unet
from vidmp3.model.tiny import build_tiny
from vidmp3.motionguide import guide_input
from vidmp3.video_io import read_video, write_video

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


def test_one_load_edits_every_concept_and_is_deterministic(weights, video, tmp_path):
    frames, corr, depth, alpha = video
    priors = SourcePriors(corr, depth, alpha)
    settings = EditSettings(inversion_steps=5, steps=5, guidance_scale=3.0, negative_prompt="", device="cpu", dtype="float32")
    edits = {"sphere": "a blue sphere", "cone": "a green cone"}
    inverted, first, seconds = edit_video(weights, None, priors, PROMPT, edits, settings)
    _, again, _ = edit_video(weights, None, priors, PROMPT, {"sphere": "a blue sphere"}, settings)
    _, unguided, _ = edit_video(weights, None, priors, PROMPT, {"sphere": "a blue sphere"}, replace(settings, guidance_scale=1.0))
    assert inverted.shape == (1, 4, NUM_FRAMES, 4, 4) and set(seconds) == set(edits)
    assert first["sphere"].shape == frames.shape and first["sphere"].dtype == np.uint8
    assert np.array_equal(first["sphere"], again["sphere"])  # an edit does not depend on the video's other edits
    assert not np.array_equal(first["sphere"], first["cone"])
    assert not np.array_equal(first["sphere"], unguided["sphere"])

    out = tmp_path / "edit.mp4"
    write_video(first["sphere"], out, fps=6.0)
    decoded, fps, count = read_video(out, list(range(NUM_FRAMES)))
    assert count == NUM_FRAMES and fps == pytest.approx(6.0) and decoded.shape == frames.shape


def test_the_merged_video_model_gives_the_same_edit(weights, video, tmp_path):
    """Editing on the video UNet written once by `write_video_unet` equals editing on one merged in the job."""
    _, corr, depth, alpha = video
    priors = SourcePriors(corr, depth, alpha)
    spec = ModelSpec(**json.loads((weights / "config.json").read_text())["model"])
    write_video_unet(spec, torch.float32, tmp_path / "video")
    settings = EditSettings(inversion_steps=3, steps=3, guidance_scale=2.0, negative_prompt="", device="cpu", dtype="float32")
    _, merged_here, _ = edit_video(weights, None, priors, PROMPT, {"x": "a cone"}, settings)
    _, merged_once, _ = edit_video(weights, tmp_path / "video", priors, PROMPT, {"x": "a cone"}, settings)
    assert np.array_equal(merged_here["x"], merged_once["x"])
    other = replace(spec, preset="sd15")  # the same folders under another name: not what the merged model records
    with pytest.raises(InputError, match="was built from"):
        load_components(other, "cpu", torch.float32, video_unet=tmp_path / "video")


def test_bad_inputs(weights, video, tmp_path):
    frames, corr, depth, alpha = video
    priors = SourcePriors(corr, depth, alpha)
    settings = EditSettings(inversion_steps=2, steps=2, guidance_scale=1.0, negative_prompt="", device="cpu", dtype="float32")
    guided = json.loads((weights / "config.json").read_text())["finetune"]["method"] == "vidmp3"
    if guided:
        short = SourcePriors(corr[:3], depth[:3], alpha[:3])
        with pytest.raises(InputError, match="the clip has 4 frames but its priors have 3"):
            edit_video(weights, None, short, PROMPT, {"x": "a cone"}, settings)
        with pytest.raises(InputError, match="needs the source's priors"):
            edit_video(weights, None, None, PROMPT, {"x": "a cone"}, settings)
    with pytest.raises(InputError, match="priors disagree on the frame count"):
        SourcePriors(corr, depth[:3], alpha)
    with pytest.raises(InputError, match="edit 'x': the edited prompt is empty"):
        edit_video(weights, None, priors, PROMPT, {"x": "  "}, settings)


def test_unguided_steps_sample_the_first_steps_with_the_edit_prompt_alone(weights, video):
    """All steps unguided is sampling without guidance; none is plain guidance; in between differs from both."""
    _, corr, depth, alpha = video
    model = load_video_model(weights, NUM_FRAMES, SourcePriors(corr, depth, alpha), "cpu", torch.float64)
    components = model.finetuned.components
    noise = torch.randn(1, 4, NUM_FRAMES, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    both = components.encode_prompt(["", "a blue sphere"], 32, 32)
    alone = components.encode_prompt(["a blue sphere"], 32, 32)
    guided = ddim_sample(model, noise, both, steps=4, guidance_scale=3.0)
    torch.testing.assert_close(ddim_sample(model, noise, both, 4, 3.0, unguided_steps=0), guided, atol=0, rtol=0)
    unguided = ddim_sample(model, noise, alone, steps=4, guidance_scale=1.0)
    torch.testing.assert_close(ddim_sample(model, noise, both, 4, 3.0, unguided_steps=4), unguided, atol=1e-12, rtol=0)
    halfway = ddim_sample(model, noise, both, 4, 3.0, unguided_steps=2)
    assert not torch.allclose(halfway, guided) and not torch.allclose(halfway, unguided)
    with pytest.raises(InputError, match="unguided_steps must be between 0 and the 4 sampled steps, got 5"):
        ddim_sample(model, noise, both, 4, 3.0, unguided_steps=5)


def test_strength_inverts_and_samples_the_same_share_of_the_schedule(weights, video):
    """Strength 1 is the full path; below 1 inversion stops where sampling starts, the round trip stays
    closer to the source, and the edit changes it less."""
    frames, corr, depth, alpha = video
    model = load_video_model(weights, NUM_FRAMES, SourcePriors(corr, depth, alpha), "cpu", torch.float64)
    components = model.finetuned.components
    source = components.encode_frames(frames).to(torch.float64)
    text = components.encode_prompt([PROMPT], 32, 32)
    edit = components.encode_prompt(["a blue sphere"], 32, 32)
    full = ddim_invert(model, source, text, steps=8)
    torch.testing.assert_close(ddim_invert(model, source, text, 8, strength=1.0), full, atol=0, rtol=0)
    half = ddim_invert(model, source, text, 8, strength=0.5)
    assert not torch.allclose(half, full)

    def distance(latents):
        return float((latents - source).abs().mean())

    back_half = ddim_sample(model, half, text, 8, 1.0, strength=0.5)
    back_full = ddim_sample(model, full, text, 8, 1.0)
    assert distance(back_half) < distance(back_full)
    assert distance(ddim_sample(model, half, edit, 8, 1.0, strength=0.5)) < distance(ddim_sample(model, full, edit, 8, 1.0))
    with pytest.raises(InputError, match="unguided_steps must be between 0 and the 4 sampled steps, got 5"):
        ddim_sample(model, half, text, 8, 1.0, unguided_steps=5, strength=0.5)
    with pytest.raises(InputError, match="editing strength must be in"):
        ddim_invert(model, source, text, 8, strength=0.0)


def test_edit_schedule_is_checked_where_settings_are_made():
    common = dict(guidance_scale=2.0, negative_prompt="", device="cpu", dtype="float32")
    EditSettings(inversion_steps=10, steps=10, strength=0.5, **common)
    EditSettings(inversion_steps=20, steps=10, **common)  # unequal counts are fine for the full path
    with pytest.raises(InputError, match=r"strength 0.5 needs inversion: steps \(20\) equal to editing: steps \(10\)"):
        EditSettings(inversion_steps=20, steps=10, strength=0.5, **common)
    with pytest.raises(InputError, match="covers no step of 10"):
        EditSettings(inversion_steps=10, steps=10, strength=0.01, **common)
    with pytest.raises(InputError, match="between 0 and the 5 sampled steps, got 6"):
        EditSettings(inversion_steps=10, steps=10, strength=0.5, unguided_steps=6, **common)
