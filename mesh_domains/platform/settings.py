"""One place for where the mesh lives and which variation it runs as.

Every path the platform touches derives from two environment variables, so that tests, kitchens
and production differ only in their environment:

- ``MESH_DATA_DIR``: the data root (landing zone, lakes, staging, quarantine). Defaults to
  ``<project>/data``.
- ``MESH_ENV``: the environment variation (``dev``, ``ci``, ``prod``, ``canary``). Defaults to
  ``dev``. It is recorded on every port version; ``canary`` also moves everything a build
  writes into the canary namespace: each domain's canary lake ``data/lake/<domain>/canary/``,
  its own staging database and its own Dagster instance (``$DAGSTER_HOME/canary``). A canary
  build reads its inputs from the producers' canary lakes where they exist (consumers opt in
  by running as canary) and from production otherwise; production never reads the canary.
- ``MESH_KITCHEN``: the folder of a kitchen (``data/kitchens/<name>``), a development namespace
  with everything a build writes inside it: the lakes of its domains, staging, logs, verdicts
  and its Dagster instance (``<kitchen>/dagster``). It reads the landing zone of the data root,
  and other domains' ports through the pointers pinned in its own lake folders at creation,
  then production's (:mod:`.kitchen`).

- ``MESH_LAKE_CATALOG``: where the lakes' catalogs live. Unset, each lake's catalog is a SQLite
  file beside its data (the embedded default); a PostgreSQL URL
  (``postgresql://user@host:5432/mesh_lakes``) puts every lake's catalog in that database, one
  schema per domain (and per canary or kitchen namespace), for writers on several machines.

- ``MESH_LAKE_DATA_URL``: where the lakes' Parquet files live. Unset, under the data root;
  an S3 URL (``s3://bucket/prefix``) puts them on S3-compatible object storage, each lake under
  ``<url>/lake/<domain>/files``, read and written through DuckDB's ``httpfs`` with the
  credentials of the process's environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``:
  each domain's code server has its own) and ``MESH_S3_ENDPOINT`` / ``MESH_S3_URL_STYLE`` /
  ``MESH_S3_USE_SSL`` for a server other than AWS's. Pointers and staging stay under the data
  root.

The Dagster instance lives in ``DAGSTER_HOME`` (``<project>/.dagster`` when unset, set by the
``mesh`` CLI and the Makefile).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "ci", "prod", "canary")
CANARY = "canary"
KITCHEN_VAR = "MESH_KITCHEN"
KITCHEN = "kitchen"
LAKE_CATALOG_VAR = "MESH_LAKE_CATALOG"
LAKE_DATA_VAR = "MESH_LAKE_DATA_URL"


@dataclass(frozen=True)
class MeshPaths:
    """The filesystem layout of one mesh: everything under a single data root, in the
    production namespace (``""``), the canary one, or a kitchen's. A kitchen's data root is
    its own folder; ``upstream`` is then the production data root (landing zone, lakes)."""

    data: Path
    namespace: str = ""
    upstream: Path | None = None

    def production(self) -> MeshPaths:
        if self.upstream is not None:
            return MeshPaths(self.upstream)
        return replace(self, namespace="")

    def reading_order(self) -> list[MeshPaths]:
        """Where a build reads other domains' ports: its own namespace first, production next."""
        return [self, self.production()] if self.namespace else [self]

    @property
    def landing(self) -> Path:
        return (self.upstream or self.data) / "landing"

    @property
    def quarantine(self) -> Path:
        return self.data / "quarantine"

    def lake_dir(self, domain: str) -> Path:
        """The domain's own storage: the "Where" of its ports."""
        base = self.data / "lake" / domain
        return base / self.namespace if self._nested else base

    def lake_catalog(self, domain: str) -> Path:
        """The catalog's SQLite file (the embedded default; see :meth:`catalog_uri`)."""
        return self.lake_dir(domain) / "catalog.sqlite"

    def catalog_uri(self, domain: str) -> str:
        """The DuckLake catalog of ``domain``'s lake: its SQLite file, or the PostgreSQL
        database ``MESH_LAKE_CATALOG`` names (the domain's schema: :meth:`catalog_schema`)."""
        url = lake_catalog_url()
        return f"ducklake:postgres:{url}" if url else f"ducklake:sqlite:{self.lake_catalog(domain)}"

    def catalog_schema(self, domain: str) -> str | None:
        """The domain's schema in a PostgreSQL catalog database: ``<domain>``, or
        ``<domain>__canary`` / ``<domain>__kitchen_<name>`` in those namespaces."""
        if not lake_catalog_url():
            return None
        if self.upstream is not None:
            return f"{domain}__{self.namespace}_{self.data.name}".lower()
        return f"{domain}__{self.namespace}" if self.namespace else domain

    def lake_data_path(self, domain: str) -> str:
        """Where the lake's Parquet files live: its ``files`` folder, or the same path under
        the object storage URL ``MESH_LAKE_DATA_URL`` names."""
        url = lake_data_url()
        if not url:
            return str(self.lake_files(domain))
        return f"{url}/{self.lake_files(domain).relative_to(self.upstream or self.data).as_posix()}"

    def lake_exists(self, domain: str) -> bool:
        """Whether ``domain`` has a lake here (its first build creates it)."""
        if lake_catalog_url():
            return self.lake_dir(domain).exists()
        return self.lake_catalog(domain).exists()

    def lake_files(self, domain: str) -> Path:
        return self.lake_dir(domain) / "files"

    def staging_db(self, domain: str) -> Path:
        """Private working database of a domain: ports are built and audited here, never read."""
        name = f"{domain}.{self.namespace}" if self._nested else domain
        return self.data / "staging" / f"{name}.duckdb"

    @property
    def _nested(self) -> bool:
        """The canary nests inside production's folders; a kitchen has a data root of its own."""
        return bool(self.namespace) and self.upstream is None


