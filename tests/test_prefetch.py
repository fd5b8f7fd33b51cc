"""vidmp3.prefetch: which repositories a configuration needs, and the offline check a cluster run relies on.

Nothing is downloaded: the hub client is put offline and pointed at a Hugging Face cache laid out
by hand in a temporary folder (a tiny randomly initialised DINOv2 saved with save_pretrained as
a snapshot), as a compute job with HF_HUB_OFFLINE=1 and HF_HUB_CACHE sees it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vidmp3.errors import InputError
from vidmp3.prefetch import prefetch_weights, weights_components
from vidmp3.priors.learned import load_dinov2
from vidmp3.workflow.prior_settings import prior_models

REVISION = "0123456789abcdef0123456789abcdef01234567"


def test_a_real_preset_needs_its_base_and_motion_adapter():
    components = weights_components("sd15")
    assert [(c.name, c.repo_id) for c in components] == [
        ("base", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
        ("motion_adapter", "guoyww/animatediff-motion-adapter-v1-5"),
    ]
    base = components[0].allow_patterns
    assert "unet/*.safetensors" in base and "tokenizer/*.txt" in base and not any("_2/" in p for p in base)

    sdxl = weights_components("sdxl")
    assert [c.repo_id for c in sdxl] == [
        "stabilityai/stable-diffusion-xl-base-1.0",
        "guoyww/animatediff-motion-adapter-sdxl-beta",
    ]
    assert "text_encoder_2/*.safetensors" in sdxl[0].allow_patterns and "tokenizer_2/*.json" in sdxl[0].allow_patterns


def test_priors_and_metrics_models_are_added_once_and_folders_skipped(tmp_path):
    components = weights_components(
        "sd15",
        transformers_models={
            "depth": "depth-anything/Depth-Anything-V2-Small-hf",
            "correspondence": "facebook/dinov2-base",
            "segmenter": str(tmp_path),  # a local folder: used as it is
            "clip": "openai/clip-vit-large-patch14",
        },
        diffusers_models={"sd_features": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
    )
    by_id = {c.repo_id: c for c in components}
    assert list(by_id) == [
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "guoyww/animatediff-motion-adapter-v1-5",
        "depth-anything/Depth-Anything-V2-Small-hf",
        "facebook/dinov2-base",
        "openai/clip-vit-large-patch14",
    ]
    shared = by_id["stable-diffusion-v1-5/stable-diffusion-v1-5"]
    assert shared.name == "base, sd_features"
    assert "unet/diffusion_pytorch_model.safetensors" in shared.required  # SD-DINO's files are required
    assert by_id["facebook/dinov2-base"].required == ("config.json", "*.safetensors")


def test_tiny_presets_need_nothing_and_bad_names_are_refused():
    assert weights_components("tiny") == []
    assert weights_components("tiny-sdxl", transformers_models={}) == []
    with pytest.raises(InputError, match="model depth 'not/a/hub/id'"):
        weights_components("tiny", transformers_models={"depth": "not/a/hub/id"})
    with pytest.raises(InputError, match="preset 'sd3' is unknown"):
        weights_components("sd3")


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face hub cache, with the hub client offline, as a compute job runs it
    (HF_HUB_OFFLINE=1, HF_HUB_CACHE=this folder; the client reads both when it is imported)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_offline_prefetch_refuses_listing_every_missing_component(tmp_path, offline_cache):
    manifest = tmp_path / "prefetched.json"
    with pytest.raises(InputError) as refused:
        prefetch_weights(manifest, "sd15", transformers_models={"depth": "depth-anything/Depth-Anything-V2-Small-hf"})
    message = str(refused.value)
    assert f"missing from the Hugging Face cache {offline_cache}" in message and "HF_HUB_OFFLINE=1 is set" in message
    for repo_id in (
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "guoyww/animatediff-motion-adapter-v1-5",
        "depth-anything/Depth-Anything-V2-Small-hf",
    ):
        assert repo_id in message
    assert not manifest.exists()


def cache_snapshot(cache: Path, repo_id: str) -> Path:
    """The folder of `repo_id`'s snapshot REVISION in a hub cache, with refs/main pointing at it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


def test_offline_prefetch_checks_the_cache_and_jobs_load_from_it(tmp_path, offline_cache):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    snapshot = cache_snapshot(offline_cache, "tiny-org/tiny-dinov2")
    config = Dinov2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=8, image_size=16
    )
    Dinov2Model(config).save_pretrained(snapshot)
    BitImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(snapshot)
    config.save_pretrained(cache_snapshot(offline_cache, "tiny-org/no-weights"))

    manifest = tmp_path / "prefetched.json"
    with pytest.raises(InputError) as refused:
        prefetch_weights(
            manifest, "tiny", transformers_models={"correspondence": "tiny-org/tiny-dinov2", "depth": "tiny-org/no-weights"}
        )
    assert "tiny-org/no-weights (depth)" in str(refused.value) and "has no *.safetensors" in str(refused.value)
    assert "tiny-org/tiny-dinov2" not in str(refused.value) and not manifest.exists()

    prefetch_weights(manifest, "tiny", transformers_models={"correspondence": "tiny-org/tiny-dinov2"})
    assert json.loads(manifest.read_text()) == {
        "hf_hub_cache": str(offline_cache),
        "components": [
            {"name": "correspondence", "repo_id": "tiny-org/tiny-dinov2", "revision": REVISION, "path": str(snapshot)}
        ],
    }
    # what a compute job then does: load by hub id, offline, from the same cache
    assert load_dinov2("tiny-org/tiny-dinov2")[1].config.hidden_size == 16


def test_prior_models_are_those_of_the_learned_backends_in_use():
    videos = pd.DataFrame(
        {"corr_backend": ["", "sd-dino", "flow"], "mask_backend": ["", "", "clipseg"], "depth_backend": ["", "", ""]},
        index=pd.Index(["a", "b", "c"], name="video"),
    )
    config = {
        "priors": {
            "corr": "dinov2",
            "mask": "given",
            "depth": "mask-area",
            "dinov2": {"weights": "facebook/dinov2-base"},
            "sd-dino": {"dino_weights": "facebook/dinov2-base", "sd_weights": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
            "clipseg": {"weights": "CIDAS/clipseg-rd64-refined"},
            "depth-anything-v2": {"weights": "depth-anything/Depth-Anything-V2-Small-hf"},  # configured, unused
        }
    }
    transformers_models, diffusers_models = prior_models(config, videos)
    assert transformers_models == {
        "dinov2 weights": "facebook/dinov2-base",
        "sd-dino dino_weights": "facebook/dinov2-base",
        "clipseg weights": "CIDAS/clipseg-rd64-refined",
    }
    assert diffusers_models == {"sd-dino sd_weights": "stable-diffusion-v1-5/stable-diffusion-v1-5"}
    components = weights_components("tiny", transformers_models=transformers_models, diffusers_models=diffusers_models)
    assert [c.name for c in components] == ["dinov2 weights, sd-dino dino_weights", "clipseg weights", "sd-dino sd_weights"]

    del config["priors"]["clipseg"]
    with pytest.raises(InputError, match="config priors: clipseg: weights is not set"):
        prior_models(config, videos)
