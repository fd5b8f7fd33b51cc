# Config and sheets, validated at parse time, and the named helpers the rules use.
import functools
import re
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # import vidmp3 from this checkout even without installing it

from vidmp3.edit_schedule import check_edit_schedule
from vidmp3.errors import InputError
from vidmp3.frames import ALL_FRAMES
from vidmp3.logs import exit_on_input_error
from vidmp3.methods import METHODS as METHOD_TABLE
from vidmp3.precision import video_model_dtype
from vidmp3.model.spec import check_video_model, model_spec
from vidmp3.subjects import parse_scales, parse_subjects
from vidmp3.windows import Window
from vidmp3.workflow.cache_keys import check_cache_keys, check_cache_location
from vidmp3.workflow.config import ID_PATTERN, check_sheet_paths, load_config, load_edits, load_videos, parse_size
from vidmp3.workflow.paths import MODELS, VIDEO_MODEL, clip_path, method_edits, prior_array, priors_strip, weights_dir
from vidmp3.workflow.prior_settings import (
    RENDERED_SOURCE,
    guide_inputs,
    prior_backend,
    prior_inputs,
    prior_models,
    prior_params,
    rendered_clips,
    rendered_truth,
)

SCHEMAS = Path(workflow.basedir) / "config" / "schemas"
RENDERED_PATHS = clip_path("{clip}", "video.mp4"), clip_path("{clip}", "masks")
"""What the workflow renders per clip (render: clips:, toyworld: clips:), so a sheet may name it before it exists."""

with exit_on_input_error():  # a bad config, sheet or path stops Snakemake here with one short message
    # --cache (README "Reusing results between workflows"): one key per job, local or on Slurm, from
    # its script, params, library versions and inputs' content, folders included (vidmp3.workflow.cache_keys).
    check_cache_keys(getattr(workflow.workflow_settings, "cache", None))
    check_cache_location(getattr(workflow.workflow_settings, "cache", None))
    config.update(load_config(config, SCHEMAS, files=workflow.configfiles, overrides=workflow.config_settings.overwrite_config))
    CLIPS = config["render"]["clips"]
    TOYWORLD_CLIPS = config["toyworld"]["clips"]
    if set(CLIPS) & set(TOYWORLD_CLIPS):
        raise InputError(
            f"{', '.join(map(str, workflow.configfiles)) or 'config'}: clip ids {sorted(set(CLIPS) & set(TOYWORLD_CLIPS))} "
            "are under both render: clips: and toyworld: clips:; rename one"
        )
    Window(**config["window"])  # a stride longer than the window stops here, before any job
    check_edit_schedule(
        config["inversion"]["steps"],
        config["editing"]["steps"],
        config["editing"]["strength"],
        config["editing"]["unguided_steps"],
    )
    VIDEOS = load_videos(config["videos"], SCHEMAS)
    EDITS = load_edits(config["edits"], VIDEOS, SCHEMAS)
    check_sheet_paths(
        VIDEOS, config["videos"], {path.format(clip=clip) for clip in rendered_clips(config) for path in RENDERED_PATHS}
    )


def one_of(names):
    """A wildcard pattern matching exactly `names` (and nothing when there are none)."""
    return "|".join(re.escape(name) for name in names) if names else "(?!)"


wildcard_constraints:
    video=ID_PATTERN,
    concept=ID_PATTERN,
    clip=ID_PATTERN,


# Helpers that may raise InputError while Snakemake plans jobs carry @exit_on_input_error(): the
# error is then one short line too, before any job runs (not Snakemake's InputFunctionException).
@exit_on_input_error()
def video_row(wildcards):
    if wildcards.video not in VIDEOS.index:
        raise InputError(f"video {wildcards.video!r} is not in {config['videos']}; add a row for it or fix the target")
    return VIDEOS.loc[wildcards.video]


