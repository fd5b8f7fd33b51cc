"""Stage 3: float16 copies of the image model and the motion adapter in the preset layout, with a model card."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from diffusers import MotionAdapter, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.toyworld.pretrain.training import versions

BASE_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path} is missing (is {path.parent} a finished pretraining folder?)")
    return json.loads(path.read_text())


def _model_card(record: dict) -> str:
    image, motion, classifier = record["image"], record["motion"], record["classifier"]["accuracy"]

    def percent(value) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    def held_out(split: str) -> str:
        return percent(classifier.get(split, {}).get("both"))

    image_samples, motion_samples = image["samples"], motion["samples"]
    return f"""# ToyWorld weights

Miniature text-to-video weights for the ToyWorld benchmark and demo: the same classes as the SD-1.5 +
AnimateDiff presets (`UNet2DConditionModel`, `CLIPTextModel`, `MotionAdapter`), trained from scratch
by the project on its own renders of four shapes (cube, sphere, cone, cylinder) in four colours (red,
green, blue, yellow) at 32x32 pixels, captions like "a red cube". The `vae` is `PixelUnshuffleCodec`
(2x2 pixel unshuffle, no weights); the UNet predicts the clean latent (`prediction_type: sample`).
`classifier/` names the shape and colour of a frame (`vidmp3.toyworld.classifier`). Weights are
stored in float16. Rebuild them from scratch with `make toyworld-weights`.

| part | training | seconds |
| --- | --- | --- |
| base (unet, text_encoder) | {image["settings"]["steps"]} steps of {image["settings"]["batch_size"]} images from {image["settings"]["images"]} renders, seed {image["settings"]["seed"]} | {image["seconds"]} ({image["threads"]} threads) |
| motion_adapter | {motion["settings"]["steps"]} steps of {motion["settings"]["batch_size"]} 8-frame clips from {motion["settings"]["clips"]} renders, seed {motion["settings"]["seed"]} | {motion["seconds"]} ({motion["threads"]} threads) |
| classifier | {classifier.get("steps")} steps, seed {classifier.get("seed")} | {classifier.get("train_seconds")} |

Pretraining data used seeds below {image["held_out_seed"]}; benchmark and demo clips use seeds from it up.

Quality when trained (DDIM {image_samples["sample_steps"]} steps, guidance {image_samples["guidance_scale"]}, judged by `classifier/`):
- images: right shape {percent(image_samples.get("shape_accuracy"))}, colour {percent(image_samples.get("colour_accuracy"))},
  both {percent(image_samples.get("both_accuracy"))} of {image_samples["samples"]} samples ({image["settings"]["samples_per_caption"]} per caption).
- clips sampled from noise ({motion_samples["clips"]}): both right in {percent(motion_samples.get("both_accuracy"))} of frames;
  mean frame-to-frame change {motion_samples["sampled"]["frame_step_l1"]:.4f} (rendered clips {motion_samples["rendered"]["frame_step_l1"]:.4f}),
  centroid travel {motion_samples["sampled"]["centroid_travel"]:.3f} of the width (rendered {motion_samples["rendered"]["centroid_travel"]:.3f}).
- classifier, both right on held-out renders: stills {held_out("stills")}, clip frames {held_out("clip_frames")}.

`pretrain.json` holds every setting, step count, timing and library version. These weights know only
ToyWorld: they draw nothing but the 16 captions' subjects on the ToyWorld backdrop.
"""


def _half_safetensors(source: Path, target: Path) -> None:
    tensors = load_file(source)
    save_file({name: tensor.half() if tensor.is_floating_point() else tensor for name, tensor in tensors.items()}, target)


def export_weights(
    image_dir: str | os.PathLike,
    motion_dir: str | os.PathLike,
    classifier_dir: str | os.PathLike,
    shipped_dir: str | os.PathLike,
) -> None:
    """float16 copies of the pretrained ToyWorld models in the preset layout, written to `shipped_dir`
    (atomically): base/{unet,vae,text_encoder,tokenizer,scheduler}/, motion_adapter/, classifier/,
    pretrain.json (each stage's settings, seeds, step counts, timing, versions, sample quality) and MODEL_CARD.md."""
    image_dir, motion_dir, classifier_dir = Path(image_dir), Path(motion_dir), Path(classifier_dir)
    base = image_dir / "base"
    for folder in [base / component for component in BASE_COMPONENTS] + [motion_dir / "motion_adapter"]:
        if not folder.is_dir():
            raise InputError(f"toyworld export: {folder} is missing (run the pretraining stages first)")
    if not (classifier_dir / "model.safetensors").is_file():
        raise InputError(f"toyworld export: {classifier_dir}/model.safetensors is missing (train the classifier first)")
    record = {
        "image": _read_json(image_dir / "pretrain.json"),
        "motion": _read_json(motion_dir / "pretrain.json"),
        "classifier": {
            "config": _read_json(classifier_dir / "config.json"),
            "accuracy": _read_json(classifier_dir / "accuracy.json"),
        },
        "export": {"dtype": "float16", "versions": versions()},
    }
    with atomic_path(shipped_dir) as tmp:
        unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", use_safetensors=True)
        unet.half().save_pretrained(tmp / "base" / "unet")
        text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", use_safetensors=True)
        text_encoder.half().save_pretrained(tmp / "base" / "text_encoder")
        for component in ("vae", "tokenizer", "scheduler"):
            shutil.copytree(base / component, tmp / "base" / component)
        adapter = MotionAdapter.from_pretrained(motion_dir / "motion_adapter", use_safetensors=True)
        adapter.half().save_pretrained(tmp / "motion_adapter")
        (tmp / "classifier").mkdir()
        _half_safetensors(classifier_dir / "model.safetensors", tmp / "classifier" / "model.safetensors")
        for name in ("config.json", "accuracy.json"):
            shutil.copy2(classifier_dir / name, tmp / "classifier" / name)
        (tmp / "pretrain.json").write_text(json.dumps(record, indent=2))
        (tmp / "MODEL_CARD.md").write_text(_model_card(record))
