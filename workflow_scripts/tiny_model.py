import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.logs import log_to
from vidmp3.model.tiny import build_tiny

with log_to(snakemake.log[0]):
    build_tiny(snakemake.wildcards.preset, snakemake.output.model, seed=snakemake.params.seed)
