rule invert:
    input:
        unpack(invert_input),
    output:
        latents=directory("results/latents/{method}/{video}"),
        # Its own benchmark file (vidmp3.timing): Snakemake forbids benchmark: on a rule cached
        # between workflows (`--cache ... invert`, README).
        timing="results/benchmarks/invert/{method}/{video}.tsv",
    params:
        settings=inversion_params,
    log:
        "results/logs/invert/{method}/{video}.log",
    resources:
        mem_mb=8000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/invert.py"


rule edit:
    input:
        unpack(edit_input),
    output:
        video="results/edits/{method}/{video}_{concept}.mp4",
        strip=report(
            "results/edits/{method}/{video}_{concept}.png",
            caption="../report/edit.rst",
            category="Edits",
            subcategory="{method}",
            labels={"video": "{video}", "concept": "{concept}", "method": "{method}"},
        ),
    params:
        settings=edit_params,
        title=edit_title,
    log:
        "results/logs/edit/{method}/{video}_{concept}.log",
    benchmark:
        "results/benchmarks/edit/{method}/{video}_{concept}.tsv"
    resources:
        mem_mb=8000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/edit.py"
