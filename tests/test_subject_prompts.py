"""Subject prompts: each subject's pixels cross-attend to its own phrase, the rest to the whole prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from test_model_processors import attention_reference, unet_inputs

from vidmp3.editing import EditSettings, SourcePriors, edit_video, encode_subject_prompts, load_video_model
from vidmp3.errors import InputError
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.model.presets import model_spec
from vidmp3.model.processors import FrameState, SubjectPromptProcessor, install_processors
from vidmp3.model.tiny import build_tiny, tiny_motion_adapter, tiny_unet2d
from vidmp3.model.video_unet import build_video_unet
from vidmp3.motionguide import guide_input
from vidmp3.subjects import SubjectMap
from vidmp3.windows import Window

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
PROMPT = "a cube a cone"
PHRASES = {1: "a cube", 2: "a cone"}


@pytest.fixture
def cross_attention() -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=16, cross_attention_dim=12, heads=2, dim_head=8)


def test_without_subject_phrases_it_is_stock_cross_attention_exactly(cross_attention):
    state = FrameState()
    state.num_frames = 2
    hidden_states, text = torch.randn(4, 16, 16), torch.randn(4, 5, 12)
    with torch.no_grad():
        cross_attention.set_processor(AttnProcessor2_0())
        stock = cross_attention(hidden_states, text)
        cross_attention.set_processor(SubjectPromptProcessor(state, downsample=2))
        ours = cross_attention(hidden_states, text)
    assert torch.equal(ours, stock)


def test_each_pixel_blends_its_subjects_phrase_and_the_prompt_by_its_share(cross_attention):
    """Two videos (prompts) of two frames at a layer of 4x4 pixels, half the latents' 8x8: a pixel's
    output is its subjects' shares of the phrase attentions plus the rest of the prompt's."""
    state = FrameState()
    state.num_frames = 2
    labels = np.zeros((2, 8, 8), np.uint8)
    labels[0, 0:3, 0:5], labels[1, 2:8, 1:4], labels[1, 5:8, 5:8] = 1, 1, 2
    state.subject_shares = torch.from_numpy(SubjectMap((1, 2), labels).masks()).float()
    state.subject_text = torch.randn(2, 4, 5, 12)
    hidden_states, text = torch.randn(4, 16, 16), torch.randn(4, 5, 12)
    with torch.no_grad():
        cross_attention.set_processor(SubjectPromptProcessor(state, downsample=2))
        out = cross_attention(hidden_states, text)
        shares = F.avg_pool2d(state.subject_shares, 2).flatten(2)  # (2 subjects, 2 frames, 16 pixels)
        shares = shares.repeat(1, 2, 1).unsqueeze(-1)  # the same map for both videos: (2, 4, 16, 1)
        expected = (1 - shares.sum(0)) * attention_reference(cross_attention, hidden_states, text, text)
        for share, phrase in zip(shares, state.subject_text):
            expected = expected + share * attention_reference(cross_attention, hidden_states, phrase, phrase)
    assert (shares.sum(0) > 0).any() and (shares.sum(0) < 1).any()  # pixels of one, of both and of no subject
    torch.testing.assert_close(out, expected, **TOLERANCE)


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def video_unet(request):
    torch.manual_seed(0)
    return request.param, build_video_unet(tiny_unet2d(request.param), tiny_motion_adapter(request.param)).eval()


def test_in_the_unet_a_phrase_changes_only_where_its_subject_is(video_unet):
    family, unet = video_unet
    batch, num_frames = 2, 3
    inputs = unet_inputs(family, batch, num_frames)
    prompt = inputs["encoder_hidden_states"]
    attention = install_processors(unet, value_injection=False, subject_prompts=True)
    try:
        installed = {name: type(processor).__name__ for name, processor in unet.attn_processors.items()}
        assert {kind for name, kind in installed.items() if name.endswith("attn2.processor") and "motion" not in name} == {
            "SubjectPromptProcessor"
        }
        phrases = torch.randn(2, *prompt.shape, generator=torch.Generator().manual_seed(2))
        absent = torch.zeros(2, num_frames, 8, 8)
        present = absent.clone()
        present[0, :, 2:6, 2:6] = 1.0
        with torch.no_grad():
            with attention.frames(num_frames):
                plain = unet(**inputs).sample
            with attention.frames(num_frames, subject_text=phrases, subject_shares=absent):
                nowhere = unet(**inputs).sample
            with attention.frames(num_frames, subject_text=prompt.expand(2, *prompt.shape), subject_shares=present):
                same_phrase = unet(**inputs).sample
            with attention.frames(num_frames, subject_text=phrases, subject_shares=present):
                bound = unet(**inputs).sample
        assert torch.equal(nowhere, plain)  # a subject on no pixel changes nothing
        torch.testing.assert_close(same_phrase, plain, **TOLERANCE)  # a subject's phrase that is the prompt: neither
        assert not torch.allclose(bound, plain, atol=1e-4)
        with pytest.raises(ValueError, match="subject shares have shape"):
            with attention.frames(num_frames, subject_text=phrases, subject_shares=absent[:, :2]):
                pass
        with pytest.raises(ValueError, match="both the subjects' text and their shares"):
            with attention.frames(num_frames, subject_text=phrases):
                pass
    finally:
        attention.restore()
    plain_attention = install_processors(unet, value_injection=False)
    try:
        with pytest.raises(ValueError, match="processors are not installed"):
            with plain_attention.frames(num_frames, subject_text=phrases, subject_shares=absent):
                pass
    finally:
        plain_attention.restore()


@pytest.fixture(scope="module")
def two_subject_clip(tmp_path_factory):
    """Six 32x32 frames: subject 1 (a red square) in every frame, subject 2 (a blue one) from frame 4 on,
    and no-motionguide weights trained on 4-frame windows."""
    root = tmp_path_factory.mktemp("subject-prompts")
    build_tiny("tiny", root / "tiny", seed=0)
    count = 6
    frames = np.full((count, 32, 32, 3), 90, np.uint8)
    labels = np.zeros((count, 32, 32), np.uint8)
    for t in range(count):
        labels[t, 4:14, 2 + 2 * t : 12 + 2 * t] = 1
        if t >= 4:
            labels[t, 18:28, 16:26] = 2
    frames[labels == 1], frames[labels == 2] = (200, 40, 40), (40, 40, 200)
    config = FinetuneConfig(method="no-motionguide", steps=1, learning_rate=1e-2, window_frames=4)
    finetune(frames, None, None, PROMPT, model_spec("tiny", tiny_dir=root), config, root / "weights")
    return root / "weights", frames, SubjectMap((1, 2), labels)


def test_windows_see_their_own_frames_subjects(two_subject_clip):
    """Windows of 4 frames every 2 over 6 frames: frames 0-1 are in the first window only, where subject
    2 is absent, so only its phrase's frames (4-5) and their neighbours change."""
    weights, frames, subjects = two_subject_clip
    model = load_video_model(weights, 6, None, "cpu", torch.float32, window=Window(4, 2), subject_prompts=True)
    components = model.finetuned.components
    latents = components.encode_frames(frames)
    text = components.encode_prompt([PROMPT], 32, 32)
    only_two = SubjectMap((1, 2), np.where(subjects.labels == 2, 2, 0).astype(np.uint8))
    regional = encode_subject_prompts(components, only_two, {1: "a cube", 2: "a yellow sphere"}, None, latents.shape[-2:])
    timestep = torch.tensor(500)
    plain = model.predict(latents, timestep, text)
    bound = model.predict(latents, timestep, text, regional)
    assert torch.equal(bound[:, :, :2], plain[:, :, :2])
    assert not torch.allclose(bound[:, :, 4:], plain[:, :, 4:], atol=1e-4)
    model.attention.restore()