def rendered_clip_spec(wildcards):
    if wildcards.clip not in CLIPS:
        raise InputError(f"clip {wildcards.clip!r} is not under render: clips: in the config; add it or fix the target")
    return CLIPS[wildcards.clip]


PRIORS_PRIORITY = 10
"""Priors feed the guided methods' fine-tuning and every evaluation: schedule them as soon as they
can run, or Snakemake fills the cores with the unguided methods' chains first and the guided chain
waits until the end (measured: 30 s longer `make demo` on 2 cores)."""


def toyworld_clip_spec(wildcards):
    return TOYWORLD_CLIPS[wildcards.clip]


def frames_input(wildcards):
    return {"source": video_row(wildcards)["source"]}


def frames_sampling(wildcards):
    row = video_row(wildcards)
    return {
        "first_frame": int(row["first_frame"]),
        "frames": ALL_FRAMES if row["frames"] == ALL_FRAMES else int(row["frames"]),
        "stride": int(row["stride"]),
        "size": list(parse_size(row["size"])),
        "crop": row["crop"],
    }


@exit_on_input_error()
def given_masks_input(wildcards):
    masks = video_row(wildcards)["masks"]
    if not masks:
        raise InputError(f"video {wildcards.video!r} has no masks folder in {config['videos']}; fill its masks column")
    return {"masks": masks, "frames": prior_array(wildcards.video, "frames")}


def video_subject_ids(wildcards):
    """The video's subject ids (its instance masks' values); empty for one subject."""
    return sorted(parse_subjects(video_row(wildcards)["subjects"], config["videos"]))


# ---- priors: each rule's backend, options and inputs (vidmp3.workflow.prior_settings)


@exit_on_input_error()
def priors_mask_input(wildcards):
    return prior_inputs("mask", video_row(wildcards), config)


@exit_on_input_error()
def priors_mask_params(wildcards):
    return prior_params("mask", video_row(wildcards), config)


@exit_on_input_error()
def priors_guide_input(wildcards):
    return guide_inputs(video_row(wildcards))


@exit_on_input_error()
def priors_corr_input(wildcards):
    return prior_inputs("corr", video_row(wildcards), config)


@exit_on_input_error()
def priors_corr_params(wildcards):
    return prior_params("corr", video_row(wildcards), config)


@exit_on_input_error()
def priors_depth_input(wildcards):
    return prior_inputs("depth", video_row(wildcards), config)


@exit_on_input_error()
def priors_depth_params(wildcards):
    return prior_params("depth", video_row(wildcards), config)


# ---- model stages: fine-tuning, inversion, editing (one naming scheme: results/<stage>/<method>/...)
TINY_PRESETS = ("tiny", "tiny-sdxl")


wildcard_constraints:
    method="|".join(METHOD_TABLE),
    preset="|".join(TINY_PRESETS),


PRODUCT_METHOD = "vidmp3"
"""The method whose edits are the user's results (results/edits/<video>_<concept>.mp4); the others are
comparisons under results/methods/<method>/."""


def workdir_relative(path):
    """`path` relative to the working directory when it lies inside it (a project moved or copied with
    its checkout keeps the same inputs, so nothing reruns), else absolute."""
    path, workdir = Path(path).resolve(), Path.cwd().resolve()
    return str(path.relative_to(workdir)) if path.is_relative_to(workdir) else str(path)


SHIPPED_PRESETS = {"toyworld": workdir_relative(f"{workflow.basedir}/vidmp3/toyworld/weights")}
"""Presets whose weights are part of the checkout (vidmp3.model.presets.TOYWORLD_WEIGHTS)."""


