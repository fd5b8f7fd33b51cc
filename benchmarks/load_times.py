"""Time building and loading the video UNet: `python benchmarks/load_times.py` prints a table.

The three ways a model job can get its video UNet, on the CPU (loading is host work: the card only
receives the finished tensors): diffusers' `UNetMotionModel.from_unet2d` (random initialisation of
the whole model, then a copy of every weight; what the project did before), `build_video_unet`
(built on the meta device, the loaded tensors assigned), and one read of the merged folder that
rule `video_model` writes (`load_components(video_unet=...)`), in float32 and bfloat16. Plus the
import time of the modules a model job imports. Reads are memory-mapped safetensors from a warm page
cache (the files were just written): the bytes themselves are read as the tensors move to the
device, so a cold disk adds its read time (5 GB of float32 SD-1.5 + adapter, half that in bf16). Default: full-size SD-1.5 + AnimateDiff shapes,
random weights built in a temporary folder (`--preset tiny` for a quick look).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
from finetune_speed import resolve_spec

from vidmp3.model.presets import _load_video_unet, write_video_unet
from vidmp3.model.video_unet import build_video_unet

IMPORTS = "import vidmp3.editing, vidmp3.finetune"


def seconds(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="sd15")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    command = [sys.executable, "-c", f"import time; t = time.perf_counter(); {IMPORTS}; print(time.perf_counter() - t)"]
    rows.append(("import vidmp3.editing + vidmp3.finetune (fresh process)", float(subprocess.check_output(command, text=True))))
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        spec, origin = resolve_spec(args.preset, work / "models")
        base, adapter = Path(spec.base), Path(spec.motion_adapter)
        load_parts_s, (unet2d, motion_adapter) = seconds(
            lambda: (UNet2DConditionModel.from_pretrained(base / "unet"), MotionAdapter.from_pretrained(adapter))
        )
        rows.append(("read the 2D UNet and the motion adapter (float32)", load_parts_s))
        rows.append(
            ("  + from_unet2d (random init, then copy)", seconds(lambda: UNetMotionModel.from_unet2d(unet2d, motion_adapter))[0])
        )
        rows.append(("  + build_video_unet (meta device, assign)", seconds(lambda: build_video_unet(unet2d, motion_adapter))[0]))
        for dtype in (torch.float32, torch.bfloat16):
            name = str(dtype).removeprefix("torch.")
            write_s, _ = seconds(partial(write_video_unet, spec, dtype, work / name))
            rows.append((f"write the merged video UNet ({name}, once per config)", write_s))
            rows.append(
                (
                    f"read the merged video UNet ({name}, every model job)",
                    seconds(partial(_load_video_unet, spec, work / name, dtype))[0],
                )
            )
        parameters = sum(p.numel() for p in unet2d.parameters()) + sum(p.numel() for p in motion_adapter.parameters())
    print(f"\npreset {args.preset} ({origin}), {parameters / 1e6:.0f} M parameters, CPU, torch threads {args.threads}\n")
    width = max(len(name) for name, _ in rows)
    print(f"| {'step':<{width}} | seconds |")
    print(f"|{'-' * (width + 2)}|---------|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value:7.2f} |")


if __name__ == "__main__":
    main()
