"""A tiny, real mesh in a temporary data root and Dagster home, for tests at every level.

(A module of its own, not the conftest, so that test modules can import it by a unique name.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from mesh_domains.platform.build import BuildOptions, build_mesh, execute_domain
from mesh_domains.platform.settings import MeshPaths
from pharma_example import generate

TINY = {"scale": 0.02, "seed": 7, "months": 2, "days": 3, "weeks": 3}


@dataclass
class Mesh:
    """A tiny mesh under test: its paths and its Dagster instance."""

    paths: MeshPaths
    instance: dg.DagsterInstance

    def build(self, *domains: str):
        return build_mesh(self.instance, only=domains or None)

    def run_job(self, domain: str, **options) -> dg.ExecuteInProcessResult:
        """The domain's job, in process, as ``mesh build`` runs it (every landed partition)."""
        return execute_domain(self.instance, domain, BuildOptions(**options), trigger="test")

    def landing_file(self, source: str, partition: str | None = None) -> Path:
        parts = sorted((self.paths.landing / source).iterdir())
        part = parts[-1] if partition is None else self.paths.landing / source / partition
        return next(part.glob("*.csv"))


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for a block and put back what was there before."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _make_mesh(root: Path) -> Iterator[Mesh]:
    data = root / "data"
    generate(data / "landing", **TINY)
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    with (
        environment(MESH_DATA_DIR=str(data), MESH_ENV="ci"),
        dg.instance_for_test(temp_dir=str(home)) as instance,
    ):
        yield Mesh(MeshPaths(data), instance)
