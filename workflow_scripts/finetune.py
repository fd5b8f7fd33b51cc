import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
import torch

from vidmp3.finetune import FinetuneConfig, finetune_video
from vidmp3.logs import log_to
from vidmp3.timing import record_time
from vidmp3.model.presets import model_spec

torch.set_num_threads(snakemake.threads)
with log_to(snakemake.log[0]), record_time(snakemake.output.timing):
    finetune_video(
        priors=snakemake.params.group,
        prompt=snakemake.params.prompt,
        spec=model_spec(**snakemake.params.model),
        config=FinetuneConfig(**snakemake.params.settings),
        out_dir=snakemake.output.weights,
        video_unet=snakemake.input.video_unet,
    )
