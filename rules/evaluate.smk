rule evaluate:
    input:
        unpack(evaluate_input),
    output:
        metrics="results/eval/{method}/{video}_{concept}.json",
    params:
        edit_video=evaluated_edit,
        edit=evaluate_meta,
        settings=evaluation_params,
    log:
        "results/logs/evaluate/{method}/{video}_{concept}.log",
    benchmark:
        "results/benchmarks/evaluate/{method}/{video}_{concept}.tsv"
    resources:
        mem_mb=4000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule tables:
    input:
        metrics=evaluation_outputs,
    output:
        summary=report(
            "results/eval/summary.csv", caption="../report/summary.rst", category="Tables", labels={"table": "summary"}
        ),
        ablation=report(
            "results/eval/ablation.csv", caption="../report/ablation.rst", category="Tables", labels={"table": "ablation"}
        ),
        time_cost=report(
            "results/eval/time_cost.csv", caption="../report/time_cost.rst", category="Tables", labels={"table": "time cost"}
        ),
        markdown="results/eval/summary.md",
    params:
        benchmarks=benchmark_files,
        benchmarks_root="results/benchmarks",
        videos=len(VIDEOS),
        edits=len(EDITS),
    log:
        "results/logs/tables/tables.log",
    benchmark:
        "results/benchmarks/tables/tables.tsv"
    localrule: True
    resources:
        mem_mb=1000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/tables.py"
