"""Where the workflow keeps each kind of result, named once.

The rules' outputs call these with wildcard patterns (`prior_array("{video}", "mask")`), the input
helpers of rules/common.smk with the wildcards' values, so an output and the inputs that read it are
spelled by the same function.
"""

from __future__ import annotations

MODELS = "results/models"
"""The models the workflow builds: the tiny presets' random weights and the merged video UNet."""
VIDEO_MODEL = f"{MODELS}/video"
"""The merged video UNet (written by video_model): built once per config, read by every model job."""


def priors_group(video: str) -> str:
    """A video's Zarr group: its sampled frames and every prior, one array folder each (`vidmp3.store`)."""
    return f"results/priors/{video}.zarr"


def prior_array(video: str, name: str) -> str:
    """One array of a video's group: frames, mask_given, mask, corr, depth, guide or alpha."""
    return f"{priors_group(video)}/{name}"


def priors_strip(video: str) -> str:
    return f"results/priors/{video}_priors.png"


def clip_path(clip: str, name: str) -> str:
    """A rendered clip's video.mp4, masks folder or truth.zarr (render_clip, toyworld_clip)."""
    return f"results/clips/{clip}/{name}"


def weights_dir(method: str, video: str) -> str:
    """A method's fine-tuned weights for one video."""
    return f"results/weights/{method}/{video}"


def method_edits(method: str, video: str) -> str:
    """A method's edits of one video: `<concept>.mp4` and `<concept>.png` each, latents and edits.json."""
    return f"results/methods/{method}/{video}"
