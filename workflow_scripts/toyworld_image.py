import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
import torch

from vidmp3.logs import log_to
from vidmp3.toyworld.pretrain.image import pretrain_image
from vidmp3.toyworld.pretrain.settings import ImageSettings

torch.set_num_threads(snakemake.threads)
with log_to(snakemake.log[0]):
    pretrain_image(ImageSettings(**snakemake.params.settings), snakemake.output.model, classifier_dir=snakemake.input.classifier)
