"""The MotionGuide diagnostic: exactly 0 for zero-initialised heads, > 0 once the heads are not zero."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.guide_effect import TIMESTEP_FRACTIONS, measure_guide_effect
from vidmp3.model.codec import codec_factor
from vidmp3.model.presets import load_components, model_spec
from vidmp3.model.processors import install_processors
from vidmp3.model.tiny import build_tiny
from vidmp3.model.video_unet import attention_layers, motion_slots
from vidmp3.motionguide import MotionGuide, motion_guide_config

NUM_FRAMES = 4


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny("tiny", root / "tiny", seed=0)
    return load_components(model_spec("tiny", tiny_dir=root), "cpu", torch.float32)


def clip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (NUM_FRAMES, 32, 32, 3), dtype=np.uint8)
    guide = np.zeros((NUM_FRAMES, 3, 32, 32), np.float32)
    for t in range(NUM_FRAMES):
        guide[t, :, 8:20, 4 + 2 * t : 16 + 2 * t] = rng.uniform(0.1, 1.0, (3, 12, 12))
    return frames, guide, np.full(NUM_FRAMES, 144 / 1024, np.float32)


@pytest.mark.parametrize("layout", ["pooled", "spatial"])
def test_zero_heads_give_zero_and_non_zero_heads_a_positive_effect(components, layout):
    frames, guide, alpha = clip()
    unet = components.unet
    config = motion_guide_config("product", layout, motion_slots(unet).values(), codec_factor(components.vae), 8, coarse=False)
    model = MotionGuide(**config)
    latents = components.encode_frames(frames)
    kwargs = components.encode_prompt(["a cube"], 32, 32).unet_kwargs(NUM_FRAMES)
    scheduler = DDPMScheduler.from_config(components.scheduler_config)
    attention = install_processors(unet, value_injection=True)
    inputs = (torch.from_numpy(guide), torch.from_numpy(alpha))
    try:
        with torch.no_grad():
            zero = measure_guide_effect(unet, attention, model(*inputs), 0.1, latents, kwargs, scheduler, seed=0)
            for head in model.heads.values():
                torch.nn.init.normal_(head.weight)
            trained = measure_guide_effect(unet, attention, model(*inputs), 0.1, latents, kwargs, scheduler, seed=0)
    finally:
        attention.restore()
    layers = len(attention_layers(unet)[1])
    assert len(zero) == len(trained) == layers * len(TIMESTEP_FRACTIONS)
    assert all(row["guide_ratio"] == 0.0 and row["output_change"] == 0.0 for row in zero)
    assert all(row["guide_ratio"] > 0.0 and row["output_change"] > 0.0 for row in trained)


def test_fine_tuning_writes_the_diagnostic(components, tmp_path):
    frames, guide, alpha = clip()
    config = FinetuneConfig(steps=2, learning_rate=1e-3, guide_strength=0.1, motion_guide_hidden=8)
    finetune(frames, guide, alpha, "a cube", components.spec, config, tmp_path / "weights")
    with open(tmp_path / "weights" / "guide_effect.csv") as handle:
        rows = list(csv.DictReader(handle))
    layers = attention_layers(components.unet)[1]
    assert {row["layer"] for row in rows} == set(layers)
    assert all(float(row["guide_ratio"]) > 0 for row in rows)  # two Adam steps move the zero heads off 0
    summary = json.loads((tmp_path / "weights" / "guide_effect.json").read_text())
    assert set(summary["layers"]) == set(layers) and len(summary["timesteps"]) == len(TIMESTEP_FRACTIONS)
