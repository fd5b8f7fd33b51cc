"""Snakemake runs of the real Snakefile on tiny configs in temporary working directories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from vidmp3.store import read_array, read_group_attrs

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow

TINY_CONFIG = {
    "videos": "config/videos.tsv",
    "edits": "config/edits.tsv",
    "render": {"clips": {"toy": {"shape": "cube", "frames": 12, "width": 32, "height": 32, "supersample": 2}}},
}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def write_sheets(workdir: Path, video_rows: list[str], edit_rows: list[str]) -> None:
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    header = "video\tsource\tmasks\tprompt\tcategory\tmotion\tfirst_frame\tframes\tstride\tsize\tcrop\n"
    (workdir / "config" / "videos.tsv").write_text(header + "".join(row + "\n" for row in video_rows))
    (workdir / "config" / "edits.tsv").write_text("video\tconcept\tprompt\tkind\n" + "".join(row + "\n" for row in edit_rows))


def planned_jobs(workdir: Path) -> dict[str, int]:
    """Rule name -> job count of a dry run (empty when nothing is to be done)."""
    out = snakemake(workdir, "-n", "--quiet", "rules").stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    frames = workdir / "clips" / "folder"
    masks = workdir / "clips" / "folder-masks"
    frames.mkdir(parents=True)
    masks.mkdir()
    y, x = np.mgrid[0:40, 0:48]
    for t in range(8):
        Image.fromarray(np.dstack([x * 5, y * 6, np.full_like(x, 30 * t)]).astype(np.uint8)).save(frames / f"{t:05d}.jpg")
        Image.fromarray(((np.abs(x - 10 - 3 * t) < 8) & (np.abs(y - 20) < 8)).astype(np.uint8) * 255).save(masks / f"{t:05d}.png")
    write_sheets(
        workdir,
        [
            "toy\tresults/clips/toy/video.mp4\tresults/clips/toy/masks\ta cube\tobject\tlarge\t0\t4\t3\t32x32\tcenter",
            "folder\tclips/folder\tclips/folder-masks\ta square\tobject\tsmall\t1\t3\t2\t48x40\tnone",
        ],
        ["toy\tsphere\ta sphere\tcross-domain"],
    )
    snakemake(workdir)
    return workdir


def test_outputs_of_a_full_run(workdir):
    toy = workdir / "results" / "priors" / "toy.zarr"
    frames, attrs = read_array(toy / "frames")
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    assert attrs["frame_indices"] == [0, 3, 6, 9] and attrs["fps"] == pytest.approx(24)
    assert read_group_attrs(toy)["video_source"] == "results/clips/toy/video.mp4"
    mask, _ = read_array(toy / "mask_given")
    assert mask.shape == (4, 32, 32) and 0 < mask.mean() < 0.5
    truth_mask, _ = read_array(workdir / "results" / "clips" / "toy" / "truth.zarr" / "mask")
    assert truth_mask.shape == (12, 32, 32)

    folder = workdir / "results" / "priors" / "folder.zarr"
    frames, attrs = read_array(folder / "frames")
    assert frames.shape == (3, 40, 48, 3) and attrs["frame_indices"] == [1, 3, 5] and attrs["fps"] is None
    mask, _ = read_array(folder / "mask_given")
    assert mask.sum(axis=(1, 2)).tolist() == [225, 225, 225]
    for rule in ("render_clip", "frames", "given_masks"):
        assert list((workdir / "results" / "logs" / rule).glob("*.log")), rule
        assert list((workdir / "results" / "benchmarks" / rule).glob("*.tsv")), rule


def test_nothing_reruns_and_a_sheet_change_reruns_only_that_video(workdir):
    assert planned_jobs(workdir) == {}
    sheet = workdir / "config" / "videos.tsv"
    original = sheet.read_text()
    try:
        sheet.write_text(original.replace("\t1\t3\t2\t48x40", "\t1\t3\t1\t48x40"))
        assert planned_jobs(workdir) == {"frames": 1, "given_masks": 1, "all": 1}
    finally:
        sheet.write_text(original)


def test_bad_source_fails_the_job_and_leaves_no_partial_output(tmp_path):
    (tmp_path / "broken.mp4").write_text("not a video")
    write_sheets(tmp_path, ["broken\tbroken.mp4\t\ta thing\tobject\tlarge\t0\t4\t1\t32x32\tcenter"], ["broken\tx\tan x\tstyle"])
    result = snakemake(tmp_path, check=False)
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "frames" / "broken.log").read_text()
    assert "broken.mp4: not a readable video" in log
    group = tmp_path / "results" / "priors" / "broken.zarr"
    assert not group.exists() or list(group.iterdir()) == []


def test_bad_config_stops_at_parse_time(tmp_path):
    write_sheets(tmp_path, ["../escape\tclip.mp4\t\ta\tobject\tlarge\t0\t4\t1\t32x32\tcenter"], [])
    result = snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0
    assert "videos.tsv, line 2: video: '../escape' does not match" in result.stderr + result.stdout


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr
