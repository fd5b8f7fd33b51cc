import sys; sys.path.insert(0, snakemake.scriptdir + "/..")  # vidmp3 from this checkout (also under --sdm conda)
import torch

from vidmp3.editing import invert_job
from vidmp3.logs import log_to
from vidmp3.timing import record_time

torch.set_num_threads(snakemake.threads)

with log_to(snakemake.log[0]), record_time(snakemake.output.timing):
    settings = snakemake.params.settings
    invert_job(
        frames=snakemake.input.frames,
        weights=snakemake.input.weights,
        priors={name: snakemake.input[name] for name in ("corr", "depth", "alpha") if name in snakemake.input.keys()},
        prompt=settings["prompt"],
        steps=settings["steps"],
        device=settings["device"],
        dtype=settings["dtype"],
        out_dir=snakemake.output.latents,
    )
