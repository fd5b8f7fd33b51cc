import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.logs import log_to
from vidmp3.timing import record_time
from vidmp3.priors.stages import mask_stage

with log_to(snakemake.log[0]), record_time(snakemake.output.timing):
    prior = snakemake.params.prior
    mask_stage(
        frames=snakemake.input.frames,
        out=snakemake.output.mask,
        backend=prior["backend"],
        options=prior["options"],
        given=snakemake.input.get("given"),
        class_name=prior.get("class_name", ""),
    )
