"""Metrics on constructed cases: a clip against itself is perfect, shuffling hurts, a shifted copy
has the warp error the formula predicts, CLIP values follow their formula (never their quality)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from vidmp3 import metrics
from vidmp3.errors import InputError
from vidmp3.frames import resize_masks
from vidmp3.metrics import (
    evaluate_edit,
    grid_points,
    motion_fidelity,
    pose_track,
    segment_subject,
    temporal_consistency,
    text_alignment,
    track_points,
    track_similarity,
    trajectory_errors,
    warp_error,
)
from vidmp3.store import write_array
from vidmp3.scene import SubjectSpec
from vidmp3.synthetic import make_trajectory, render_clip, write_clip
from vidmp3.video_io import read_frames

FRAMES = 8
SIZE = 48


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth random colours: enough detail for flow and Lucas–Kanade everywhere."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).random((height, width, 3)), (1.5, 1.5, 0))
    return np.rint(255 * (noise - noise.min()) / np.ptp(noise)).astype(np.uint8)


def panning_clip(shift: int) -> np.ndarray:
    """A camera pan: frame t is a window of one large texture moved right by `shift` pixels per frame,
    so new content enters at one border (it has no source in the previous frame)."""
    big = texture(SIZE + 20, SIZE + 20 + FRAMES * shift, seed=0)
    return np.stack([big[10 : 10 + SIZE, 10 + shift * t : 10 + shift * t + SIZE] for t in range(FRAMES)])


@pytest.fixture(scope="module")
def square_clip() -> tuple[np.ndarray, np.ndarray]:
    """A textured square circling over a textured background, and its masks."""
    background, square = texture(SIZE, SIZE, seed=2), texture(16, 16, seed=3)
    frames, masks = [], []
    for t in range(FRAMES):
        angle = 2 * np.pi * t / FRAMES
        x, y = (int(round(16 + 6 * f(angle))) for f in (np.cos, np.sin))
        frame, mask = background.copy(), np.zeros((SIZE, SIZE), bool)
        frame[y : y + 16, x : x + 16], mask[y : y + 16, x : x + 16] = square, True
        frames.append(frame)
        masks.append(mask)
    return np.stack(frames), np.stack(masks)


SHUFFLE = np.array([2, 4, 3, 6, 5, 0, 1, 7])


# ---- warp error ---------------------------------------------------------------------------------


def test_warp_error_of_a_still_clip_is_zero():
    assert warp_error(np.repeat(panning_clip(0)[:1], FRAMES, axis=0)) == 0.0


@pytest.mark.parametrize("flow_method", ["dis", "farneback"])
def test_a_shifted_copy_warps_onto_itself(flow_method):
    clip = panning_clip(shift=2)
    unwarped = np.mean([(((clip[t] - clip[t - 1].astype(float)) / 255) ** 2).sum(-1).mean() for t in range(1, FRAMES)])
    error = warp_error(clip, flow_method)
    # the flow explains the shift and the entering border strip is left out as disoccluded
    assert error < 1e-3 * unwarped


@pytest.mark.parametrize("delta", [8, 16])
def test_a_shifted_copy_with_a_brightness_step_has_three_delta_squared(delta):
    clip = panning_clip(shift=2).astype(int)
    clip[1::2] += delta  # every pair of consecutive frames differs by delta in each channel
    error = warp_error(np.clip(clip, 0, 255).astype(np.uint8))
    assert error == pytest.approx(3 * (delta / 255) ** 2, rel=0.05)


def test_shuffled_frames_raise_the_warp_error(square_clip):
    frames, _ = square_clip
    assert warp_error(frames[SHUFFLE]) > 1.3 * warp_error(frames)
    assert warp_error(panning_clip(2)[SHUFFLE]) > 1e3 * warp_error(panning_clip(2))


# ---- motion fidelity ----------------------------------------------------------------------------


def test_grid_points_lie_in_the_mask(square_clip):
    _, masks = square_clip
    points = grid_points(masks[0])
    assert len(points) > 100
    assert masks[0][np.rint(points[:, 1]).astype(int), np.rint(points[:, 0]).astype(int)].all()
    assert len(grid_points(np.zeros_like(masks[0]))) == 0


def test_track_similarity_follows_the_displacement_cosine():
    start = np.zeros((1, 1, 2))
    right = np.concatenate([start, start + [[[1.0, 0.0]]], start + [[[2.0, 0.0]]]], axis=1)  # (1,3,2)
    up = right[..., ::-1]
    diagonal = np.concatenate([start, start + [[[1.0, 1.0]]], start + [[[2.0, 2.0]]]], axis=1)
    still_then_right = np.concatenate([start, start, start + [[[1.0, 0.0]]]], axis=1)
    still = np.zeros((1, 3, 2))
    edits = np.concatenate([right, up, diagonal, still_then_right, still])
    similarity = track_similarity(np.concatenate([right, still]), edits)
    expected = [
        [1.0, 0.0, np.sqrt(0.5), 0.5, 0.0],  # right against each edit track
        [0.0, 0.0, 0.0, 0.5, 1.0],  # still agrees with still steps only
    ]
    np.testing.assert_allclose(similarity, expected, atol=1e-12)
    # symmetric: mean of the best match of every edit track and of every source track
    expected_score = (np.mean([1.0, 0.0, np.sqrt(0.5), 0.5, 1.0]) + np.mean([1.0, 1.0])) / 2
    assert motion_fidelity(np.concatenate([right, still]), edits) == pytest.approx(expected_score)


def test_a_clip_against_itself_has_motion_fidelity_one(square_clip):
    frames, masks = square_clip
    tracks = track_points(frames, grid_points(masks[0]))
    assert tracks.shape == (len(grid_points(masks[0])), FRAMES, 2)
    assert motion_fidelity(tracks, tracks) == pytest.approx(1.0, abs=1e-12)


def test_shuffled_or_reversed_frames_lower_the_motion_fidelity(square_clip):
    frames, masks = square_clip
    points = grid_points(masks[0])
    source = track_points(frames, points)
    assert motion_fidelity(source, track_points(frames[SHUFFLE], points)) < 0.9
    assert motion_fidelity(source, track_points(frames[::-1], points)) < 0.8


def test_points_lucas_kanade_loses_keep_their_last_position(square_clip):
    frames, masks = square_clip
    blank = frames.copy()
    blank[3:] = 128  # from frame 3 on there is no texture to follow (LK checks the earlier frame)
    tracks = track_points(blank, grid_points(masks[0]))
    assert np.abs(np.diff(tracks[:, :3], axis=1)).max() > 1  # the square moved and was followed
    assert np.all(tracks[:, 4:] == tracks[:, 3:4])


# ---- trajectory against the pose ----------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered():
    """A gradient cube with large motion: 16 frames of 64 x 64 pixels, the truth is the render."""
    poses = make_trajectory(64, seed=0, motion="large")[::4]
    clip = render_clip(SubjectSpec(shape="cube", texture="gradient"), poses, 64, 64, supersample=2)
    attrs = {"frame_indices": list(range(16)), "size": [64, 64], "crop": "center"}
    return clip, attrs


def test_pose_track_follows_the_subject_through_crop_and_resize():
    poses = make_trajectory(4, seed=1, motion="large")
    clip = render_clip(SubjectSpec(shape="sphere"), poses, 64, 96, supersample=2)  # 96 wide, cropped to 64
    attrs = {"frame_indices": [0, 1, 2, 3], "size": [32, 32], "crop": "center"}
    masks = resize_masks(clip.mask, (32, 32), "center")
    centroids = np.stack([np.argwhere(mask).mean(axis=0)[::-1] for mask in masks])
    centres, depth = pose_track(clip, attrs)
    # a sphere's silhouette centre is its projected centre up to perspective and pixelation
    assert np.linalg.norm(centroids - centres, axis=-1).max() < 0.75
    np.testing.assert_allclose(depth, clip.camera.project(poses[:, :3])[1])


def test_segmenting_the_source_recovers_its_mask(rendered):
    clip, _ = rendered
    masks = segment_subject(clip.frames, clip.mask)
    assert (masks & clip.mask).sum() / (masks | clip.mask).sum() > 0.85


def test_the_source_against_its_own_pose_track_is_close_and_shuffling_is_not(rendered):
    clip, attrs = rendered
    centres, depth = pose_track(clip, attrs)
    own, own_size, used = trajectory_errors(segment_subject(clip.frames, clip.mask), centres, depth)
    truth_mask_error, truth_size, _ = trajectory_errors(clip.mask, centres, depth)
    # a turning cube's silhouette centroid and area follow its orientation too, not only the pose:
    # even the truth mask is ~0.6 px and ~4 % off; segmentation adds about as much again
    assert used == 16 and own < 1.5 and abs(own - truth_mask_error) < 0.6
    assert own_size < 0.1 and truth_size < 0.1
    order = np.random.default_rng(0).permutation(16)
    shuffled, _, _ = trajectory_errors(segment_subject(clip.frames[order], clip.mask), centres, depth)
    assert shuffled > 3 * own


def test_trajectory_needs_two_segmented_frames():
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 2:4, 2:4] = True
    assert trajectory_errors(masks, np.zeros((3, 2)), np.ones(3)) == (None, None, 1)


# ---- CLIP ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A randomly initialised two-layer CLIPModel and its processor, saved and loaded like real weights."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from vidmp3.model.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={
            **layers,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 32,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**layers, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip")
    CLIPModel(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return str(folder)


def test_identical_frames_have_clip_consistency_one(tiny_clip):
    scorer = metrics.ClipScorer(tiny_clip)
    frames = np.repeat(texture(SIZE, SIZE, seed=4)[None], 4, axis=0)
    assert temporal_consistency(scorer.image_embeddings(frames)) == pytest.approx(1.0, abs=1e-5)


def test_a_configured_clip_model_that_cannot_load_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="CLIP model '.*missing' cannot be loaded"):
        metrics.ClipScorer(str(tmp_path / "missing"))


def test_clip_values_follow_the_formula(tiny_clip, square_clip):
    """Compared with CLIPModel's own forward pass: its logits are exp(logit_scale) times the cosine."""
    from transformers import CLIPModel, CLIPProcessor

    frames, _ = square_clip
    prompt = "a textured square circling"
    scorer = metrics.ClipScorer(tiny_clip, batch_size=3)  # batches must not change the result
    embeddings = scorer.image_embeddings(frames)
    model, processor = CLIPModel.from_pretrained(tiny_clip).eval(), CLIPProcessor.from_pretrained(tiny_clip)
    with torch.no_grad():
        output = model(**processor(text=[prompt], images=list(frames), return_tensors="pt", padding=True))
        cosines = output.logits_per_image[:, 0] / model.logit_scale.exp()
    assert text_alignment(embeddings, scorer.text_embedding(prompt)) == pytest.approx(float(cosines.mean()), abs=1e-5)
    image = output.image_embeds
    direct = torch.nn.functional.cosine_similarity(image[1:], image[:-1]).mean()
    assert temporal_consistency(embeddings) == pytest.approx(float(direct), abs=1e-5)


