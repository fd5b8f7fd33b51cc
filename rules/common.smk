# Config and sheets, validated at parse time, and the named helpers the rules use.
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # import vidmp3 from this checkout even without installing it

from vidmp3.config import ID_PATTERN, load_config, load_edits, load_videos, parse_size

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


def all_outputs():
    """Every final output the stages built so far produce for the configured videos."""
    outputs = [f"results/priors/{video}.zarr/frames" for video in VIDEOS.index]
    outputs += [f"results/priors/{video}.zarr/mask_given" for video in VIDEOS.index[VIDEOS["masks"] != ""]]
    return outputs
