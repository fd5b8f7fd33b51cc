"""The GPU fast path, end to end: `python benchmarks/gpu.py` prints one table.

One video with N edits through the package's in-process API (`load_components`, `finetune`,
`load_video_model`, `invert_frames`, `sample_edit`), on random weights of the real SD-1.5 +
AnimateDiff v1-5 shapes built locally (`vidmp3.model.full_size.build_random_sd15`, bf16, in a
temporary folder; nothing is downloaded). Per stage: seconds, seconds per step, the FLOP floor
(counted on the meta device by `vidmp3.model.costs.unet_flops` for this model, frame count and size:
19.63 TFLOP per UNet forward and 43.03 per fine-tune step at 16x512x512) and MFU against
`--peak-tflops` (989: H100/H200 dense bf16; 312: A100), peak GPU memory, and whether the fine-tune
fits a 24 GiB card (`torch.cuda.set_per_process_memory_fraction`; on a CPU, the meta-device count).

    python benchmarks/gpu.py                       # 16x512x512: fine-tune 100, invert 50, 6 edits x 50 with CFG
    python benchmarks/gpu.py --tiny --device cpu   # the tiny preset's shapes, 4x64x64, 2 steps (tests run this)

The floor counts the UNet only (not the VAE or text encoder). Fine-tuning runs twice, all steps and then 1
step, so its setup and seconds per step are told apart without timing code in the library (as in
`finetune_speed.py`; one-time costs fall in the long run, so s/step errs high); inversion and edits include encoding and decoding, and the end-to-end row
(fine-tune, load, invert, edits) includes every load, so their MFU is a lower bound. Imports only torch, diffusers, transformers and the
vidmp3 modules of that path (no snakemake, zarr or av); tabulate when it is installed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vidmp3.editing import SourcePriors, invert_frames, load_video_model, sample_edit
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.model import full_size
from vidmp3.model.costs import GiB, finetune_weight_bytes, unet_flops, unet_step_activation_bytes
from vidmp3.model.presets import ModelSpec, load_components, model_spec
from vidmp3.model import tiny
from vidmp3.model.video_unet import build_video_unet, motion_widths, set_trainable
from vidmp3.motionguide import MotionGuide, guide_input

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
PRECISION = {torch.bfloat16: "bf16", torch.float32: "fp32"}
FIT_BYTES = 24 * GiB
FIT_STEPS = 3
METHOD = "vidmp3"
PROMPT = "a silver jeep driving down a road"
EDITS = ["a red bulldog", "a yellow taxi", "a white horse", "a green tractor", "a blue bicycle", "a pink flamingo"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny preset's shapes at 4x64x64, 2 steps per stage, 2 edits")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="default: bfloat16 on CUDA, float32 on a CPU")
    parser.add_argument("--frames", type=int)
    parser.add_argument("--size", type=int, help="frame height and width (multiple of 8)")
    parser.add_argument("--finetune-steps", type=int)
    parser.add_argument("--steps", type=int, help="DDIM steps of the inversion and of each edit")
    parser.add_argument("--edits", type=int, help=f"edits of the video (at most {len(EDITS)})")
    parser.add_argument("--guidance-scale", type=float, default=7.5)
    parser.add_argument(
        "--no-gradient-checkpointing", action="store_true", help="fine-tune without it (faster, about 20 GiB more)"
    )
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="989: H100/H200 dense bf16; 312: A100")
    args = parser.parse_args(argv)
    small = {"frames": 4, "size": 64, "finetune_steps": 2, "steps": 2, "edits": 2}
    full = {"frames": 16, "size": 512, "finetune_steps": 100, "steps": 50, "edits": 6}
    for name, value in (small if args.tiny else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.dtype is None:
        args.dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    if not 1 <= args.edits <= len(EDITS):
        parser.error(f"--edits must be 1 to {len(EDITS)}")
    return args


class Clock:
    """Wall seconds and peak GPU memory of one stage (the GPU synchronised at both ends)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self) -> Clock:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start
        self.peak = torch.cuda.max_memory_allocated() / GiB if self.cuda else None


