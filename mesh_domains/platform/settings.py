"""One place for where the mesh lives and which variation it runs as.

Every path the platform touches derives from two environment variables, so that tests, kitchens
and production differ only in their environment:

- ``MESH_DATA_DIR``: the data root (landing zone, lakes, staging, quarantine). Defaults to
  ``<project>/data``.
- ``MESH_ENV``: the environment variation (``dev``, ``ci``, ``prod``, ``canary``). Defaults to
  ``dev``.

The Dagster instance lives in ``DAGSTER_HOME`` (``<project>/.dagster`` when unset, set by the
``mesh`` CLI and the Makefile).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "ci", "prod", "canary")


@dataclass(frozen=True)
class MeshPaths:
    """The filesystem layout of one mesh: everything under a single data root."""

    data: Path

    @property
    def landing(self) -> Path:
        return self.data / "landing"

    @property
    def quarantine(self) -> Path:
        return self.data / "quarantine"

    def lake_dir(self, domain: str) -> Path:
        """The domain's own storage: the "Where" of its ports."""
        return self.data / "lake" / domain

    def lake_catalog(self, domain: str) -> Path:
        return self.lake_dir(domain) / "catalog.sqlite"

    def lake_files(self, domain: str) -> Path:
        return self.lake_dir(domain) / "files"

    def staging_db(self, domain: str) -> Path:
        """Private working database of a domain: ports are built and audited here, never read."""
        return self.data / "staging" / f"{domain}.duckdb"


def mesh_paths() -> MeshPaths:
    return MeshPaths(Path(os.environ.get("MESH_DATA_DIR", PROJECT_ROOT / "data")).resolve())


def mesh_env() -> str:
    env = os.environ.get("MESH_ENV", "dev")
    if env not in ENVIRONMENTS:
        raise ValueError(f"MESH_ENV={env!r} is not one of {', '.join(ENVIRONMENTS)}")
    return env


def default_dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME", PROJECT_ROOT / ".dagster")).resolve()
