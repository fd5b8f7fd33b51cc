"""Two subjects in one clip: one MotionGuide per subject vs one shared MotionGuide vs none, on ToyWorld.

`python benchmarks/two_subjects.py --clips 2 --first-seed 1000000 --rows a.csv` runs clips and writes
their per-subject rows; `python benchmarks/two_subjects.py --table a.csv b.csv` prints the table of
one or more row files (mean over clips and both subjects, 95% bootstrap interval over clips).

Per clip (`vidmp3.toyworld.two_subjects`): two subjects on crossing or diverging paths, edited into two
other shapes and colours ("a red cube a blue sphere" -> "a yellow cylinder a green cone"), each method
fine-tuned on the clip (the same seed), the source inverted once and the edit sampled:

- `per-subject`: `--method` (vidmp3-spatial) with one MotionGuide per subject (`SubjectMotionGuides`);
- `shared`: the same method with one MotionGuide on both subjects as one (today's method on the union);
- `none`: the same training without a MotionGuide (no-motionguide; tune-a-video for vidmp3-spatial-tav);
- `per-subject+prompts`, `shared+prompts`, `none+prompts`: those arms with subject prompts (`editing: subject_prompts`):
  each subject's pixels attend to its own phrase, "a red cube" in the inversion, "a yellow cylinder" in the edit.

Subject size: the per-subject arms sample a second edit with subject 2 scaled by `--scale` (its guide
region, and with subject prompts its phrase's region, grown about its centroid, `SourcePriors.scaled`),
scored against the targets rendered at that scale; `<arm>, unscaled guide` is its first edit scored
against the same scaled truth (the model told nothing), and the `unscaled` chance level is the ideal
render at the source size.
Chance levels (rendered, scored the same way): `static`, `swapped-tracks` (an identity swap), `unscaled`.
"""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vidmp3.editing import invert_frames, load_video_model, sample_edit
from vidmp3.finetune import finetune
from vidmp3.methods import get_method
from vidmp3.model.presets import TOYWORLD_WEIGHTS, model_spec
from vidmp3.motionguide import guide_input
from vidmp3.subjects import SubjectMap
from vidmp3.toyworld import two_subjects as ts
from vidmp3.toyworld import world
from vidmp3.toyworld.benchmark import BenchmarkConfig, _finetune_config, bootstrap_interval
from vidmp3.toyworld.classifier import load_classifier
from vidmp3.toyworld.world import HELD_OUT_SEED

ARMS = {
    "per-subject": (ts.subject_priors, False),
    "shared": (ts.shared_priors, False),
    "none": (None, False),
    "per-subject+prompts": (ts.subject_priors, True),
    "shared+prompts": (ts.shared_priors, True),
    "none+prompts": (None, True),
}
"""Each arm's priors (None: no MotionGuide) and whether each subject attends to its own phrase."""

GUIDED = ("vidmp3-spatial", "vidmp3-spatial-tav")
"""Methods for the guided arms: one MotionGuide per subject needs the per-pixel (spatial) layout."""


PAIRS = (
    ("per-subject", "none"),
    ("shared", "none"),
    ("per-subject", "shared"),
    ("per-subject+prompts", "per-subject"),
    ("per-subject+prompts", "shared+prompts"),
    ("none+prompts", "none"),
)
"""The paired differences printed under the table."""


def score_into(
    rows: list[dict],
    classifier,
    source: ts.TwoSubjectClip,
    seed: int,
    paths: str,
    name: str,
    frames: np.ndarray,
    which: ts.TwoSubjectPlan,
    size_truth: ts.TwoSubjectClip,
) -> None:
    """Append one clip's per-subject rows for `frames` (an arm's edit or a chance level), named `name`."""
    rows.extend(
        {"clip_seed": seed, "paths": paths, "method": name, **row}
        for row in ts.subject_metrics(classifier, frames, source, size_truth, which)
    )


