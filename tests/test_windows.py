"""Temporal windows (vidmp3.windows) and clips longer than the window through fine-tuning and editing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vidmp3.editing
import vidmp3.finetune
from vidmp3.editing import EditSettings, SourcePriors, edit_video
from vidmp3.errors import InputError
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.guide_effect import TIMESTEP_FRACTIONS
from vidmp3.model.presets import load_components, model_spec
from vidmp3.model.tiny import build_tiny
from vidmp3.motionguide import guide_input
from vidmp3.windows import Window, blend_windows, phase_seam_score, seam_score

PROMPT = "a cube moving over a field"


@pytest.mark.parametrize("frames, stride, length", [(4, 2, 12), (4, 4, 10), (4, 3, 4), (8, 4, 5), (16, 8, 128), (8, 4, 64)])
def test_windows_cover_every_frame_and_end_flush(frames, stride, length):
    window = Window(frames, stride)
    for offset in range(stride):
        starts = window.starts(length, offset)
        assert starts[0] == 0 and starts == sorted(set(starts))
        assert starts[-1] == max(0, length - frames)
        covered = set().union(*(range(start, min(start + frames, length)) for start in starts))
        assert covered == set(range(length))
        assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_shifted_windows_move_one_frame_per_step():
    shifted = Window(4, 2, shift=True)
    assert [shifted.offset(step) for step in range(5)] == [0, 1, 0, 1, 0]
    assert [Window(4, 2, shift=False).offset(step) for step in range(3)] == [0, 0, 0]
    assert shifted.starts(10, 1) == [0, 1, 3, 5, 6]  # the grid from frame 1, its first window pushed to frame 0
    assert shifted.starts(10, 0) == Window(4, 2, shift=False).starts(10) == [0, 2, 4, 6]
    with pytest.raises(ValueError, match=r"window offset must be in \[0, 2\), got 2"):
        shifted.starts(10, 2)


def test_weights_fall_off_towards_the_edges():
    weights = Window(8, 4).weights(8)
    assert torch.equal(weights, weights.flip(0)) and (weights > 0).all()
    assert weights.tolist() == [1, 4, 9, 16, 16, 9, 4, 1]


def test_blending_keeps_what_every_window_agrees_on_and_averages_the_rest():
    """A prediction that depends only on the frame (not on the window) comes back exactly; one that
    depends on the window is averaged with weights that favour the window a frame is central in."""
    window = Window(4, 2)
    per_frame = torch.arange(10, dtype=torch.float32).view(1, 1, 10, 1, 1) * 1.5
    agreed = blend_windows(window, 10, lambda start, stop: per_frame[:, :, start:stop])
    torch.testing.assert_close(agreed, per_frame)
    by_window = blend_windows(window, 10, lambda start, stop: torch.full((1, 1, stop - start, 1, 1), float(start)))
    assert by_window[0, 0, 0].item() == 0.0 and by_window[0, 0, -1].item() == 6.0  # edge frames: one window each
    assert by_window[0, 0, 3].item() == pytest.approx((0 * 1 + 2 * 4) / (1 + 4))  # windows 0 (its edge) and 2


def test_borders_are_where_a_window_starts_or_ends():
    assert Window(8, 4).borders(64) == list(range(4, 64, 4))
    assert Window(4, 3).borders(11) == [3, 4, 6, 7, 10]  # starts 0 3 6 7 (the last flush with the end), stops 4 7 10 11
    assert Window(8, 4).borders(8) == []


def test_seam_score_is_one_for_even_change_and_grows_with_jumps_at_borders():
    window = Window(4, 2)
    ramp = np.arange(12, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 3), np.float32) * 10
    assert seam_score(ramp, window) == pytest.approx(1.0)
    jumpy = ramp.copy()
    for t in window.borders(12):  # every frame from a border on moves 10 more: the border step is 20, inside 10
        jumpy[t:] += 10
    assert seam_score(jumpy, window) == pytest.approx(2.0)
    assert np.isnan(seam_score(np.zeros((12, 2, 2, 3)), window))  # nothing changes inside: no ratio
    assert np.isnan(seam_score(ramp[:4], window))  # one window: no border


def test_phase_seam_score_finds_a_hand_over_between_the_borders():
    """Windows of 4 every 2: a jump at every odd frame (between the borders, which are at even frames) is
    invisible to the border seam score, not to the phase seam score."""
    window = Window(4, 2)
    ramp = np.arange(12, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 3), np.float32) * 10
    assert phase_seam_score(ramp, window) == pytest.approx(1.0)
    between = ramp.copy()
    for t in range(1, 12, 2):
        between[t:] += 10
    assert seam_score(between, window) == pytest.approx(0.5)  # the borders' pairs now change least
    assert phase_seam_score(between, window) == pytest.approx(2.0)
    at_borders = ramp.copy()
    for t in window.borders(12):
        at_borders[t:] += 10
    assert phase_seam_score(at_borders, window) == pytest.approx(seam_score(at_borders, window)) == pytest.approx(2.0)
    assert np.isnan(phase_seam_score(ramp[:4], window)) and np.isnan(phase_seam_score(ramp, Window(4, 1)))


def test_bad_windows_are_input_errors():
    with pytest.raises(InputError, match="window stride must be between 1 and the window's 4 frames, got 5"):
        Window(4, 5)
    with pytest.raises(InputError, match="window frames must be positive"):
        Window(0, 1)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """A 10-frame 32x32 clip of a moving square (longer than the 4-frame windows below), its priors and the tiny model."""
    root = tmp_path_factory.mktemp("models")
    build_tiny("tiny", root / "tiny", seed=0)
    rng = np.random.default_rng(0)
    count = 10
    frames = np.full((count, 32, 32, 3), 90, np.uint8)
    corr = np.zeros((count, 32, 32, 3), np.float32)
    depth = np.zeros((count, 32, 32), np.float32)
    for t in range(count):
        frames[t, 8:20, 2 + 2 * t : 10 + 2 * t] = (200, 40, 40)
        corr[t, 8:20, 2 + 2 * t : 10 + 2 * t] = rng.uniform(0.1, 1.0, (12, 8, 3))
        depth[t, 8:20, 2 + 2 * t : 10 + 2 * t] = 0.5
    alpha = np.full(count, 96 / 1024, np.float32)
    return model_spec("tiny", tiny_dir=root), frames, corr, depth, alpha


def recording_frames(monkeypatch, module):
    """Record the frame count of every UNet call made through `module.load_components`."""
    calls = []

    def load_and_record(*args, **kwargs):
        components = load_components(*args, **kwargs)
        unet_forward = components.unet.forward

        def forward(sample, *rest, **keywords):
            calls.append(sample.shape[2])
            return unet_forward(sample, *rest, **keywords)

        components.unet.forward = forward
        return components

    monkeypatch.setattr(module, "load_components", load_and_record)
    return calls


@pytest.mark.parametrize("method", ["vidmp3", "vidmp3-spatial"])  # pooled and per-pixel MotionGuide vectors
def test_a_long_clip_trains_and_edits_one_window_at_a_time(long_clip, tmp_path, monkeypatch, method):
    spec, frames, corr, depth, alpha = long_clip
    calls = recording_frames(monkeypatch, vidmp3.finetune)
    config = FinetuneConfig(method=method, steps=3, learning_rate=1e-2, motion_guide_hidden=8, window_frames=4)
    guide = guide_input(corr, depth, "product")
    finetune(frames, guide, alpha, PROMPT, spec, config, tmp_path / "w")
    # memory of one window, whatever the clip's length: 3 steps, then the diagnostic's timesteps
    assert calls == [4] * (3 + len(TIMESTEP_FRACTIONS))
    calls.clear()
    settings = EditSettings(2, 2, 2.0, "", "cpu", "float32", window=Window(4, 2))
    priors = SourcePriors(corr, depth, alpha)
    inverted, clips, _ = edit_video(tmp_path / "w", None, priors, PROMPT, {"x": "a cone"}, settings)
    window = settings.window
    windows = sum(len(window.starts(10, window.offset(step))) for step in range(2))  # the 2 steps' grids
    assert calls == [4] * windows * 2  # every window at every inversion and sampling step
    assert inverted.shape[2] == 10 and clips["x"].shape == frames.shape
    _, again, _ = edit_video(tmp_path / "w", None, priors, PROMPT, {"x": "a cone"}, settings)
    assert np.array_equal(clips["x"], again["x"])


def test_shifted_windows_are_the_same_in_inversion_and_sampling_at_each_timestep(long_clip, tmp_path, monkeypatch):
    """DDIM sampling retraces the inversion's path only if each timestep's prediction is made with the
    same windows in both; with `shift` the grid differs from step to step."""
    spec, frames, *_ = long_clip
    finetune(frames, None, None, PROMPT, spec, FinetuneConfig(method="no-motionguide", steps=1, window_frames=4), tmp_path / "w")
    windows = {"DDIM inversion": {}, "DDIM sampling": {}}
    stage = []
    predict_frames = vidmp3.editing.VideoModel._predict_frames

    def recording(self, latents, timestep, text, subject_prompts, start, stop):
        windows[stage[-1]].setdefault(int(timestep), []).append((start, stop))
        return predict_frames(self, latents, timestep, text, subject_prompts, start, stop)

    def tqdm(iterable, desc):
        stage.append(desc)
        return iterable

    monkeypatch.setattr(vidmp3.editing.VideoModel, "_predict_frames", recording)
    monkeypatch.setattr(vidmp3.editing, "tqdm", tqdm)
    settings = EditSettings(4, 4, 2.0, "", "cpu", "float32", window=Window(4, 2, shift=True))
    edit_video(tmp_path / "w", None, None, PROMPT, {"x": "a cone"}, settings)
    inversion, sampling = windows["DDIM inversion"], windows["DDIM sampling"]
    assert inversion == sampling and len(inversion) == 4
    assert {tuple(grid) for grid in inversion.values()} == {
        ((0, 4), (2, 6), (4, 8), (6, 10)),
        ((0, 4), (1, 5), (3, 7), (5, 9), (6, 10)),
    }


def test_a_window_longer_than_the_motion_adapter_reaches_is_refused(long_clip, tmp_path):
    spec, frames, corr, depth, alpha = long_clip
    max_frames = load_components(spec, "cpu", torch.float32).unet.config.motion_max_seq_length
    long = np.concatenate([frames] * (max_frames // len(frames) + 1))
    config = FinetuneConfig(steps=1, method="no-motionguide", window_frames=max_frames + 1)
    with pytest.raises(InputError, match=f"window of {max_frames + 1} frames: the motion adapter handles at most {max_frames}"):
        finetune(long, None, None, PROMPT, spec, config, tmp_path / "w")
    assert not (tmp_path / "w").exists()
