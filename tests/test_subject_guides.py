"""One MotionGuide per subject, injected per token: V = W_V(z + lambda * sum_k m_k * phi_k)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from vidmp3.editing import SourcePriors, load_video_model
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.model.presets import model_spec
from vidmp3.model.processors import install_processors
from vidmp3.model.tiny import build_tiny, tiny_motion_adapter, tiny_unet2d
from vidmp3.model.video_unet import build_video_unet, motion_slots
from vidmp3.motionguide import MotionGuide, SubjectMotionGuides, motion_guide_config
from vidmp3.subjects import SubjectMap
from test_model_processors import unet_inputs


def two_subjects(num_frames: int = 4, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """A guide (N, 3, H, W) and labels (N, H, W): subject 1 moving right, subject 2 moving down."""
    generator = torch.Generator().manual_seed(0)
    guide = torch.zeros(num_frames, 3, size, size)
    labels = torch.zeros(num_frames, size, size, dtype=torch.uint8)
    for t in range(num_frames):
        labels[t, 2:6, 1 + t : 5 + t] = 1
        labels[t, 8 + t // 2 : 13 + t // 2, 9:14] = 2
    guide[:] = torch.rand(num_frames, 3, size, size, generator=generator) * 0.9 + 0.1
    return guide * (labels > 0).unsqueeze(1), labels


def shares(labels: torch.Tensor, ids: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([(labels == subject).float().mean(dim=(1, 2)) for subject in ids], dim=1)


def randomise_heads(module: torch.nn.Module) -> None:
    for name, parameter in module.named_parameters():
        if "heads" in name:
            torch.nn.init.normal_(parameter)


def test_one_subject_is_exactly_the_spatial_motionguide():
    unet = build_video_unet(tiny_unet2d("sd15"), tiny_motion_adapter("sd15")).eval()
    slots = sorted(set(motion_slots(unet).values()))
    config = motion_guide_config("product", "spatial", slots, 2, 8, coarse=False)
    guide, labels = two_subjects()
    labels = (labels > 0).to(torch.uint8)  # one subject: the union, id 1
    torch.manual_seed(0)
    single = MotionGuide(**config)
    randomise_heads(single)
    per_subject = SubjectMotionGuides(config, [1], slots, 2)
    per_subject.guides[0].load_state_dict(single.state_dict())
    alpha = shares(labels, (1,))
    num_frames = guide.shape[0]
    inputs = unet_inputs("sd15", 1, num_frames)
    with torch.no_grad():
        today = single(guide, alpha[:, 0])
        ours = per_subject(guide, alpha, labels)
        assert today.keys() == ours.keys()
        for key in today:
            assert torch.equal(today[key], ours[key])
        attention = install_processors(unet, value_injection=True)
        try:
            with attention.frames(num_frames, today, 0.5):
                expected = unet(**inputs).sample
            with attention.frames(num_frames, ours, 0.5):
                got = unet(**inputs).sample
        finally:
            attention.restore()
    assert torch.equal(expected, got)


@pytest.mark.parametrize("layout", ["spatial", "pooled"])
def test_each_location_gets_its_own_subjects_vector_and_the_background_none(layout):
    slots = [(5, 1), (7, 2)]
    config = motion_guide_config("product", layout, slots, 2, 6, coarse=False)
    guide, labels = two_subjects()
    torch.manual_seed(0)
    guides = SubjectMotionGuides(config, [1, 2], slots, 2)
    randomise_heads(guides)
    alpha = shares(labels, (1, 2))
    with torch.no_grad():
        vectors = guides(guide, alpha, labels)
        alone = [guides.guides[k](guide * (labels == k + 1).unsqueeze(1), alpha[:, k]) for k in range(2)]
    for (width, downsample), cells in vectors.items():
        stride = 2 * downsample
        coverage = [F.avg_pool2d((labels == k + 1).float().unsqueeze(1), stride)[:, 0] for k in range(2)]
        if layout == "spatial":
            expected = alone[0][(width, downsample)] + alone[1][(width, downsample)]
        else:
            expected = sum(coverage[k][..., None] * alone[k][width][:, None, None, :] for k in range(2))
        torch.testing.assert_close(cells, expected)
        background = (coverage[0] == 0) & (coverage[1] == 0)
        assert background.any() and not cells[background].any()
        only_first = (coverage[0] > 0) & (coverage[1] == 0)
        first = (
            alone[0][(width, downsample)] if layout == "spatial" else coverage[0][..., None] * alone[0][width][:, None, None, :]
        )
        torch.testing.assert_close(cells[only_first], first[only_first])
        assert cells[only_first].abs().sum() > 0


@pytest.mark.parametrize("method", ["vidmp3", "vidmp3-spatial"])
def test_fine_tuning_trains_one_motionguide_per_subject_and_editing_loads_them(tmp_path, method):
    build_tiny("tiny", tmp_path / "models" / "tiny", seed=0)
    spec = model_spec("tiny", tiny_dir=tmp_path / "models")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    guide, labels = two_subjects(4, 32)
    subjects = SubjectMap((1, 2), labels.numpy())
    alpha = shares(labels, (1, 2)).numpy()
    config = FinetuneConfig(method=method, steps=2, learning_rate=1e-2, guide_strength=0.1, motion_guide_hidden=8)
    finetune(frames, guide.numpy(), alpha, "a cube", spec, config, tmp_path / "weights", subjects=subjects)
    tensors = load_file(tmp_path / "weights" / "motion_guide.safetensors")
    assert {name.split(".")[1] for name in tensors} == {"0", "1"}
    record = json.loads((tmp_path / "weights" / "config.json").read_text())
    assert record["subjects"]["ids"] == [1, 2]
    corr = np.zeros((4, 32, 32, 3), np.float32)
    corr[labels.numpy() > 0] = 0.5
    depth = (labels.numpy() > 0).astype(np.float32)
    priors = SourcePriors(corr, depth, alpha, subjects)
    model = load_video_model(tmp_path / "weights", 4, priors, "cpu", torch.float32)
    assert all(isinstance(key, tuple) for key in model.vectors)
    resized = model.with_priors(priors.scaled({2: 1.5}))
    assert resized.finetuned is model.finetuned and resized.vectors.keys() == model.vectors.keys()
    assert any(not torch.equal(resized.vectors[key], model.vectors[key]) for key in model.vectors)
    with pytest.raises(Exception, match="trained for subjects"):
        load_video_model(tmp_path / "weights", 4, SourcePriors(corr, depth, alpha[:, 0]), "cpu", torch.float32)


def test_one_subject_fine_tunes_to_the_same_weights_as_today(tmp_path):
    build_tiny("tiny", tmp_path / "models" / "tiny", seed=0)
    spec = model_spec("tiny", tiny_dir=tmp_path / "models")
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    guide, labels = two_subjects(4, 32)
    labels = (labels > 0).to(torch.uint8)
    alpha = shares(labels, (1,)).numpy()
    config = FinetuneConfig(method="vidmp3-spatial", steps=3, learning_rate=1e-2, guide_strength=0.1, motion_guide_hidden=8)
    finetune(frames, guide.numpy(), alpha[:, 0], "a cube", spec, config, tmp_path / "today")
    finetune(frames, guide.numpy(), alpha, "a cube", spec, config, tmp_path / "ours", subjects=SubjectMap((1,), labels.numpy()))
    for name in ("trainable", "latents"):
        today, ours = (load_file(tmp_path / run / f"{name}.safetensors") for run in ("today", "ours"))
        assert today.keys() == ours.keys() and all(torch.equal(today[key], ours[key]) for key in today)
    today, ours = (load_file(tmp_path / run / "motion_guide.safetensors") for run in ("today", "ours"))
    assert {f"guides.0.{key}" for key in today} == set(ours)
    assert all(torch.equal(today[key], ours[f"guides.0.{key}"]) for key in today)
