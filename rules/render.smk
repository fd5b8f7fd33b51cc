rule render_clip:
    wildcard_constraints:
        clip=one_of(CLIPS),
    output:
        video=clip_path("{clip}", "video.mp4"),
        masks=directory(clip_path("{clip}", "masks")),
        truth=directory(clip_path("{clip}", "truth.zarr")),
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
