"""Time every stage for one 16-frame clip: `python benchmarks/stage_times.py` prints a table.

Stages as the workflow runs them (the same vidmp3 calls as workflow_scripts/): frames, priors
(offline backends), the merged video model, fine-tuning, the edit job's load and inversion, the
first edit and each further edit (one load serves them all), beside the paper's A100 numbers. Default: the tiny preset on the CPU at 64x64. `--preset sd15 --device cuda
--size 512` times full-size SD-1.5 + AnimateDiff (random weights of the real shapes when none are
cached; see finetune_speed.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from finetune_speed import resolve_spec

from vidmp3.editing import EditSettings, SourcePriors, edit_video
from vidmp3.finetune import FinetuneConfig, finetune_video
from vidmp3.model.presets import DTYPES, write_video_unet
from vidmp3.frames import ingest_frames, ingest_masks
from vidmp3.priors.stages import corr_stage, depth_stage, guide_stage, mask_stage
from vidmp3.scene import SubjectSpec
from vidmp3.synthetic import make_trajectory, render_clip, write_clip

PAPER_A100_SECONDS = {"frames + priors": 100, "fine-tune": 180, "load + inversion": 30, "first edit": 30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps of inversion and of each edit")
    parser.add_argument("--edits", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    times: dict[str, float] = {}

    def timed(stage: str, function, *positional, **keywords) -> None:
        start = time.perf_counter()
        function(*positional, **keywords)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times[stage] = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        spec, origin = resolve_spec(args.preset, work / "models")
        subject = SubjectSpec("cube")
        clip = render_clip(
            subject, make_trajectory(args.frames * 4, seed=0, subject=subject), args.size, args.size, supersample=2
        )
        write_clip(clip, work / "clip.mp4", work / "masks", work / "truth.zarr", fps=24)
        group = work / "clip.zarr"

        def frames_and_priors() -> None:
            ingest_frames(work / "clip.mp4", group, 0, args.frames, 4, (args.size, args.size), "center")
            ingest_masks(work / "masks", group)
            mask_stage(group / "frames", group / "mask", "given", {}, given=group / "mask_given")
            corr_stage(group / "frames", group / "mask", group / "corr", "flow", {})
            depth_stage(group / "frames", group / "mask", group / "depth", "mask-area", {})
            guide_stage(
                group / "frames",
                group / "corr",
                group / "depth",
                group / "mask",
                group / "guide",
                group / "alpha",
                work / "priors.png",
            )

        timed("frames + priors", frames_and_priors)
        timed("video model", write_video_unet, spec, DTYPES[args.dtype], work / "video")
        config = FinetuneConfig(
            steps=args.finetune_steps,
            device=args.device,
            precision={"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[args.dtype],
        )
        timed(
            "fine-tune",
            finetune_video,
            group,
            "a cube moving over a field",
            spec,
            config,
            work / "weights",
            video_unet=work / "video",
        )
        priors = SourcePriors.read(*(group / name for name in ("corr", "depth", "alpha")))
        settings = EditSettings(args.steps, args.steps, 7.5, "", args.device, args.dtype)
        prompts = ["a blue sphere", "a red cone", "a green cylinder", "a yellow pyramid"]
        edits = {f"edit{index}": prompts[index % 4] + " moving over a field" for index in range(args.edits)}
        start = time.perf_counter()
        _, _, seconds = edit_video(work / "weights", work / "video", priors, "a cube moving over a field", edits, settings)
        total = time.perf_counter() - start
        times["load + inversion"] = total - sum(seconds.values())
        for index, edit_seconds in enumerate(seconds.values()):
            times["first edit" if index == 0 else f"edit {index + 1}"] = edit_seconds

    print(
        f"\n{args.frames} frames at {args.size}x{args.size}, preset {args.preset} ({origin}), {args.device}, {args.dtype}, "
        f"fine-tune {args.finetune_steps} steps, {args.steps} DDIM steps, torch threads {args.threads}\n"
    )
    print(f"| {'stage':<16} | {'seconds':>8} | {'paper, A100 (s)':>15} |")
    print(f"|{'-' * 18}|{'-' * 10}|{'-' * 17}|")
    for stage, seconds in times.items():
        paper = PAPER_A100_SECONDS.get(stage)
        print(f"| {stage:<16} | {seconds:8.1f} | {paper if paper is not None else '':>15} |")
    first = times["fine-tune"] + times["load + inversion"] + times["first edit"]
    print(f"\nfine-tune + inversion + first edit: {first:.1f} s (paper ≈240 s on an A100)")
    if args.device.startswith("cuda"):
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
