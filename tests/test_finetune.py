"""Fine-tuning on the tiny preset: what is written, determinism, bad input, atomicity, loading back."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vidmp3.finetune
from vidmp3.errors import InputError
from vidmp3.finetune import FinetuneConfig, finetune, finetune_video, load_finetuned
from vidmp3.model.presets import load_components, model_spec
from vidmp3.model.tiny import build_tiny
from vidmp3.model.video_unet import trainable_unet_parameters
from vidmp3.motionguide import guide_input
from vidmp3.store import write_array

NUM_FRAMES = 4
CONFIG = FinetuneConfig(steps=2, learning_rate=1e-3, guide_strength=0.1, motion_guide_hidden=8)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny("tiny", root / "tiny", seed=0)
    return model_spec("tiny", tiny_dir=root)


@pytest.fixture(scope="module")
def video():
    """Four 32x32 frames with a moving square subject; its guide is non-zero exactly on the subject."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (NUM_FRAMES, 32, 32, 3), dtype=np.uint8)
    guide = np.zeros((NUM_FRAMES, 3, 32, 32), np.float16)
    for t in range(NUM_FRAMES):
        guide[t, :, 8:20, 4 + 2 * t : 16 + 2 * t] = rng.uniform(0.1, 1.0, (3, 12, 12))
    alpha = np.full(NUM_FRAMES, 144 / 1024, np.float32)
    return frames, guide, alpha


@pytest.fixture(scope="module")
def trained(spec, video, tmp_path_factory):
    out = tmp_path_factory.mktemp("weights") / "toy"
    finetune(*video, "a cube moving over a field", spec, CONFIG, out)
    return out


def test_writes_only_what_was_trained(trained, spec):
    assert sorted(p.name for p in trained.iterdir()) == [
        "config.json",
        "guide_effect.csv",
        "guide_effect.json",
        "guide_effect.png",
        "latents.safetensors",
        "loss.csv",
        "loss.png",
        "motion_guide.safetensors",
        "trainable.safetensors",
    ]
    unet = load_components(spec, "cpu", torch.float32).unet
    expected = trainable_unet_parameters(unet, "vidmp3")
    saved = load_file(trained / "trainable.safetensors")
    assert set(saved) == set(expected) and len(saved) == 22
    assert all(saved[name].shape == expected[name].shape for name in saved)
    assert any(not torch.equal(saved[name], expected[name]) for name in saved)  # they did change
    guide_weights = load_file(trained / "motion_guide.safetensors")
    heads = {f"heads.{width}.{kind}" for width in (32, 64) for kind in ("weight", "bias")}
    assert set(guide_weights) == {"conv_in.weight", "conv_mid.weight"} | heads
    assert any(guide_weights[name].abs().sum() > 0 for name in ("heads.32.weight", "heads.64.weight"))

    config = json.loads((trained / "config.json").read_text())
    assert config["model"] == {
        "preset": "tiny",
        "family": "sd15",
        "base": spec.base,
        "motion_adapter": spec.motion_adapter,
    }
    assert config["finetune"]["method"] == "vidmp3" and config["finetune"]["steps"] == 2
    assert config["motion_guide"]["variant"] == "product" and config["motion_guide"]["widths"] == [32, 64]
    with open(trained / "loss.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [0, 1]
    assert all(np.isfinite(float(row["loss"])) for row in rows)


def test_same_seed_gives_the_same_weights_other_seed_does_not(trained, spec, video, tmp_path):
    finetune(*video, "a cube moving over a field", spec, CONFIG, tmp_path / "again")
    finetune(*video, "a cube moving over a field", spec, replace(CONFIG, seed=1), tmp_path / "other")
    for name in ("trainable.safetensors", "motion_guide.safetensors"):
        first, again, other = (load_file(folder / name) for folder in (trained, tmp_path / "again", tmp_path / "other"))
        assert all(torch.equal(first[key], again[key]) for key in first)
        assert not all(torch.equal(first[key], other[key]) for key in first)


def test_gradient_checkpointing_trains_the_same_weights(trained, spec, video, tmp_path):
    config = replace(CONFIG, gradient_checkpointing=True)
    finetune(*video, "a cube moving over a field", spec, config, tmp_path / "ckpt")
    first = load_file(trained / "trainable.safetensors")
    checkpointed = load_file(tmp_path / "ckpt" / "trainable.safetensors")
    for key in first:
        torch.testing.assert_close(checkpointed[key], first[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method, tensors_written", [("no-motionguide", 22), ("tune-a-video", 8 + 7 * 26)])
def test_methods_without_motionguide(spec, video, tmp_path, method, tensors_written):
    frames, _, _ = video
    finetune(frames, None, None, "a cube", spec, replace(CONFIG, method=method, steps=1), tmp_path / method)
    assert not (tmp_path / method / "motion_guide.safetensors").exists()
    assert not (tmp_path / method / "guide_effect.csv").exists()
    assert len(load_file(tmp_path / method / "trainable.safetensors")) == tensors_written


def test_ablation_variant_takes_its_own_input(spec, video, tmp_path):
    frames, guide, alpha = video
    depth = guide[:, :1]
    finetune(frames, depth, alpha, "a cube", spec, replace(CONFIG, method="depth-only", steps=1), tmp_path / "depth")
    assert json.loads((tmp_path / "depth" / "config.json").read_text())["motion_guide"]["variant"] == "depth"
    with pytest.raises(InputError, match=r"guide must be \(N, 1, H, W\) for method 'depth-only'"):
        finetune(frames, guide, alpha, "a cube", spec, replace(CONFIG, method="depth-only"), tmp_path / "bad")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f, g, a: (f, g[:3], a), "guide has 3 frames, the clip has 4"),
        (lambda f, g, a: (f, g, a[:3]), r"alpha must have shape \(4,\)"),
        (lambda f, g, a: (f.astype(np.float32), g, a), "frames must be uint8"),
        (lambda f, g, a: (f[:, :30], g, a), "multiples of 8"),
        (lambda f, g, a: (f, None, a), "needs the MotionGuide input"),
    ],
)
def test_bad_inputs_fail_before_anything_is_written(spec, video, tmp_path, change, message):
    with pytest.raises(InputError, match=message):
        finetune(*change(*video), "a cube", spec, CONFIG, tmp_path / "weights")
    assert list(tmp_path.iterdir()) == []


