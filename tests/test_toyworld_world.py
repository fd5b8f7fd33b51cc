"""ToyWorld scenes: captions, renders and segmentation must agree with the renderer's truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from transformers import CLIPTokenizer

from vidmp3 import synthetic
from vidmp3.errors import InputError
from vidmp3.scene import read_truth
from vidmp3.toyworld import world
from vidmp3.toyworld.text import MAX_TOKENS, WORDS, toyworld_tokenizer
from vidmp3.toyworld.world import (
    CLIP_FRAMES,
    COLOURS,
    HELD_OUT_SEED,
    IMAGE_SIZE,
    SHAPES,
    background,
    caption,
    parse_caption,
    render_images,
    render_toy_clip,
    segment,
    subject_spec,
    write_toy_clip,
)
from vidmp3.video_io import read_video

CAPTIONS = [(shape, colour) for shape in SHAPES for colour in COLOURS]


@pytest.fixture(scope="module")
def batch():
    return render_images(256, seed=7)


@pytest.fixture(scope="module")
def clips():
    """Held-out clips of every shape (the benchmark's kind), each shape under several seeds."""
    return [render_toy_clip(SHAPES[i % 4], tuple(COLOURS)[i // 4 % 4], world.HELD_OUT_SEED + i) for i in range(32)]


@pytest.mark.parametrize(("shape", "colour"), CAPTIONS)
def test_every_caption_parses_back(shape, colour):
    text = caption(shape, colour)
    assert text == f"a {colour} {shape}"
    assert parse_caption(text) == (shape, colour)
    assert parse_caption(f"  A {colour.upper()}   {shape} ") == (shape, colour)


@pytest.mark.parametrize("text", ["a purple cube", "red cube", "a red torus", "a red cube please", ""])
def test_parse_caption_refuses_other_text(text):
    with pytest.raises(InputError, match="caption"):
        parse_caption(text)


def test_bad_names_and_sizes_are_refused():
    with pytest.raises(InputError, match="shape 'torus'"):
        caption("torus", "red")
    with pytest.raises(InputError, match="colour 'purple'"):
        subject_spec("cube", "purple")
    with pytest.raises(InputError, match="size 30"):
        render_images(2, seed=0, size=30)
    with pytest.raises(InputError, match="count"):
        render_images(0, seed=0)
    with pytest.raises(InputError, match="motion"):
        render_toy_clip("cube", "red", seed=0, motion="huge")
    with pytest.raises(InputError, match=r"\(\.\.\., 32, 32, 3\)"):
        segment(np.zeros((2, 16, 16, 3), np.uint8))


def test_render_images_is_deterministic_and_varied(batch):
    again = render_images(256, seed=7)
    for name in ("images", "shapes", "colours", "masks"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(again, name))
    other = render_images(256, seed=8)
    assert not np.array_equal(other.images, batch.images)
    assert batch.images.shape == (256, IMAGE_SIZE, IMAGE_SIZE, 3) and batch.images.dtype == np.uint8
    assert batch.masks.shape == (256, IMAGE_SIZE, IMAGE_SIZE) and batch.masks.dtype == bool
    counts = np.bincount(batch.shapes * len(COLOURS) + batch.colours, minlength=16)
    assert counts.min() >= 5  # every caption is drawn
    centroids = np.array([np.argwhere(mask).mean(0) for mask in batch.masks])
    sizes = np.sqrt(batch.masks.sum((1, 2)))
    assert np.ptp(centroids, axis=0).min() > 6 and np.ptp(sizes) > 4  # position and size vary


def test_images_show_their_subject_on_the_plain_backdrop(batch):
    empty = background()
    off = ~batch.masks
    assert (batch.images[off] == np.broadcast_to(empty, batch.images.shape)[off]).mean() > 0.99  # bar edge blends
    assert batch.masks.any(axis=(1, 2)).all()
    assert not batch.masks[:, [0, -1], :].any() and not batch.masks[:, :, [0, -1]].any()
    # Every inner subject pixel (no blend with the backdrop) is its albedo under some shade.
    albedos = np.array(list(COLOURS.values()))
    albedo_chroma = albedos / albedos.sum(1, keepdims=True)
    for image, mask, colour in zip(batch.images, batch.masks, batch.colours):
        pixels = image[ndimage.binary_erosion(mask)].astype(np.float64) + 1e-6
        chroma = pixels / pixels.sum(1, keepdims=True)
        nearest = np.linalg.norm(chroma[:, None] - albedo_chroma[None], axis=-1).argmin(1)
        assert len(pixels) > 20 and (nearest == colour).all()


def test_shapes_have_comparable_apparent_sizes(batch):
    sizes = np.sqrt(batch.masks.sum((1, 2)))
    means = np.array([sizes[batch.shapes == index].mean() for index in range(len(SHAPES))])
    assert means.min() > 0.85 * means.max()
    assert means.min() > 9  # pixels: a fair part of the 32x32 frame


def test_segment_finds_the_true_subject(batch, clips):
    """Every subject pixel is found; the extra ones are edge pixels partly covered, which stand out
    against the bright backdrop (IoU 0.952 on the stills, 0.935 on the clips)."""
    for frames, masks in [(batch.images, batch.masks)] + [(clip.frames, clip.mask) for clip in clips[:8]]:
        found = segment(frames)
        assert not (masks & ~found).any()
        assert (found & masks).sum() / (found | masks).sum() > 0.9
    assert not segment(background()[None]).any()
    nested = segment(batch.images[:4].reshape(2, 2, 32, 32, 3))
    np.testing.assert_array_equal(segment(batch.images[:4]), nested.reshape(4, 32, 32))


def test_colours_stay_far_from_the_backdrop_in_every_shade():
    """Twice the default threshold: even an edge pixel half covered by the subject is found."""
    shades = np.linspace(synthetic.AMBIENT, synthetic.AMBIENT + synthetic.DIFFUSE, 64)
    for albedo in COLOURS.values():
        shaded = np.clip(np.outer(shades, albedo), 0.0, 1.0)
        for plain in (world.BACKDROP.sky, world.BACKDROP.ground):
            assert np.linalg.norm(shaded - plain, axis=1).min() > 2 * 0.2


def test_every_colour_departs_from_the_backdrop_the_same_way():
    """What lets a colour edit keep the source's position (`world.BACKDROP`): at mid shade the
    differences (subject - backdrop) of any two caption colours point the same way."""
    shade = synthetic.AMBIENT + synthetic.DIFFUSE / 2
    for plain in (world.BACKDROP.sky, world.BACKDROP.ground):
        away = {name: np.clip(shade * np.asarray(albedo), 0.0, 1.0) - plain for name, albedo in COLOURS.items()}
        for first in away:
            for second in away:
                cosine = away[first] @ away[second] / np.linalg.norm(away[first]) / np.linalg.norm(away[second])
                assert cosine > 0.5, (first, second, cosine)


def test_toy_clips_move_turn_and_change_depth_in_view(clips):
    spans, size_ratios, turns = [], [], []
    for clip in clips:
        assert clip.frames.shape == (CLIP_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
        assert clip.mask.any(axis=(1, 2)).all()
        assert not clip.mask[:, [0, -1], :].any() and not clip.mask[:, :, [0, -1]].any()
        centroids = np.array([np.argwhere(mask).mean(0) for mask in clip.mask])
        spans.append(np.linalg.norm(centroids[1:] - centroids[:-1], axis=1).sum() / IMAGE_SIZE)
        depth = np.array([np.median(clip.depth[index][clip.mask[index]]) for index in range(CLIP_FRAMES)])
        size_ratios.append(depth.max() / depth.min())
        turns.append(np.ptp(clip.poses[:, 4]))
        assert np.abs(clip.poses[:, [3, 5]]).max() <= 0.3 + 1e-9  # upright: it only leans
        assert np.sqrt(clip.mask.sum((1, 2))).min() >= 8
    assert np.mean(spans) > 0.2  # the path is a fifth of the width or more
    assert np.mean(size_ratios) > 1.1  # and comes nearer or goes farther
    assert np.mean(turns) > 0.5  # radians about the vertical axis


def test_same_seed_same_clip_and_small_motion_moves_less(clips):
    again = render_toy_clip("cube", "red", world.HELD_OUT_SEED)
    np.testing.assert_array_equal(again.frames, clips[0].frames)
    np.testing.assert_array_equal(again.poses, clips[0].poses)
    small = render_toy_clip("cube", "red", world.HELD_OUT_SEED, motion="small")
    assert np.ptp(small.poses[:, :3], axis=0).sum() < 0.5 * np.ptp(clips[0].poses[:, :3], axis=0).sum()
    longer = render_toy_clip("sphere", "blue", 3, frames=12, size=64)
    assert longer.frames.shape == (12, 64, 64, 3)


@pytest.fixture(scope="module")
def tokenizer():
    return toyworld_tokenizer()


def test_every_caption_is_start_a_colour_shape_end(tokenizer, tmp_path):
    word_ids = {word: tokenizer.convert_tokens_to_ids(word + "</w>") for word in WORDS}
    assert sorted(word_ids.values()) == list(range(len(WORDS)))  # distinct, known ids
    tokenizer.save_pretrained(tmp_path)
    loaded = CLIPTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert loaded.model_max_length == MAX_TOKENS
    for shape, colour in CAPTIONS:
        text = caption(shape, colour)
        expected = [tokenizer.bos_token_id, word_ids["a"], word_ids[colour], word_ids[shape]]
        expected += [tokenizer.eos_token_id] * (MAX_TOKENS - 4)
        for tok in (tokenizer, loaded):
            ids = tok(text, padding="max_length", max_length=MAX_TOKENS, truncation=True).input_ids
            assert ids == expected
            assert tok.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert len(loaded) == len(tokenizer)


def test_a_configured_clip_is_written_like_a_real_clip(tmp_path):
    spec = {"shape": "cone", "colour": "blue", "seed": HELD_OUT_SEED + 5, "motion": "large", "frames": 12, "fps": 24}
    write_toy_clip(spec, tmp_path / "video.mp4", tmp_path / "masks", tmp_path / "truth.zarr")
    truth = read_truth(tmp_path / "truth.zarr")
    assert truth.frames.shape == (12, IMAGE_SIZE, IMAGE_SIZE, 3) and truth.subject.shape == "cone"
    assert len(list((tmp_path / "masks").iterdir())) == 12
    frames, _, count = read_video(tmp_path / "video.mp4", list(range(12)))
    assert count == 12
    assert frames.shape == (12, IMAGE_SIZE, IMAGE_SIZE, 3)
    with pytest.raises(InputError, match="below 1000000: pretraining has seen it"):
        write_toy_clip(dict(spec, seed=7), tmp_path / "again.mp4", tmp_path / "m2", tmp_path / "t2.zarr")
    assert not (tmp_path / "again.mp4").exists()
