"""Learned prior backends, run on tiny randomly initialised models of the real classes.

Each model is built from a small config, saved with save_pretrained beside its real processor,
and loaded back through the backend's own loading path; nothing is downloaded.
"""

from __future__ import annotations

import huggingface_hub.constants
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidmp3.errors import InputError
from vidmp3.priors import learned
from vidmp3.priors.correspondence import pixel_grid

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
HEIGHT, WIDTH = 32, 48


def tiny_clip_tokenizer(max_length: int):
    """A character-level CLIP BPE tokenizer (no merges): enough for prompts of lower-case words."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    """Folders of tiny random models: dinov2, depth, mask2former, clipseg and a diffusers SD folder."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import (
        BitImageProcessor,
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        Dinov2Model,
        DPTImageProcessor,
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessor,
        SwinConfig,
        ViTImageProcessor,
    )

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_models")
    folders = {name: str(root / name) for name in ("dinov2", "depth", "mask2former", "clipseg", "sd")}

    dinov2 = Dinov2Model(
        Dinov2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=8, image_size=32
        )
    )
    dinov2.save_pretrained(folders["dinov2"])
    BitImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    ).save_pretrained(folders["dinov2"])

    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=56,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    depth = DepthAnythingForDepthEstimation(
        DepthAnythingConfig(
            backbone_config=backbone,
            reassemble_hidden_size=32,
            neck_hidden_sizes=[8, 16, 32, 32],
            fusion_hidden_size=16,
            head_hidden_size=8,
            patch_size=14,
        )
    )
    depth.save_pretrained(folders["depth"])
    DPTImageProcessor(
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_pad=False,
        resample=3,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    ).save_pretrained(folders["depth"])

    id2label = {0: "person", 1: "dog", 2: "cat", 3: "teddy bear"}
    segmenter = Mask2FormerForUniversalSegmentation(
        Mask2FormerConfig(
            backbone_config=SwinConfig(
                image_size=64,
                embed_dim=32,
                depths=[1, 1, 1, 1],
                num_heads=[1, 1, 1, 1],
                window_size=2,
                out_features=["stage1", "stage2", "stage3", "stage4"],
            ),
            feature_size=32,
            mask_feature_size=32,
            hidden_dim=32,
            encoder_feedforward_dim=32,
            encoder_layers=1,
            decoder_layers=2,
            num_attention_heads=2,
            dim_feedforward=32,
            num_queries=6,
            id2label=id2label,
            label2id={label: label_id for label_id, label in id2label.items()},
        )
    )
    # A segmenter that is sure every query is a dog and never a cat: real weights, chosen biases.
    with torch.no_grad():
        segmenter.class_predictor.bias[1] = 20.0
        segmenter.class_predictor.bias[2] = -20.0
    segmenter.save_pretrained(folders["mask2former"])
    Mask2FormerImageProcessor(
        size={"shortest_edge": 64, "longest_edge": 128},
        size_divisor=32,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    ).save_pretrained(folders["mask2former"])

    clipseg = CLIPSegForImageSegmentation(
        CLIPSegConfig(
            text_config=dict(
                vocab_size=64,
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                max_position_embeddings=16,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            ),
            vision_config=dict(
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=3,
                num_attention_heads=2,
                image_size=64,
                patch_size=16,
            ),
            projection_dim=16,
            extract_layers=[1, 2],
            reduce_dim=8,
            decoder_num_attention_heads=2,
            decoder_intermediate_size=16,
        )
    )
    clipseg.save_pretrained(folders["clipseg"])
    CLIPSegProcessor(
        image_processor=ViTImageProcessor(size={"height": 64, "width": 64}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD),
        tokenizer=tiny_clip_tokenizer(16),
    ).save_pretrained(folders["clipseg"])

    UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=4,
        attention_head_dim=2,
    ).save_pretrained(f"{folders['sd']}/unet")
    AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=4,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
    ).save_pretrained(f"{folders['sd']}/vae")
    CLIPTextModel(
        CLIPTextConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=8,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    ).save_pretrained(f"{folders['sd']}/text_encoder")
    tiny_clip_tokenizer(8).save_pretrained(f"{folders['sd']}/tokenizer")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(f"{folders['sd']}/scheduler")
    return folders


def noise_frames(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, HEIGHT, WIDTH, 3), dtype=np.uint8)


