rule frames:
    input:
        unpack(frames_input),
    output:
        frames=directory(prior_array("{video}", "frames")),
        group=prior_array("{video}", "zarr.json"),
    params:
        group=subpath(output.group, parent=True),
        sampling=frames_sampling,
    log:
        "results/logs/frames/{video}.log",
    benchmark:
        "results/benchmarks/frames/{video}.tsv"
    resources:
        mem_mb=2000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/frames.py"


rule given_masks:
    input:
        unpack(given_masks_input),
    output:
        mask=directory(prior_array("{video}", "mask_given")),
    params:
        group=subpath(output.mask, parent=True),
        subjects=video_subject_ids,
    log:
        "results/logs/given_masks/{video}.log",
    benchmark:
        "results/benchmarks/given_masks/{video}.tsv"
    priority: PRIORS_PRIORITY
    resources:
        mem_mb=1000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/given_masks.py"
