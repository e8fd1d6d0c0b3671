"""Fixtures of the example's generator tests: one small landing zone shared by a session."""

from __future__ import annotations

import pytest
from example_helpers import SCALE, all_rows, read_rows

from pharma_example import generate_landing


@pytest.fixture(scope="session")
def landing(tmp_path_factory):
    """The default windows (3 months, 14 days, 8 weeks, 2 quarters) at scale 0.05."""
    root = tmp_path_factory.mktemp("landing")
    return root, generate_landing(root, scale=SCALE)


@pytest.fixture(scope="session")
def rows(landing):
    """Every source's rows, all partitions together (the small landing zone)."""
    return {name: all_rows(paths) for name, paths in landing[1].files.items()}


@pytest.fixture(scope="session")
def ama_npis(landing) -> set[str]:
    return {r["npi"] for p in landing[1].files["ama_physician"] for r in read_rows(p)}
