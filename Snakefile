# vidmp3: motion-preserved video editing with pose and position priors (VidMP3), as a workflow.
# Stages live in rules/*.smk; the config and sheets are validated in rules/common.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/render.smk"
include: "rules/frames.smk"
include: "rules/priors.smk"
include: "rules/shape_invariance.smk"
include: "rules/model.smk"
include: "rules/finetune.smk"
include: "rules/edit.smk"
include: "rules/evaluate.smk"
include: "rules/prefetch.smk"
include: "rules/toyworld.smk"
include: "rules/toyworld_benchmark.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
