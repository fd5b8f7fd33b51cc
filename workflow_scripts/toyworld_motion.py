import sys; sys.path.insert(0, snakemake.scriptdir + "/..")  # vidmp3 from this checkout (also under --sdm conda)
import torch

from vidmp3.logs import log_to
from vidmp3.toyworld.pretrain import MotionSettings, pretrain_motion

torch.set_num_threads(snakemake.threads)
with log_to(snakemake.log[0]):
    pretrain_motion(
        MotionSettings(**snakemake.params.settings),
        snakemake.input.image,
        snakemake.output.model,
        classifier_dir=snakemake.input.classifier,
    )
