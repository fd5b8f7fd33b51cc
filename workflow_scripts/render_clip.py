import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.logs import log_to
from vidmp3.synthetic import render_configured_clip

with log_to(snakemake.log[0]):
    render_configured_clip(
        snakemake.params.spec,
        video=snakemake.output.video,
        masks=snakemake.output.masks,
        truth=snakemake.output.truth,
    )
