rule finetune:
    input:
        unpack(finetune_input),
    output:
        weights=report(
            directory(weights_dir("{method}", "{video}")),
            patterns=["loss.png", "guide_effect.png"],
            caption="../report/finetune.rst",
            category="Fine-tuning",
            labels={"video": "{video}", "method": "{method}"},
        ),
        # Its own benchmark file (vidmp3.timing): Snakemake forbids benchmark: on a rule cached
        # between workflows (`--cache ... finetune ...`, README).
        timing="results/benchmarks/finetune/{method}/{video}.tsv",
    params:
        group=subpath(input.frames, parent=True),
        prompt=video_prompt,
        model=model_params,
        settings=finetune_params,
    log:
        "results/logs/finetune/{method}/{video}.log",
    threads: MODEL_THREADS
    resources:
        gpu=GPUS,
        mem_mb=16000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/finetune.py"