def test_bad_config_is_refused(spec, video, tmp_path):
    with pytest.raises(InputError, match="method 'lora' is unknown"):
        finetune(*video, "a cube", spec, replace(CONFIG, method="lora"), tmp_path / "w")
    with pytest.raises(InputError, match="precision 'fp8' is unknown"):
        finetune(*video, "a cube", spec, replace(CONFIG, precision="fp8"), tmp_path / "w")
    with pytest.raises(InputError, match="takes no guide"):
        finetune(*video, "a cube", spec, replace(CONFIG, method="tune-a-video"), tmp_path / "w")
    frames, guide, alpha = video
    many = np.repeat(frames, 9, axis=0)
    with pytest.raises(InputError, match="window of 33 frames: the motion adapter handles at most 32"):
        long = replace(CONFIG, window_frames=33)
        finetune(many, np.repeat(guide, 9, axis=0), np.repeat(alpha, 9), "a cube", spec, long, tmp_path / "w")
    assert list(tmp_path.iterdir()) == []


def test_failure_while_writing_leaves_nothing(spec, video, tmp_path, monkeypatch):
    def broken_plot(*args):
        raise OSError("disk full")

    monkeypatch.setattr(vidmp3.finetune, "_write_loss_curve", broken_plot)
    with pytest.raises(OSError, match="disk full"):
        finetune(*video, "a cube", spec, replace(CONFIG, steps=1), tmp_path / "weights")
    assert list(tmp_path.iterdir()) == []


def test_load_finetuned_applies_the_trained_weights(trained):
    model = load_finetuned(trained, "cpu", torch.float32)
    assert model.method == "vidmp3" and model.guide_strength == pytest.approx(0.1)
    saved = load_file(trained / "trainable.safetensors")
    parameters = dict(model.components.unet.named_parameters())
    assert all(torch.equal(parameters[name], tensor) for name, tensor in saved.items())
    guide_weights = load_file(trained / "motion_guide.safetensors")
    assert all(torch.equal(model.motion_guide.state_dict()[name], tensor) for name, tensor in guide_weights.items())
    assert not model.motion_guide.training


