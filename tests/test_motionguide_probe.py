"""The MotionGuide probe: its guides, its pairing and its refusal of test clips (tiny preset)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidmp3.errors import InputError
from vidmp3.model.presets import model_spec
from vidmp3.model.tiny import build_tiny
from vidmp3.toyworld import world
from vidmp3.toyworld.benchmark import rendered_priors
from vidmp3.toyworld.probe import GUIDES, STARTS, VALIDATION_SEED, ProbeConfig, probe_differences, reversed_priors, run_probe


def test_probe_refuses_test_clips_and_methods_without_motionguide():
    with pytest.raises(InputError, match="VALIDATION_SEED"):
        ProbeConfig(first_seed=world.HELD_OUT_SEED)
    with pytest.raises(InputError, match="no MotionGuide"):
        ProbeConfig(method="no-motionguide")


def test_reversed_priors_play_the_clip_backwards():
    priors = rendered_priors(world.render_toy_clip("cube", "red", VALIDATION_SEED))
    backwards = reversed_priors(priors)
    assert np.array_equal(backwards.corr, priors.corr[::-1]) and np.array_equal(backwards.alpha, priors.alpha[::-1])


def test_differences_pair_each_guide_with_lambda_zero_on_its_track():
    rows = []
    for seed, shift in ((1, 0.0), (2, 0.1)):
        for start in STARTS:
            rows.append(
                {
                    "clip_seed": seed,
                    "start": start,
                    "guide": "off",
                    "error_source": 0.3,
                    "error_reversed": 0.3,
                    "error_other": 0.3,
                }
            )
            rows.append(
                {
                    "clip_seed": seed,
                    "start": start,
                    "guide": "true",
                    "error_source": 0.1 + shift,
                    "error_reversed": 0.5,
                    "error_other": 0.5,
                }
            )
            rows.append(
                {
                    "clip_seed": seed,
                    "start": start,
                    "guide": "reversed",
                    "error_source": 0.5,
                    "error_reversed": 0.3,
                    "error_other": 0.5,
                }
            )
    differences = probe_differences(pd.DataFrame(rows)).set_index(["start", "guide"])
    assert differences.loc[("noise", "true"), "mean"] == pytest.approx(-0.15)
    assert differences.loc[("noise", "true"), "ci_low"] == pytest.approx(-0.2)
    assert differences.loc[("inverted", "reversed"), "mean"] == pytest.approx(0.0)
    assert ("noise", "other") not in differences.index  # no `other` rows: nothing to pair


def test_a_reduced_probe_runs_every_start_and_guide(tmp_path):
    build_tiny("tiny", tmp_path / "tiny", seed=0)
    config = ProbeConfig(clips=1, method="vidmp3-spatial", finetune_steps=1, inversion_steps=1, sampling_steps=1)
    rows = run_probe(config, model_spec("tiny", tiny_dir=tmp_path))
    assert [(r.start, r.guide) for r in rows.itertuples()] == [(s, g) for s in STARTS for g in GUIDES]
    assert len(probe_differences(rows)) == 2 * 3


def test_the_probe_script_passes_its_arguments_and_writes_both_tables(tmp_path):
    """benchmarks/motionguide_probe.py end to end on the tiny preset (its options reach ProbeConfig)."""
    script = Path(__file__).parents[1] / "benchmarks" / "motionguide_probe.py"
    command = [sys.executable, str(script), "--preset", "tiny", "--methods", "vidmp3-spatial", "--clips", "1"]
    command += ["--finetune-steps", "1", "--steps", "1", "--guide-strength", "0.2", "--out", str(tmp_path)]
    printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    assert "'guide_strength': 0.2" in printed
    assert len(pd.read_csv(tmp_path / "probe_rows.csv")) == len(STARTS) * len(GUIDES)
    assert len(pd.read_csv(tmp_path / "probe_differences.csv")) == 2 * 3