@functools.cache
def check_video_model_once():
    """The video model's folders, layer shapes and the clips' lengths (config.json files only, no torch),
    when the first model stage is planned, before any job runs; `prefetch_weights` alone needs none.
    The tiny presets are built by the workflow to fit. A clip of `frames: all` is counted as one
    window long (its length is known once the frames stage has read it; its windows are no longer)."""
    if config["model"]["preset"] in TINY_PRESETS:
        return
    with exit_on_input_error():
        check_video_model(
            model_spec(config["model"]["preset"], config["model"]["base"] or None, config["model"]["motion_adapter"] or None),
            {
                video: config["window"]["frames"] if frames == ALL_FRAMES else int(frames)
                for video, frames in VIDEOS["frames"].items()
            },
            config["window"]["frames"],
        )


def model_input(wildcards):
    """The tiny preset's folder (built by tiny_model) or the shipped ToyWorld weights, so that
    rebuilt weights rerun what used them; real presets come from hub ids or folders."""
    check_video_model_once()
    preset = config["model"]["preset"]
    if config["model"]["base"] or config["model"]["motion_adapter"]:
        return {}
    if preset in TINY_PRESETS:
        return {"model": f"{MODELS}/{preset}"}
    if preset in SHIPPED_PRESETS:
        return {"model": SHIPPED_PRESETS[preset]}
    return {}


def model_params(wildcards):
    return {
        "preset": config["model"]["preset"],
        "base": config["model"]["base"] or None,
        "motion_adapter": config["model"]["motion_adapter"] or None,
        "tiny_dir": MODELS,
    }


def is_guided(method):
    return METHOD_TABLE[method].guide_variant is not None


def guide_priors(wildcards):
    """Correspondence, depth and alpha of the video (and its subjects' instance ids), for the methods that use MotionGuide."""
    if not is_guided(wildcards.method):
        return {}
    priors = {name: prior_array(wildcards.video, name) for name in ("corr", "depth", "alpha")}
    return priors | ({"subjects": prior_array(wildcards.video, "mask_given")} if video_row(wildcards)["subjects"] else {})


GPUS = 1 if config["device"].split(":")[0] == "cuda" else 0
"""GPUs a model job takes (`resources: gpu`): a local run honours it with `--resources gpu=N`, the
Slurm profile turns it into --gpus. CPU runs take none."""

MODEL_THREADS = 4 if GPUS else 1
"""CPU threads of a model job: on a GPU node a few feed the card; on CPUs one thread per job is
fastest for the small models (measured: two threads did not speed up ToyWorld's jobs on 2 cores)."""


def video_model_params(wildcards):
    return {
        "model": model_params(wildcards),
        "dtype": video_model_dtype(config["device"], config["dtype"], config["finetune"]["precision"]),
    }


def finetune_input(wildcards):
    return {
        "frames": prior_array(wildcards.video, "frames"),
        "video_unet": VIDEO_MODEL,
        **model_input(wildcards),
        **guide_priors(wildcards),
    }


def finetune_params(wildcards):
    settings = config["finetune"]
    motion = video_row(wildcards)["motion"]
    guide_strength = settings[f"guide_strength_{motion}"] if is_guided(wildcards.method) else 0.0
    return {
        "method": wildcards.method,
        "steps": settings["steps"],
        "learning_rate": settings["learning_rate"],
        "guide_strength": guide_strength,
        "seed": settings["seed"],
        "device": config["device"],
        "precision": settings["precision"],
        "gradient_checkpointing": settings["gradient_checkpointing"],
        "motion_guide_hidden": settings["motion_guide_hidden"],
        "window_frames": config["window"]["frames"],
    }


def video_prompt(wildcards):
    return video_row(wildcards)["prompt"]


def edit_row(wildcards):
    name = f"{wildcards.video}_{wildcards.concept}"
    if name not in EDITS.index:
        raise ValueError(f"edit {name!r} (video {wildcards.video!r}, concept {wildcards.concept!r}) is not in {config['edits']}")
    return EDITS.loc[name]


