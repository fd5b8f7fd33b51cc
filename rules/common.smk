# Config and sheets, validated at parse time, and the named helpers the rules use.
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # import vidmp3 from this checkout even without installing it

from vidmp3.config import ID_PATTERN, load_config, load_edits, load_videos, parse_size
from vidmp3.methods import METHODS as METHOD_TABLE
from vidmp3.prefetch import prior_models
from vidmp3.priors.settings import RENDERED_SOURCE, prior_backend, prior_inputs, prior_params, rendered_truth

SCHEMAS = Path(workflow.basedir) / "config" / "schemas"

config.update(load_config(config, SCHEMAS, where="config"))
VIDEOS = load_videos(config["videos"], SCHEMAS)
EDITS = load_edits(config["edits"], VIDEOS, SCHEMAS)
CLIPS = config["render"]["clips"]


wildcard_constraints:
    video=ID_PATTERN,
    concept=ID_PATTERN,
    clip=ID_PATTERN,


def video_row(wildcards):
    if wildcards.video not in VIDEOS.index:
        raise ValueError(f"video {wildcards.video!r} is not in {config['videos']}")
    return VIDEOS.loc[wildcards.video]


def rendered_clip_spec(wildcards):
    if wildcards.clip not in CLIPS:
        raise ValueError(f"clip {wildcards.clip!r} is not under render: clips: in the config")
    return CLIPS[wildcards.clip]


def frames_input(wildcards):
    return {"source": video_row(wildcards)["source"]}


def frames_sampling(wildcards):
    row = video_row(wildcards)
    return {
        "first_frame": int(row["first_frame"]),
        "frames": int(row["frames"]),
        "stride": int(row["stride"]),
        "size": list(parse_size(row["size"])),
        "crop": row["crop"],
    }


def given_masks_input(wildcards):
    masks = video_row(wildcards)["masks"]
    if not masks:
        raise ValueError(f"video {wildcards.video!r} has no masks folder in {config['videos']}")
    return {"masks": masks, "frames": f"results/priors/{wildcards.video}.zarr/frames"}


# ---- priors: each rule's backend, options and inputs (vidmp3.priors.settings)



def priors_mask_input(wildcards):
    return prior_inputs("mask", video_row(wildcards), config)


def priors_mask_params(wildcards):
    return prior_params("mask", video_row(wildcards), config)


def priors_corr_input(wildcards):
    return prior_inputs("corr", video_row(wildcards), config)


def priors_corr_params(wildcards):
    return prior_params("corr", video_row(wildcards), config)


def priors_depth_input(wildcards):
    return prior_inputs("depth", video_row(wildcards), config)


def priors_depth_params(wildcards):
    return prior_params("depth", video_row(wildcards), config)


# ---- model stages: fine-tuning, inversion, editing (one naming scheme: results/<stage>/<method>/...)
TINY_PRESETS = ("tiny", "tiny-sdxl")


wildcard_constraints:
    method="|".join(METHOD_TABLE),
    preset="|".join(TINY_PRESETS),


def model_input(wildcards):
    """The tiny preset's folder, built by rule tiny_model; real presets come from hub ids or folders."""
    preset = config["model"]["preset"]
    return {"model": f"results/models/{preset}"} if preset in TINY_PRESETS else {}


def model_params(wildcards):
    return {
        "preset": config["model"]["preset"],
        "base": config["model"]["base"] or None,
        "motion_adapter": config["model"]["motion_adapter"] or None,
        "tiny_dir": "results/models",
    }


def is_guided(method):
    return METHOD_TABLE[method].guide_variant is not None


def guide_priors(wildcards):
    """Correspondence, depth and alpha of the video, for the methods that use MotionGuide."""
    if not is_guided(wildcards.method):
        return {}
    group = f"results/priors/{wildcards.video}.zarr"
    return {"corr": f"{group}/corr", "depth": f"{group}/depth", "alpha": f"{group}/alpha"}


def finetune_input(wildcards):
    return {"frames": f"results/priors/{wildcards.video}.zarr/frames", **model_input(wildcards), **guide_priors(wildcards)}


