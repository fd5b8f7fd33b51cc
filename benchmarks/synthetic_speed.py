"""Time the numpy renderer on one core: `python benchmarks/synthetic_speed.py` prints a table."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy loads its BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402

from vidmp3.scene import SHAPES, SubjectSpec  # noqa: E402
from vidmp3.synthetic import make_trajectory, render_clip  # noqa: E402

CASES = [(64, 128, 3), (16, 256, 3), (16, 512, 3), (64, 128, 1)]  # frames, side, supersample


def main() -> None:
    print(f"{'shape':>9} {'frames':>6} {'size':>8} {'ss':>3} {'seconds':>8} {'ms/frame':>9}")
    for n_frames, side, supersample in CASES:
        for shape in SHAPES if (n_frames, side, supersample) == CASES[0] else ("cube",):
            subject = SubjectSpec(shape=shape)
            poses = make_trajectory(n_frames, seed=0, subject=subject)
            start = time.perf_counter()
            render_clip(subject, poses, side, side, supersample=supersample)
            seconds = time.perf_counter() - start
            size = f"{side}x{side}"
            print(f"{shape:>9} {n_frames:>6} {size:>8} {supersample:>3} {seconds:>8.2f} {1000 * seconds / n_frames:>9.0f}")


if __name__ == "__main__":
    main()
