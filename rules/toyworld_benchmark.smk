# The ToyWorld benchmark (vidmp3.toyworld.benchmark): every method on held-out rendered clips, scored
# against the renderer's truth. One job runs all clips x methods x edits (a job per edit would spend
# more time importing torch than editing). Not part of `all`: `snakemake --cores 2 toyworld_benchmark`.


rule toyworld_benchmark:
    input:
        unpack(toyworld_benchmark_input),
    output:
        rows="results/toyworld/benchmark/edits.csv",
        table=report(
            "results/toyworld/benchmark/table.csv",
            caption="../report/toyworld_benchmark_table.rst",
            category="ToyWorld benchmark",
            labels={"figure": "table"},
        ),
        differences="results/toyworld/benchmark/differences.csv",
        markdown="results/toyworld/benchmark/table.md",
        plot=report(
            "results/toyworld/benchmark/metrics.png",
            caption="../report/toyworld_benchmark_metrics.rst",
            category="ToyWorld benchmark",
            labels={"figure": "metrics per edit"},
        ),
        strips=report(
            "results/toyworld/benchmark/strips.png",
            caption="../report/toyworld_benchmark_strips.rst",
            category="ToyWorld benchmark",
            labels={"figure": "edits"},
        ),
        timing="results/toyworld/benchmark/timing.json",
    params:
        model=toyworld_benchmark_model,
        settings=toyworld_benchmark_settings,
    log:
        "results/logs/toyworld/benchmark.log",
    benchmark:
        "results/benchmarks/toyworld/benchmark.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/toyworld_benchmark.py"
