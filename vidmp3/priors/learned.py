"""Learned prior backends: DINOv2 / SD-DINO correspondence, Mask2Former and CLIPSeg masks, Depth Anything depth.

Every backend loads its weights from a local folder or a Hugging Face hub id (`resolve_weights`),
runs one frame at a time (bounded memory on long clips) on the caller's device and dtype, and
returns plain numpy arrays in the project's conventions:

- correspondence: `matches` float32 (N,H,W,2), the (x, y) pixel position in frame 0 of each subject
  pixel's nearest neighbour among frame 0's subject pixels, NaN outside the mask;
- masks: bool (N,H,W);
- depth: float32 (N,H,W), Depth Anything's raw relative inverse depth (near is large), unnormalised.

Masks of classes outside COCO use CLIPSeg (Lüddecke & Ecker, CVPR 2022), an open-vocabulary segmenter
prompted with the subject's class name: it is native to transformers. The paper's class-agnostic
RMBG-1.4 is not offered: it runs Python shipped in its hub repository (`trust_remote_code`), which
cannot be reviewed or tested here.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import is_offline_mode, snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
from tqdm import tqdm

from vidmp3.errors import InputError
from vidmp3.priors.correspondence import pixel_grid

# Files of a diffusers Stable Diffusion folder that SD-DINO needs (not the safety checker, EMA or fp16 copies).
SD_FILES = (
    "model_index.json",
    "scheduler/*.json",
    "tokenizer/*",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
)
# Bound on the similarity block held at once while matching (elements; 64 MiB in float32).
SIMILARITY_BLOCK = 1 << 24


# ----------------------------------------------------------------------------- weights


def resolve_weights(name: str, include: Sequence[str] = ()) -> str:
    """A local folder, or a hub id that from_pretrained can load now; InputError (with the fetch command) if not.

    A name that is an existing folder is used as it is. Any other name is a hub id: online it is
    left to from_pretrained (which downloads it), offline (HF_HUB_OFFLINE=1) it must already be in
    the local Hugging Face cache. `include` limits the suggested download to the files needed.
    """
    if os.path.isdir(name):
        return name
    patterns = "".join(f" --include '{pattern}'" for pattern in include)
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise InputError(
            f"model weights {name!r}: no such folder (and not a hub id 'owner/name'); "
            f"fetch them with `hf download <hub id>{patterns} --local-dir {name}` or name a hub id"
        )
    if not is_offline_mode():
        return name
    try:
        snapshot_download(repo_id=name, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError) as error:
        raise InputError(
            f"model weights {name!r}: no such folder, and the hub id is not in the local Hugging Face cache "
            f"while HF_HUB_OFFLINE=1; fetch them with `hf download {name}{patterns}`"
        ) from error
    return name


def load_dinov2(model: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """(image processor, Dinov2Model) from a folder or hub id, e.g. facebook/dinov2-base."""
    from transformers import AutoImageProcessor, Dinov2Model

    path = resolve_weights(model)
    return AutoImageProcessor.from_pretrained(path), Dinov2Model.from_pretrained(path, dtype=dtype).to(device)


def load_depth_anything(model: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """(image processor, DepthAnythingForDepthEstimation), e.g. depth-anything/Depth-Anything-V2-Small-hf."""
    from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

    path = resolve_weights(model)
    network = DepthAnythingForDepthEstimation.from_pretrained(path, dtype=dtype).to(device)
    return AutoImageProcessor.from_pretrained(path), network


def load_mask2former(model: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """(image processor, Mask2FormerForUniversalSegmentation), e.g. facebook/mask2former-swin-tiny-coco-instance."""
    from transformers import AutoImageProcessor, Mask2FormerForUniversalSegmentation

    path = resolve_weights(model)
    network = Mask2FormerForUniversalSegmentation.from_pretrained(path, dtype=dtype).to(device)
    return AutoImageProcessor.from_pretrained(path), network


def load_clipseg(model: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """(processor, CLIPSegForImageSegmentation), e.g. CIDAS/clipseg-rd64-refined."""
    from transformers import AutoProcessor, CLIPSegForImageSegmentation

    path = resolve_weights(model)
    network = CLIPSegForImageSegmentation.from_pretrained(path, dtype=dtype).to(device)
    return AutoProcessor.from_pretrained(path), network


@dataclass
class StableDiffusionParts:
    """The parts of a diffusers Stable Diffusion folder that feature extraction runs."""

    vae: torch.nn.Module
    unet: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object


def load_stable_diffusion(model: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> StableDiffusionParts:
    """VAE, UNet, text encoder, tokenizer and DDPM noise schedule of a diffusers folder, e.g. SD 1.5."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    path = resolve_weights(model, include=SD_FILES)
    return StableDiffusionParts(
        vae=AutoencoderKL.from_pretrained(path, subfolder="vae", dtype=dtype).to(device),
        unet=UNet2DConditionModel.from_pretrained(path, subfolder="unet", dtype=dtype).to(device),
        text_encoder=CLIPTextModel.from_pretrained(path, subfolder="text_encoder", dtype=dtype).to(device),
        tokenizer=CLIPTokenizer.from_pretrained(path, subfolder="tokenizer"),
        scheduler=DDPMScheduler.from_pretrained(path, subfolder="scheduler"),
    )


