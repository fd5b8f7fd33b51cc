# Priors for MotionGuide, one rule per prior, each writing its own array in results/priors/{video}.zarr.
# Backends per video: sheet columns corr_backend / mask_backend / depth_backend, else config priors:.
# priors_mask, priors_corr, priors_depth (like finetune) may be cached between workflows
# (`--cache priors_mask priors_corr priors_depth finetune`, README): they have no benchmark:
# directive, which Snakemake forbids on cached rules, and write that file themselves (output timing).


rule priors_mask:
    input:
        unpack(priors_mask_input),
    output:
        mask=directory(prior_array("{video}", "mask")),
        # Its own benchmark file (vidmp3.timing): Snakemake forbids benchmark: on cached rules.
        timing="results/benchmarks/priors_mask/{video}.tsv",
    params:
        prior=priors_mask_params,
    log:
        "results/logs/priors_mask/{video}.log",
    priority: PRIORS_PRIORITY
    resources:
        mem_mb=4000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/priors_mask.py"


rule priors_corr:
    input:
        unpack(priors_corr_input),
    output:
        corr=directory(prior_array("{video}", "corr")),
        # Its own benchmark file (vidmp3.timing): Snakemake forbids benchmark: on cached rules.
        timing="results/benchmarks/priors_corr/{video}.tsv",
    params:
        prior=priors_corr_params,
    log:
        "results/logs/priors_corr/{video}.log",
    priority: PRIORS_PRIORITY
    resources:
        mem_mb=8000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/priors_corr.py"


rule priors_depth:
    input:
        unpack(priors_depth_input),
    output:
        depth=directory(prior_array("{video}", "depth")),
        # Its own benchmark file (vidmp3.timing): Snakemake forbids benchmark: on cached rules.
        timing="results/benchmarks/priors_depth/{video}.tsv",
    params:
        prior=priors_depth_params,
    log:
        "results/logs/priors_depth/{video}.log",
    priority: PRIORS_PRIORITY
    resources:
        mem_mb=4000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/priors_depth.py"


rule priors_guide:
    input:
        unpack(priors_guide_input),
    output:
        guide=directory(prior_array("{video}", "guide")),
        alpha=directory(prior_array("{video}", "alpha")),
        figure=report(
            priors_strip("{video}"),
            caption="../report/priors.rst",
            category="Priors",
            labels={"video": "{video}"},
        ),
    log:
        "results/logs/priors_guide/{video}.log",
    benchmark:
        "results/benchmarks/priors_guide/{video}.tsv"
    priority: PRIORS_PRIORITY
    resources:
        mem_mb=2000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/priors_guide.py"
