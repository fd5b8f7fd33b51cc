import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
import torch

from vidmp3.logs import log_to
from vidmp3.model.presets import DTYPES, model_spec, write_video_unet

torch.set_num_threads(snakemake.threads)
with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    write_video_unet(model_spec(**settings["model"]), DTYPES[settings["dtype"]], snakemake.output.unet)
