"""Memory of one full-size fine-tune step, counted on the meta device: `python benchmarks/memory_count.py`.

Per model (SD-1.5 + AnimateDiff v1-5 at 16x512x512, SDXL + AnimateDiff sdxl-beta at 16x1024x1024 by
default) and gradient checkpointing setting (none, diffusers' own, vidmp3's that also covers the motion
modules): the activations a bf16 step keeps for backward (`vidmp3.model.costs.SavedTensorCounter`;
MotionGuide's own activations not included), the weight states (frozen bf16; trainable fp32 with
gradients and Adam's moments) and their sum against a 24 GiB card. Counted, not measured: no CUDA
context, allocator slack or backward temporaries are included. Seconds on a CPU, no weights needed.
"""

from __future__ import annotations

import argparse

import torch

from vidmp3.model import full_size
from vidmp3.model.costs import CHECKPOINTING, GiB, finetune_weight_bytes, unet_step_activation_bytes
from vidmp3.model.video_unet import build_video_unet, motion_widths, set_trainable
from vidmp3.motionguide import MotionGuide

TEXT_WIDTH = {"sd15": 768, "sdxl": 2048}
NATIVE_SIZE = {"sd15": 512, "sdxl": 1024}


def sdxl_conditions(device: str) -> dict[str, torch.Tensor]:
    return {"text_embeds": torch.zeros(1, 1280, device=device), "time_ids": torch.zeros(1, 6, device=device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="sd15,sdxl")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--method", default="vidmp3")
    args = parser.parse_args()
    rows = []
    for family in args.families.split(","):
        size = NATIVE_SIZE[family]
        for setting in CHECKPOINTING:
            with torch.device("meta"):
                unet = build_video_unet(full_size.unet2d(family), full_size.motion_adapter(family)).to(torch.bfloat16)
                motion_guide = MotionGuide(widths=motion_widths(unet))
            text = torch.zeros(1, full_size.MAX_TOKENS, TEXT_WIDTH[family], device="meta")
            added = sdxl_conditions("meta") if family == "sdxl" else None
            activations = unet_step_activation_bytes(
                unet, args.method, args.frames, size // 8, size // 8, text, setting, added_cond_kwargs=added
            )
            extra = sum(p.numel() for p in motion_guide.parameters())
            weights = sum(finetune_weight_bytes(unet, set_trainable(unet, args.method), extra).values())
            total = activations + weights
            rows.append(
                [
                    family,
                    f"{args.frames}x{size}x{size}",
                    setting,
                    f"{activations / GiB:.2f}",
                    f"{weights / GiB:.2f}",
                    f"{total / GiB:.2f}",
                    "yes" if total < 24 * GiB else "no",
                ]
            )
    headers = ["model", "clip", "checkpointing", "activations GiB", "weights GiB", "sum GiB", "< 24 GiB"]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for line in [headers, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))


if __name__ == "__main__":
    main()
