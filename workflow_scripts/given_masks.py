import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.frames import ingest_masks
from vidmp3.logs import log_to

with log_to(snakemake.log[0]):
    ingest_masks(masks=snakemake.input.masks, group=snakemake.params.group, subjects=snakemake.params.subjects)
