import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.logs import log_to
from vidmp3.prefetch import prefetch_weights

with log_to(snakemake.log[0]):
    models = snakemake.params.models
    prefetch_weights(
        snakemake.output.manifest,
        preset=models["preset"],
        base=models["base"],
        motion_adapter=models["motion_adapter"],
        transformers_models=models["transformers_models"],
        diffusers_models=models["diffusers_models"],
    )
