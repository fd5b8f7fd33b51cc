"""What a model preset names and what its folders must hold, checked without torch.

The workflow checks a configuration's video model here while it plans the first model stage,
before any job runs (folders, files, the UNet's and motion adapter's shapes, clip lengths), by
reading `config.json` files only; `vidmp3.model.presets` loads the same folders.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from vidmp3.errors import InputError

TINY_FAMILIES = {"tiny": "sd15", "tiny-sdxl": "sdxl"}
"""The presets the workflow builds itself (random weights, `vidmp3.model.tiny`), and their family."""


@dataclass(frozen=True)
class Preset:
    family: str  # "sd15" or "sdxl"
    base: str | None  # hub id; None for a tiny preset (built locally)
    motion_adapter: str | None


TOYWORLD_WEIGHTS = Path(__file__).resolve().parent.parent / "toyworld" / "weights"
"""ToyWorld's pretrained weights, shipped with the package (rebuilt by `make toyworld-weights`)."""

PRESETS = {
    "tiny": Preset("sd15", None, None),
    "tiny-sdxl": Preset("sdxl", None, None),
    "toyworld": Preset("sd15", str(TOYWORLD_WEIGHTS / "base"), str(TOYWORLD_WEIGHTS / "motion_adapter")),
    "sd15": Preset("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "guoyww/animatediff-motion-adapter-v1-5"),
    "sdxl": Preset("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "guoyww/animatediff-motion-adapter-sdxl-beta"),
}

BASE_COMPONENTS = {
    "sd15": ("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
    "sdxl": ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"),
}
"""Subfolders of a base model, per family."""

_REQUIRED_FILES = {
    "unet": ("config.json", "*.safetensors"),
    "vae": ("config.json", "*.safetensors"),
    "text_encoder": ("config.json", "*.safetensors"),
    "text_encoder_2": ("config.json", "*.safetensors"),
    "tokenizer": ("tokenizer_config.json",),
    "tokenizer_2": ("tokenizer_config.json",),
    "scheduler": ("scheduler_config.json",),
    "motion_adapter": ("config.json", "*.safetensors"),
}

CODEC_NAMES = ("AutoencoderKL", "PixelUnshuffleCodec")
"""What a base model's `vae/` may hold (its config's `_class_name`): a VAE, or ToyWorld's exact codec."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSpec:
    """A resolved preset: what to load, and how to fetch it when it is missing."""

    preset: str
    family: str
    base: str  # hub id or local folder
    motion_adapter: str  # hub id or local folder

    def fetch_command(self, component: str) -> str:
        """The command that puts `component` ("base" or "motion_adapter") where loading looks for it."""
        source = getattr(self, component)
        if self.preset in TINY_FAMILIES:
            return f"snakemake --cores 1 {Path(source).parent}"
        if self.preset == "toyworld" and source == getattr(PRESETS["toyworld"], component):
            return "make toyworld-weights"
        if _HUB_ID.match(source) and not Path(source).exists():
            if component == "base":
                includes = " ".join(f'--include "{name}/*"' for name in BASE_COMPONENTS[self.family])
                return f'hf download {source} {includes} --exclude "*.bin" --exclude "*.ckpt" --exclude "*fp16*"'
            return f'hf download {source} --include "*.json" --include "*.safetensors" --exclude "*fp16*"'
        return f"copy a diffusers-format {component} folder to {source}"


def model_spec(
    preset: str,
    base: str | None = None,
    motion_adapter: str | None = None,
    tiny_dir: str | os.PathLike = "results/models",
) -> ModelSpec:
    """Resolve a preset name (plus optional overrides of its base and motion adapter) to a ModelSpec.

    Tiny presets live at `{tiny_dir}/{preset}/base` and `{tiny_dir}/{preset}/motion_adapter`.
    Raises InputError for an unknown preset, so the workflow can check it at parse time.
    """
    if preset not in PRESETS:
        raise InputError(f"model preset {preset!r} is unknown; expected one of {sorted(PRESETS)}")
    entry = PRESETS[preset]
    if preset in TINY_FAMILIES:
        if base is not None or motion_adapter is not None:
            raise InputError(f"model preset {preset!r} is built by the workflow; it takes no base or motion_adapter")
        return ModelSpec(
            preset=preset,
            family=entry.family,
            base=str(Path(tiny_dir) / preset / "base"),
            motion_adapter=str(Path(tiny_dir) / preset / "motion_adapter"),
        )
    return ModelSpec(
        preset=preset,
        family=entry.family,
        base=base if base is not None else entry.base,
        motion_adapter=motion_adapter if motion_adapter is not None else entry.motion_adapter,
    )


def resolve_folder(spec: ModelSpec, component: str) -> Path:
    """The local folder of a component: the folder itself, or the cached hub snapshot."""
    source = getattr(spec, component)
    if Path(source).is_dir():
        return Path(source)
    if spec.preset not in TINY_FAMILIES and _HUB_ID.match(source):
        try:
            return Path(snapshot_download(source, local_files_only=True))
        except LocalEntryNotFoundError:
            raise InputError(
                f"model {component} {source!r} is not in the local Hugging Face cache; "
                f"fetch it with: {spec.fetch_command(component)}"
            ) from None
    raise InputError(f"model {component} folder {source} does not exist; get it with: {spec.fetch_command(component)}")


def _check_files(spec: ModelSpec, component: str, path: Path, kind: str, patterns: tuple[str, ...] | None = None) -> None:
    """Fail before loading when a component's config or safetensors weights (or `patterns`) are missing."""
    for pattern in patterns or _REQUIRED_FILES[kind]:
        if not any(path.glob(pattern)):
            raise InputError(
                f"model {component}: {path} has no {pattern} (missing or incomplete {kind}); "
                f"fetch it with: {spec.fetch_command(component)}"
            )


def codec_name(spec: ModelSpec, vae_folder: Path) -> str:
    """The class named by `vae/config.json`."""
    name = json.loads((vae_folder / "config.json").read_text()).get("_class_name")
    if name not in CODEC_NAMES:
        raise InputError(f"model base {spec.base}: vae/config.json names class {name!r}; expected one of {sorted(CODEC_NAMES)}")
    return name


def check_model_files(spec: ModelSpec) -> tuple[Path, Path]:
    """Resolve and check every component of `spec`; return the base and motion adapter folders."""
    base = resolve_folder(spec, "base")
    for subfolder in BASE_COMPONENTS[spec.family]:
        if subfolder == "vae":
            _check_files(spec, "base", base / "vae", "vae", patterns=("config.json",))
            if codec_name(spec, base / "vae") == "PixelUnshuffleCodec":
                continue  # no weights
        _check_files(spec, "base", base / subfolder, subfolder)
    adapter = resolve_folder(spec, "motion_adapter")
    _check_files(spec, "motion_adapter", adapter, "motion_adapter")
    return base, adapter


def _per_block(value: int | list[int], blocks: int) -> list[int]:
    return [value] * blocks if isinstance(value, int) else list(value)


def check_video_layout(unet: Mapping[str, Any], motion_adapter: Mapping[str, Any], where: str) -> None:
    """A motion adapter fits a 2D UNet when their block channels and layers per block agree (the
    configs, as dicts or diffusers FrozenDicts); else InputError naming both."""
    adapter_channels = list(motion_adapter["block_out_channels"])
    if adapter_channels != list(unet["block_out_channels"]):
        raise InputError(
            f"{where}: its block channels {adapter_channels} do not match the UNet's {list(unet['block_out_channels'])}"
        )
    blocks = len(unet["down_block_types"])
    unet_layers = _per_block(unet["layers_per_block"], blocks)
    adapter_layers = _per_block(motion_adapter["motion_layers_per_block"], blocks)
    if unet_layers != adapter_layers:
        raise InputError(
            f"{where}: its motion layers per block {adapter_layers} do not match the UNet's layers per block {unet_layers}"
        )


def check_video_model(spec: ModelSpec, clip_frames: Mapping[str, int], window_frames: int) -> None:
    """Everything about the video model that can be known before a job runs: its folders and files
    (a hub id must be in the local cache), the UNet's family, the adapter's fit, and that no clip's
    temporal window (`window: frames`, or the whole clip when shorter; video id -> frames) is longer
    than the motion adapter's `motion_max_seq_length`."""
    base, adapter = check_model_files(spec)
    unet = json.loads((base / "unet" / "config.json").read_text())
    motion_adapter = json.loads((adapter / "config.json").read_text())
    if (unet.get("addition_embed_type") == "text_time") != (spec.family == "sdxl"):
        raise InputError(f"model base {spec.base}: its UNet is not {spec.family}-shaped (preset {spec.preset!r})")
    check_video_layout(unet, motion_adapter, where=f"model motion_adapter {spec.motion_adapter}")
    longest = motion_adapter.get("motion_max_seq_length", 32)
    too_long = {video: frames for video, frames in clip_frames.items() if min(frames, window_frames) > longest}
    if too_long:
        videos = ", ".join(f"video {video}: frames {frames}" for video, frames in sorted(too_long.items()))
        raise InputError(
            f"{videos}: a window of {window_frames} frames is more than the motion adapter {spec.motion_adapter} "
            f"takes (motion_max_seq_length {longest}); fix: set window: frames to at most {longest}"
        )