def mesh_paths() -> MeshPaths:
    data = Path(os.environ.get("MESH_DATA_DIR", PROJECT_ROOT / "data")).resolve()
    kitchen = os.environ.get(KITCHEN_VAR)
    if kitchen:
        if mesh_env() == CANARY:
            raise ValueError(f"{KITCHEN_VAR} and MESH_ENV=canary exclude each other")
        return MeshPaths(Path(kitchen).resolve(), KITCHEN, upstream=data)
    return MeshPaths(data, CANARY if mesh_env() == CANARY else "")


def lake_catalog_url() -> str | None:
    """The PostgreSQL database holding the lakes' catalogs (``MESH_LAKE_CATALOG``), if any; a
    SQLAlchemy URL naming a driver (``postgresql+psycopg2://``, as the instance's) works too."""
    url = re.sub(
        r"^postgresql\+\w+://", "postgresql://", os.environ.get(LAKE_CATALOG_VAR, "").strip()
    )
    if url and not url.startswith(("postgres://", "postgresql://")):
        raise ValueError(
            f"{LAKE_CATALOG_VAR}={url!r}: expected a PostgreSQL URL "
            "(postgresql://user@host:5432/database), or unset for SQLite catalogs"
        )
    return url or None


def lake_data_url() -> str | None:
    """The object storage URL the lakes' files live under (``MESH_LAKE_DATA_URL``), if any."""
    url = os.environ.get(LAKE_DATA_VAR, "").strip().rstrip("/")
    if url and not url.startswith("s3://"):
        raise ValueError(
            f"{LAKE_DATA_VAR}={url!r}: expected an S3 URL (s3://bucket/prefix), or unset for "
            "files under the data root"
        )
    return url or None


def object_storage_settings() -> dict[str, str | bool]:
    """The S3 settings of this process (a DuckDB secret's parameters), from the environment."""
    settings: dict[str, str | bool] = {
        "key_id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "secret": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "region": os.environ.get("AWS_REGION", "us-east-1"),
        "url_style": os.environ.get("MESH_S3_URL_STYLE", "vhost"),
        "use_ssl": os.environ.get("MESH_S3_USE_SSL", "true").lower() not in ("0", "false", "no"),
    }
    if endpoint := os.environ.get("MESH_S3_ENDPOINT"):
        settings["endpoint"] = endpoint
    return settings


def mesh_env() -> str:
    env = os.environ.get("MESH_ENV", "dev")
    if env not in ENVIRONMENTS:
        raise ValueError(f"MESH_ENV={env!r} is not one of {', '.join(ENVIRONMENTS)}")
    return env


def default_dagster_home() -> Path:
    """The Dagster instance: ``DAGSTER_HOME`` (default ``.dagster``); a canary build keeps its
    runs apart in ``<home>/canary`` unless ``MESH_CANARY_DAGSTER_HOME`` names another; a
    kitchen's instance is ``<kitchen>/dagster``."""
    if os.environ.get(KITCHEN_VAR):
        return (Path(os.environ[KITCHEN_VAR]) / "dagster").resolve()
    home = Path(os.environ.get("DAGSTER_HOME", PROJECT_ROOT / ".dagster")).resolve()
    if mesh_env() == CANARY:
        return Path(os.environ.get("MESH_CANARY_DAGSTER_HOME", home / CANARY)).resolve()
    return home
