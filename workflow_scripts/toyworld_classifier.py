import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
import torch

from vidmp3.logs import log_to
from vidmp3.toyworld.classifier import train_classifier

torch.set_num_threads(snakemake.threads)
with log_to(snakemake.log[0]):
    train_classifier(out_dir=snakemake.output.classifier, **snakemake.params.settings)