# ---- one edit -----------------------------------------------------------------------------------


def priors(tmp_path, frames, masks, attrs=None):
    group = tmp_path / "priors" / "clip.zarr"
    size = [frames.shape[2], frames.shape[1]]
    attrs = attrs or {"frame_indices": list(range(len(frames))), "size": size, "crop": "center"}
    write_array(group / "frames", frames, attrs)
    write_array(group / "mask", masks)
    return group / "frames", group / "mask"


LABELS = {
    "video": "square",
    "concept": "same",
    "method": "vidmp3",
    "category": "object",
    "kind": "style",
    "prompt": "a textured square",
}


def test_an_unedited_real_clip_scores_perfect_motion_and_lacks_clip_and_truth(tmp_path, square_clip):
    frames, masks = square_clip
    source, mask = priors(tmp_path, frames, masks)
    out = tmp_path / "eval" / "square_same.json"
    record = evaluate_edit(source, mask, source, out, **LABELS)
    assert json.loads(out.read_text()) == record
    values, missing = record["metrics"], record["not_available"]
    assert values["motion_fidelity"] == pytest.approx(1.0)
    assert values["warp_error"] == pytest.approx(warp_error(frames))
    for name in ("clip_text_alignment", "clip_temporal_consistency"):
        assert values[name] is None and "no CLIP model" in missing[name]
    for name in ("trajectory_error_px", "size_log_error"):
        assert values[name] is None and "no ground truth" in missing[name]
    assert set(values) == set(metrics.METRICS) - {"worst_subject_motion_fidelity"}  # a clip with one subject


