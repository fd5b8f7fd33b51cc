rule tiny_model:
    output:
        model=directory(f"{MODELS}/{{preset}}"),
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


# The base UNet and the motion adapter merged once into one video UNet (save_pretrained, in the dtype
# the model jobs use): every fine-tune and edit job then reads one folder instead of merging again.
rule video_model:
    input:
        unpack(model_input),
    output:
        unet=directory(VIDEO_MODEL),
    params:
        settings=video_model_params,
    log:
        "results/logs/video_model/video_model.log",
    benchmark:
        "results/benchmarks/video_model/video_model.tsv"
    threads: MODEL_THREADS
    resources:
        mem_mb=16000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/video_model.py"
