"""Causal probe of the MotionGuide (vidmp3.toyworld.probe) on ToyWorld validation clips.

`python benchmarks/motionguide_probe.py --methods vidmp3 vidmp3-spatial` prints, per method, the
per-clip centroid errors of samples (source prompt, from fresh noise and from inverted latents) under
the true guide, lambda = 0, the reversed clip's guide and another clip's guide, and the paired
differences error(guide vs its track) - error(lambda 0 vs that track) with 95% bootstrap intervals
over clips (below 0: the guide steers). `--out DIR` also writes both tables as CSV. With
`--guide-learning-rates` it repeats each method at those MotionGuide learning rates (how
`vidmp3.methods.GUIDE_LEARNING_RATE` is chosen: on validation clips only).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
from tabulate import tabulate

from vidmp3.model.presets import model_spec
from vidmp3.model.tiny import build_tiny
from vidmp3.toyworld.probe import VALIDATION_SEED, ProbeConfig, probe_differences, run_probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="toyworld", choices=["toyworld", "tiny"])
    parser.add_argument("--methods", nargs="+", default=["vidmp3", "vidmp3-lr", "vidmp3-spatial"])
    parser.add_argument("--guide-learning-rates", type=float, nargs="+", default=[None])
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=VALIDATION_SEED)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (inversion = sampling)")
    parser.add_argument("--guidance-scale", type=float, default=2.0)
    parser.add_argument("--guide-strength", type=float, default=0.1, help="lambda")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    all_rows, all_differences = [], []
    with tempfile.TemporaryDirectory() as folder:
        if args.preset == "tiny":
            build_tiny("tiny", Path(folder) / "tiny", seed=0)
            spec = model_spec("tiny", tiny_dir=folder)
        else:
            spec = model_spec("toyworld")
        for method in args.methods:
            for rate in args.guide_learning_rates:
                config = ProbeConfig(
                    clips=args.clips,
                    first_seed=args.first_seed,
                    method=method,
                    finetune_steps=args.finetune_steps,
                    inversion_steps=args.steps,
                    sampling_steps=args.steps,
                    guidance_scale=args.guidance_scale,
                    guide_strength=args.guide_strength,
                    guide_learning_rate=rate,
                )
                started = time.perf_counter()
                rows = run_probe(config, spec).assign(method=method, guide_learning_rate=rate)
                differences = probe_differences(rows).assign(method=method, guide_learning_rate=rate)
                print(f"\n{method}, MotionGuide lr {rate or 'the method’s'}: {time.perf_counter() - started:.0f} s")
                all_rows.append(rows)
                all_differences.append(differences)
    rows, differences = pd.concat(all_rows), pd.concat(all_differences)
    settings = {key: value for key, value in asdict(config).items() if key not in ("method", "guide_learning_rate")}
    print(f"\nToyWorld validation clips {args.first_seed}-{args.first_seed + args.clips - 1}; {settings}")
    print(tabulate(rows, headers="keys", showindex=False, floatfmt=".3f"))
    print("\nerror(guide vs its track) - error(lambda 0 vs that track), mean [95% bootstrap interval over clips]")
    print(tabulate(differences, headers="keys", showindex=False, floatfmt=".3f"))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.out / "probe_rows.csv", index=False)
        differences.to_csv(args.out / "probe_differences.csv", index=False)


if __name__ == "__main__":
    main()
