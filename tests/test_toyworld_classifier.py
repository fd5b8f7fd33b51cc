"""The ToyWorld classifier: its training path, its files and its answers' form (quality: shipped weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from vidmp3.errors import InputError
from vidmp3.toyworld.classifier import ToyClassifier, classify, degrade, load_classifier, train_classifier
from vidmp3.toyworld.world import COLOURS, HELD_OUT_SEED, SHAPES, render_images


@pytest.fixture(autouse=True)
def one_thread():
    """Two cores are shared by everyone; one thread also keeps the weights bit-for-bit repeatable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classifier") / "out"
    torch.set_num_threads(1)
    record = train_classifier(seed=3, steps=2, out_dir=folder, eval_images=16, eval_clips=1)
    return folder, record


def test_training_writes_weights_config_and_accuracy(trained):
    folder, record = trained
    assert sorted(path.name for path in folder.parent.iterdir()) == ["out"]  # no temporary left
    assert sorted(path.name for path in folder.iterdir()) == ["accuracy.json", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["shapes"] == list(SHAPES) and config["colours"] == list(COLOURS) and config["image_size"] == 32
    accuracy = json.loads((folder / "accuracy.json").read_text())
    assert accuracy == record
    assert accuracy["steps"] == 2 and accuracy["seed"] == 3
    assert accuracy["stills"]["frames"] == 16 and accuracy["clip_frames"]["frames"] == 8
    for part in ("stills", "clip_frames", "degraded_stills"):
        assert 0.0 <= accuracy[part]["both"] <= min(accuracy[part]["shape"], accuracy[part]["colour"]) <= 1.0


def test_same_seed_same_weights_other_seed_differs(trained, tmp_path):
    folder, _ = trained
    train_classifier(seed=3, steps=2, out_dir=tmp_path / "again", eval_images=16, eval_clips=1)
    train_classifier(seed=4, steps=2, out_dir=tmp_path / "other", eval_images=16, eval_clips=1)
    folders = (folder, tmp_path / "again", tmp_path / "other")
    first, again, other = (load_file(path / "model.safetensors") for path in folders)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_classify_answers_per_frame_with_probabilities(trained):
    folder, _ = trained
    model = load_classifier(folder)
    assert not model.training
    frames = render_images(5, seed=HELD_OUT_SEED).images
    found = classify(model, frames, batch_size=2)
    shapes, colours, probabilities = found  # unpacks as (shape idx, colour idx, probabilities)
    assert shapes.shape == colours.shape == (5,) and shapes.dtype == np.int64
    for name, chosen, count in (("shape", shapes, len(SHAPES)), ("colour", colours, len(COLOURS))):
        assert probabilities[name].shape == (5, count)
        np.testing.assert_allclose(probabilities[name].sum(1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(probabilities[name].argmax(1), chosen)
    one_by_one = np.concatenate([classify(model, frames[i : i + 1]).probabilities["shape"] for i in range(5)])
    np.testing.assert_allclose(one_by_one, probabilities["shape"], atol=1e-5)


def test_fp16_weights_load_as_float32(trained, tmp_path):
    folder, _ = trained
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text((folder / "config.json").read_text())
    weights = load_file(folder / "model.safetensors")
    save_file({name: value.half() for name, value in weights.items()}, half / "model.safetensors")
    model = load_classifier(half)
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    frames = render_images(4, seed=HELD_OUT_SEED).images
    full = classify(load_classifier(folder), frames).probabilities["colour"]
    np.testing.assert_allclose(classify(model, frames).probabilities["colour"], full, atol=2e-2)


def test_degrade_is_mild_random_and_repeatable():
    images = torch.from_numpy(render_images(32, seed=1).images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    first = degrade(images, torch.Generator().manual_seed(0))
    again = degrade(images, torch.Generator().manual_seed(0))
    assert torch.equal(first, again)
    assert first.min() >= -1.0 and first.max() <= 1.0
    changed = (first - images).abs().flatten(1).amax(1) > 1e-6
    assert 0 < changed.sum() < len(images)  # some images stay clean
    assert (first - images).abs().mean() < 0.05


def test_a_short_training_clearly_beats_chance(tmp_path):
    """30 steps (seconds): colour is nearly learnt, shape well on its way (full quality: the shipped weights)."""
    record = train_classifier(seed=0, steps=30, out_dir=tmp_path / "short", eval_images=256, eval_clips=2)
    assert record["stills"]["colour"] > 0.8 and record["stills"]["shape"] > 0.4  # chance is 0.25


def test_bad_input_is_refused(trained, tmp_path):
    folder, _ = trained
    model = load_classifier(folder)
    with pytest.raises(InputError, match=r"uint8 \(N, 32, 32, 3\)"):
        classify(model, np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(InputError, match=r"uint8 \(N, 32, 32, 3\)"):
        classify(model, np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="steps"):
        train_classifier(seed=0, steps=0, out_dir=tmp_path / "x")
    with pytest.raises(InputError, match="seed"):
        train_classifier(seed=HELD_OUT_SEED, steps=1, out_dir=tmp_path / "x")
    with pytest.raises(InputError, match="config.json"):
        load_classifier(tmp_path / "missing")
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "shapes": ["cube", "torus", "cone", "cylinder"]}))
    with pytest.raises(InputError, match="torus"):
        load_classifier(other)
    assert not (tmp_path / "x").exists()


def test_model_is_small():
    assert sum(parameter.numel() for parameter in ToyClassifier().parameters()) < 100_000
