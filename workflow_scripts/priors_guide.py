import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.logs import log_to
from vidmp3.priors.stages import guide_stage

with log_to(snakemake.log[0]):
    guide_stage(
        frames=snakemake.input.frames,
        corr=snakemake.input.corr,
        depth=snakemake.input.depth,
        mask=snakemake.input.mask,
        guide_out=snakemake.output.guide,
        alpha_out=snakemake.output.alpha,
        figure_out=snakemake.output.figure,
        subjects=snakemake.input.get("subjects"),
    )
