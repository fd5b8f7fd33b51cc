"""The priors rules in a Snakemake run of the real Snakefile on a tiny rendered clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from snakemake_runs import planned_jobs, snakemake

from vidmp3.store import read_array

pytestmark = pytest.mark.workflow

CONFIG = {
    "render": {
        "clips": {"toy": {"shape": "cube", "texture": "checker", "frames": 12, "width": 32, "height": 32, "supersample": 2}}
    },
    "priors": {"flow": {"dis_preset": "medium"}},
}
HEADER = "video\tsource\tmasks\tprompt\tcategory\tmotion\tfirst_frame\tframes\tstride\tsize\tcrop\tcorr_backend\tmask_backend\tdepth_backend\tsubject_class\n"
TOY = "toy\tresults/clips/toy/video.mp4\tresults/clips/toy/masks\ta cube\tobject\tlarge\t0\t4\t3\t32x32\tcenter"


def write_config(workdir: Path, backends: str, config: dict = CONFIG) -> None:
    """Videos sheet with one rendered video; `backends` are its corr/mask/depth/subject_class cells."""
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    (workdir / "config" / "videos.tsv").write_text(HEADER + TOY + "\t" + backends + "\n")
    (workdir / "config" / "edits.tsv").write_text("video\tconcept\tprompt\tkind\ntoy\tsphere\ta sphere\tcross-domain\n")


PRIORS_TARGETS = ("results/priors/toy.zarr/guide", "results/priors/toy.zarr/alpha", "results/priors/toy_priors.png")


def planned_priors_jobs(workdir: Path) -> dict[str, int]:
    """Rule -> job count of a dry run for the priors of toy (only these targets, not the later stages)."""
    return planned_jobs(workdir, *PRIORS_TARGETS)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("priors_workflow")
    write_config(workdir, "\t\trender\t")  # tiny preset defaults: flow, given masks; depth from the render
    snakemake(workdir, *PRIORS_TARGETS)
    return workdir


def test_every_prior_is_written_in_the_video_group(workdir):
    group = workdir / "results" / "priors" / "toy.zarr"
    mask, mask_attrs = read_array(group / "mask")
    corr, corr_attrs = read_array(group / "corr")
    depth, depth_attrs = read_array(group / "depth")
    guide, _ = read_array(group / "guide")
    alpha, _ = read_array(group / "alpha")
    given, _ = read_array(group / "mask_given")
    np.testing.assert_array_equal(mask, given)
    assert mask_attrs["backend"] == "given" and corr_attrs["backend"] == "flow" and depth_attrs["backend"] == "render"
    assert corr.shape == (4, 32, 32, 3) and corr.dtype == np.float16
    assert depth.shape == (4, 32, 32) and depth.dtype == np.float16
    assert guide.shape == (4, 3, 32, 32) and guide.dtype == np.float16
    np.testing.assert_allclose(guide, (corr * depth[..., None]).transpose(0, 3, 1, 2), atol=1e-3)
    np.testing.assert_allclose(alpha, mask.mean(axis=(1, 2)))
    assert not corr[~mask].any() and not depth[~mask].any() and depth[mask].min() > 0
    assert (workdir / "results" / "priors" / "toy_priors.png").stat().st_size > 0
    for rule in ("priors_mask", "priors_corr", "priors_depth", "priors_guide"):
        assert (workdir / "results" / "logs" / rule / "toy.log").is_file()
        assert (workdir / "results" / "benchmarks" / rule / "toy.tsv").is_file()


def test_a_change_to_one_prior_reruns_that_prior_and_the_guide_only(workdir):
    assert planned_priors_jobs(workdir) == {}
    try:
        write_config(workdir, "render\t\trender\t")
        assert planned_priors_jobs(workdir) == {"priors_corr": 1, "priors_guide": 1}
        write_config(workdir, "\t\trender\t", CONFIG | {"priors": {"flow": {"dis_preset": "fast"}}})
        assert planned_priors_jobs(workdir) == {"priors_corr": 1, "priors_guide": 1}
        write_config(workdir, "\tmotion\trender\t")
        assert planned_priors_jobs(workdir) == {"priors_mask": 1, "priors_corr": 1, "priors_depth": 1, "priors_guide": 1}
    finally:
        write_config(workdir, "\t\trender\t")