def test_load_finetuned_refuses_weights_of_another_method(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "w")
    config = json.loads((tmp_path / "w" / "config.json").read_text())
    config["finetune"]["method"] = "tune-a-video"
    (tmp_path / "w" / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="does not fit method 'tune-a-video'"):
        load_finetuned(tmp_path / "w", "cpu", torch.float32)


def test_tiny_sdxl_fine_tunes_its_temporal_projections(video, tmp_path):
    build_tiny("tiny-sdxl", tmp_path / "models" / "tiny-sdxl", seed=0)
    spec = model_spec("tiny-sdxl", tiny_dir=tmp_path / "models")
    finetune(*video, "a cube", spec, replace(CONFIG, steps=1), tmp_path / "weights")
    saved = load_file(tmp_path / "weights" / "trainable.safetensors")
    assert len(saved) == 16 + 60  # spatial W_Q + temporal W_Q, W_K, W_V, W_out (weight and bias)
    assert sum(".to_out.0." in name for name in saved) == 2 * 12
    model = load_finetuned(tmp_path / "weights", "cpu", torch.float32)
    assert model.components.text_encoder_2 is not None


def test_finetune_video_reads_the_priors_group(spec, video, tmp_path):
    frames, guide, alpha = video
    priors = tmp_path / "toy.zarr"
    corr = guide[:, :3].astype(np.float32).transpose(0, 2, 3, 1)
    depth = (guide[:, 0] != 0).astype(np.float32) * 0.5
    write_array(priors / "frames", frames)
    write_array(priors / "corr", corr)
    write_array(priors / "depth", depth)
    write_array(priors / "alpha", alpha)
    config = replace(CONFIG, method="concat", steps=1)
    finetune_video(priors, "a cube", spec, config, tmp_path / "from-zarr")
    finetune(frames, guide_input(corr, depth, "concat"), alpha, "a cube", spec, config, tmp_path / "direct")
    from_zarr = load_file(tmp_path / "from-zarr" / "motion_guide.safetensors")
    direct = load_file(tmp_path / "direct" / "motion_guide.safetensors")
    assert all(torch.equal(from_zarr[name], direct[name]) for name in direct)

    write_array(priors / "depth", depth[:3])
    with pytest.raises(InputError, match="priors disagree on the frame count: frames 4, corr 4, depth 3"):
        finetune_video(priors, "a cube", spec, config, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_bf16_stores_frozen_weights_in_bf16_and_trains_float32_weights(spec, video, tmp_path, monkeypatch):
    """The CUDA default (precision auto = bf16), run on the CPU: frozen weights in bf16, the trained
    ones float32 (Adam's small steps survive), encoders moved off the device after encoding."""
    loaded = []

    def load_and_keep(*args, **kwargs):
        loaded.append(load_components(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(vidmp3.finetune, "load_components", load_and_keep)
    finetune(*video, "a cube", spec, replace(CONFIG, precision="bf16"), tmp_path / "w")
    unet = loaded[0].unet
    trained = trainable_unet_parameters(unet, "vidmp3")
    assert {p.dtype for p in trained.values()} == {torch.float32}
    frozen = [p for name, p in unet.named_parameters() if name not in trained]
    assert frozen and {p.dtype for p in frozen} == {torch.bfloat16}
    assert json.loads((tmp_path / "w" / "config.json").read_text())["finetune"]["precision"] == "bf16"
    assert np.isfinite([float(row["loss"]) for row in csv.DictReader(open(tmp_path / "w" / "loss.csv"))]).all()


def test_auto_precision_is_fp32_on_the_cpu(trained):
    assert CONFIG.precision == "auto"
    assert json.loads((trained / "config.json").read_text())["finetune"]["precision"] == "fp32"


def test_a_full_disk_while_saving_names_the_weights_folder(spec, video, tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from vidmp3.errors import OutputError

    def full_disk(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(vidmp3.finetune, "save_file", full_disk)
    out = tmp_path / "weights"
    with pytest.raises(OutputError, match="No space left on device") as raised:
        finetune(*video, "a cube", spec, replace(CONFIG, steps=1), out)
    assert str(out) in str(raised.value)
    assert list(tmp_path.iterdir()) == []
