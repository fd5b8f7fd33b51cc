# One job per method and video inverts the source once and samples all of its edits: on a GPU a model
# load costs more than an edit, so a video's model is loaded twice in all (fine-tuning, this job).
# Changing one edit's prompt reruns this video's edit job, never fine-tuning, priors or other videos.
rule edit:
    input:
        unpack(edit_input),
    output:
        edits=report(
            directory(method_edits("{method}", "{video}")),
            patterns=["{concept}.png"],
            caption="../report/edit.rst",
            category="Edits",
            subcategory="{method}",
            labels={"video": "{video}", "concept": "{concept}", "method": "{method}"},
        ),
    params:
        source_prompt=video_prompt,
        source_subjects=video_subject_phrases,
        edits=video_edits,
        settings=edit_params,
    log:
        "results/logs/edit/{method}/{video}.log",
    benchmark:
        "results/benchmarks/edit/{method}/{video}.tsv"
    threads: MODEL_THREADS
    resources:
        gpu=GPUS,
        mem_mb=16000,
    conda:
        "../envs/vidmp3.yaml"
    script:
        "../workflow_scripts/edit.py"


# The user's result: VidMP3's edit of one concept, at results/edits/<video>_<concept>.mp4 (and its strip).
rule edit_result:
    input:
        unpack(edit_result_input),
    output:
        video="results/edits/{video}_{concept}.mp4",
        strip="results/edits/{video}_{concept}.png",
    log:
        "results/logs/edit_result/{video}_{concept}.log",
    benchmark:
        "results/benchmarks/edit_result/{video}_{concept}.tsv"
    localrule: True
    resources:
        mem_mb=500,
    conda:
        "../envs/vidmp3.yaml"
    shell:
        "(cp {input.edits}/{wildcards.concept}.mp4 {output.video} && cp {input.edits}/{wildcards.concept}.png {output.strip}) 2> {log}"
