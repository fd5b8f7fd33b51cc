"""MotionGuide: exact properties (by construction) and measured ones (with the synthetic renderer).

By construction (tested exactly): zero output at init; features are 0 outside the subject; pooling
divided by alpha is the mean over the subject; without the positional encoding an integer shift of
the subject changes nothing, so position sensitivity comes from P alone.
Only approximately (measured on rendered cubes): a larger subject with the same motion gives nearly
the same pooled vector (boundary pixels and sampling differ); moving the subject changes it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vidmp3.errors import InputError
from vidmp3.motionguide import VARIANT_CHANNELS, MotionGuide, guide_input, positional_encoding
from vidmp3.scene import SubjectSpec
from vidmp3.synthetic import make_trajectory, render_clip

WIDTHS = (8, 16)


def blob_guide(channels: int, top: int, left: int, size: int = 12, canvas: int = 40, seed: int = 0) -> torch.Tensor:
    """Two frames with a random positive square subject at (top, left) on a zero background."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(2, channels, size, size, generator=generator) + 0.1
    guide = torch.zeros(2, channels, canvas, canvas)
    guide[:, :, top : top + size, left : left + size] = values
    return guide


def share(guide: torch.Tensor) -> torch.Tensor:
    return (guide != 0).any(dim=1).float().mean(dim=(1, 2))


@pytest.mark.parametrize("variant", sorted(VARIANT_CHANNELS))
def test_output_is_exactly_zero_at_initialisation(variant):
    torch.manual_seed(0)
    model = MotionGuide(variant=variant, widths=WIDTHS, hidden=8)
    guide = blob_guide(MotionGuide.in_channels(variant), 5, 7)
    out = model(guide, share(guide))
    assert sorted(out) == list(WIDTHS)
    for width, vectors in out.items():
        assert vectors.shape == (2, width)
        assert torch.equal(vectors, torch.zeros_like(vectors))


def test_gradients_reach_every_parameter_after_one_step():
    """Step 0: zero heads block the trunk's gradient exactly; after one SGD step every parameter gets one."""
    torch.manual_seed(0)
    model = MotionGuide(variant="concat", widths=WIDTHS, hidden=8)
    guide = blob_guide(4, 5, 7)
    alpha = share(guide)
    targets = {w: torch.randn(2, w, generator=torch.Generator().manual_seed(w)) for w in WIDTHS}
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)

    def backward():
        optimiser.zero_grad()
        out = model(guide, alpha)
        sum(((out[w] - targets[w]) ** 2).mean() for w in WIDTHS).backward()

    backward()
    for name, parameter in model.named_parameters():
        if name.startswith("heads."):
            assert parameter.grad.abs().sum() > 0, name
        else:
            assert torch.equal(parameter.grad, torch.zeros_like(parameter)), name
    optimiser.step()
    backward()
    for name, parameter in model.named_parameters():
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    # every input channel of the first convolution and every PE channel of the second is reached
    assert (model.conv_in.weight.grad.abs().sum(dim=(0, 2, 3)) > 0).all()
    assert (model.conv_mid.weight.grad.abs().sum(dim=(0, 2, 3)) > 0).all()


@pytest.mark.parametrize("variant,channels", [("product", 3), ("corr", 3), ("depth", 1), ("concat", 4)])
def test_each_variant_takes_its_channels(variant, channels):
    assert MotionGuide.in_channels(variant) == channels
    model = MotionGuide(variant=variant, widths=WIDTHS, hidden=8)
    assert model.conv_in.in_channels == channels
    rng = np.random.default_rng(0)
    corr = rng.uniform(0.1, 1, (2, 16, 24, 3)).astype(np.float32)
    depth = rng.uniform(0.1, 1, (2, 16, 24)).astype(np.float32)
    corr[:, :4] = 0
    depth[:, :4] = 0
    guide = guide_input(corr, depth, variant)
    assert guide.shape == (2, channels, 16, 24) and guide.dtype == np.float32
    assert not guide[:, :, :4].any()
    model(torch.from_numpy(guide), torch.full((2,), 0.75))
    wrong = torch.ones(2, channels + 1, 16, 24)
    with pytest.raises(ValueError, match="guide must have shape"):
        model(wrong, torch.full((2,), 1.0))


