import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.logs import log_to
from vidmp3.tables import write_tables

with log_to(snakemake.log[0]):
    write_tables(
        edit_metrics=snakemake.input.metrics,
        benchmarks=snakemake.params.benchmarks,
        benchmarks_root=snakemake.params.benchmarks_root,
        videos=snakemake.params.videos,
        edits=snakemake.params.edits,
        summary_csv=snakemake.output.summary,
        ablation_csv=snakemake.output.ablation,
        time_cost_csv=snakemake.output.time_cost,
        markdown=snakemake.output.markdown,
    )
