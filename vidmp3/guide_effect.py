"""Does the fine-tuned MotionGuide do anything? A per-layer diagnostic written next to the weights.

After fine-tuning, on the training clip noised at a few timesteps, every temporal attention layer
reports two numbers:

- guide_ratio = lambda * ||phi|| / ||z||: the size of what the MotionGuide adds to the layer's value
  input relative to the input itself (Frobenius norms over the layer's tokens, phi broadcast or per
  pixel as injected). Zero-initialised heads start at exactly 0.
- output_change = ||out(z; phi) - out(z; 0)|| / ||out(z; 0)||: how much the layer's output changes
  when the guide is switched off for the same input z.

Both near 0 (say below 1e-2) mean the MotionGuide barely reaches the model, whatever the loss says:
that is what ToyWorld showed for the paper's settings (issue 14), and what a run on SD-1.5 can check.
"""

from __future__ import annotations

import csv
import json
from contextlib import ExitStack, nullcontext
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, UNetMotionModel
from matplotlib.figure import Figure

from vidmp3.model.processors import GuideKey, MotionGuideValueProcessor, VideoAttention
from vidmp3.model.video_unet import attention_layers

TIMESTEP_FRACTIONS = (0.1, 0.5, 0.9)
"""Where on the noise schedule the diagnostic looks: near-clean, middle, near-noise."""

COLUMNS = ("layer", "timestep", "guide_ratio", "output_change")


def _norm(tensor: torch.Tensor) -> float:
    return float(tensor.float().norm())


@torch.no_grad()
def measure_guide_effect(
    unet: UNetMotionModel,
    attention: VideoAttention,
    vectors: dict[GuideKey, torch.Tensor],
    guide_strength: float,
    latents: torch.Tensor,
    unet_kwargs: dict,
    scheduler: DDPMScheduler,
    seed: int,
    autocast_dtype: torch.dtype | None = None,
) -> list[dict]:
    """One row per (temporal layer, timestep): guide_ratio and output_change (module docstring).

    `attention` is the UNet's installed video attention with value injection; `latents` (1, C, N, h, w)
    the training clip's; `unet_kwargs` its text conditioning for N frames."""
    num_frames = latents.shape[2]
    generator = torch.Generator().manual_seed(seed)
    _, temporal = attention_layers(unet)
    current: dict[str, tuple[float, float]] = {}

    def hook(name):
        def record(module, args, kwargs, output):
            processor = module.processor
            if not isinstance(processor, MotionGuideValueProcessor):
                raise RuntimeError(f"{name}: the MotionGuide value processor is not installed")
            hidden_states = args[0] if args else kwargs["hidden_states"]
            injection = processor.injection(hidden_states)
            if injection is None:
                current[name] = (0.0, 0.0)
                return
            scale = attention.state.guide_strength
            attention.state.guide_strength = 0.0
            try:
                without = processor(module, hidden_states)
            finally:
                attention.state.guide_strength = scale
            ratio = _norm(torch.broadcast_to(injection, hidden_states.shape)) / max(_norm(hidden_states), 1e-12)
            current[name] = (ratio, _norm(output - without) / max(_norm(without), 1e-12))

        return record

    rows = []
    with ExitStack() as hooks:
        for name, attn in temporal.items():
            handle = attn.register_forward_hook(hook(name), with_kwargs=True)
            hooks.callback(handle.remove)
        for fraction in TIMESTEP_FRACTIONS:
            timestep = torch.tensor([int(fraction * (scheduler.config.num_train_timesteps - 1))], device=latents.device)
            noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
            noisy = scheduler.add_noise(latents, noise, timestep)
            current.clear()
            autocast = torch.autocast(latents.device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
            with attention.frames(num_frames, vectors, guide_strength), autocast:
                unet(noisy, timestep, **unet_kwargs)
            for name in temporal:
                ratio, change = current[name]
                rows.append({"layer": name, "timestep": int(timestep.item()), "guide_ratio": ratio, "output_change": change})
    return rows


def write_guide_effect(folder: str | Path, rows: list[dict], title: str) -> None:
    """guide_effect.csv (every row), guide_effect.json (per layer: mean and max over timesteps) and guide_effect.png."""
    folder = Path(folder)
    with open(folder / "guide_effect.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    layers = list(dict.fromkeys(row["layer"] for row in rows))
    summary = {}
    for layer in layers:
        mine = [row for row in rows if row["layer"] == layer]
        summary[layer] = {
            f"{column}_{statistic}": float(function([row[column] for row in mine]))
            for column in ("guide_ratio", "output_change")
            for statistic, function in (("mean", np.mean), ("max", np.max))
        }
    timesteps = sorted({row["timestep"] for row in rows})
    (folder / "guide_effect.json").write_text(json.dumps({"timesteps": timesteps, "layers": summary}, indent=2))

    figure = Figure(figsize=(7, 1.2 + 0.28 * len(layers)))
    axes = figure.subplots(1, 2, sharey=True)
    positions = np.arange(len(layers))
    for panel, column, label in ((0, "guide_ratio", "λ·‖φ‖/‖z‖"), (1, "output_change", "output change with vs without guide")):
        for offset, timestep in enumerate(timesteps):
            values = [next(r[column] for r in rows if r["layer"] == layer and r["timestep"] == timestep) for layer in layers]
            height = 0.8 / len(timesteps)
            axes[panel].barh(positions - 0.4 + height * (offset + 0.5), values, height=height, label=f"t={timestep}")
        axes[panel].set_xscale("symlog", linthresh=1e-4)
        axes[panel].set_xlabel(label, fontsize=8)
    names = [layer.replace(".motion_modules", "").replace("transformer_blocks.", "") for layer in layers]
    axes[0].set_yticks(positions, names, fontsize=6)
    axes[1].legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(folder / "guide_effect.png", dpi=100)
