# ToyWorld pretraining (vidmp3.toyworld): the judge (classifier), the text-to-image model and the
# motion module, then their float16 export. Not part of `all`: the shipped copy in
# vidmp3/toyworld/weights is what presets use; `make toyworld-weights` rebuilds it through these rules.


rule toyworld_classifier:
    output:
        classifier=directory("results/toyworld/pretrained/classifier"),
    params:
        settings=toyworld_classifier_settings,
    log:
        "results/logs/toyworld/classifier.log",
    benchmark:
        "results/benchmarks/toyworld/classifier.tsv"
    threads: 2
    resources:
        mem_mb=2000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/toyworld_classifier.py"


rule toyworld_image:
    input:
        classifier="results/toyworld/pretrained/classifier",
    output:
        model=report(
            directory("results/toyworld/pretrained/image"),
            patterns=["{figure}.png"],
            caption="../report/toyworld_image.rst",
            category="ToyWorld pretraining",
            labels={"stage": "text-to-image", "figure": "{figure}"},
        ),
    params:
        settings=toyworld_image_settings,
    log:
        "results/logs/toyworld/image.log",
    benchmark:
        "results/benchmarks/toyworld/image.tsv"
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/toyworld_image.py"


rule toyworld_motion:
    input:
        image="results/toyworld/pretrained/image",
        classifier="results/toyworld/pretrained/classifier",
    output:
        model=report(
            directory("results/toyworld/pretrained/motion"),
            patterns=["{figure}.png"],
            caption="../report/toyworld_motion.rst",
            category="ToyWorld pretraining",
            labels={"stage": "motion module", "figure": "{figure}"},
        ),
    params:
        settings=toyworld_motion_settings,
    log:
        "results/logs/toyworld/motion.log",
    benchmark:
        "results/benchmarks/toyworld/motion.tsv"
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/toyworld_motion.py"


rule toyworld_export:
    input:
        image="results/toyworld/pretrained/image",
        motion="results/toyworld/pretrained/motion",
        classifier="results/toyworld/pretrained/classifier",
    output:
        weights=directory("results/toyworld/weights"),
    log:
        "results/logs/toyworld/export.log",
    benchmark:
        "results/benchmarks/toyworld/export.tsv"
    resources:
        mem_mb=2000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/toyworld_export.py"


rule toyworld_clip:
    wildcard_constraints:
        clip=one_of(TOYWORLD_CLIPS),
    output:
        video=clip_path("{clip}", "video.mp4"),
        masks=directory(clip_path("{clip}", "masks")),
        truth=directory(clip_path("{clip}", "truth.zarr")),
    params:
        spec=toyworld_clip_spec,
    log:
        "results/logs/toyworld_clip/{clip}.log",
    benchmark:
        "results/benchmarks/toyworld_clip/{clip}.tsv"
    resources:
        mem_mb=1000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/toyworld_clip.py"
