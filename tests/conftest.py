"""Shared test fixtures: the repository root and the real clips of ../shared (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIPS = REPO.parent / "shared" / "data" / "clips"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_clips() -> Path:
    """The research clips beside the checkout (not part of the project: research-only licences)."""
    if not (SHARED_CLIPS / "MANIFEST.tsv").is_file():
        pytest.skip(f"real clips not found at {SHARED_CLIPS} (they live in ../shared beside the checkout)")
    return SHARED_CLIPS


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models are thousands of small operations: one thread per process is fastest on 2 shared cores."""
    import torch

    torch.set_num_threads(1)
