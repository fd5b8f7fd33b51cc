import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.logs import log_to
from vidmp3.toyworld.pretrain.export import export_weights

with log_to(snakemake.log[0]):
    export_weights(snakemake.input.image, snakemake.input.motion, snakemake.input.classifier, snakemake.output.weights)
