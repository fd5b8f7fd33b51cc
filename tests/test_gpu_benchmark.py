"""benchmarks/gpu.py at tiny size on the CPU, and what it imports (the GPU image has torch, diffusers and
transformers, not the workflow's zarr, av or snakemake, nor tabulate)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

NOT_ON_THE_GPU_PATH = ("zarr", "av", "snakemake")


def python(repo, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=600)


def test_importing_the_benchmark_leaves_zarr_and_av_out(repo):
    result = python(
        repo,
        "import runpy, sys; runpy.run_path('benchmarks/gpu.py'); "
        f"print(sorted(name for name in {NOT_ON_THE_GPU_PATH!r} if name in sys.modules))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_tiny_run_prints_every_stage_without_the_workflow_packages(repo):
    """The whole run with zarr, av, snakemake and tabulate made unimportable: the plain-text table."""
    blocked = (*NOT_ON_THE_GPU_PATH, "tabulate")
    result = python(
        repo,
        f"import runpy, sys; sys.modules.update(dict.fromkeys({blocked!r})); "
        "sys.argv = ['gpu.py', '--tiny', '--device', 'cpu']; runpy.run_path('benchmarks/gpu.py', run_name='__main__')",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tiny preset shapes, random weights; 4x64x64, float32, CPU")
    assert lines[1].split() == ["stage", "seconds", "s/step", "floor", "TFLOP", "MFU", "(peak", "989)", "peak", "GiB"]
    stages = [
        r"build random weights \(not in a run\)",
        r"load components",
        r"fine-tune setup: load, encode, save \(a 1-step run less a step\)",
        r"fine-tune 2 steps \(with setup; s/step and MFU without\)",
        r"24 GiB fit, counted on meta: activations [\d.]+ \+ weights [\d.]+ GiB +yes",
        r"load fine-tuned video model",
        r"invert 2 steps \(\+ encode\)",
        r"edit 'a red bulldog': 2 steps with CFG \(\+ decode\)",
        r"edit 'a yellow taxi': 2 steps with CFG \(\+ decode\)",
        r"one video x 2 edits, end to end \(fine-tune to last edit\)",
    ]
    body = lines[3:]
    assert len(body) == len(stages), result.stdout
    for line, stage in zip(body, stages):
        assert re.match(stage, line), (stage, line)
    spans = [match.span() for match in re.finditer(r"-+", lines[2])]  # the dashes under each header
    table = {line: [line[start:end].strip() for start, end in spans] for line in body}
    for line, (stage, seconds, per_step, floor, mfu, memory) in table.items():
        if "fit" in line:
            continue
        if not stage.startswith("fine-tune setup"):  # a difference of two runs, noisy at tiny sizes
            assert float(seconds) > 0, line
        assert memory in ("n/a", ""), line  # no GPU memory on a CPU
        if stage.startswith(("invert", "edit", "one video")):
            assert float(floor) > 0 and float(mfu.rstrip("%")) > 0, line
        if stage.startswith(("invert", "edit")):
            assert abs(float(per_step) - float(seconds) / 2) < 0.01, line  # 2 steps
    floors = {cells[0].split()[0]: float(cells[3]) for cells in table.values() if cells[0].startswith(("invert", "edit"))}
    assert floors["edit"] / floors["invert"] == pytest.approx(2, rel=1e-3)  # classifier-free guidance: two prompts
