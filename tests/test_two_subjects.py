"""ToyWorld with two subjects (paths, occlusion, per-subject truth and metrics) and subject scaling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidmp3.editing import SourcePriors
from vidmp3.errors import InputError
from vidmp3.model.presets import TOYWORLD_WEIGHTS
from vidmp3.subjects import SubjectMap, scale_about_centroid
from vidmp3.toyworld import two_subjects as ts
from vidmp3.toyworld import world
from vidmp3.toyworld.classifier import load_classifier
from vidmp3.toyworld.metrics import centroids_and_sizes


def test_scaling_grows_a_subject_about_its_centroid_over_the_background_only():
    labels = np.zeros((1, 20, 20), np.uint8)
    labels[0, 8:12, 4:8] = 1  # 4x4, centroid (5.5, 9.5)
    labels[0, 8:12, 9:12] = 2  # right next to it
    depth = (labels > 0).astype(np.float32)
    grown, (grown_depth,) = scale_about_centroid(labels, [depth], 1, 2.0)
    (before,), _ = centroids_and_sizes(labels == 1)
    (after,), (size,) = centroids_and_sizes(grown == 1)
    np.testing.assert_allclose(after, before, atol=0.6)
    assert (grown == 2).sum() == (labels == 2).sum()  # the other subject keeps its pixels
    assert (grown == 1).sum() > 2 * (labels == 1).sum()
    np.testing.assert_array_equal(grown_depth > 0, grown > 0)
    shrunk, _ = scale_about_centroid(labels, [depth], 1, 0.5)
    assert 0 < (shrunk == 1).sum() < (labels == 1).sum()
    with pytest.raises(InputError, match="must be positive"):
        scale_about_centroid(labels, [depth], 1, 0.0)


def test_scaled_priors_keep_alpha_and_the_map_consistent():
    labels = np.zeros((2, 16, 16), np.uint8)
    labels[:, 4:8, 4:8] = 1
    labels[:, 10:14, 10:14] = 2
    corr = np.repeat((labels > 0)[..., None], 3, axis=-1).astype(np.float32) * 0.5
    alpha = np.stack([(labels == k).mean(axis=(1, 2)) for k in (1, 2)], axis=1).astype(np.float32)
    priors = SourcePriors(corr, (labels > 0).astype(np.float32), alpha, SubjectMap((1, 2), labels))
    assert priors.scaled({1: 1.0}) is priors
    scaled = priors.scaled({2: 1.5})
    np.testing.assert_allclose(scaled.alpha[:, 0], alpha[:, 0])
    assert (scaled.alpha[:, 1] > alpha[:, 1]).all()
    np.testing.assert_array_equal(scaled.depth > 0, scaled.subjects.labels > 0)
    with pytest.raises(InputError, match="need those subjects"):
        SourcePriors(corr, (labels > 0).astype(np.float32), alpha[:, 0]).scaled({2: 1.5})


@pytest.fixture(scope="module")
def crossing():
    seed = next(seed for seed in range(2_000_000, 2_000_050) if ts.plan_two_subjects(seed).paths == "crossing")
    plan = ts.plan_two_subjects(seed, scales=(1.0, 1.5))
    return plan, ts.source_clip(plan)


def test_plans_differ_per_subject_and_captions_fit_the_toyworld_text_encoder(crossing):
    plan, _ = crossing
    (s1, c1), (s2, c2) = plan.sources
    (t1, d1), (t2, d2) = plan.targets
    assert len({s1, s2, t1, t2}) == 4 and len({c1, c2, d1, d2}) == 4
    assert len(plan.target_caption.split()) + 2 <= 8  # start and end tokens


def test_crossing_paths_occlude_by_depth_and_the_truth_says_who_shows(crossing):
    plan, clip = crossing
    near, far = (clip.renders[0].mask, clip.renders[1].mask)
    overlap = near & far
    assert overlap.any()  # the paths cross
    assert (clip.labels[overlap] == 1).all()  # subject 1 walks nearer: it hides subject 2
    (first,), _ = centroids_and_sizes(clip.visible(1)[:1])
    (last,), _ = centroids_and_sizes(clip.visible(1)[-1:])
    assert last[0] - first[0] > 8  # subject 1 crosses from left to right
    priors = ts.subject_priors(clip)
    assert priors.alpha.shape == (world.CLIP_FRAMES, 2) and priors.subjects.ids == (1, 2)
    assert (priors.depth[clip.labels > 0] > 0).all() and not priors.depth[clip.labels == 0].any()
    shared = ts.shared_priors(clip)
    assert shared.subjects is None and shared.alpha.shape == (world.CLIP_FRAMES,)


def test_metrics_score_the_ideal_edit_well_and_the_chance_levels_as_what_they_are(crossing):
    plan, clip = crossing
    classifier = load_classifier(TOYWORLD_WEIGHTS / "classifier")
    truth = ts.size_truth(plan, clip)
    ideal = ts.subject_metrics(classifier, truth.frames, clip, truth, plan)
    swapped = ts.subject_metrics(classifier, ts.CHANCE_LEVELS["swapped-tracks"][0](plan, clip).frames, clip, truth, plan)
    unscaled = ts.subject_metrics(classifier, ts.CHANCE_LEVELS["unscaled"][0](plan, clip).frames, clip, truth, plan)
    for good, bad in zip(ideal, swapped):
        assert good["trajectory_error"] < 0.15 < bad["trajectory_error"]
        assert good["path_swap"] == 0 and bad["path_swap"] == 1
        assert good["leakage"] < 0.2 < bad["leakage"]
    assert ideal[1]["size_error"] < 0.15 < unscaled[1]["size_error"]  # subject 2 is 1.5x in the truth


def test_the_benchmark_script_runs_every_arm_kind_and_prints_the_paired_table(tmp_path):
    """`benchmarks/two_subjects.py` on one clip at 2 fine-tuning and 2 DDIM steps: the per-subject arm with
    subject prompts also samples its resized edit, the unguided one with subject prompts does not."""
    script = Path(__file__).parents[1] / "benchmarks" / "two_subjects.py"
    command = [sys.executable, str(script), "--clips", "1", "--first-seed", str(world.HELD_OUT_SEED)]
    command += ["--arms", "per-subject,per-subject+prompts,none+prompts", "--finetune-steps", "2", "--ddim-steps", "2"]
    printed = subprocess.run(command + ["--rows", str(tmp_path / "rows.csv")], check=True, capture_output=True, text=True).stdout
    rows = pd.read_csv(tmp_path / "rows.csv")
    arms = {"per-subject+prompts", "per-subject+prompts, unscaled guide", "per-subject+prompts, subject 2 x1.5", "none+prompts"}
    assert arms <= set(rows["method"]) and "none+prompts, subject 2 x1.5" not in set(rows["method"])
    assert (rows.groupby("method").size() == 2).all()  # both subjects of the one clip
    assert "| per-subject+prompts − per-subject |" in printed
