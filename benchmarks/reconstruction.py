"""Reconstruction: edit a clip with its own source prompt and compare with the source (PSNR, dB).

`python benchmarks/reconstruction.py` prints a table: for a held-out ToyWorld clip ("a red cube"),
each method is fine-tuned, the clip is DDIM-inverted and sampled back with the source prompt, without
guidance and with the demo's guidance. Inversion and sampling are exact only in the limit of many
steps (DDIM inversion assumes the prediction changes little between steps), so PSNR rises with the
steps; with the `tiny` preset (random weights) it checks the wiring only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from vidmp3.editing import invert_frames, load_video_model, sample_edit
from vidmp3.finetune import FinetuneConfig, finetune
from vidmp3.methods import get_method
from vidmp3.model.presets import model_spec
from vidmp3.model.tiny import build_tiny
from vidmp3.motionguide import guide_input
from vidmp3.toyworld import world
from vidmp3.toyworld.benchmark import rendered_priors


def psnr(edited: np.ndarray, source: np.ndarray) -> float:
    error = np.mean((edited.astype(np.float64) - source.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / error))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="toyworld", choices=["toyworld", "tiny"])
    parser.add_argument("--methods", nargs="+", default=["vidmp3", "no-motionguide", "tune-a-video"])
    parser.add_argument("--finetune-steps", type=int, default=50)
    parser.add_argument("--steps", type=int, nargs="+", default=[15, 50], help="DDIM steps (inversion = sampling)")
    parser.add_argument("--guidance-scale", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=world.HELD_OUT_SEED)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    clip = world.render_toy_clip("cube", "red", args.seed)
    prompt = world.caption("cube", "red")
    priors = rendered_priors(clip)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if args.preset == "tiny":
            build_tiny("tiny", work / "tiny", seed=0)
            spec = model_spec("tiny", tiny_dir=work)
        else:
            spec = model_spec("toyworld")
        for method in args.methods:
            variant = get_method(method).guide_variant
            guide = guide_input(priors.corr, priors.depth, variant) if variant else None
            config = FinetuneConfig(method=method, steps=args.finetune_steps, guide_strength=0.1, motion_guide_hidden=16)
            finetune(clip.frames, guide, priors.alpha if variant else None, prompt, spec, config, work / method)
            model = load_video_model(work / method, len(clip.frames), priors if variant else None, "cpu", torch.float32)
            for steps in args.steps:
                started = time.perf_counter()
                _, noise = invert_frames(model, clip.frames, prompt, steps)
                size = clip.frames.shape[1:3]
                unguided = sample_edit(model, noise, prompt, "", 1.0, steps, *size)
                guided = sample_edit(model, noise, prompt, "", args.guidance_scale, steps, *size)
                rows.append(
                    [method, steps, psnr(unguided, clip.frames), psnr(guided, clip.frames), time.perf_counter() - started]
                )
    headers = ["method", "DDIM steps", "PSNR, guidance 1", f"PSNR, guidance {args.guidance_scale}", "seconds"]
    print(f"preset {args.preset}, clip '{prompt}' seed {args.seed}, fine-tuning {args.finetune_steps} steps")
    print(tabulate(rows, headers=headers, floatfmt=".2f"))


if __name__ == "__main__":
    main()
