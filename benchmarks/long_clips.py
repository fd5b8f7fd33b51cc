"""ToyWorld long clips (vidmp3.toyworld.long_clips): `python benchmarks/long_clips.py` prints the table.

Clips of `--frames` frames (default 64: 15 windows of the toyworld motion module's 8 frames every 4,
the config's `window`), test seeds from 1 000 000, edited by each method at the paper's settings by
default (100 fine-tuning steps, DDIM 50 + 50; the benchmark's guidance 2.5): trajectory (centroid)
error over the whole clip and the seam score beside the chance levels. `--out DIR` also writes the per-edit rows (CSV),
the table (Markdown) and each stage's seconds (JSON). One torch thread unless `--threads`.
`--from-rows A.csv B.csv ...` prints the table of runs made one clip at a time (same settings, the
first seed of the first run) without running anything.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from vidmp3.atomic import atomic_path
from vidmp3.model.presets import TOYWORLD_WEIGHTS, model_spec
from vidmp3.model.tiny import build_tiny
from vidmp3.toyworld import world
from vidmp3.toyworld.benchmark import BenchmarkConfig
from vidmp3.toyworld.classifier import load_classifier
from vidmp3.toyworld.long_clips import long_clips_markdown, run_long_clips
from vidmp3.windows import Window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="toyworld", choices=["toyworld", "tiny"])
    parser.add_argument("--classifier", type=Path, default=TOYWORLD_WEIGHTS / "classifier")
    parser.add_argument("--methods", default="vidmp3,no-motionguide,tune-a-video")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=world.HELD_OUT_SEED)
    parser.add_argument("--edits", type=int, default=2)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--window", type=int, default=world.CLIP_FRAMES, help="window frames")
    parser.add_argument("--stride", type=int, default=4, help="window stride")
    parser.add_argument("--shift", action=argparse.BooleanOptionalAction, default=True, help="move the windows each DDIM step")
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (inversion = sampling)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--from-rows", type=Path, nargs="+", help="per-edit rows CSVs of earlier runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = BenchmarkConfig(
        clips=args.clips,
        first_seed=args.first_seed,
        edits=args.edits,
        methods=tuple(args.methods.split(",")),
        frames=args.frames,
        window=Window(args.window, args.stride, args.shift),
        finetune_steps=args.finetune_steps,
        inversion_steps=args.steps,
        editing_steps=args.steps,
        strip_clips=1,
    )
    if args.from_rows:
        rows = pd.concat([pd.read_csv(path) for path in args.from_rows], ignore_index=True)
        config = replace(config, clips=rows["clip_seed"].nunique(), first_seed=int(rows["clip_seed"].min()))
        print(long_clips_markdown(rows, config))
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        if args.preset == "tiny":
            build_tiny("tiny", Path(folder) / "tiny", seed=0)
            spec = model_spec("tiny", tiny_dir=folder)
        else:
            spec = model_spec("toyworld")
        rows, timer = run_long_clips(config, spec, load_classifier(args.classifier))
    markdown = long_clips_markdown(rows, config)
    print(f"\n{markdown}\n{time.perf_counter() - started:.0f} s, {torch.get_num_threads()} torch thread(s)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out / "long_clips_rows.csv") as tmp:
            rows.to_csv(tmp, index=False)
        with atomic_path(args.out / "long_clips.md") as tmp:
            tmp.write_text(markdown)
        with atomic_path(args.out / "long_clips_timing.json") as tmp:
            tmp.write_text(json.dumps(timer.summary(), indent=2))


if __name__ == "__main__":
    main()
