# Model weights into the Hugging Face cache (HF_HOME / HF_HUB_CACHE), on the machine that runs
# Snakemake: on a cluster that is the login node, the one with internet. Compute jobs then run
# with HF_HUB_OFFLINE=1 against the same cache; run offline, this rule only checks the cache.
rule prefetch_weights:
    output:
        manifest="results/prefetch/weights.json",
    params:
        models=prefetch_models,
    log:
        "results/logs/prefetch_weights.log",
    benchmark:
        "results/benchmarks/prefetch_weights.tsv"
    localrule: True
    resources:
        mem_mb=1000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/prefetch.py"
