"""What only the Snakemake workflow needs: its config and sheets (`config`), each prior rule's backend,
options and inputs (`prior_settings`) and the between-workflow cache key (`cache_keys`).

The rules import these at parse time; the method's modules (everything else under `vidmp3`) never
import this subpackage, so they run and are tested without the workflow (tests/test_architecture.py).
"""