def box_mask(count: int, top: int = 8, bottom: int = 24, left: int = 8, right: int = 40) -> np.ndarray:
    """A rectangle well inside the frame, away from the border rows where upsampled features repeat."""
    mask = np.zeros((count, HEIGHT, WIDTH), dtype=bool)
    mask[:, top:bottom, left:right] = True
    return mask


def assert_match_conventions(matches: np.ndarray, mask: np.ndarray) -> None:
    """float32 (N,H,W,2); finite exactly on the mask; frame 0 its own positions; matches inside frame 0's subject."""
    assert matches.dtype == np.float32 and matches.shape == (*mask.shape, 2)
    assert np.array_equal(np.isfinite(matches).all(axis=-1), mask)
    assert np.isnan(matches[~mask]).all()
    np.testing.assert_array_equal(matches[0][mask[0]], pixel_grid(HEIGHT, WIDTH)[mask[0]])
    positions = np.rint(matches[mask]).astype(int)
    assert mask[0][positions[:, 1], positions[:, 0]].all()


# ----------------------------------------------------------------------------- matching maths


def test_nearest_neighbours_finds_itself_and_a_permutation_in_any_block_size(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    references = F.normalize(torch.randn(50, 8, generator=generator), dim=1)
    permutation = torch.randperm(50, generator=generator)
    assert torch.equal(learned.nearest_neighbours(references, references), torch.arange(50))
    assert torch.equal(learned.nearest_neighbours(references[permutation], references), permutation)
    monkeypatch.setattr(learned, "SIMILARITY_BLOCK", 120)  # two queries per block
    assert torch.equal(learned.nearest_neighbours(references[permutation], references), permutation)


def neighbourhood_features(frame: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """Shift-equivariant features: each cell's 3x3 neighbourhood of cell-mean colours, unit length."""
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    cells = F.adaptive_avg_pool2d(image, grid)
    patches = F.unfold(F.pad(cells, (1, 1, 1, 1), mode="replicate"), kernel_size=3)
    return F.normalize(patches[0].T.reshape(*grid, -1) - 127.5, dim=-1)


@pytest.mark.parametrize("work_stride", [1, 2])
def test_a_shifted_frame_matches_the_shifted_positions(work_stride):
    shift_x, shift_y = 4, 2
    first = noise_frames(1)[0]
    frames = np.stack([first, np.roll(first, (shift_y, shift_x), axis=(0, 1))])
    mask = box_mask(2)
    mask[1] = np.roll(mask[0], (shift_y, shift_x), axis=(0, 1))

    matches = learned.match_to_first_frame(frames, mask, neighbourhood_features, work_stride)

    assert_match_conventions(matches, mask)
    grid = pixel_grid(HEIGHT, WIDTH)
    source = grid[mask[1]] - (shift_x, shift_y)
    cell_centre = source // work_stride * work_stride + (work_stride - 1) / 2
    np.testing.assert_array_equal(matches[1][mask[1]], cell_centre)


def test_matches_of_a_frame_with_an_empty_mask_are_all_missing():
    frames = noise_frames(2)
    mask = box_mask(2)
    mask[1] = False
    matches = learned.match_to_first_frame(frames, mask, neighbourhood_features, 2)
    assert np.isnan(matches[1]).all()


def test_matching_rejects_an_empty_first_mask_and_a_stride_that_does_not_divide():
    frames = noise_frames(2)
    with pytest.raises(InputError, match="frame 0 is empty"):
        learned.match_to_first_frame(frames, np.zeros((2, HEIGHT, WIDTH), dtype=bool), neighbourhood_features)
    with pytest.raises(InputError, match="work_stride 5"):
        learned.match_to_first_frame(frames, box_mask(2), neighbourhood_features, 5)
    with pytest.raises(InputError, match="mask must be bool"):
        learned.match_to_first_frame(frames, box_mask(3), neighbourhood_features)


def test_sd_dino_fusion_weights_the_two_cosines():
    generator = torch.Generator().manual_seed(0)
    sd_maps = [torch.randn(6, 2, 3, generator=generator), torch.randn(4, 4, 6, generator=generator)]
    dino_map = torch.randn(5, 4, 6, generator=generator)
    grid = (4, 6)
    sd_parts = [F.normalize(F.interpolate(sd_map[None], size=grid, mode="bilinear")[0], dim=0) for sd_map in sd_maps]
    sd = torch.cat(sd_parts) / 2**0.5
    sd = sd.permute(1, 2, 0).reshape(-1, 10)
    dino = F.normalize(dino_map, dim=0).permute(1, 2, 0).reshape(-1, 5)

    for weight in (0.0, 0.5, 0.8, 1.0):
        fused = learned.fuse_sd_dino(sd_maps, dino_map, grid, weight).reshape(-1, 15)
        expected = (weight**2 * sd @ sd.T + (1 - weight) ** 2 * dino @ dino.T) / (weight**2 + (1 - weight) ** 2)
        torch.testing.assert_close(fused @ fused.T, expected)


# ----------------------------------------------------------------------------- tiny models


def test_dinov2_matches_an_identical_frame_to_itself(tiny_models):
    frames = noise_frames(3)
    frames[1] = frames[0]
    mask = box_mask(3)
    mask[2] = box_mask(1, 4, 28, 12, 36)[0]

    matches = learned.dinov2_matches(frames, mask, tiny_models["dinov2"], resolution=WIDTH, work_stride=1)

    assert_match_conventions(matches, mask)
    np.testing.assert_array_equal(matches[1], matches[0])


def test_sd_dino_matches_an_identical_frame_to_itself(tiny_models):
    frames = noise_frames(3, seed=1)
    frames[2] = frames[0]
    mask = box_mask(3)

    matches = learned.sd_dino_matches(
        frames,
        mask,
        tiny_models["dinov2"],
        tiny_models["sd"],
        dino_resolution=WIDTH,
        sd_resolution=WIDTH,
        work_stride=1,
    )

    assert_match_conventions(matches, mask)
    np.testing.assert_array_equal(matches[2], matches[0])


def test_depth_anything_gives_per_frame_depth_at_frame_size(tiny_models):
    frames = noise_frames(2, seed=2)
    depth = learned.depth_anything(frames, tiny_models["depth"])
    assert depth.dtype == np.float32 and depth.shape == (2, HEIGHT, WIDTH)
    assert np.isfinite(depth).all() and depth.std() > 0
    np.testing.assert_array_equal(learned.depth_anything(frames[1:], tiny_models["depth"])[0], depth[1])


def test_segment_class_follows_one_instance_of_the_named_class(tiny_models):
    frames = np.repeat(noise_frames(1, seed=3), 3, axis=0)
    masks = learned.segment_class(frames, "Dog", tiny_models["mask2former"])
    assert masks.dtype == bool and masks.shape == (3, HEIGHT, WIDTH)
    assert masks[0].any() and not masks[0].all()
    assert np.array_equal(masks[1], masks[0]) and np.array_equal(masks[2], masks[0])


def test_segment_class_errors_name_the_class(tiny_models):
    frames = noise_frames(1)
    with pytest.raises(InputError, match="'dgo' is not one of the 4 classes.*close names: dog"):
        learned.segment_class(frames, "dgo", tiny_models["mask2former"])
    with pytest.raises(InputError, match="no 'cat' in frame 0"):
        learned.segment_class(frames, "cat", tiny_models["mask2former"])
    assert learned.class_label_id({0: "person", 1: "teddy bear"}, "Teddy_Bear", "m") == 1


def test_segment_foreground_thresholds_clipseg(tiny_models):
    frames = noise_frames(2, seed=4)
    loose = learned.segment_foreground(frames, "a dog", tiny_models["clipseg"], threshold=0.0)
    strict = learned.segment_foreground(frames, "a dog", tiny_models["clipseg"], threshold=1.0)
    assert loose.dtype == bool and loose.shape == (2, HEIGHT, WIDTH)
    assert loose.all() and not strict.any()
    with pytest.raises(InputError, match="prompt is empty"):
        learned.segment_foreground(frames, " ", tiny_models["clipseg"])


# ----------------------------------------------------------------------------- missing weights


def test_missing_weights_are_input_errors_with_the_fetch_command(tmp_path, monkeypatch):
    assert learned.resolve_weights(str(tmp_path)) == str(tmp_path)
    missing = str(tmp_path / "nowhere")
    with pytest.raises(InputError, match=f"'{missing}': no such folder.*hf download <hub id> --local-dir {missing}"):
        learned.depth_anything(noise_frames(1), missing)

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    assert learned.resolve_weights("vidmp3-tests/not-a-model") == "vidmp3-tests/not-a-model"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError, match="not in the local Hugging Face cache.*`hf download vidmp3-tests/not-a-model`"):
        learned.dinov2_matches(noise_frames(2), box_mask(2), "vidmp3-tests/not-a-model")
    with pytest.raises(InputError, match="hf download vidmp3-tests/no-sd --include 'model_index.json'"):
        learned.load_stable_diffusion("vidmp3-tests/no-sd")
