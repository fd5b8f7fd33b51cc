"""Which backend, options and inputs each prior rule of a video gets, from the config and the videos sheet.

The workflow's helpers in rules/common.smk call these, so each rule's params hold exactly what its
prior uses: changing one prior's backend or options reruns that prior and what depends on it only.
A video's sheet columns `corr_backend`, `mask_backend`, `depth_backend` choose its backends; an
empty cell takes the config's `priors: corr/mask/depth`, and an empty one there the model preset's
default (`PRESET_BACKENDS`: offline backends for the tiny presets, the paper's for SD-1.5/SDXL).
`priors: {backend}:` holds each backend's options. `prior_models` names the learned backends' models
that the prefetch rule fetches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from vidmp3.errors import InputError
from vidmp3.priors import CORR_BACKENDS, DEPTH_BACKENDS, LEARNED_BACKENDS, MASK_BACKENDS
from vidmp3.workflow.paths import clip_path, prior_array

PRIORS = {"corr": CORR_BACKENDS, "mask": MASK_BACKENDS, "depth": DEPTH_BACKENDS}
OFFLINE_BACKENDS = {"corr": "flow", "mask": "given", "depth": "mask-area"}
PAPER_BACKENDS = {"corr": "sd-dino", "mask": "given", "depth": "depth-anything-v2"}
PRESET_BACKENDS = {
    "tiny": OFFLINE_BACKENDS,
    "tiny-sdxl": OFFLINE_BACKENDS,
    "toyworld": OFFLINE_BACKENDS,
    "sd15": PAPER_BACKENDS,
    "sdxl": PAPER_BACKENDS,
}
DIFFUSERS_WEIGHT_KEYS = {"sd_weights"}
"""Options keys of learned prior backends that name a diffusers model; all others name transformers models."""
RENDERED_SOURCE = re.compile(r"^results/clips/(?P<clip>[a-z0-9][a-z0-9-]*)/video\.mp4$")


def prior_backend(prior: str, row: pd.Series, config: dict[str, Any]) -> str:
    """The backend of `prior` ('corr', 'mask' or 'depth') for one video: its sheet cell, else the config's,
    else the model preset's default."""
    column = f"{prior}_backend"
    if row.get(column):
        backend, where = row[column], f"video {row.name}: column {column}"
    elif config["priors"].get(prior):
        backend, where = config["priors"][prior], f"config priors: {prior}"
    else:
        preset = config["model"]["preset"]
        if preset not in PRESET_BACKENDS:
            raise InputError(f"config model: preset {preset!r} has no default priors backends; set priors: {prior}")
        return PRESET_BACKENDS[preset][prior]
    if backend not in PRIORS[prior]:
        raise InputError(f"{where}: backend {backend!r} is unknown; choose one of {', '.join(PRIORS[prior])}")
    return backend


def prior_params(prior: str, row: pd.Series, config: dict[str, Any]) -> dict[str, Any]:
    """{'backend', 'options'} (+ 'class_name' for learned mask backends) for the rule of `prior`."""
    backend = prior_backend(prior, row, config)
    if prior == "mask" and row.get("subjects") and backend != "given":
        raise InputError(
            f"video {row.name} has subjects, which need mask backend 'given' (its instance masks), not {backend!r}; "
            "fix: set its mask_backend column to given"
        )
    params = {"backend": backend, "options": dict(config["priors"].get(backend, {}))}
    if prior == "mask" and backend in LEARNED_BACKENDS:
        if not row.get("subject_class"):
            raise InputError(f"video {row.name}: mask backend {backend!r} needs the subject's class in column subject_class")
        params["class_name"] = row["subject_class"]
    return params


def rendered_clips(config: dict[str, Any]) -> set[str]:
    """Ids of the clips the workflow renders (with their truth): `render: clips:` and `toyworld: clips:`."""
    return set(config["render"]["clips"]) | set(config["toyworld"]["clips"])


def rendered_truth(row: pd.Series, clips: set[str]) -> str:
    """The truth zarr of the rendered clip a video comes from (for the `render` backends)."""
    match = RENDERED_SOURCE.match(row["source"])
    if match is None or match["clip"] not in clips:
        raise InputError(
            f"video {row.name}: backend 'render' needs a rendered clip (source results/clips/{{clip}}/video.mp4 "
            f"with the clip under render: clips: or toyworld: clips:), but its source is {row['source']}"
        )
    return clip_path(match["clip"], "truth.zarr")


def guide_inputs(row: pd.Series) -> dict[str, str]:
    """Named inputs of the priors_guide rule for one video (its instance ids too, for a video with subjects)."""
    inputs = {name: prior_array(row.name, name) for name in ("frames", "corr", "depth", "mask")}
    return inputs | ({"subjects": prior_array(row.name, "mask_given")} if row.get("subjects") else {})


def prior_inputs(prior: str, row: pd.Series, config: dict[str, Any]) -> dict[str, str]:
    """Named input paths of the rule of `prior` ('corr', 'mask' or 'depth') for one video."""
    backend = prior_backend(prior, row, config)
    inputs = {"frames": prior_array(row.name, "frames")}
    if prior == "mask":
        if backend == "given":
            if not row.get("masks"):
                raise InputError(f"video {row.name}: mask backend 'given' needs a masks folder in column masks")
            inputs["given"] = prior_array(row.name, "mask_given")
        return inputs
    inputs["mask"] = prior_array(row.name, "mask")
    if row.get("subjects"):
        inputs["subjects"] = prior_array(row.name, "mask_given")  # the instance ids (vidmp3.subjects)
    if backend == "render":
        inputs["truth"] = rendered_truth(row, rendered_clips(config))
    return inputs


def prior_models(config: Mapping[str, Any], videos: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """(transformers models, diffusers models) of the learned prior backends some video uses, by use.

    A use is "{backend} {options key}", e.g. "sd-dino sd_weights"; the backend of each prior comes
    from the video's sheet column or the config (`prior_backend`).
    """
    transformers_models: dict[str, str] = {}
    diffusers_models: dict[str, str] = {}
    for prior in PRIORS:
        for _, row in videos.iterrows():
            backend = prior_backend(prior, row, config)
            if backend not in LEARNED_BACKENDS:
                continue
            options = config["priors"].get(backend, {})
            for key in LEARNED_BACKENDS[backend][1]:
                if not options.get(key):
                    raise InputError(f"config priors: {backend}: {key} is not set (video {row.name} uses {backend})")
                models = diffusers_models if key in DIFFUSERS_WEIGHT_KEYS else transformers_models
                models[f"{backend} {key}"] = options[key]
    return transformers_models, diffusers_models
