"""Shared fixtures: a tiny, real mesh in a temporary data root and Dagster home.

Everything is real: generated landing files, DuckDB/DuckLake lakes, pandera contracts, dbt
builds, and a Dagster instance on SQLite storage in a temporary ``DAGSTER_HOME``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mesh_harness import TINY, Mesh, _make_mesh, built_copy  # noqa: F401 — TINY and Mesh for tests


@pytest.fixture
def mesh(tmp_path) -> Iterator[Mesh]:
    """A fresh tiny mesh: landing data generated, nothing built yet."""
    yield from _make_mesh(tmp_path)


@pytest.fixture(scope="module")
def built_mesh(tmp_path_factory) -> Iterator[Mesh]:
    """A tiny mesh with every domain built (shared by a module's tests): a copy of the
    session's one build, in the module's own data root and Dagster home."""
    yield from built_copy(tmp_path_factory)


# The test modules that take longest (seconds on the 2-core CI machine, measured), longest
# first. `make test` distributes whole modules over two workers in collection order
# (`--dist loadfile --no-loadscope-reorder`): starting the long ones first keeps one of them
# from starting last while the other worker has run out of work.
SLOWEST_FIRST = (
    "e2e/test_scale_out.py",  # ~450 (in a full run)
    "reliability/test_bad_input.py",  # ~290
    "e2e/test_dagster_dev.py",  # ~240
    "reliability/test_crash_safety.py",  # ~220
    "e2e/test_mesh_cli.py",  # ~150
    "e2e/test_new_domain.py",  # ~140
    "e2e/test_kitchens.py",
    "e2e/test_ui_browser.py",
    "test_workspace.py",
    "e2e/test_drift.py",
    "api/test_domain_query.py",
    "domains/test_physician_dw.py",
    "reliability/test_concurrency.py",
    "e2e/test_automation.py",
    "e2e/test_variations.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {module: i for i, module in enumerate(SLOWEST_FIRST)}

    def key(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0].removeprefix("tests/")
        return rank.get(module, len(rank))

    items.sort(key=key)  # stable: the other modules, and every module's tests, keep their order
