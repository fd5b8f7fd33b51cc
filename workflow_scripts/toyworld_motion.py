import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
import torch

from vidmp3.logs import log_to
from vidmp3.toyworld.pretrain.motion import pretrain_motion
from vidmp3.toyworld.pretrain.settings import MotionSettings

torch.set_num_threads(snakemake.threads)
with log_to(snakemake.log[0]):
    pretrain_motion(
        MotionSettings(**snakemake.params.settings),
        snakemake.input.image,
        snakemake.output.model,
        classifier_dir=snakemake.input.classifier,
    )
