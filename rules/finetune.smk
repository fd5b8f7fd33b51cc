rule finetune:
    input:
        unpack(finetune_input),
    output:
        weights=report(
            directory("results/weights/{method}/{video}"),
            patterns=["loss.png"],
            caption="../report/finetune.rst",
            category="Fine-tuning",
            labels={"video": "{video}", "method": "{method}"},
        ),
    params:
        group=subpath(input.frames, parent=True),
        prompt=video_prompt,
        model=model_params,
        settings=finetune_params,
    log:
        "results/logs/finetune/{method}/{video}.log",
    benchmark:
        "results/benchmarks/finetune/{method}/{video}.tsv"
    resources:
        mem_mb=8000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/finetune.py"
