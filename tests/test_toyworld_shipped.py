"""The ToyWorld weights shipped in vidmp3/toyworld/weights: they load through the preset path, are what
the pretraining stages made, and still draw the captioned shape and colour."""

from __future__ import annotations

import json

import numpy as np
import torch
from diffusers import UNetMotionModel
from safetensors import safe_open

from vidmp3.model.codec import PixelUnshuffleCodec
from vidmp3.model.presets import TOYWORLD_WEIGHTS, load_components, model_spec
from vidmp3.toyworld import world
from vidmp3.toyworld.classifier import classify, load_classifier
from vidmp3.toyworld.pretrain.image import draw_images
from vidmp3.toyworld.pretrain.models import captions

# The shipped weights drew 62/64 right shapes and 64/64 colours when they were made; chance is 1/4.
SHIPPED_SHAPE_BOUND = 0.8
SHIPPED_COLOUR_BOUND = 0.9


def test_the_shipped_preset_loads_through_the_preset_path():
    components = load_components(model_spec("toyworld"), "cpu", torch.float32)
    assert isinstance(components.unet, UNetMotionModel) and isinstance(components.vae, PixelUnshuffleCodec)
    assert components.unet.dtype == torch.float32 and components.unet.config.in_channels == 12
    assert components.scheduler_config["prediction_type"] == "sample"
    latents = components.encode_frames(np.zeros((8, 32, 32, 3), np.uint8))
    assert latents.shape == (1, 12, 8, 16, 16)


def test_the_shipped_weights_are_small_float16_safetensors_with_their_recipe():
    files = sorted(TOYWORLD_WEIGHTS.rglob("*.safetensors"))
    assert {path.parent.name for path in files} >= {"unet", "text_encoder", "motion_adapter", "classifier"}
    assert sum(path.stat().st_size for path in files) < 20e6
    for path in files:
        with safe_open(path, "pt") as handle:
            dtypes = {handle.get_slice(name).get_dtype() for name in handle.keys()}
        assert "F32" not in dtypes and "F16" in dtypes, path
    assert not list(TOYWORLD_WEIGHTS.rglob("*.bin")) and not list(TOYWORLD_WEIGHTS.rglob("*.pt"))
    record = json.loads((TOYWORLD_WEIGHTS / "pretrain.json").read_text())
    text = json.dumps(record)
    assert '"seed"' in text and '"steps"' in text


def test_the_shipped_classifier_knows_fresh_renders():
    batch = world.render_images(256, seed=world.HELD_OUT_SEED + 77)
    found = classify(load_classifier(TOYWORLD_WEIGHTS / "classifier"), batch.images)
    assert (np.asarray(found.shapes) == batch.shapes).mean() > 0.97
    assert (np.asarray(found.colours) == batch.colours).mean() > 0.97


def test_the_shipped_text_to_image_model_draws_the_captioned_shape_and_colour():
    prompts = [prompt for prompt in captions() for _ in range(2)]
    frames = draw_images(TOYWORLD_WEIGHTS / "base", prompts, seed=123)
    found = classify(load_classifier(TOYWORLD_WEIGHTS / "classifier"), frames)
    wanted = [world.parse_caption(prompt) for prompt in prompts]
    shape_right = np.asarray(found.shapes) == [world.SHAPES.index(shape) for shape, _ in wanted]
    colour_right = np.asarray(found.colours) == [list(world.COLOURS).index(colour) for _, colour in wanted]
    assert colour_right.mean() >= SHIPPED_COLOUR_BOUND, colour_right.mean()
    assert shape_right.mean() >= SHIPPED_SHAPE_BOUND, shape_right.mean()
