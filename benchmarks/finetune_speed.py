"""Time fine-tuning: `python benchmarks/finetune_speed.py` prints a table.

Default: the tiny preset, 16 frames at 64x64, 100 steps, on the CPU. Each case runs twice (1 step and
all steps), so setup (loading, VAE and text encoding) and seconds per step are separated without
timing code in the library. `--preset sd15 --device cuda --size 512` times full-size SD-1.5 +
AnimateDiff v1-5 shapes; when those weights are not in the local cache, random weights of the same
shapes are built in a temporary folder by `vidmp3.model.full_size.build_random_sd15` (timing only,
the loss means nothing then).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vidmp3.errors import InputError
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.model.full_size import build_random_sd15
from vidmp3.model.presets import ModelSpec, check_model_files, model_spec
from vidmp3.model.tiny import build_tiny
from vidmp3.methods import get_method
from vidmp3.motionguide import MotionGuide


def resolve_spec(preset: str, workdir: Path) -> tuple[ModelSpec, str]:
    if preset in ("tiny", "tiny-sdxl"):
        build_tiny(preset, workdir / preset)
        return model_spec(preset, tiny_dir=workdir), "built (seed 0)"
    spec = model_spec(preset)
    try:
        check_model_files(spec)
        return spec, "cached weights"
    except InputError:
        if preset != "sd15":
            raise
        folder = workdir / "random-sd15"
        build_random_sd15(folder, torch.float32, "cpu")
        spec = model_spec("sd15", base=str(folder / "base"), motion_adapter=str(folder / "motion_adapter"))
        return spec, "random weights, real shapes"


def synthetic_video(num_frames: int, size: int, variant: str | None):
    """Random frames and a square subject moving right; guide non-zero exactly on the subject."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (num_frames, size, size, 3), dtype=np.uint8)
    if variant is None:
        return frames, None, None
    side = size // 2
    guide = np.zeros((num_frames, MotionGuide.in_channels(variant), size, size), np.float32)
    for t in range(num_frames):
        left = (t * size // (4 * num_frames)) + size // 8
        subject = rng.uniform(0.1, 1.0, (guide.shape[1], side, side))
        guide[t, :, size // 4 : size // 4 + side, left : left + side] = subject
    alpha = np.full(num_frames, side * side / size**2, np.float32)
    return frames, guide, alpha


def timed_run(video, spec: ModelSpec, config: FinetuneConfig, out: Path) -> float:
    start = time.perf_counter()
    finetune(*video, "a cube moving over a field", spec, config, out)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "tiny-sdxl", "sd15"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--methods", default="vidmp3", help="comma-separated methods")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="frame height and width, a multiple of 8")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--motion-guide-hidden", type=int, default=FinetuneConfig.motion_guide_hidden)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        spec, source = resolve_spec(args.preset, workdir)
        print(f"preset {args.preset} ({source}); torch threads {torch.get_num_threads()}")
        header = (
            f"{'method':>15} {'device':>6} {'prec':>5} {'frames':>6} {'size':>7} {'hidden':>6} {'ckpt':>4} "
            f"{'steps':>5} {'setup s':>8} {'s/step':>7} {'total s':>8}"
        )
        print(header)
        for method in args.methods.split(","):
            video = synthetic_video(args.frames, args.size, get_method(method).guide_variant)
            config = FinetuneConfig(
                method=method,
                steps=args.steps,
                device=args.device,
                precision=args.precision,
                gradient_checkpointing=args.gradient_checkpointing,
                motion_guide_hidden=args.motion_guide_hidden,
            )
            one_step = timed_run(video, spec, replace(config, steps=1), workdir / f"{method}-1")
            total = timed_run(video, spec, config, workdir / f"{method}-all")
            per_step = (total - one_step) / max(args.steps - 1, 1)
            setup = one_step - per_step
            size = f"{args.size}x{args.size}"
            print(
                f"{method:>15} {args.device:>6} {args.precision:>5} {args.frames:>6} {size:>7} "
                f"{args.motion_guide_hidden:>6} {'yes' if args.gradient_checkpointing else 'no':>4} "
                f"{args.steps:>5} {setup:>8.2f} {per_step:>7.3f} {total:>8.2f}"
            )


if __name__ == "__main__":
    main()
