"""Drift of the flow correspondence over long rendered clips; prints markdown tables.

Per clip, the end-point error (frame-0 pixels) of each frame's matches against the renderer's exact
ones (`true_matches`: only subject points frame 0 shows have a match), averaged over the frames of
each frame-index bucket; then the mean over clips with a 95% t interval. Beside the two chainings
of the `flow` backend ("consecutive": flow composed frame to frame at the frames' own size, the backend before
re-anchoring; "consecutive, upscaled": the same on frames upscaled to min_side 192; "anchored": the
default, upscaled, only checked matches chained on, lost pixels re-anchored through keyframes and
frame 0; "anchored, native": the same at the frames' own size) stands the "still"
baseline (no motion: every pixel matched to itself), the chance level a correspondence must beat.
"anchored - consecutive" is the paired difference per clip (negative: anchored is better).

Clips: cube, box and sphere, checker texture, three motions: small and large (`make_trajectory`),
and spin (large, upright with 0.3 rad of lean, plus a full extra turn about the vertical axis:
faces leave and come back, like a twirling dancer). The path does not depend on the frame count, so
a longer clip is the same motion sampled more densely: more links to chain.

Chosen on validation seeds 100 and 101 (`--seeds 100 101`), never on the reported seeds 0-2:
re-anchoring only the pixels the chain loses (re-anchoring every pixel to whichever candidate looks
most like frame 0, with or without a colour gate, was better on spins but worse on large motion);
flow on frames upscaled to min_side 192 rather than 128 or none; keyframe_interval 8 (4 and 16
change the 64-frame buckets by at most 0.15 px) with the two latest keyframes, blur 1 px, window 5 px.
On validation the anchored default is no worse than "consecutive" on 16-frame clips in any bucket.
Spinning subjects (issue 17, validation seeds, 128 frames): what loses them is the upscaling, not the
re-anchoring ("consecutive, upscaled" is as bad); at the frames' own size re-anchoring beats the old
chain on spins but gives up the upscaled flow's gain on large motion, as do min_side 128 and taking
per pixel whichever of the native and upscaled links looks more like frame 0. The default stays.

Run: TQDM_DISABLE=1 .venv/bin/python benchmarks/priors_drift.py [--quick]   (about 6 min; --quick 1 min)
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from scipy import stats

from vidmp3.priors import compute_matches
from vidmp3.priors.correspondence import endpoint_error, pixel_grid
from vidmp3.scene import SubjectSpec
from vidmp3.synthetic import make_trajectory, render_clip, true_matches

SHAPES = {"cube": (0.8, 0.8, 0.8), "box": (1.2, 0.5, 0.5), "sphere": (0.8, 0.8, 0.8)}
MOTIONS = ("small", "large", "spin")
# flow backend options of each compared method ("consecutive": the backend before re-anchoring)
FLOWS = {
    "consecutive": {"chaining": "consecutive", "min_side": 0},
    "consecutive, upscaled": {"chaining": "consecutive"},
    "anchored": {"chaining": "anchored"},
    "anchored, native": {"chaining": "anchored", "min_side": 0},
}
METHODS = ("still", *FLOWS)


def spin_poses(frames: int, seed: int, subject: SubjectSpec) -> np.ndarray:
    poses = make_trajectory(frames, seed=seed, motion="large", subject=subject, tilt=0.3)
    poses[:, 4] += 2.0 * np.pi * np.linspace(0.0, 1.0, frames)
    return poses


def clip_poses(motion: str, frames: int, seed: int, subject: SubjectSpec) -> np.ndarray:
    if motion == "spin":
        return spin_poses(frames, seed, subject)
    return make_trajectory(frames, seed=seed, motion=motion, subject=subject)


def per_frame_error(matches: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Mean EPE (N,) of each frame over the pixels both maps match; NaN where none."""
    error = endpoint_error(matches, exact)
    scored = np.isfinite(error)
    totals = np.where(scored, error, 0.0).sum(axis=(1, 2))
    counts = scored.sum(axis=(1, 2))
    return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def interval(values: np.ndarray) -> str:
    """'mean [low, high]': the mean over clips with a 95% t interval."""
    values = values[np.isfinite(values)]
    mean = values.mean()
    if len(values) < 2:
        return f"{mean:.2f}"
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return f"{mean:.2f} [{mean - half:.2f}, {mean + half:.2f}]"


def buckets(frames: int) -> list[tuple[int, int]]:
    """Frame-index ranges [start, stop): frames 1.. in quarters of the clip (frame 0 is exact)."""
    edges = np.linspace(0, frames, 5).astype(int)
    return [(max(start, 1), stop) for start, stop in zip(edges[:-1], edges[1:])]


def measure(size: int, frames: int, seeds: list[int], keyframe_interval: int) -> dict:
    """{motion: {method: (clips, buckets) EPE}} and the seconds each chaining took in all."""
    spans = buckets(frames)
    results = {motion: {method: [] for method in METHODS} for motion in MOTIONS}
    seconds = dict.fromkeys(FLOWS, 0.0)
    for motion in MOTIONS:
        for shape, extents in SHAPES.items():
            for seed in seeds:
                subject = SubjectSpec(shape, extents, texture="checker")
                clip = render_clip(subject, clip_poses(motion, frames, seed, subject), size, size, supersample=2)
                exact = true_matches(clip)
                found = {"still": np.where(clip.mask[..., None], pixel_grid(size, size)[None], np.nan)}
                for name, options in FLOWS.items():
                    tic = time.perf_counter()
                    found[name] = compute_matches(
                        clip.frames,
                        clip.mask,
                        "flow",
                        {**options, "keyframe_interval": keyframe_interval},
                    )
                    seconds[name] += time.perf_counter() - tic
                for method, matches in found.items():
                    error = per_frame_error(matches, exact)
                    results[motion][method].append([np.nanmean(error[start:stop]) for start, stop in spans])
    return {motion: {m: np.asarray(v) for m, v in table.items()} for motion, table in results.items()}, seconds


def report(size: int, frames: int, seeds: list[int], keyframe_interval: int) -> None:
    results, seconds = measure(size, frames, seeds, keyframe_interval)
    spans = buckets(frames)
    clips = len(SHAPES) * len(seeds)
    print(
        f"## Flow correspondence drift: {frames} frames at {size}x{size}, {clips} clips per motion "
        f"(cube, box, sphere; checker; seeds {seeds}); keyframe_interval {keyframe_interval}\n"
    )
    print("Mean EPE (frame-0 pixels) per frame-index bucket, mean over clips [95% t interval].\n")
    header = ["motion", "method", *[f"frames {start}-{stop - 1}" for start, stop in spans]]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for motion, table in results.items():
        rows = {**table, "anchored - consecutive": table["anchored"] - table["consecutive"]}
        for method, values in rows.items():
            print(f"| {motion} | {method} | " + " | ".join(interval(values[:, b]) for b in range(len(spans))) + " |")
    print("\n(flow time in all: " + ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items()) + ")\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, the first two lengths only (a smoke run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="trajectory seeds (100, 101: validation)")
    parser.add_argument("--keyframe-interval", type=int, default=8, help="the anchored chaining's keyframe_interval")
    parser.add_argument("--size", type=int, default=64, help="frame side (pixels)")
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 128], help="clip lengths")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    started = time.time()
    seeds = args.seeds[:1] if args.quick else args.seeds
    for frames in args.frames[:2] if args.quick else args.frames:
        report(args.size, frames, seeds, args.keyframe_interval)
    print(f"(took {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
