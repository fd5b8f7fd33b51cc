import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.logs import log_to
from vidmp3.timing import record_time
from vidmp3.priors.stages import corr_stage

with log_to(snakemake.log[0]), record_time(snakemake.output.timing):
    prior = snakemake.params.prior
    corr_stage(
        frames=snakemake.input.frames,
        mask=snakemake.input.mask,
        out=snakemake.output.corr,
        backend=prior["backend"],
        options=prior["options"],
        truth=snakemake.input.get("truth"),
        subjects=snakemake.input.get("subjects"),
    )
