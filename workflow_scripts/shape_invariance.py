import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.logs import log_to
from vidmp3.shape_invariance import shape_invariance

settings = snakemake.params.settings
with log_to(snakemake.log[0]):
    shape_invariance(
        snakemake.output.png,
        snakemake.output.csv,
        seeds=settings["seeds"],
        iterations=settings["iterations"],
        size=settings["size"],
        frames=settings["frames"],
        shapes=settings["shapes"],
        lr=settings["lr"],
        hidden=settings["hidden"],
        variant=settings["variant"],
        layout=settings["layout"],
        cell=settings["cell"],
    )
