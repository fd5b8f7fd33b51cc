import vidmp3_checkout  # noqa: F401  (vidmp3 from this checkout, also under --sdm conda)
from vidmp3.frames import ingest_frames
from vidmp3.logs import log_to

with log_to(snakemake.log[0]):
    sampling = snakemake.params.sampling
    ingest_frames(
        source=snakemake.input.source,
        group=snakemake.params.group,
        first_frame=sampling["first_frame"],
        frames=sampling["frames"],
        stride=sampling["stride"],
        size=tuple(sampling["size"]),
        crop=sampling["crop"],
    )