# ----------------------------------------------------------------------------- matching


def _check_frames(frames: np.ndarray) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise InputError(f"frames must be uint8 (N,H,W,3) with N >= 1, got {frames.dtype} {frames.shape}")


def _check_mask(frames: np.ndarray, mask: np.ndarray) -> None:
    _check_frames(frames)
    if mask.dtype != bool or mask.shape != frames.shape[:3]:
        raise InputError(f"mask must be bool {frames.shape[:3]} like the frames, got {mask.dtype} {mask.shape}")
    if not mask[0].any():
        raise InputError("mask of frame 0 is empty: correspondence matches every frame to frame 0's subject")


def nearest_neighbours(queries: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Index (M,) of each query's most similar reference by dot product, in blocks of bounded memory.

    With unit-length rows (M,D) and (K,D) this is cosine-similarity nearest-neighbour matching; ties
    go to the lowest reference index.
    """
    block = max(1, SIMILARITY_BLOCK // max(len(references), 1))
    return torch.cat([(chunk @ references.T).argmax(dim=1) for chunk in queries.split(block)])


def match_to_first_frame(
    frames: np.ndarray,
    mask: np.ndarray,
    features: Callable[[np.ndarray, tuple[int, int]], torch.Tensor],
    work_stride: int = 4,
    desc: str = "matches",
) -> np.ndarray:
    """`matches` (N,H,W,2) of each subject pixel to frame 0, by nearest neighbour of per-cell features.

    The frames are matched on a working grid of `work_stride`-pixel cells: `features(frame, (h, w))`
    returns unit-length features (h, w, D) of one frame on that grid. A cell belongs to the subject
    when any of its pixels does; a matched frame-0 cell stands for the centroid of frame 0's subject
    pixels in it (so a match never lands beside the subject), and every subject pixel of frame t
    takes the match of its cell. Frame 0 matches itself: its matches are its own pixel positions.
    """
    _check_mask(frames, mask)
    count, height, width = mask.shape
    if work_stride < 1 or height % work_stride or width % work_stride:
        raise InputError(f"work_stride {work_stride} must divide the frame size {width}x{height}")
    grid_h, grid_w = height // work_stride, width // work_stride
    cells = mask.reshape(count, grid_h, work_stride, grid_w, work_stride).any(axis=(2, 4)).reshape(count, -1)

    ys, xs = np.nonzero(mask[0])
    cell_of_pixel = (ys // work_stride) * grid_w + xs // work_stride
    pixels_per_cell = np.bincount(cell_of_pixel, minlength=grid_h * grid_w)
    reference_cells = np.flatnonzero(cells[0])
    reference_positions = (
        np.stack(
            [np.bincount(cell_of_pixel, weights=coordinate, minlength=grid_h * grid_w) for coordinate in (xs, ys)],
            axis=-1,
        )[reference_cells]
        / pixels_per_cell[reference_cells, None]
    )
    reference = features(frames[0], (grid_h, grid_w)).reshape(grid_h * grid_w, -1)[reference_cells]

    matches = np.full((count, height, width, 2), np.nan, dtype=np.float32)
    matches[0][mask[0]] = pixel_grid(height, width)[mask[0]]
    for index in tqdm(range(1, count), desc=desc, disable=count < 3):
        query_cells = np.flatnonzero(cells[index])
        if len(query_cells) == 0:
            continue
        query = features(frames[index], (grid_h, grid_w)).reshape(grid_h * grid_w, -1)[query_cells]
        nearest = nearest_neighbours(query, reference).cpu().numpy()
        cell_matches = np.full((grid_h * grid_w, 2), np.nan, dtype=np.float32)
        cell_matches[query_cells] = reference_positions[nearest]
        frame_matches = cell_matches.reshape(grid_h, grid_w, 2).repeat(work_stride, 0).repeat(work_stride, 1)
        frame_matches[~mask[index]] = np.nan
        matches[index] = frame_matches
    return matches


def _input_size(height: int, width: int, long_side: int, multiple: int) -> tuple[int, int]:
    """(h, w) with the frame's aspect, the longer side near `long_side`, both multiples of `multiple`."""
    scale = long_side / max(height, width)
    return (
        max(multiple, round(height * scale / multiple) * multiple),
        max(multiple, round(width * scale / multiple) * multiple),
    )


def _unit_on_grid(feature_map: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(C,h,w) -> unit-length (grid_h, grid_w, C) float32, upsampled bilinearly (pixel centres aligned)."""
    resized = F.interpolate(feature_map[None].float(), size=grid, mode="bilinear", align_corners=False)[0]
    return F.normalize(resized, dim=0).permute(1, 2, 0)


def _dinov2_features(processor, network, resolution: int, frame: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """DINOv2 patch tokens of the last layer on the working grid; the whole frame, no centre crop."""
    patch = network.config.patch_size
    height, width = _input_size(frame.shape[0], frame.shape[1], resolution, patch)
    inputs = processor(images=frame, size={"height": height, "width": width}, do_center_crop=False, return_tensors="pt")
    pixel_values = inputs["pixel_values"].to(device=network.device, dtype=network.dtype)
    tokens = network(pixel_values=pixel_values).last_hidden_state[0, 1:]
    patch_map = tokens.T.reshape(-1, height // patch, width // patch)
    return _unit_on_grid(patch_map, grid)


@torch.inference_mode()
def dinov2_matches(
    frames: np.ndarray,
    mask: np.ndarray,
    model: str,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    resolution: int = 840,
    work_stride: int = 4,
) -> np.ndarray:
    """`matches` (N,H,W,2) by nearest neighbour of DINOv2 features to frame 0 inside the masks.

    `resolution` is the longer side of the DINOv2 input (a multiple of the patch size; 840 as in
    SD-DINO, i.e. 60 patches); features are upsampled bilinearly to the `work_stride` grid.
    """
    processor, network = load_dinov2(model, device, dtype)

    def features(frame: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
        return _dinov2_features(processor, network, resolution, frame, grid)

    return match_to_first_frame(frames, mask, features, work_stride, desc="dinov2 matches")


class StableDiffusionFeatures:
    """UNet decoder features of one frame: the VAE latents, noised to a small timestep, denoised once.

    As in SD-DINO (after ODISE and DIFT): the frame is encoded by the VAE, noise is added at
    `timestep` by the DDPM schedule, and the UNet runs once with the empty prompt; the outputs of
    the up-blocks that end in an upsampler (SD 1.5: 1/32, 1/16 and 1/8 of the input) are the features.
    The noise is drawn once from `seed`, so every frame gets the same noise and identical frames
    get identical features.
    """

    def __init__(self, parts: StableDiffusionParts, resolution: int, timestep: int, seed: int):
        self.parts = parts
        self.resolution = resolution
        self.timestep = torch.tensor([timestep], device=parts.unet.device)
        self.seed = seed
        self.latent_scale = 2 ** (len(parts.vae.config.block_out_channels) - 1)
        self.size_multiple = self.latent_scale * 2 ** (len(parts.unet.config.down_block_types) - 1)
        self.feature_blocks = [block for block in parts.unet.up_blocks if block.upsamplers is not None]
        tokens = parts.tokenizer(
            "", padding="max_length", max_length=parts.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        self.empty_prompt = parts.text_encoder(tokens.input_ids.to(parts.text_encoder.device))[0]
        self.noise = None

    def __call__(self, frame: np.ndarray) -> list[torch.Tensor]:
        """One (C,h,w) map per feature block, lowest resolution first."""
        vae, unet = self.parts.vae, self.parts.unet
        height, width = _input_size(frame.shape[0], frame.shape[1], self.resolution, self.size_multiple)
        image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        image = F.interpolate(image, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
        latents = vae.encode(image.to(device=vae.device, dtype=vae.dtype)).latent_dist.mode()
        latents = latents * vae.config.scaling_factor
        if self.noise is None or self.noise.shape != latents.shape:
            generator = torch.Generator().manual_seed(self.seed)
            self.noise = torch.randn(latents.shape, generator=generator).to(device=latents.device, dtype=latents.dtype)
        noisy = self.parts.scheduler.add_noise(latents, self.noise, self.timestep)

        outputs = []
        hooks = [
            block.register_forward_hook(lambda module, args, output: outputs.append(output)) for block in self.feature_blocks
        ]
        try:
            unet(noisy, self.timestep, encoder_hidden_states=self.empty_prompt)
        finally:
            for hook in hooks:
                hook.remove()
        return [output[0] for output in outputs]


def fuse_sd_dino(
    sd_maps: Sequence[torch.Tensor], dino_map: torch.Tensor, grid: tuple[int, int], sd_weight: float
) -> torch.Tensor:
    """SD-DINO fusion on the working grid: unit-length (h, w, D) of [a * SD, (1 - a) * DINOv2].

    Zhang et al., "A Tale of Two Features: Stable Diffusion Complements DINO for Zero-Shot Semantic
    Correspondence" (NeurIPS 2023), Eq. 1: F = (a ||F_sd||_2, (1 - a) ||F_dino||_2) with a = 0.5,
    each part L2-normalised before concatenation (github.com/Junyi42/sd-dino, pck_spair_pascal.py).
    SD-DINO reduces each of its three UNet feature groups to 256 channels by PCA fitted on the
    image pair; here each group is L2-normalised on its own instead (equal share, no fit across
    frames), so the SD part is their concatenation scaled by 1/sqrt(groups) to unit length.
    """
    sd = torch.cat([_unit_on_grid(sd_map, grid) for sd_map in sd_maps], dim=-1) / len(sd_maps) ** 0.5
    dino = _unit_on_grid(dino_map, grid)
    return F.normalize(torch.cat([sd_weight * sd, (1.0 - sd_weight) * dino], dim=-1), dim=-1)


@torch.inference_mode()
def sd_dino_matches(
    frames: np.ndarray,
    mask: np.ndarray,
    dino_model: str,
    sd_model: str,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    dino_resolution: int = 840,
    sd_resolution: int = 960,
    timestep: int = 100,
    sd_weight: float = 0.5,
    seed: int = 0,
    work_stride: int = 4,
) -> np.ndarray:
    """`matches` (N,H,W,2) by nearest neighbour of fused SD-DINO features to frame 0 inside the masks.

    Defaults follow SD-DINO: DINOv2 input 840 px (longer side), SD input 960 px, timestep 100,
    fusion weight a = 0.5 (see `fuse_sd_dino`). `sd_model` is a diffusers Stable Diffusion folder
    or hub id (VAE, UNet2DConditionModel, CLIP text encoder and tokenizer, scheduler).
    """
    if not 0.0 <= sd_weight <= 1.0:
        raise InputError(f"sd_weight {sd_weight} must lie in [0, 1]")
    processor, network = load_dinov2(dino_model, device, dtype)
    parts = load_stable_diffusion(sd_model, device, dtype)
    stable_diffusion = StableDiffusionFeatures(parts, sd_resolution, timestep, seed)

    def features(frame: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
        dino_map = _dinov2_features(processor, network, dino_resolution, frame, grid).permute(2, 0, 1)
        return fuse_sd_dino(stable_diffusion(frame), dino_map, grid, sd_weight)

    return match_to_first_frame(frames, mask, features, work_stride, desc="sd-dino matches")


# ----------------------------------------------------------------------------- depth


@torch.inference_mode()
def depth_anything(frames: np.ndarray, model: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> np.ndarray:
    """float32 (N,H,W) relative inverse depth (near is large) as Depth Anything outputs it, at frame size."""
    _check_frames(frames)
    processor, network = load_depth_anything(model, device, dtype)
    height, width = frames.shape[1:3]
    depth = np.empty(frames.shape[:3], dtype=np.float32)
    for index, frame in enumerate(tqdm(frames, desc="depth-anything", disable=len(frames) < 3)):
        pixel_values = processor(images=frame, return_tensors="pt")["pixel_values"]
        outputs = network(pixel_values=pixel_values.to(device=network.device, dtype=network.dtype))
        resized = processor.post_process_depth_estimation(outputs, target_sizes=[(height, width)])[0]
        depth[index] = resized["predicted_depth"].float().cpu().numpy()
    return depth


# ----------------------------------------------------------------------------- masks


def class_label_id(id2label: dict[int, str], class_name: str, model: str) -> int:
    """The label id of `class_name` (case and '_' versus ' ' ignored); InputError listing close names if absent."""

    def normal(name: str) -> str:
        return name.strip().lower().replace("_", " ")

    by_name = {normal(label): int(label_id) for label_id, label in id2label.items()}
    if normal(class_name) in by_name:
        return by_name[normal(class_name)]
    close = difflib.get_close_matches(normal(class_name), list(by_name), n=5, cutoff=0.5)
    raise InputError(
        f"class {class_name!r} is not one of the {len(by_name)} classes of segmenter {model!r}"
        + (f"; close names: {', '.join(close)}" if close else "")
        + "; use the foreground segmenter (CLIPSeg) for other classes"
    )


def _iou(first: np.ndarray, second: np.ndarray) -> float:
    union = np.logical_or(first, second).sum()
    return float(np.logical_and(first, second).sum() / union) if union else 0.0


@torch.inference_mode()
def segment_class(
    frames: np.ndarray,
    class_name: str,
    model: str,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    score_threshold: float = 0.5,
) -> np.ndarray:
    """bool (N,H,W): one instance of `class_name` per frame, by a Mask2Former instance segmenter.

    Frame 0 takes the most confident instance of the class; every later frame the instance of the
    class that overlaps most (IoU, then score) with the last chosen mask, so the same object is
    followed through the clip. A frame with no instance of the class above `score_threshold` gets
    an empty mask; frame 0 without one is an InputError.
    """
    from transformers.models.mask2former.modeling_mask2former import Mask2FormerForUniversalSegmentationOutput

    _check_frames(frames)
    processor, network = load_mask2former(model, device, dtype)
    class_id = class_label_id(network.config.id2label, class_name, model)
    height, width = frames.shape[1:3]
    masks = np.zeros(frames.shape[:3], dtype=bool)
    previous = None
    for index, frame in enumerate(tqdm(frames, desc=f"segment {class_name}", disable=len(frames) < 3)):
        pixel_values = processor(images=frame, return_tensors="pt")["pixel_values"]
        outputs = network(pixel_values=pixel_values.to(device=network.device, dtype=network.dtype))
        logits = Mask2FormerForUniversalSegmentationOutput(
            class_queries_logits=outputs.class_queries_logits.float().cpu(),
            masks_queries_logits=outputs.masks_queries_logits.float().cpu(),
        )
        result = processor.post_process_instance_segmentation(
            logits, threshold=score_threshold, target_sizes=[(height, width)], return_binary_maps=True
        )[0]
        candidates = [
            (segment["score"], result["segmentation"][position].numpy().astype(bool))
            for position, segment in enumerate(result["segments_info"])
            if segment["label_id"] == class_id
        ]
        if not candidates:
            if index == 0:
                raise InputError(f"segmenter {model!r} finds no {class_name!r} in frame 0 (score threshold {score_threshold})")
            continue
        if previous is None:
            chosen = max(candidates, key=lambda candidate: candidate[0])[1]
        else:
            chosen = max(candidates, key=lambda candidate: (_iou(candidate[1], previous), candidate[0]))[1]
        masks[index] = chosen
        previous = chosen
    return masks


@torch.inference_mode()
def segment_foreground(
    frames: np.ndarray,
    prompt: str,
    model: str,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    threshold: float = 0.5,
) -> np.ndarray:
    """bool (N,H,W): where CLIPSeg, prompted with `prompt` (the subject's class name), exceeds `threshold`.

    CLIPSeg's logits (at its 352 px input) are upsampled bilinearly to the frame before the sigmoid.
    """
    _check_frames(frames)
    if not prompt.strip():
        raise InputError("foreground prompt is empty: CLIPSeg needs the subject's class name")
    processor, network = load_clipseg(model, device, dtype)
    height, width = frames.shape[1:3]
    masks = np.zeros(frames.shape[:3], dtype=bool)
    for index, frame in enumerate(tqdm(frames, desc=f"segment {prompt}", disable=len(frames) < 3)):
        inputs = processor(text=[prompt], images=[frame], padding=True, return_tensors="pt")
        logits = network(
            input_ids=inputs["input_ids"].to(network.device),
            attention_mask=inputs["attention_mask"].to(network.device),
            pixel_values=inputs["pixel_values"].to(device=network.device, dtype=network.dtype),
        ).logits
        logits = logits.reshape(1, 1, *logits.shape[-2:]).float()
        resized = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        masks[index] = (resized.sigmoid() > threshold).cpu().numpy()
    return masks
