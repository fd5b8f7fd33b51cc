import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
import torch

from vidmp3.logs import log_to
from vidmp3.model.presets import model_spec
from vidmp3.toyworld.benchmark import BenchmarkConfig, BenchmarkOutputs, run_benchmark

torch.set_num_threads(snakemake.threads)

with log_to(snakemake.log[0]):
    run_benchmark(
        BenchmarkConfig(**snakemake.params.settings),
        model_spec(**snakemake.params.model),
        snakemake.input.classifier,
        BenchmarkOutputs(
            **{name: snakemake.output[name] for name in ("rows", "table", "differences", "markdown", "plot", "strips", "timing")}
        ),
    )
