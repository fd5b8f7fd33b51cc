"""Running the real Snakefile in a temporary working directory, for the workflow tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CACHED_RULES = ("priors_mask", "priors_corr", "priors_depth", "finetune")
"""The per-video stages README's `--cache` names (they record their own timing instead of `benchmark:`)."""

SMALL_CONFIG = {
    "videos": "config/videos.tsv",
    "edits": "config/edits.tsv",
    "methods": ["vidmp3"],
    "model": {"preset": "tiny"},
    "finetune": {"steps": 2, "motion_guide_hidden": 8},
    "inversion": {"steps": 2},
    "editing": {"steps": 2},
}
"""One method on the tiny preset with two steps per stage: the cache and Slurm runs."""


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def planned_jobs(workdir: Path, *targets: str) -> dict[str, int]:
    """Rule name -> job count of a dry run of `targets` (the default target if none); empty when nothing is to be done."""
    out = snakemake(workdir, *targets, "-n", "--quiet", "rules").stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def write_folder_clip(workdir: Path, name: str = "folder", frames: int = 8) -> None:
    """A DAVIS-like clip under workdir/clips: a folder of JPEG frames and one of PNG masks (a moving square)."""
    import numpy as np
    from PIL import Image

    frame_dir, mask_dir = workdir / "clips" / name, workdir / "clips" / f"{name}-masks"
    frame_dir.mkdir(parents=True)
    mask_dir.mkdir()
    y, x = np.mgrid[0:40, 0:48]
    for t in range(frames):
        Image.fromarray(np.dstack([x * 5, y * 6, np.full_like(x, 30 * t)]).astype(np.uint8)).save(frame_dir / f"{t:05d}.jpg")
        Image.fromarray(((np.abs(x - 10 - 3 * t) < 8) & (np.abs(y - 20) < 8)).astype(np.uint8) * 255).save(
            mask_dir / f"{t:05d}.png"
        )


def write_small_config(workdir: Path, config: dict, videos: list[str], edits: list[str]) -> None:
    """config/config.yaml and both sheets in workdir; video rows without the (empty) priors columns."""
    import yaml

    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    header = "video\tsource\tmasks\tprompt\tcategory\tmotion\tfirst_frame\tframes\tstride\tsize\tcrop"
    header += "\tcorr_backend\tmask_backend\tdepth_backend\tsubject_class\n"
    (workdir / "config" / "videos.tsv").write_text(header + "".join(row + "\t\t\t\t\n" for row in videos))
    (workdir / "config" / "edits.tsv").write_text("video\tconcept\tprompt\tkind\n" + "".join(row + "\n" for row in edits))
