"""Accuracy of the offline priors against ground truth; prints markdown tables.

- flow correspondence on rendered clips: end-point error (frame-0 pixels) against the exact map,
  over the subject points frame 0 sees (only those have an image match), beside a "still" baseline
  (every pixel matched to itself) and the share of subject pixels frame 0 sees;
- motion masks: IoU against the DAVIS annotations of ../shared/data/clips (per clip) and against
  rendered masks;
- mask-area depth: Spearman rank correlation of per-frame subject depth with the truth (mean 1/z).

Run: TQDM_DISABLE=1 .venv/bin/python benchmarks/priors_accuracy.py [--quick]   (about 5 min; --quick 2 min)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy.stats import spearmanr

from vidmp3.frames import resize_frames, resize_masks
from vidmp3.priors import compute_depth, compute_mask, compute_matches
from vidmp3.priors.correspondence import pixel_grid, summarise_endpoint_error
from vidmp3.priors.render import align_truth, render_visible_in_first
from vidmp3.scene import SubjectSpec
from vidmp3.synthetic import make_trajectory, render_clip

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
SHAPES = {"cube": (0.8, 0.8, 0.8), "box": (1.2, 0.5, 0.5), "sphere": (0.8, 0.8, 0.8)}
DAVIS = ("davis-blackswan", "davis-dog", "davis-car-shadow")


def rendered_clips(size: int, frames: int, seeds: range):
    for motion in ("small", "large"):
        for shape, extents in SHAPES.items():
            for texture in ("gradient", "checker"):
                for seed in seeds:
                    subject = SubjectSpec(shape, extents, texture=texture)
                    poses = make_trajectory(frames, seed=seed, motion=motion, subject=subject)
                    yield (motion, shape, texture, seed), render_clip(subject, poses, size, size, supersample=2)


def native_attrs(clip) -> dict:
    size = [clip.camera.width, clip.camera.height]
    return {
        "source": "rendered",
        "frame_indices": list(range(len(clip.frames))),
        "source_size": size,
        "size": size,
        "crop": "none",
    }


def iou(first: np.ndarray, second: np.ndarray) -> float:
    union = (first | second).sum(axis=(1, 2))
    return float(np.where(union > 0, (first & second).sum(axis=(1, 2)) / np.maximum(union, 1), 1.0).mean())


def load_davis(clip: str, frames: int, stride: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    images = sorted((CLIPS / clip / "JPEGImages").glob("*.jpg"))[: frames * stride : stride]
    annotations = sorted((CLIPS / clip / "Annotations").glob("*.png"))[: frames * stride : stride]
    rgb = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in images])
    masks = np.stack([np.asarray(Image.open(path).convert("L")) > 127 for path in annotations])
    return resize_frames(rgb, size, "center"), resize_masks(masks, size, "center")


def table(header: list[str], rows: list[list]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and frames (a smoke run)")
    args = parser.parse_args()
    seeds = range(1) if args.quick else range(3)
    size, count = (96, 8) if args.quick else (128, 16)
    cv2.setNumThreads(2)
    started = time.time()

    flow_rows, mask_rows, depth_rows = {}, {}, {}
    for (motion, shape, texture, _seed), clip in rendered_clips(size, count, seeds):
        truth = align_truth(clip, native_attrs(clip))
        exact = compute_matches(clip.frames, clip.mask, "render", {}, truth=truth)
        seen = render_visible_in_first(truth, clip.mask)
        exact_seen = np.where(seen[..., None], exact, np.nan)
        still = np.where(clip.mask[..., None], pixel_grid(size, size)[None], np.nan).astype(np.float32)
        flow = compute_matches(clip.frames, clip.mask, "flow", {})
        key = (motion, shape, texture)
        flow_rows.setdefault(key, []).append(
            [
                summarise_endpoint_error(flow, exact_seen)["epe_mean"],
                summarise_endpoint_error(flow, exact)["epe_mean"],
                summarise_endpoint_error(still, exact_seen)["epe_mean"],
                float(seen[1:][clip.mask[1:]].mean()),
            ]
        )
        mask_rows.setdefault(key, []).append([iou(compute_mask(clip.frames, "motion", {}), clip.mask)])
        area = compute_depth(clip.frames, clip.mask, "mask-area", {})
        per_frame_truth = [np.mean(1.0 / clip.depth[t][clip.mask[t]]) for t in range(count)]
        per_frame_area = [area[t][clip.mask[t]].mean() for t in range(count)]
        if texture == "gradient":  # the texture does not change the masks, so neither this depth
            depth_rows.setdefault((motion, shape), []).append([float(spearmanr(per_frame_area, per_frame_truth)[0])])

    print(
        f"## Flow correspondence on rendered clips ({size}x{size}, {count} frames, seeds {list(seeds)}; EPE in frame-0 pixels)\n"
    )
    rows = [
        [*key, *np.mean(values, axis=0).tolist(), float(np.max(np.asarray(values)[:, 0]))] for key, values in flow_rows.items()
    ]
    table(["motion", "shape", "texture", "EPE seen", "EPE all", "EPE still", "share seen", "worst EPE seen"], rows)
    for motion in ("small", "large"):
        values = np.concatenate([v for k, v in flow_rows.items() if k[0] == motion])
        print(
            f"{motion} motion: mean EPE seen {values[:, 0].mean():.2f} px (still {values[:, 2].mean():.2f} px), worst clip {values[:, 0].max():.2f} px"
        )
    print()

    print(f"## Motion masks on rendered clips ({size}x{size}, {count} frames): mean IoU per setting\n")
    table(
        ["motion", "shape", "texture", "IoU mean", "IoU min"],
        [[*key, float(np.mean(v)), float(np.min(v))] for key, v in mask_rows.items()],
    )

    if (CLIPS / "MANIFEST.tsv").is_file():
        print("## Motion masks on DAVIS clips (16 frames, stride 2, 512x288 centre crop): IoU against the annotations\n")
        rows = []
        for clip_id in DAVIS:
            frames, truth = load_davis(clip_id, 16, 2, (512, 288))
            tic = time.time()
            found = compute_mask(frames, "motion", {})
            rough = compute_mask(frames, "motion", {"grabcut_iterations": 0})
            rows.append([clip_id, iou(found, truth), iou(rough, truth), f"{time.time() - tic:.1f}"])
        table(["clip", "IoU", "IoU without GrabCut", "seconds (both)"], rows)
    else:
        print(f"(DAVIS clips not found at {CLIPS}; skipped)\n", file=sys.stderr)

    print("## mask-area depth on rendered clips: Spearman rank correlation of per-frame subject depth with the truth\n")
    table(
        ["motion", "shape", "rho mean", "rho min"], [[*key, float(np.mean(v)), float(np.min(v))] for key, v in depth_rows.items()]
    )
    print(f"(took {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
