"""Presets and the one loading path: tiny models saved with save_pretrained load like real weights."""

from __future__ import annotations

import shutil

import huggingface_hub
import numpy as np
import pytest
import torch
from diffusers import MotionAdapter
from safetensors.torch import load_file

from vidmp3.errors import InputError
from vidmp3.model.presets import PRESETS, load_components, model_spec
from vidmp3.model.tiny import build_tiny


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny("tiny", root / "tiny", seed=0)
    build_tiny("tiny-sdxl", root / "tiny-sdxl", seed=0)
    return root


def test_presets_table():
    assert set(PRESETS) == {"tiny", "tiny-sdxl", "toyworld", "sd15", "sdxl"}
    assert model_spec("sd15").family == "sd15" and model_spec("sdxl").family == "sdxl"
    spec = model_spec("sd15", base="/models/anything-v4", motion_adapter="/models/mm")
    assert (spec.base, spec.motion_adapter) == ("/models/anything-v4", "/models/mm")


def test_missing_toyworld_weights_name_the_rebuild_command(tmp_path):
    spec = model_spec("toyworld", base=str(tmp_path / "absent"))
    with pytest.raises(InputError, match="does not exist"):
        load_components(spec, "cpu", torch.float32)
    assert model_spec("toyworld").fetch_command("base") == "make toyworld-weights"


def test_tiny_build_is_seeded(tiny_dir, tmp_path):
    build_tiny("tiny", tmp_path / "again", seed=0)
    build_tiny("tiny", tmp_path / "other", seed=1)
    first = load_file(tiny_dir / "tiny" / "base" / "unet" / "diffusion_pytorch_model.safetensors")
    again = load_file(tmp_path / "again" / "base" / "unet" / "diffusion_pytorch_model.safetensors")
    other = load_file(tmp_path / "other" / "base" / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_tiny_sd15_loads_through_from_pretrained(tiny_dir):
    components = load_components(model_spec("tiny", tiny_dir=tiny_dir), "cpu", torch.float32)
    saved = load_file(tiny_dir / "tiny" / "base" / "unet" / "diffusion_pytorch_model.safetensors")
    unet_weights = components.unet.state_dict()
    assert all(torch.equal(unet_weights[name], tensor) for name, tensor in saved.items())
    assert components.text_encoder_2 is None and components.tokenizer_2 is None
    assert not any(p.requires_grad for p in components.unet.parameters())
    assert not components.unet.training and not components.vae.training

    text = components.encode_prompt(["a cube moving over a field"], 64, 64)
    assert text.hidden_states.shape == (1, 32, 32) and text.added_cond_kwargs is None
    assert text.unet_kwargs(3)["encoder_hidden_states"].shape == (3, 32, 32)

    frames = np.random.default_rng(0).integers(0, 255, (3, 64, 48, 3), dtype=np.uint8)
    latents = components.encode_frames(frames)
    assert latents.shape == (1, 4, 3, 8, 6)
    decoded = components.decode_latents(latents)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8


def test_tiny_sdxl_has_both_encoders_and_added_conditions(tiny_dir):
    components = load_components(model_spec("tiny-sdxl", tiny_dir=tiny_dir), "cpu", torch.float32)
    text = components.encode_prompt(["a cube", "a sphere"], 64, 48)
    assert text.hidden_states.shape == (2, 32, 64)  # two 32-wide encoders concatenated
    assert text.added_cond_kwargs["text_embeds"].shape == (2, 32)
    assert text.added_cond_kwargs["time_ids"].tolist() == [[64, 48, 0, 0, 64, 48]] * 2
    saved = load_file(tiny_dir / "tiny-sdxl" / "base" / "unet" / "diffusion_pytorch_model.safetensors")
    assert torch.equal(components.unet.add_embedding.linear_1.weight, saved["add_embedding.linear_1.weight"])
    sample = torch.randn(2, 4, 3, 8, 6)
    with torch.no_grad():
        out = components.unet(sample, torch.tensor([10]), **text.unet_kwargs(3)).sample
    assert out.shape == sample.shape


def test_unknown_preset_is_an_input_error():
    with pytest.raises(InputError, match="model preset 'sd21' is unknown"):
        model_spec("sd21")
    with pytest.raises(InputError, match="takes no base"):
        model_spec("tiny", base="/somewhere")


def test_missing_tiny_model_names_the_path_and_the_build_command(tmp_path):
    spec = model_spec("tiny", tiny_dir=tmp_path / "models")
    with pytest.raises(InputError) as error:
        load_components(spec, "cpu", torch.float32)
    assert str(tmp_path / "models" / "tiny" / "base") in str(error.value)
    assert f"snakemake --cores 1 {tmp_path / 'models' / 'tiny'}" in str(error.value)


def test_base_missing_a_component_is_refused(tiny_dir, tmp_path):
    shutil.copytree(tiny_dir / "tiny", tmp_path / "tiny")
    shutil.rmtree(tmp_path / "tiny" / "base" / "vae")
    with pytest.raises(InputError, match=r"base/vae has no config.json \(missing or incomplete vae\)"):
        load_components(model_spec("tiny", tiny_dir=tmp_path), "cpu", torch.float32)


def test_sdxl_preset_on_an_sd15_base_is_refused(tiny_dir):
    spec = model_spec("sdxl", base=str(tiny_dir / "tiny" / "base"), motion_adapter=str(tiny_dir / "tiny" / "motion_adapter"))
    with pytest.raises(InputError, match="text_encoder_2"):
        load_components(spec, "cpu", torch.float32)


def test_uncached_hub_component_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(InputError) as error:
        load_components(model_spec("sd15"), "cpu", torch.float32)
    message = str(error.value)
    assert "'stable-diffusion-v1-5/stable-diffusion-v1-5' is not in the local Hugging Face cache" in message
    assert 'hf download stable-diffusion-v1-5/stable-diffusion-v1-5 --include "unet/*"' in message


def test_adapter_that_does_not_fit_the_unet_is_refused(tiny_dir, tmp_path):
    MotionAdapter(
        block_out_channels=(32, 64), motion_layers_per_block=2, motion_num_attention_heads=2, motion_norm_num_groups=32
    ).save_pretrained(tmp_path / "adapter")
    spec = model_spec("sd15", base=str(tiny_dir / "tiny" / "base"), motion_adapter=str(tmp_path / "adapter"))
    with pytest.raises(InputError, match=f"model motion_adapter {tmp_path / 'adapter'}: its motion layers per block"):
        load_components(spec, "cpu", torch.float32)