def finetune_params(wildcards):
    settings = config["finetune"]
    motion = video_row(wildcards)["motion"]
    guide_scale = settings[f"lambda_{motion}"] if is_guided(wildcards.method) else 0.0
    return {
        "method": wildcards.method,
        "steps": settings["steps"],
        "learning_rate": settings["learning_rate"],
        "guide_scale": guide_scale,
        "seed": settings["seed"],
        "device": config["device"],
        "precision": settings["precision"],
        "gradient_checkpointing": settings["gradient_checkpointing"],
        "motion_guide_hidden": settings["motion_guide_hidden"],
    }


def video_prompt(wildcards):
    return video_row(wildcards)["prompt"]


def invert_input(wildcards):
    return {
        "frames": f"results/priors/{wildcards.video}.zarr/frames",
        "weights": f"results/weights/{wildcards.method}/{wildcards.video}",
        **model_input(wildcards),
        **guide_priors(wildcards),
    }


def edit_row(wildcards):
    name = f"{wildcards.video}_{wildcards.concept}"
    if name not in EDITS.index:
        raise ValueError(f"edit {name!r} (video {wildcards.video!r}, concept {wildcards.concept!r}) is not in {config['edits']}")
    return EDITS.loc[name]


def edit_input(wildcards):
    edit_row(wildcards)
    return {
        "frames": f"results/priors/{wildcards.video}.zarr/frames",
        "weights": f"results/weights/{wildcards.method}/{wildcards.video}",
        "latents": f"results/latents/{wildcards.method}/{wildcards.video}",
        **model_input(wildcards),
        **guide_priors(wildcards),
    }


def edit_params(wildcards):
    row = edit_row(wildcards)
    settings = config["editing"]
    return {
        "prompt": row["prompt"],
        "negative_prompt": settings["negative_prompt"],
        "guidance_scale": settings["guidance_scale"],
        "steps": settings["steps"],
        "folder_fps": settings["folder_fps"],
        "device": config["device"],
        "dtype": config["dtype"],
    }


def edit_title(wildcards):
    return f"{wildcards.video} / {wildcards.concept} ({wildcards.method}): {edit_row(wildcards)['prompt']}"


def inversion_params(wildcards):
    return {"prompt": video_row(wildcards)["prompt"], "steps": config["inversion"]["steps"], "device": config["device"], "dtype": config["dtype"]}


def edit_outputs():
    return [f"results/edits/{method}/{name}.mp4" for method in config["methods"] for name in EDITS.index]


# ---- evaluation
def evaluate_input(wildcards):
    edit_row(wildcards)
    inputs = {
        "frames": f"results/priors/{wildcards.video}.zarr/frames",
        "mask": f"results/priors/{wildcards.video}.zarr/mask",
        "edit": f"results/edits/{wildcards.method}/{wildcards.video}_{wildcards.concept}.mp4",
    }
    row = video_row(wildcards)
    return inputs | ({"truth": rendered_truth(row, CLIPS)} if RENDERED_SOURCE.match(row["source"]) else {})


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
    """The benchmark file of every job upstream of the tables (the time-cost table reads them)."""
    files = [f"results/benchmarks/{stage}/{video}.tsv" for video in VIDEOS.index for stage in ("frames", "priors_mask", "priors_corr", "priors_depth", "priors_guide")]
    files += [f"results/benchmarks/given_masks/{video}.tsv" for video in VIDEOS.index if prior_backend("mask", VIDEOS.loc[video], config) == "given"]
    for method in config["methods"]:
        files += [f"results/benchmarks/{stage}/{method}/{video}.tsv" for video in VIDEOS.index for stage in ("finetune", "invert")]
        files += [f"results/benchmarks/{stage}/{method}/{name}.tsv" for name in EDITS.index for stage in ("edit", "evaluate")]
    return files


# ---- weights prefetch (cluster login nodes)
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
    outputs = [f"results/priors/{video}_priors.png" for video in VIDEOS.index]
    outputs += edit_outputs()
    outputs += evaluation_outputs(None)
    outputs += ["results/eval/summary.csv", "results/toy/shape_invariance.png", "results/toy/shape_invariance.csv"]
    return outputs
