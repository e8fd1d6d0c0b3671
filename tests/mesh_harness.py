"""A tiny, real mesh in a temporary data root and Dagster home, for tests at every level.

(A module of its own, not the conftest, so that test modules can import it by a unique name.)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from filelock import FileLock

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


def built_template(factory: pytest.TempPathFactory) -> Path:
    """A tiny mesh with every domain built, once per test session: the first test module
    that needs it builds it (under pytest-xdist, one worker builds while the other waits),
    later ones copy it (:func:`built_copy`). Built with exactly :func:`_make_mesh`'s data,
    environment and instance, so a copy is what a module-scoped build would have made."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the session's workers
    template = base / "built_mesh_template"
    with FileLock(str(template) + ".lock"):
        if not (template / "built").exists():
            shutil.rmtree(template, ignore_errors=True)
            for mesh in _make_mesh(template):
                report = mesh.build()
                assert report.ok, [(r.domain, r.error) for r in report.results if r.error]
            (template / "built").touch()
    return template


def built_copy(factory: pytest.TempPathFactory, name: str = "mesh") -> Iterator[Mesh]:
    """A copy of the session's built tiny mesh in a new data root and Dagster home: lakes
    are relocatable (the catalog's and the pointers' file locations are relative to the
    data path), so the copy serves every version from its own files. Files are copied
    without their times, so caches keyed on a file's modification time see new files."""
    template = built_template(factory)
    root = factory.mktemp(name)
    for part in ("data", "dagster_home"):
        shutil.copytree(template / part, root / part, copy_function=shutil.copyfile)
    data, home = root / "data", root / "dagster_home"
    with (
        environment(MESH_DATA_DIR=str(data), MESH_ENV="ci"),
        dg.instance_for_test(temp_dir=str(home)) as instance,
    ):
        yield Mesh(MeshPaths(data), instance)