def test_guide_input_values_and_errors():
    rng = np.random.default_rng(1)
    corr = rng.uniform(0, 1, (3, 8, 8, 3)).astype(np.float32)
    depth = rng.uniform(0, 1, (3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(guide_input(corr, depth, "product"), (corr * depth[..., None]).transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(guide_input(corr, depth, "corr"), corr.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(guide_input(corr, depth, "depth")[:, 0], depth)
    concat = guide_input(corr, depth, "concat")
    np.testing.assert_array_equal(concat[:, :3], corr.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(concat[:, 3], depth)
    with pytest.raises(InputError, match="variant 'sum' is unknown"):
        guide_input(corr, depth, "sum")
    with pytest.raises(InputError, match="depth must have shape"):
        guide_input(corr, depth[:, :4], "product")
    with pytest.raises(InputError, match="corr must have shape"):
        guide_input(corr[..., :2], depth, "product")
    corr[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        guide_input(corr, depth, "product")


def test_features_vanish_outside_subject_and_pooling_is_the_subject_mean():
    torch.manual_seed(0)
    model = MotionGuide(widths=WIDTHS, hidden=8)
    guide = blob_guide(3, 5, 7)
    support = (guide != 0).any(dim=1)
    features = whole_frame(model, guide)
    assert torch.equal(features.permute(0, 2, 3, 1)[~support], torch.zeros(int((~support).sum()), 8))
    pooled = model.encode(guide, share(guide))
    subject_mean = torch.stack([features[i][:, support[i]].mean(dim=1) for i in range(2)])
    torch.testing.assert_close(pooled, subject_mean, rtol=1e-5, atol=1e-7)


def whole_frame(model: MotionGuide, guide: torch.Tensor) -> torch.Tensor:
    """The windowed pixel features padded back to (N, hidden, H, W)."""
    features, windows = model.pixel_features(guide)
    height, width = guide.shape[-2:]
    return torch.stack(
        [
            torch.nn.functional.pad(features[i], (cols.start, width - cols.stop, rows.start, height - rows.stop))
            for i, (rows, cols) in enumerate(windows)
        ]
    )


def full_frame_features(model: MotionGuide, guide: torch.Tensor) -> torch.Tensor:
    """The paper's layout computed on the whole frame, as the reference for the windowed computation."""
    support = (guide != 0).any(dim=1, keepdim=True).float()
    encoding = positional_encoding(*guide.shape[-2:], model.config.num_frequencies).expand(len(guide), -1, -1, -1)
    hidden = model.act(model.conv_in(guide)) * support
    return model.act(model.conv_mid(torch.cat([hidden, encoding * support], dim=1))) * support


def test_windowed_features_equal_the_full_frame_computation():
    """Subjects of different sizes, one touching the frame's corner, one frame without a subject."""
    torch.manual_seed(0)
    model = MotionGuide(widths=WIDTHS, hidden=8)
    guide = torch.zeros(4, 3, 24, 32)
    guide[0, :, 2:9, 3:7] = torch.rand(3, 7, 4) + 0.1
    guide[1, :, 15:24, 20:32] = torch.rand(3, 9, 12) + 0.1
    guide[2, :, 10:12, 0:3] = torch.rand(3, 2, 3) + 0.1
    with torch.no_grad():
        torch.testing.assert_close(whole_frame(model, guide), full_frame_features(model, guide), rtol=1e-5, atol=1e-6)
        assert torch.equal(whole_frame(model, guide)[3], torch.zeros(8, 24, 32))


def test_position_sensitivity_comes_only_from_the_positional_encoding():
    torch.manual_seed(0)
    model = MotionGuide(widths=WIDTHS, hidden=8)
    here, there = blob_guide(3, 5, 7), blob_guide(3, 20, 24)
    alpha = share(here)
    moved = (model.encode(there, alpha) - model.encode(here, alpha)).norm() / model.encode(here, alpha).norm()
    assert moved > 0.05
    with torch.no_grad():
        model.conv_mid.weight[:, 8:] = 0  # the columns that read P
    torch.testing.assert_close(model.encode(there, alpha), model.encode(here, alpha), rtol=1e-5, atol=1e-7)


def test_frame_without_subject_gives_zero_vector_and_bad_alpha_is_refused():
    model = MotionGuide(widths=WIDTHS, hidden=8)
    guide = blob_guide(3, 5, 7)
    guide[1] = 0
    alpha = share(guide)
    assert alpha[1] == 0
    pooled = model.encode(guide, alpha)
    assert torch.equal(pooled[1], torch.zeros(8)) and pooled[0].abs().sum() > 0
    with pytest.raises(ValueError, match=r"alpha must have shape \(2,\)"):
        model.encode(guide, alpha[:1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.encode(guide, torch.tensor([0.1, 1.5]))


def test_half_precision_pooling_does_not_overflow():
    """A subject of 70,000 pixels: its feature sum and pixel count exceed float16's range (65,504)."""
    torch.manual_seed(0)
    model = MotionGuide(widths=WIDTHS, hidden=8)
    guide = torch.zeros(1, 3, 272, 272)
    guide[:, :, 2:270, 3:266] = torch.rand(1, 3, 268, 263) + 0.1
    with torch.no_grad():
        reference = model.encode(guide, share(guide))
        half = model.to(torch.float16).encode(guide.to(torch.float16), share(guide))
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), reference, rtol=0.05, atol=0.01)


def test_unknown_variant_or_duplicate_widths_are_refused():
    with pytest.raises(ValueError, match="variant 'sum' is unknown"):
        MotionGuide(variant="sum")
    with pytest.raises(ValueError, match="distinct positive"):
        MotionGuide(widths=(8, 8))


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = MotionGuide(variant="depth", widths=WIDTHS, hidden=8)
    with torch.no_grad():
        for head in model.heads.values():
            head.weight.normal_()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = MotionGuide.from_pretrained(tmp_path)
    guide = blob_guide(1, 5, 7)
    expected, actual = model(guide, share(guide)), loaded(guide, share(guide))
    assert loaded.config.variant == "depth" and tuple(loaded.config.widths) == WIDTHS
    for width in WIDTHS:
        assert expected[width].abs().sum() > 0
        torch.testing.assert_close(actual[width], expected[width])


# Measured with the renderer: a distance between pooled vectors is reported relative to the mean distance
# between the pooled vectors of different frames of the same clip (how much the motion moves it).
SMALL_CUBE = SubjectSpec("cube", (0.55, 0.55, 0.55))
LARGE_CUBE = SubjectSpec("cube", (0.8, 0.8, 0.8))


def rendered_encoding(model: MotionGuide, clip, z_near: float) -> tuple[np.ndarray, np.ndarray]:
    depth = np.where(clip.mask, z_near / clip.depth, 0.0).astype(np.float32)
    guide = torch.from_numpy(guide_input(clip.gradient, depth, "product"))
    alpha = clip.mask.mean(axis=(1, 2)).astype(np.float32)
    with torch.no_grad():
        return model.encode(guide, torch.from_numpy(alpha)).numpy(), alpha


def relative_to_motion(encoding: np.ndarray, other: np.ndarray) -> float:
    pairs = itertools.combinations(range(len(encoding)), 2)
    motion = np.mean([np.linalg.norm(encoding[i] - encoding[j]) for i, j in pairs])
    return float(np.linalg.norm(encoding - other, axis=1).mean() / motion)


@pytest.fixture(scope="module")
def cube_clips():
    poses = make_trajectory(4, 0, "large", subject=LARGE_CUBE)
    shifted = poses.copy()
    shifted[:, 0] += np.where(poses[:, 0] > 0, -0.4, 0.4)  # 0.4 m sideways, towards the centre
    return {
        "small": render_clip(SMALL_CUBE, poses, 32, 32),
        "large": render_clip(LARGE_CUBE, poses, 32, 32),
        "shifted": render_clip(SMALL_CUBE, shifted, 32, 32),
    }


def test_alpha_division_keeps_a_larger_subject_close(cube_clips):
    """Same motion, cube 1.45x larger. Measured (seed 0, 32 px): 0.30 of the motion distance with the
    division by alpha, 1.58 with plain average pooling; bounds 0.5 and 1.0."""
    torch.manual_seed(0)
    model = MotionGuide(widths=WIDTHS, hidden=16)
    clips = cube_clips
    z_near = float(clips["small"].depth[clips["small"].mask].min())
    small, small_alpha = rendered_encoding(model, clips["small"], z_near)
    large, large_alpha = rendered_encoding(model, clips["large"], z_near)
    assert large_alpha.mean() > 1.8 * small_alpha.mean()
    assert relative_to_motion(small, large) < 0.5
    assert relative_to_motion(small * small_alpha[:, None], large * large_alpha[:, None]) > 1.0


def test_positional_encoding_makes_the_position_count(cube_clips):
    """Same rotations, cube moved 0.4 m sideways. Measured (seed 0, 32 px): 0.74 of the motion distance
    with P, 0.08 with P's weights zeroed (what is left is perspective); bounds 0.5 and 0.3."""
    torch.manual_seed(0)
    model = MotionGuide(widths=WIDTHS, hidden=16)
    clips = cube_clips
    z_near = float(clips["small"].depth[clips["small"].mask].min())
    here, _ = rendered_encoding(model, clips["small"], z_near)
    there, _ = rendered_encoding(model, clips["shifted"], z_near)
    assert relative_to_motion(here, there) > 0.5
    with torch.no_grad():
        model.conv_mid.weight[:, 16:] = 0
    here, _ = rendered_encoding(model, clips["small"], z_near)
    there, _ = rendered_encoding(model, clips["shifted"], z_near)
    assert relative_to_motion(here, there) < 0.3
