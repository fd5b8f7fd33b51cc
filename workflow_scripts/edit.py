import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
import torch

from vidmp3.editing import edit_job
from vidmp3.logs import log_to

torch.set_num_threads(snakemake.threads)

with log_to(snakemake.log[0]):
    edit_job(
        frames=snakemake.input.frames,
        weights=snakemake.input.weights,
        video_unet=snakemake.input.video_unet,
        priors={name: snakemake.input[name] for name in ("corr", "depth", "alpha") if name in snakemake.input.keys()},
        subjects=snakemake.input.get("subjects"),
        source_prompt=snakemake.params.source_prompt,
        source_subjects=snakemake.params.source_subjects,
        edits=snakemake.params.edits,
        settings=snakemake.params.settings,
        out_dir=snakemake.output.edits,
    )
