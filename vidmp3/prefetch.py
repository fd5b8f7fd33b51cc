"""Put every model weight a configuration needs into the Hugging Face cache, before the jobs run.

Compute nodes of a cluster usually have no internet. So the weights are fetched once, on a
machine that has it (a login node), into the Hugging Face cache that the jobs will read: the
folder given by HF_HOME (or HF_HUB_CACHE) on a shared file system. The jobs then run with
HF_HUB_OFFLINE=1 and load from that cache (`vidmp3.model.presets`, `vidmp3.priors.learned`).
Only the files loading reads are fetched: configs, tokenizer files and safetensors weights, not
fp16 or EMA copies, pickles or other frameworks' weights.

Run offline (HF_HUB_OFFLINE=1), `prefetch_weights` fetches nothing: it checks that the cache holds
every component and refuses, listing all that are missing, when it does not. Either way it writes
a manifest naming each repository's revision and local folder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError

# vidmp3.model and vidmp3.priors.learned import torch and diffusers, so they are imported only where
# components are resolved.

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
IGNORE_PATTERNS = ("*fp16*", "*non_ema*", "*.bin", "*.ckpt", "*.pt", "*.pth", "*.msgpack", "*.h5", "*.onnx", "*.onnx_data")
"""Never fetched: half-precision and EMA duplicates, pickled weights, other frameworks' formats."""
TRANSFORMERS_FILES = ("*.json", "*.safetensors", "*.txt")
"""A transformers model: config, preprocessor and tokenizer files (json, merges.txt), safetensors weights."""
MOTION_ADAPTER_FILES = ("*.json", "*.safetensors")


@dataclass(frozen=True)
class Component:
    """One hub repository to fetch: what it is for, its id, the files to fetch, the files that must be there."""

    name: str
    repo_id: str
    allow_patterns: tuple[str, ...]
    required: tuple[str, ...]


def is_hub_id(name: str) -> bool:
    """True for 'owner/name' that is not an existing folder (a folder is used as it is, never fetched)."""
    return not os.path.isdir(name) and HUB_ID.match(name) is not None


def base_files(family: str) -> tuple[str, ...]:
    """Files of a diffusers base model that `vidmp3.model.presets.load_components` reads."""
    from vidmp3.model.presets import BASE_COMPONENTS

    patterns = ["model_index.json"]
    for subfolder in BASE_COMPONENTS[family]:
        patterns += [f"{subfolder}/*.json", f"{subfolder}/*.txt", f"{subfolder}/*.safetensors"]
    return tuple(patterns)


def weights_components(
    preset: str,
    base: str | None = None,
    motion_adapter: str | None = None,
    transformers_models: Mapping[str, str] | None = None,
    diffusers_models: Mapping[str, str] | None = None,
) -> list[Component]:
    """Every hub repository a configuration loads, each once.

    `preset`, `base` and `motion_adapter` are the video model (`vidmp3.model.presets.model_spec`;
    the tiny presets are built by the workflow, so they add nothing). `transformers_models` maps
    a use (e.g. "depth", "correspondence", "segmenter", "clip") to a transformers model and
    `diffusers_models` a use (e.g. SD-DINO's "sd_features") to a diffusers Stable Diffusion model.
    Names that are existing folders are skipped; a name that is neither a folder nor a hub id is an
    InputError. A repository used twice is fetched once, with the files of both uses.
    """
    from vidmp3.model.presets import model_spec
    from vidmp3.model.tiny import TINY_FAMILIES
    from vidmp3.priors.learned import SD_FILES

    spec = model_spec(preset, base, motion_adapter)
    wanted: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = []
    if preset not in TINY_FAMILIES:
        # What base and motion adapter must hold is checked by presets.check_model_files.
        wanted.append(("base", spec.base, base_files(spec.family), ()))
        wanted.append(("motion_adapter", spec.motion_adapter, MOTION_ADAPTER_FILES, ()))
    for use, name in (transformers_models or {}).items():
        wanted.append((use, name, TRANSFORMERS_FILES, ("config.json", "*.safetensors")))
    for use, name in (diffusers_models or {}).items():
        wanted.append((use, name, SD_FILES, SD_FILES))

    by_repo: dict[str, Component] = {}
    for use, name, allow, required in wanted:
        if os.path.isdir(name):
            continue
        if not is_hub_id(name):
            raise InputError(f"model {use} {name!r}: neither an existing folder nor a hub id 'owner/name'")
        if name in by_repo:
            known = by_repo[name]
            by_repo[name] = Component(
                name=f"{known.name}, {use}",
                repo_id=name,
                allow_patterns=tuple(dict.fromkeys(known.allow_patterns + allow)),
                required=tuple(dict.fromkeys(known.required + required)),
            )
        else:
            by_repo[name] = Component(use, name, tuple(allow), tuple(required))
    return list(by_repo.values())


def prefetch_weights(
    manifest: str | os.PathLike,
    preset: str,
    base: str | None = None,
    motion_adapter: str | None = None,
    transformers_models: Mapping[str, str] | None = None,
    diffusers_models: Mapping[str, str] | None = None,
) -> None:
    """Fetch (online) or check (HF_HUB_OFFLINE=1) every component of `weights_components(...)` in the
    Hugging Face cache, then write `manifest` (JSON: cache folder and, per repository, its revision
    and folder). Refuses with one InputError listing every component that is missing or incomplete,
    writing nothing."""
    from vidmp3.model.presets import check_model_files, model_spec
    from vidmp3.model.tiny import TINY_FAMILIES

    components = weights_components(preset, base, motion_adapter, transformers_models, diffusers_models)
    fetched, problems = [], []
    for component in tqdm(components, desc="weights", disable=not components):
        try:
            folder = Path(
                snapshot_download(
                    component.repo_id,
                    allow_patterns=list(component.allow_patterns),
                    ignore_patterns=list(IGNORE_PATTERNS),
                )
            )
        except (LocalEntryNotFoundError, HfHubHTTPError) as error:
            reason = str(error).strip().splitlines()[0]
            problems.append(f"{component.repo_id} ({component.name}): {reason}")
            continue
        absent = [pattern for pattern in component.required if not any(folder.glob(pattern))]
        if absent:
            problems.append(f"{component.repo_id} ({component.name}): {folder} has no {', '.join(absent)}")
            continue
        fetched.append({"name": component.name, "repo_id": component.repo_id, "revision": folder.name, "path": str(folder)})
    if not problems and preset not in TINY_FAMILIES:
        try:
            check_model_files(model_spec(preset, base, motion_adapter))
        except InputError as error:
            problems.append(str(error))
    if problems:
        if constants.HF_HUB_OFFLINE:
            advice = (
                "HF_HUB_OFFLINE=1 is set, so nothing was downloaded: run this target once without it on a machine with internet"
            )
        else:
            advice = "check the ids, the network, and for gated models `hf auth login`"
        raise InputError(
            f"model weights are missing from the Hugging Face cache {constants.HF_HUB_CACHE}:\n  "
            + "\n  ".join(problems)
            + f"\n{advice}"
        )
    with atomic_path(manifest) as tmp:
        tmp.write_text(json.dumps({"hf_hub_cache": str(constants.HF_HUB_CACHE), "components": fetched}, indent=2) + "\n")
