import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
import torch

from vidmp3.logs import log_to
from vidmp3.metrics import evaluate_edit

torch.set_num_threads(snakemake.threads)
with log_to(snakemake.log[0]):
    evaluate_edit(
        snakemake.input.frames,
        snakemake.input.mask,
        snakemake.params.edit_video,
        snakemake.output.metrics,
        truth=snakemake.input.get("truth"),
        subjects=snakemake.input.get("subjects"),
        **snakemake.params.edit,
        **snakemake.params.settings,
    )