def synthetic_video(frames: int, size: int) -> tuple[np.ndarray, SourcePriors]:
    """Random frames and priors of a subject covering the central quarter (what MotionGuide reads)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    inside = np.zeros((frames, size, size), dtype=bool)
    inside[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
    corr = rng.uniform(0.05, 1, (frames, size, size, 3)).astype(np.float32) * inside[..., None]
    depth = rng.uniform(0.1, 1, (frames, size, size)).astype(np.float32) * inside
    return pixels, SourcePriors(corr, depth, inside.mean(axis=(1, 2)).astype(np.float32))


def meta_counts(tiny_shapes: bool, frames: int, size: int, checkpointing: str) -> dict[str, float]:
    """FLOP floors (TFLOP) and the 24 GiB fit (GiB) of this model and size, counted on the meta device."""
    latent = size // 8
    with torch.device("meta"):
        if tiny_shapes:
            unet = build_video_unet(tiny.tiny_unet2d("sd15"), tiny.tiny_motion_adapter("sd15"))
        else:
            unet = build_video_unet(full_size.unet2d("sd15"), full_size.motion_adapter("sd15"))
        unet.to(torch.bfloat16)
        motion_guide = MotionGuide(widths=motion_widths(unet))
    tokens = tiny.MAX_TOKENS if tiny_shapes else full_size.MAX_TOKENS
    text = torch.zeros(1, tokens, unet.config.cross_attention_dim, device="meta")
    forward = unet_flops(unet, METHOD, frames, latent, latent, text, train=False) / 1e12
    step = unet_flops(unet, METHOD, frames, latent, latent, text, train=True) / 1e12
    activations = unet_step_activation_bytes(unet, METHOD, frames, latent, latent, text, checkpointing)
    weights = finetune_weight_bytes(unet, set_trainable(unet, METHOD), sum(p.numel() for p in motion_guide.parameters()))
    return {"forward": forward, "step": step, "activations": activations / GiB, "weights": sum(weights.values()) / GiB}


def build_weights(args: argparse.Namespace, folder: Path) -> ModelSpec:
    if args.tiny:
        tiny.build_tiny("tiny", folder / "tiny")
        return model_spec("tiny", tiny_dir=folder)
    full_size.build_random_sd15(folder / "sd15", DTYPES[args.dtype], args.device)
    return model_spec("sd15", base=str(folder / "sd15" / "base"), motion_adapter=str(folder / "sd15" / "motion_adapter"))


def fits_24_gib(frames, guide, alpha, spec: ModelSpec, config: FinetuneConfig, folder: Path) -> str:
    """A few fine-tune steps with the process limited to 24 GiB of this GPU."""
    total = torch.cuda.get_device_properties(torch.device(config.device)).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, FIT_BYTES / total))
    try:
        finetune(frames, guide, alpha, PROMPT, spec, config, folder)
        return "yes"
    except torch.OutOfMemoryError:
        return "no: out of memory"
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def run(args: argparse.Namespace) -> list[list[str]]:
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    rows: list[list[str]] = []
    counts = meta_counts(args.tiny, args.frames, args.size, "none" if args.no_gradient_checkpointing else "full")
    peak = args.peak_tflops

    def row(stage: str, timed: Clock, steps: int | None, floor: float | None, seconds: float | None = None) -> None:
        seconds = timed.seconds if seconds is None else seconds
        mfu = f"{100 * floor / seconds / peak:.3g}%" if floor is not None else ""
        per_step = f"{seconds / steps:.3f}" if steps else ""
        memory = f"{timed.peak:.2f}" if timed.peak is not None else "n/a"
        rows.append([stage, f"{seconds:.2f}", per_step, f"{floor:.4g}" if floor is not None else "", mfu, memory])

    frames, priors = synthetic_video(args.frames, args.size)
    guide = guide_input(priors.corr, priors.depth)
    config = FinetuneConfig(
        method=METHOD,
        steps=args.finetune_steps,
        device=args.device,
        precision=PRECISION[dtype],
        gradient_checkpointing=not args.no_gradient_checkpointing,
    )
    with tempfile.TemporaryDirectory(prefix="vidmp3-gpu-") as tmp:
        folder = Path(tmp)
        with Clock(device) as timed:
            spec = build_weights(args, folder / "models")
        row("build random weights (not in a run)", timed, None, None)

        with Clock(device) as load:
            components = load_components(spec, device, dtype)
        row("load components", load, None, None)
        del components
        if device.type == "cuda":
            torch.cuda.empty_cache()

        with Clock(device) as tuned:  # first, so one-time costs (first kernels, lazy imports) fall in the long run
            finetune(frames, guide, priors.alpha, PROMPT, spec, config, folder / "weights")
        with Clock(device) as one_step:
            finetune(frames, guide, priors.alpha, PROMPT, spec, replace(config, steps=1), folder / "one-step")
        step_seconds = (tuned.seconds - one_step.seconds) / max(args.finetune_steps - 1, 1)
        row(
            "fine-tune setup: load, encode, save (a 1-step run less a step)",
            one_step,
            None,
            None,
            one_step.seconds - step_seconds,
        )
        floor = counts["step"] * args.finetune_steps
        resolved = step_seconds > 0  # at tiny sizes on a busy CPU the two runs' noise can exceed a step
        rows.append(
            [
                f"fine-tune {args.finetune_steps} steps (with setup; s/step and MFU without)",
                f"{tuned.seconds:.2f}",
                f"{step_seconds:.3f}" if resolved else "noise",
                f"{floor:.4g}",
                f"{100 * counts['step'] / step_seconds / peak:.3g}%" if resolved else "noise",
                f"{tuned.peak:.2f}" if tuned.peak is not None else "n/a",
            ]
        )

        if device.type == "cuda":
            fit = fits_24_gib(frames, guide, priors.alpha, spec, replace(config, steps=FIT_STEPS), folder / "fit")
            rows.append([f"fits 24 GiB ({FIT_STEPS} steps, memory fraction)", fit, "", "", "", ""])
        counted = counts["activations"] + counts["weights"]
        rows.append(
            [
                f"24 GiB fit, counted on meta: activations {counts['activations']:.2f} + weights {counts['weights']:.2f} GiB",
                "yes" if counted * GiB < FIT_BYTES else "no",
                "",
                "",
                "",
                f"{counted:.2f}",
            ]
        )

        with Clock(device) as loaded:
            model = load_video_model(folder / "weights", args.frames, priors, args.device, dtype)
        row("load fine-tuned video model", loaded, None, None)

        with Clock(device) as inverted:
            _, noise = invert_frames(model, frames, PROMPT, args.steps)
        row(f"invert {args.steps} steps (+ encode)", inverted, args.steps, counts["forward"] * args.steps)

        guided = args.guidance_scale > 1.0
        edit_floor = counts["forward"] * args.steps * (2 if guided else 1)
        edit_seconds = []
        for prompt in EDITS[: args.edits]:
            with Clock(device) as edited:
                sample_edit(model, noise, prompt, "", args.guidance_scale, args.steps, args.size, args.size)
            edit_seconds.append(edited.seconds)
            row(f"edit {prompt!r}: {args.steps} steps{' with CFG' if guided else ''} (+ decode)", edited, args.steps, edit_floor)

        total = tuned.seconds + loaded.seconds + inverted.seconds + sum(edit_seconds)
        total_floor = floor + counts["forward"] * args.steps + edit_floor * args.edits
        rows.append(
            [
                f"one video x {args.edits} edits, end to end (fine-tune to last edit)",
                f"{total:.2f}",
                "",
                f"{total_floor:.4g}",
                f"{100 * total_floor / total / peak:.3g}%",
                "",
            ]
        )
    return rows


def print_table(rows: list[list[str]], args: argparse.Namespace) -> None:
    headers = ["stage", "seconds", "s/step", "floor TFLOP", f"MFU (peak {args.peak_tflops:g})", "peak GiB"]
    try:
        from tabulate import tabulate  # not on every GPU image
    except ImportError:
        widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
        for line in [headers, ["-" * w for w in widths], *rows]:
            print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)))
    else:
        print(tabulate(rows, headers=headers, tablefmt="github"))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    shapes = "tiny preset" if args.tiny else "SD-1.5 + AnimateDiff v1-5"
    print(
        f"{shapes} shapes, random weights; {args.frames}x{args.size}x{args.size}, {args.dtype}, {device_name}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    print_table(run(args), args)


if __name__ == "__main__":
    main()