def edit_input(wildcards):
    """The edit job's inputs: with several subjects their instance ids for every method (subject prompts)."""
    inputs = {
        "frames": prior_array(wildcards.video, "frames"),
        "weights": weights_dir(wildcards.method, wildcards.video),
        "video_unet": VIDEO_MODEL,
        **model_input(wildcards),
        **guide_priors(wildcards),
    }
    if video_row(wildcards)["subjects"]:
        inputs["subjects"] = prior_array(wildcards.video, "mask_given")
    return inputs


def video_subject_phrases(wildcards):
    """The video's subjects: id -> phrase (empty for one subject)."""
    return {
        str(subject): phrase for subject, phrase in parse_subjects(video_row(wildcards)["subjects"], config["videos"]).items()
    }


def video_edits(wildcards):
    """The video's edits for its one edit job: concept -> its prompt, the title of its strip, its subjects'
    scales and phrases."""
    rows = EDITS[EDITS["video"] == wildcards.video]
    return {
        row["concept"]: {
            "prompt": row["prompt"],
            "title": f"{wildcards.video} / {row['concept']} ({wildcards.method}): {row['prompt']}",
            "scales": {str(subject): scale for subject, scale in parse_scales(row["subject_scales"], config["edits"]).items()},
            "subjects": {str(subject): phrase for subject, phrase in parse_subjects(row["subjects"], config["edits"]).items()},
        }
        for _, row in rows.iterrows()
    }


def edit_params(wildcards):
    settings = config["editing"]
    return {
        "inversion_steps": config["inversion"]["steps"],
        "steps": settings["steps"],
        "guidance_scale": settings["guidance_scale"],
        "unguided_steps": settings["unguided_steps"],
        "strength": settings["strength"],
        "negative_prompt": settings["negative_prompt"],
        "subject_prompts": settings["subject_prompts"],
        "folder_fps": settings["folder_fps"],
        "device": config["device"],
        "dtype": config["dtype"],
        "window": config["window"],
    }


def edit_result_input(wildcards):
    edit_row(wildcards)
    return {"edits": method_edits(PRODUCT_METHOD, wildcards.video)}


def edit_outputs():
    """The user's edits (results/edits/, VidMP3's) and every compared method's folder (results/methods/)."""
    outputs = [f"results/edits/{name}.mp4" for name in EDITS.index]
    return outputs + [method_edits(method, video) for method in config["methods"] for video in EDITS["video"].unique()]


# ---- evaluation
def evaluate_input(wildcards):
    edit_row(wildcards)
    inputs = {
        "frames": prior_array(wildcards.video, "frames"),
        "mask": prior_array(wildcards.video, "mask"),
        "edits": method_edits(wildcards.method, wildcards.video),
    }
    row = video_row(wildcards)
    if row["subjects"]:
        inputs["subjects"] = prior_array(wildcards.video, "mask_given")
    return inputs | ({"truth": rendered_truth(row, rendered_clips(config))} if RENDERED_SOURCE.match(row["source"]) else {})


def evaluate_meta(wildcards):
    row = edit_row(wildcards)
    return {
        "video": wildcards.video,
        "concept": wildcards.concept,
        "method": wildcards.method,
        "category": video_row(wildcards)["category"],
        "kind": row["kind"],
        "prompt": row["prompt"],
    }


def evaluated_edit(wildcards):
    """The edit's file inside its video's edit folder."""
    return f"{method_edits(wildcards.method, wildcards.video)}/{wildcards.concept}.mp4"


def evaluation_params(wildcards):
    settings = config["evaluation"]
    return {
        "clip_model": settings["clip_model"] or None,
        "device": config["device"],
        "flow_method": settings["flow_method"],
        "still_px": settings["still_px"],
        "segment_threshold": settings["segment_threshold"],
    }


def evaluation_outputs(wildcards):
    return [f"results/eval/{method}/{name}.json" for method in config["methods"] for name in EDITS.index]


