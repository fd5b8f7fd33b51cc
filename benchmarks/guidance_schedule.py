"""Classifier-free guidance from inverted latents, with the first steps unguided, and the editing
strength (the share of the schedule inverted and sampled back): `python benchmarks/guidance_schedule.py`
prints a table.

Issue 14: guidance 2 breaks the trajectory even of a reconstruction (the source prompt sampled from its
own inverted latents), while guidance 1 keeps it. `editing: unguided_steps` samples the first (noisiest)
steps with the edit prompt alone and guides the rest. On ToyWorld VALIDATION clips (seeds from
2 000 000, disjoint from the benchmark's test clips), at the paper's settings (100 fine-tuning steps,
DDIM 50 + 50, the benchmark's guidance), per method, strength and number of unguided steps: the reconstruction's centroid
error and each edit's centroid error (against the source and against the ideal edit, the target
subject rendered on the source's trajectory), shape leakage and target shape, beside the static chance
level (the source's middle frame repeated) and the ideal edit's own scores. Mean over clips (and edits) with the range over clips.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from vidmp3.editing import invert_frames, load_video_model, sample_edit
from vidmp3.finetune import finetune
from vidmp3.methods import get_method
from vidmp3.model.presets import TOYWORLD_WEIGHTS, model_spec
from vidmp3.motionguide import guide_input
from vidmp3.toyworld import world
from vidmp3.toyworld.benchmark import (
    CHANCE_LEVELS,
    IDEAL_EDIT,
    OTHER_CLIP_OFFSET,
    BenchmarkConfig,
    _finetune_config,
    _score,
    ideal_edit,
    plan_clip,
    rendered_priors,
)
from vidmp3.toyworld.classifier import load_classifier
from vidmp3.toyworld.probe import VALIDATION_SEED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="no-motionguide,vidmp3-spatial")
    parser.add_argument("--unguided", default="0,10,20,30,50", help="unguided steps of the 50 sampling steps")
    parser.add_argument("--strengths", default="1.0", help="shares of the 50-step schedule inverted and sampled back")
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=VALIDATION_SEED)
    parser.add_argument("--edits", type=int, default=2)
    args = parser.parse_args()
    if args.first_seed < VALIDATION_SEED:
        raise SystemExit(f"validation clips only: --first-seed must be at least {VALIDATION_SEED}")
    torch.set_num_threads(1)
    config = BenchmarkConfig(clips=args.clips, first_seed=args.first_seed, edits=args.edits, methods=args.methods.split(","))
    spec = model_spec("toyworld")
    classifier = load_classifier(TOYWORLD_WEIGHTS / "classifier")
    unguided = [int(value) for value in args.unguided.split(",")]
    strengths = [float(value) for value in args.strengths.split(",")]
    results: dict[tuple[str, float, int], dict[str, list[float]]] = {}
    chance = {name: {"centroid": [], "ideal": []} for name in ("static", IDEAL_EDIT)}
    with tempfile.TemporaryDirectory() as folder:
        for index in range(args.clips):
            plan = plan_clip(args.first_seed + index, args.edits)
            clip = world.render_toy_clip(plan.shape, plan.colour, plan.seed, size=world.IMAGE_SIZE, motion=config.motion)
            other = world.render_toy_clip(
                plan.shape, plan.colour, plan.seed + OTHER_CLIP_OFFSET, size=world.IMAGE_SIZE, motion=config.motion
            )
            ideals = [ideal_edit(plan, edit, config.frames, config.motion) for edit in range(args.edits)]
            for name, levels in chance.items():
                for edit, ideal in enumerate(ideals):
                    score = _score(
                        classifier, CHANCE_LEVELS[name][0](clip, other, ideal), clip, ideal, plan, edit, config.segment_threshold
                    )
                    levels["centroid"].append(score["centroid_error"])
                    levels["ideal"].append(score["ideal_centroid_error"])
            priors = rendered_priors(clip)
            height, width = clip.frames.shape[1:3]
            for method in config.methods:
                variant = get_method(method).guide_variant
                weights = Path(folder) / f"{method}-{plan.seed}"
                guide = guide_input(priors.corr, priors.depth, variant) if variant else None
                finetune(
                    clip.frames,
                    guide,
                    priors.alpha if variant else None,
                    plan.caption,
                    spec,
                    _finetune_config(config, method),
                    weights,
                )
                model = load_video_model(weights, len(clip.frames), priors, "cpu", torch.float32)
                for strength in strengths:
                    _, noise = invert_frames(model, clip.frames, plan.caption, config.inversion_steps, strength)
                    for steps in unguided:
                        cell = results.setdefault(
                            (method, strength, steps), {"reconstruction": [], "edit": [], "ideal": [], "leakage": [], "shape": []}
                        )
                        prompts = [plan.caption] + [plan.target_caption(edit) for edit in range(args.edits)]
                        for edit, prompt in enumerate(prompts, start=-1):
                            sample = sample_edit(
                                model,
                                noise,
                                prompt,
                                "",
                                config.guidance_scale,
                                config.editing_steps,
                                height,
                                width,
                                steps,
                                strength,
                            )
                            ideal = clip if edit < 0 else ideals[edit]  # the reconstruction's ideal is the source
                            score = _score(classifier, sample, clip, ideal, plan, max(edit, 0), config.segment_threshold)
                            if edit < 0:
                                cell["reconstruction"].append(score["centroid_error"])
                                continue
                            cell["edit"].append(score["centroid_error"])
                            cell["ideal"].append(score["ideal_centroid_error"])
                            cell["leakage"].append(score["shape_iou"])
                            cell["shape"].append(score["shape_correct"])
    levels = "; ".join(
        f"{name}: {np.mean(values['centroid']):.3f} against the source, {np.mean(values['ideal']):.3f} against the ideal edit"
        for name, values in chance.items()
    )
    print(
        f"\nToyWorld validation clips {args.first_seed}–{args.first_seed + args.clips - 1}, {args.edits} edits each; "
        f"fine-tuning {config.finetune_steps} steps, DDIM {config.inversion_steps} + {config.editing_steps}, guidance "
        f"{config.guidance_scale:g}; centroid error of the reference rows: {levels}\n"
    )
    print(
        "| method | strength | unguided steps | reconstruction centroid error | edit centroid error | edit centroid error vs ideal edit "
        "| edit shape leakage (IoU) | edit target shape |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (method, strength, steps), cell in results.items():
        values = [
            f"{np.mean(cell[key]):.3f} [{min(cell[key]):.3f}, {max(cell[key]):.3f}]"
            for key in ("reconstruction", "edit", "ideal", "leakage", "shape")
        ]
        print(f"| {method} | {strength:g} | {steps} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    main()
