rule tiny_model:
    output:
        model=directory("results/models/{preset}"),
    params:
        seed=config["model"]["seed"],
    log:
        "results/logs/tiny_model/{preset}.log",
    benchmark:
        "results/benchmarks/tiny_model/{preset}.tsv"
    resources:
        mem_mb=2000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/tiny_model.py"
