rule shape_invariance:
    output:
        png=report(
            "results/toy/shape_invariance.png",
            caption="../report/shape_invariance.rst",
            category="Toy experiment (Fig. 2)",
        ),
        csv="results/toy/shape_invariance.csv",
    params:
        settings=config["shape_invariance"],
    log:
        "results/logs/shape_invariance.log",
    benchmark:
        "results/benchmarks/shape_invariance.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/shape_invariance.py"
