rule render_clip:
    output:
        video="results/clips/{clip}/video.mp4",
        masks=directory("results/clips/{clip}/masks"),
        truth=directory("results/clips/{clip}/truth.zarr"),
    params:
        spec=rendered_clip_spec,
    log:
        "results/logs/render_clip/{clip}.log",
    benchmark:
        "results/benchmarks/render_clip/{clip}.tsv"
    resources:
        mem_mb=2000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/render_clip.py"
