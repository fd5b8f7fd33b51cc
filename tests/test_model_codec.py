"""ToyWorld's pixel codec, a base model that uses it, and fine-tuning a sample-predicting model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel

from vidmp3.errors import InputError
from vidmp3.finetune import FinetuneConfig, _target, finetune, load_finetuned
from vidmp3.model.codec import PixelUnshuffleCodec
from vidmp3.model.presets import ModelSpec, load_components
from vidmp3.model.tiny import build_tiny

PROMPT = "a red cube"


def test_codec_is_exact_and_folds_pixels_into_channels():
    codec = PixelUnshuffleCodec()
    pixels = torch.rand(2, 3, 32, 32) * 2 - 1
    posterior = codec.encode(pixels).latent_dist
    assert posterior.mean.shape == (2, 12, 16, 16)
    torch.testing.assert_close(posterior.mode(), posterior.mean)
    assert torch.equal(posterior.mean[:, :4, 0, 0].flatten(), pixels[:, 0, :2, :2].flatten(1).flatten())
    assert torch.equal(codec.decode(posterior.mean).sample, pixels)


def test_codec_refuses_the_wrong_channel_count():
    codec = PixelUnshuffleCodec()
    with pytest.raises(ValueError, match="expected 3 channels"):
        codec.encode(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="expected 12 latent channels"):
        codec.decode(torch.zeros(1, 4, 8, 8))


def test_codec_saves_its_config_only_and_follows_the_callers_device(tmp_path):
    PixelUnshuffleCodec(factor=4).save_pretrained(tmp_path / "vae")
    assert sorted(p.name for p in (tmp_path / "vae").iterdir()) == ["config.json"]
    loaded = PixelUnshuffleCodec.from_config(PixelUnshuffleCodec.load_config(tmp_path / "vae"))
    assert loaded.config.factor == 4 and loaded.latent_channels == 48
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu"


@pytest.fixture(scope="module")
def pixel_spec(tmp_path_factory):
    """The tiny SD-1.5 model made pixel-space like ToyWorld: codec instead of VAE, a 12-channel UNet,
    and a scheduler that predicts the clean sample."""
    root = tmp_path_factory.mktemp("pixel")
    build_tiny("tiny", root / "tiny", seed=0)
    base = root / "tiny" / "base"
    shutil.rmtree(base / "vae")
    PixelUnshuffleCodec().save_pretrained(base / "vae")
    config = dict(UNet2DConditionModel.load_config(base / "unet"), in_channels=12, out_channels=12, sample_size=16)
    torch.manual_seed(0)
    UNet2DConditionModel.from_config(config).save_pretrained(base / "unet")
    scheduler = DDIMScheduler.from_pretrained(base / "scheduler")
    DDIMScheduler.from_config(scheduler.config, prediction_type="sample").save_pretrained(base / "scheduler")
    return ModelSpec("tiny", "sd15", str(base), str(root / "tiny" / "motion_adapter"))


def test_a_pixel_base_loads_and_its_frames_round_trip_exactly(pixel_spec):
    components = load_components(pixel_spec, "cpu", torch.float32)
    assert isinstance(components.vae, PixelUnshuffleCodec)
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    latents = components.encode_frames(frames)
    assert latents.shape == (1, 12, 4, 16, 16)
    np.testing.assert_array_equal(components.decode_latents(latents), frames)


def test_a_vae_folder_naming_an_unknown_class_is_refused(pixel_spec, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(pixel_spec.base, base)
    config = json.loads((base / "vae" / "config.json").read_text())
    (base / "vae" / "config.json").write_text(json.dumps(dict(config, _class_name="VQModel")))
    spec = ModelSpec("tiny", "sd15", str(base), pixel_spec.motion_adapter)
    with pytest.raises(InputError, match="names class 'VQModel'"):
        load_components(spec, "cpu", torch.float32)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_the_loss_regresses_what_the_scheduler_says_the_unet_predicts(prediction_type):
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", prediction_type=prediction_type)
    latents, noise, timestep = torch.randn(1, 4, 2, 4, 4), torch.randn(1, 4, 2, 4, 4), torch.tensor([500])
    target = _target(scheduler, latents, noise, timestep)
    noisy = scheduler.add_noise(latents, noise, timestep)
    alpha = scheduler.alphas_cumprod[500]
    # Each target, with the noisy input, determines the clean latents.
    if prediction_type == "epsilon":
        clean = (noisy - (1 - alpha).sqrt() * target) / alpha.sqrt()
    elif prediction_type == "sample":
        clean = target
    else:
        clean = alpha.sqrt() * noisy - (1 - alpha).sqrt() * target
    torch.testing.assert_close(clean, latents, atol=1e-4, rtol=1e-4)


def test_a_sample_predicting_pixel_model_fine_tunes_and_loads_back(pixel_spec, tmp_path):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    guide = rng.uniform(0, 1, (4, 3, 32, 32)).astype(np.float32)
    alpha = np.full(4, 0.25, np.float32)
    config = FinetuneConfig(steps=3, learning_rate=1e-3, motion_guide_hidden=8)
    finetune(frames, guide, alpha, PROMPT, pixel_spec, config, tmp_path / "weights")
    losses = (tmp_path / "weights" / "loss.csv").read_text().splitlines()
    assert len(losses) == 4 and losses[0] == "step,timestep,loss"
    finetuned = load_finetuned(tmp_path / "weights", "cpu", torch.float32)
    assert isinstance(finetuned.components.vae, PixelUnshuffleCodec)
    assert finetuned.motion_guide is not None


def test_an_unknown_prediction_type_is_refused_before_training(pixel_spec, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(pixel_spec.base, base)
    scheduler_config = json.loads((base / "scheduler" / "scheduler_config.json").read_text())
    (base / "scheduler" / "scheduler_config.json").write_text(json.dumps(dict(scheduler_config, prediction_type="flow")))
    spec = ModelSpec("tiny", "sd15", str(base), pixel_spec.motion_adapter)
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(InputError, match="prediction type 'flow' is unknown"):
        finetune(frames, None, None, PROMPT, spec, FinetuneConfig(method="no-motionguide", steps=1), tmp_path / "out")
    assert not (tmp_path / "out").exists()
