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