def test_a_rendered_edit_read_from_video_gets_every_metric(tmp_path, rendered, tiny_clip):
    clip, attrs = rendered
    write_clip(clip, tmp_path / "video.mp4", tmp_path / "masks", tmp_path / "truth.zarr", fps=8)
    source, mask = priors(tmp_path, clip.frames, clip.mask, attrs)
    edit = tmp_path / "video.mp4"  # the lossy H.264 copy stands in for an edit
    assert read_frames(edit).shape == clip.frames.shape
    truth = tmp_path / "truth.zarr"
    record = evaluate_edit(source, mask, edit, tmp_path / "out.json", **LABELS, clip_model=tiny_clip, truth=truth)
    values = record["metrics"]
    assert record["not_available"] == {}
    assert values["motion_fidelity"] > 0.9 and values["trajectory_error_px"] < 1.5 and values["size_log_error"] < 0.1
    assert -1 <= values["clip_text_alignment"] <= 1 and -1 <= values["clip_temporal_consistency"] <= 1


def test_bad_edits_are_refused_and_write_nothing(tmp_path, square_clip):
    frames, masks = square_clip
    source, mask = priors(tmp_path, frames, masks)
    small = tmp_path / "small"
    write_array(small, frames[:, :32, :32])
    with pytest.raises(InputError, match="do not match the source"):
        evaluate_edit(source, mask, small, tmp_path / "a.json", **LABELS)
    with pytest.raises(InputError, match="method 'dmt' is unknown"):
        evaluate_edit(source, mask, source, tmp_path / "b.json", **{**LABELS, "method": "dmt"})
    with pytest.raises(InputError, match="no such video file"):
        evaluate_edit(source, mask, tmp_path / "missing.mp4", tmp_path / "c.json", **LABELS)
    assert not list(tmp_path.glob("*.json"))
