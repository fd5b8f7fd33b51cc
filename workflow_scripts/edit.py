import sys; sys.path.insert(0, snakemake.scriptdir + "/..")  # vidmp3 from this checkout (also under --sdm conda)
import torch

from vidmp3.editing import edit_job
from vidmp3.logs import log_to

torch.set_num_threads(snakemake.threads)

with log_to(snakemake.log[0]):
    edit_job(
        frames=snakemake.input.frames,
        weights=snakemake.input.weights,
        latents=snakemake.input.latents,
        priors={name: snakemake.input[name] for name in ("corr", "depth", "alpha") if name in snakemake.input.keys()},
        settings=snakemake.params.settings,
        video_out=snakemake.output.video,
        strip_out=snakemake.output.strip,
        title=snakemake.params.title,
    )