def benchmark_files(wildcards):
    """The benchmark file of every job upstream of the tables (the time-cost table reads them).

    Snakemake writes them (benchmark:), except for the rules that may be cached between workflows
    (priors_mask, priors_corr, priors_depth, finetune): those write their own, in the
    same place and format, as their output `timing` (vidmp3.timing).
    """
    files = [f"results/benchmarks/video_model/video_model.tsv"]
    files += [
        f"results/benchmarks/{stage}/{video}.tsv"
        for video in VIDEOS.index
        for stage in ("frames", "priors_mask", "priors_corr", "priors_depth", "priors_guide")
    ]
    files += [
        f"results/benchmarks/given_masks/{video}.tsv"
        for video in VIDEOS.index
        if prior_backend("mask", VIDEOS.loc[video], config) == "given"
    ]
    for method in config["methods"]:
        files += [
            f"results/benchmarks/{stage}/{method}/{video}.tsv"
            for video in EDITS["video"].unique()
            for stage in ("finetune", "edit")
        ]
        files += [f"results/benchmarks/evaluate/{method}/{name}.tsv" for name in EDITS.index]
    return files


# ---- ToyWorld pretraining (rules/toyworld.smk; vidmp3.toyworld.pretrain settings)
def toyworld_classifier_settings(wildcards):
    settings = config["toyworld"]["pretrain"]
    return {"seed": settings["seed"], "steps": settings["classifier"]["steps"]}


def _toyworld_stage_settings(stage):
    """One stage's settings plus the seed and sampling settings the stages share."""
    settings = config["toyworld"]["pretrain"]
    shared = {name: settings[name] for name in ("seed", "guidance_scale", "sample_steps")}
    return shared | settings[stage]


def toyworld_image_settings(wildcards):
    return _toyworld_stage_settings("image")


def toyworld_motion_settings(wildcards):
    return _toyworld_stage_settings("motion")


# ---- ToyWorld benchmark (rules/toyworld_benchmark.smk; vidmp3.toyworld.benchmark)
def toyworld_benchmark_input(wildcards):
    """The video model's folder (tiny, built by tiny_model; toyworld, the shipped weights) and the judge."""
    settings = config["toyworld"]["benchmark"]
    preset = settings["preset"]
    model = f"{MODELS}/{preset}" if preset in TINY_PRESETS else SHIPPED_PRESETS[preset]
    return {"model": model, "classifier": settings["classifier"] or f"{SHIPPED_PRESETS['toyworld']}/classifier"}


def toyworld_benchmark_model(wildcards):
    return {"preset": config["toyworld"]["benchmark"]["preset"], "tiny_dir": MODELS}


def toyworld_benchmark_settings(wildcards):
    """vidmp3.toyworld.benchmark.BenchmarkConfig's fields: the benchmark's settings and the workflow's device and dtype."""
    settings = {key: value for key, value in config["toyworld"]["benchmark"].items() if key not in ("preset", "classifier")}
    return settings | {"device": config["device"], "dtype": config["dtype"]}


# ---- weights prefetch (cluster login nodes)
@exit_on_input_error()
def prefetch_models(wildcards):
    """Models for prefetch_weights to put in the Hugging Face cache (the video model, the learned priors in use, CLIP)."""
    transformers_models, diffusers_models = prior_models(config, VIDEOS)
    if config["evaluation"]["clip_model"]:
        transformers_models["evaluation clip_model"] = config["evaluation"]["clip_model"]
    return {
        "preset": config["model"]["preset"],
        "base": config["model"]["base"] or None,
        "motion_adapter": config["model"]["motion_adapter"] or None,
        "transformers_models": transformers_models,
        "diffusers_models": diffusers_models,
    }


def all_outputs():
    """Every final output: edits and their metrics for each method, the tables, the priors strips, the toy experiment."""
    outputs = [priors_strip(video) for video in VIDEOS.index]
    outputs += edit_outputs()
    outputs += evaluation_outputs(None)
    outputs += ["results/eval/summary.csv", "results/toy/shape_invariance.png", "results/toy/shape_invariance.csv"]
    return outputs
