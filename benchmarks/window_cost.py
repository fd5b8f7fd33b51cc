"""Cost of long clips: `python benchmarks/window_cost.py` prints time and peak memory against clip length.

Each length runs in a fresh process (its peak resident memory is the process's own): fine-tuning on
a random window per step, then one edit job (DDIM inversion and one edit with guidance), VidMP3 on
the `toyworld` preset (32x32, the shipped weights) with windows of 8 frames every 4. Frames and
priors are synthetic (a square moving right): this measures cost, not quality. Then the same
counts for SD-1.5 at 512x512 with AnimateDiff's 16-frame windows every 8, from the number of windows
(counted, not measured: one window's UNet forward is 19.63 TFLOP, its activations are one window's).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vidmp3.windows import Window

UNET_FORWARD_TFLOP_16x512 = 19.63  # one SD-1.5 video UNet forward, 16 frames at 512x512 (issue 15's count)


def windows_per_step(window: Window, frames: int, ddim_steps: int) -> float:
    """Windows of one DDIM step, averaged over the steps (a shifted grid has one more window at most offsets)."""
    return sum(len(window.starts(frames, window.offset(step))) for step in range(ddim_steps)) / ddim_steps


def one_length(frames: int, window: Window, steps: int, ddim_steps: int) -> dict:
    import torch
    from finetune_speed import synthetic_video

    from vidmp3.editing import EditSettings, SourcePriors, edit_video
    from vidmp3.finetune import FinetuneConfig, finetune
    from vidmp3.model.presets import model_spec

    torch.set_num_threads(1)
    spec = model_spec("toyworld")
    video = synthetic_video(frames, 32, "product")
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "weights"
        start = time.perf_counter()
        finetune(
            *video, "a red cube", spec, FinetuneConfig(steps=steps, window_frames=window.frames, motion_guide_hidden=16), weights
        )
        finetune_s = time.perf_counter() - start
        _, guide, alpha = video
        corr = guide.transpose(0, 2, 3, 1)  # any (N, H, W, 3) colours on the subject: the product is corr * depth
        depth = (guide[:, 0] > 0).astype("float32")
        settings = EditSettings(ddim_steps, ddim_steps, 2.0, "", "cpu", "float32", window=window)
        start = time.perf_counter()
        _, _, seconds = edit_video(
            weights, None, SourcePriors(corr, depth, alpha), "a red cube", {"x": "a blue sphere"}, settings
        )
        edit_job_s = time.perf_counter() - start
    return {
        "finetune_s": finetune_s,
        "edit_job_s": edit_job_s,
        "edit_s": seconds["x"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="16,32,64,128")
    parser.add_argument("--steps", type=int, default=10, help="fine-tuning steps")
    parser.add_argument("--ddim-steps", type=int, default=10, help="DDIM steps of the inversion and of the edit")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one length, print JSON
    args = parser.parse_args()
    window = Window(8, 4)  # the config's (moved each step)
    if args.one:
        print(json.dumps(one_length(args.one, window, args.steps, args.ddim_steps)))
        return
    print(
        f"\ntoyworld preset, VidMP3, windows of {window.frames} frames every {window.stride} (moved each step), 1 CPU thread; "
        f"fine-tuning {args.steps} steps, inversion and edit {args.ddim_steps} DDIM steps each (guidance 2)\n"
    )
    print(
        "| frames | windows per step | fine-tune (s) | inversion + edit (s) | edit per window and step (s) | peak memory (MB) |"
    )
    print("|---|---|---|---|---|---|")
    for frames in (int(value) for value in args.lengths.split(",")):
        command = [
            sys.executable,
            __file__,
            "--one",
            str(frames),
            "--steps",
            str(args.steps),
            "--ddim-steps",
            str(args.ddim_steps),
        ]
        result = json.loads(subprocess.check_output(command, text=True, stderr=subprocess.DEVNULL).splitlines()[-1])
        windows = windows_per_step(window, frames, args.ddim_steps)
        per = result["edit_s"] / (windows * args.ddim_steps)
        print(
            f"| {frames} | {windows:g} | {result['finetune_s']:.1f} | {result['edit_job_s']:.1f} | {per:.3f} | {result['peak_rss_mb']:.0f} |"
        )
    sd15 = Window(16, 8)
    print(
        f"\nSD-1.5 at 512x512, windows of {sd15.frames} every {sd15.stride}, moved each step (counted, 50 steps): per DDIM step with guidance, "
        f"2 x windows x {UNET_FORWARD_TFLOP_16x512} TFLOP; activations of one window whatever the length\n"
    )
    print("| frames | windows per step | TFLOP per DDIM step | TFLOP for inversion 50 + one edit 50 |")
    print("|---|---|---|---|")
    for frames in (16, 32, 64, 128):
        windows = windows_per_step(sd15, frames, 50)
        step = windows * UNET_FORWARD_TFLOP_16x512
        print(f"| {frames} | {windows:g} | {2 * step:.0f} | {50 * step + 50 * 2 * step:.0f} |")


if __name__ == "__main__":
    main()