def run_clips(first_seed: int, clips: int, scale: float, arms: list[str], guided: str, config: BenchmarkConfig) -> pd.DataFrame:
    unguided = "tune-a-video" if get_method(guided).whole_motion_modules else "no-motionguide"
    spec = model_spec("toyworld")
    classifier = load_classifier(TOYWORLD_WEIGHTS / "classifier")
    rows = []
    with tempfile.TemporaryDirectory(prefix="two-subjects-") as work:
        for seed in range(first_seed, first_seed + clips):
            plan = ts.plan_two_subjects(seed)
            scaled_plan = ts.plan_two_subjects(seed, scales=(1.0, scale))
            source = ts.source_clip(plan)
            truth, scaled_truth = ts.size_truth(plan, source), ts.size_truth(scaled_plan, source)

            score = partial(score_into, rows, classifier, source, seed, plan.paths)
            for name, (make, _) in ts.CHANCE_LEVELS.items():
                which = scaled_plan if name == "unscaled" else plan
                score(name, make(which, source).frames, which, scaled_truth if name == "unscaled" else truth)
            height, width = source.frames.shape[1:3]
            for arm in arms:
                make_priors, subject_prompts = ARMS[arm]
                method = guided if make_priors else unguided
                priors = make_priors(source) if make_priors else None
                guide = guide_input(priors.corr, priors.depth, "product") if priors else None
                weights = Path(work) / f"{arm}-{seed}"
                finetune(
                    source.frames,
                    guide,
                    priors.alpha if priors else None,
                    plan.caption,
                    spec,
                    _finetune_config(config, method),
                    weights,
                    subjects=priors.subjects if priors else None,
                )
                model = load_video_model(
                    weights, len(source.frames), priors, config.device, torch.float32, subject_prompts=subject_prompts
                )
                subjects = SubjectMap(ts.SUBJECTS, source.labels) if subject_prompts else None
                phrases = dict(zip(ts.SUBJECTS, (world.caption(*subject) for subject in plan.sources)))
                _, noise = invert_frames(
                    model, source.frames, plan.caption, config.inversion_steps, subjects=subjects, phrases=phrases
                )
                targets = dict(zip(ts.SUBJECTS, (world.caption(*subject) for subject in plan.targets)))
                edit = partial(
                    sample_edit,
                    noise=noise,
                    prompt=plan.target_caption,
                    negative_prompt="",
                    guidance_scale=config.guidance_scale,
                    steps=config.editing_steps,
                    height=height,
                    width=width,
                    phrases=targets,
                )
                edited = edit(model, subjects=subjects)
                score(arm, edited, plan, truth)
                if make_priors is ts.subject_priors:
                    score(f"{arm}, unscaled guide", edited, scaled_plan, scaled_truth)
                    resized = priors.scaled({2: scale})
                    edited = edit(model.with_priors(resized), subjects=resized.subjects if subject_prompts else None)
                    score(f"{arm}, subject 2 x{scale:g}", edited, scaled_plan, scaled_truth)
                del model
            print(f"clip {seed} done", flush=True)
    return pd.DataFrame(rows)


def print_table(rows: pd.DataFrame) -> None:
    clips = rows["clip_seed"].nunique()
    print(
        f"\n{clips} clips ({', '.join(map(str, sorted(rows['clip_seed'].unique())))}), 2 subjects each; "
        "mean over clips and subjects [95% bootstrap interval over clips]\n"
    )
    metrics = list(ts.METRICS)
    print("| method | " + " | ".join(metrics) + " |")
    print("|---" * (len(metrics) + 1) + "|")
    for method, group in rows.groupby("method", sort=False):
        cells = []
        for metric in metrics:
            mean = group[metric].mean()  # over clips and subjects, the statistic the bootstrap resamples
            low, high = bootstrap_interval(group[metric], group["clip_seed"])
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]" if np.isfinite(mean) else "n/a")
        print(f"| {method} | " + " | ".join(cells) + " |")
    print("\nPaired differences (same clips and subjects; mean [95% bootstrap interval over clips]):\n")
    paired = ("trajectory_error", "path_swap", "shape_correct", "leakage", "size_error")
    print("| difference | " + " | ".join(paired) + " |")
    print("|---" * (len(paired) + 1) + "|")
    keyed = rows.set_index(["method", "clip_seed", "subject"])
    for first, second in PAIRS:
        if first not in keyed.index.get_level_values(0) or second not in keyed.index.get_level_values(0):
            continue
        difference = (keyed.loc[first, list(paired)] - keyed.loc[second, list(paired)]).reset_index()
        cells = []
        for metric in paired:
            both = difference.dropna(subset=[metric])
            mean = both[metric].mean()
            low, high = bootstrap_interval(both[metric], both["clip_seed"])
            cells.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        print(f"| {first} − {second} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--method", default=GUIDED[0], choices=GUIDED, help="the guided arms' method")
    parser.add_argument("--scale", type=float, default=1.5, help="subject 2's scale in the resized edit")
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--ddim-steps", type=int, default=50, help="inversion and sampling steps each")
    parser.add_argument("--rows", help="write the per-subject rows of the clips run here to this CSV")
    parser.add_argument("--table", nargs="*", help="print the table of these row CSVs instead of running")
    args = parser.parse_args()
    if args.table:
        print_table(pd.concat([pd.read_csv(path) for path in args.table], ignore_index=True))
        return
    if args.first_seed < HELD_OUT_SEED:
        raise SystemExit(f"--first-seed must be at least {HELD_OUT_SEED}: lower seeds are pretraining clips")
    torch.set_num_threads(1)
    config = BenchmarkConfig(
        clips=args.clips,
        first_seed=args.first_seed,
        edits=1,
        finetune_steps=args.finetune_steps,
        inversion_steps=args.ddim_steps,
        editing_steps=args.ddim_steps,
        strip_clips=1,
    )
    rows = run_clips(args.first_seed, args.clips, args.scale, args.arms.split(","), args.method, config)
    if args.rows:
        rows.to_csv(args.rows, index=False)
    print_table(rows)


if __name__ == "__main__":
    main()
