"""Imported first by every workflow script: puts this checkout ahead on sys.path, so the jobs import
`vidmp3` from it, also under `--sdm conda`, whose environment does not hold the package (envs/vidmp3.yaml),
and ahead of a copy installed from another checkout. Snakemake adds a script's own folder to
sys.path, which is how the scripts find this module."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