def test_an_edit_binds_each_subjects_phrase_and_changes_nothing_without_subjects(two_subject_clip):
    weights, _, subjects = two_subject_clip
    settings = EditSettings(3, 3, 2.0, "", "cpu", "float32", window=Window(4, 2))
    edits, phrases = {"swap": "a sphere a cylinder"}, {"swap": {1: "a sphere", 2: "a cylinder"}}
    run = {"scales": {"swap": {2: 1.5}}, "subjects": subjects, "source_phrases": PHRASES}
    inverted, bound, _ = edit_video(weights, None, None, PROMPT, edits, settings, phrases=phrases, **run)
    _, again, _ = edit_video(weights, None, None, PROMPT, edits, settings, phrases=phrases, **run)
    assert np.array_equal(bound["swap"], again["swap"])
    off = EditSettings(3, 3, 2.0, "", "cpu", "float32", window=Window(4, 2), subject_prompts=False)
    plain_inverted, plain, _ = edit_video(weights, None, None, PROMPT, edits, off, phrases=phrases, **run)
    assert not torch.allclose(inverted, plain_inverted, atol=1e-4)  # the inversion binds the video's phrases
    assert np.abs(bound["swap"].astype(int) - plain["swap"].astype(int)).mean() > 0.1
    # each subject's phrase the whole prompt: the same path as the whole prompt everywhere
    same = {"source_phrases": dict.fromkeys(PHRASES, PROMPT)}
    prompt_inverted, _, _ = edit_video(weights, None, None, PROMPT, edits, settings, phrases=phrases, **(run | same))
    torch.testing.assert_close(prompt_inverted, plain_inverted, rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match=r"subject phrases name subjects \[1\]; the clip's subjects are \[1, 2\]"):
        edit_video(weights, None, None, PROMPT, edits, settings, phrases={"swap": {1: "a sphere"}}, **run)


def test_a_guided_method_edits_with_one_motionguide_per_subject_and_subject_prompts(two_subject_clip, tmp_path):
    """vidmp3-spatial with one MotionGuide per subject and subject prompts in one edit."""
    _, frames, subjects = two_subject_clip
    corr = np.where(subjects.labels[..., None] > 0, 0.5, 0.0).astype(np.float32).repeat(3, axis=-1)
    depth = (subjects.labels > 0).astype(np.float32)
    alpha = np.stack([subjects.labels.__eq__(k).mean(axis=(1, 2)) for k in subjects.ids], axis=1).astype(np.float32)
    priors = SourcePriors(corr, depth, alpha, subjects=subjects)
    root = tmp_path / "models"
    build_tiny("tiny", root / "tiny", seed=0)
    config = FinetuneConfig(method="vidmp3-spatial", steps=1, learning_rate=1e-2, motion_guide_hidden=8, window_frames=4)
    guide = guide_input(corr, depth, "product")
    finetune(frames, guide, alpha, PROMPT, model_spec("tiny", tiny_dir=root), config, tmp_path / "w", subjects=subjects)
    settings = EditSettings(2, 2, 2.0, "", "cpu", "float32", window=Window(4, 2))
    edits, phrases = {"swap": "a sphere a cylinder"}, {"swap": {1: "a sphere", 2: "a cylinder"}}
    _, clips, _ = edit_video(tmp_path / "w", None, priors, PROMPT, edits, settings, None, subjects, PHRASES, phrases)
    assert clips["swap"].shape == frames.shape
