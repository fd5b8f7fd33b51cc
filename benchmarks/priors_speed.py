"""Speed of the offline prior backends at 512x512, 16 frames, on 2 CPU threads; prints a table.

The `flow` correspondence backend must do 16 frames at 512x512 in under 10 s on 2 cores.
Frames: a rendered clip (a checker cube over the ground, large motion) at 512x512.

Run: TQDM_DISABLE=1 .venv/bin/python benchmarks/priors_speed.py
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from vidmp3.priors import combine, compute_depth, compute_mask, compute_matches, matches_to_corr
from vidmp3.priors.render import align_truth
from vidmp3.scene import SubjectSpec
from vidmp3.synthetic import make_trajectory, render_clip

SIZE, FRAMES, THREADS = 512, 16, 2
FLOW_LIMIT_SECONDS = 10.0


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def main() -> None:
    cv2.setNumThreads(THREADS)
    subject = SubjectSpec("cube", (0.8, 0.8, 0.8), texture="checker")
    clip = render_clip(subject, make_trajectory(FRAMES, seed=0, subject=subject), SIZE, SIZE, supersample=1)
    frames, mask = clip.frames, clip.mask
    attrs = {
        "source": "rendered",
        "frame_indices": list(range(FRAMES)),
        "source_size": [SIZE, SIZE],
        "size": [SIZE, SIZE],
        "crop": "none",
    }
    truth = align_truth(clip, attrs)

    runs = [
        ("correspondence", "flow (DIS medium, default)", lambda: compute_matches(frames, mask, "flow", {})),
        ("correspondence", "flow (DIS fast)", lambda: compute_matches(frames, mask, "flow", {"dis_preset": "fast"})),
        ("correspondence", "flow (Farneback)", lambda: compute_matches(frames, mask, "flow", {"method": "farneback"})),
        ("correspondence", "render", lambda: compute_matches(frames, mask, "render", {}, truth=truth)),
        ("mask", "motion (GrabCut 3, default)", lambda: compute_mask(frames, "motion", {})),
        ("mask", "motion (no GrabCut)", lambda: compute_mask(frames, "motion", {"grabcut_iterations": 0})),
        ("depth", "mask-area", lambda: compute_depth(frames, mask, "mask-area", {})),
        ("depth", "render", lambda: compute_depth(frames, mask, "render", {}, truth=truth)),
    ]
    print(f"{FRAMES} frames at {SIZE}x{SIZE}, OpenCV threads {THREADS}\n")
    print("| prior | backend | seconds | frames/s |")
    print("|---|---|---|---|")
    flow_seconds = None
    for prior, name, run in runs:
        _, seconds = timed(run)
        if name.startswith("flow (DIS medium"):
            flow_seconds = seconds
        print(f"| {prior} | {name} | {seconds:.2f} | {FRAMES / seconds:.1f} |")
    corr = matches_to_corr(compute_matches(frames, mask, "render", {}, truth=truth))
    depth = compute_depth(frames, mask, "render", {}, truth=truth)
    _, seconds = timed(lambda: combine(corr.astype(np.float16), depth.astype(np.float16), mask))
    print(f"| guide | matches_to_corr + combine | {seconds:.2f} | {FRAMES / seconds:.1f} |")
    verdict = "within" if flow_seconds < FLOW_LIMIT_SECONDS else "OVER"
    print(f"\nflow backend: {flow_seconds:.2f} s for {FRAMES} frames, {verdict} the {FLOW_LIMIT_SECONDS:.0f} s budget")


if __name__ == "__main__":
    main()
