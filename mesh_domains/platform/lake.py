"""Each domain's own storage: a DuckLake (SQLite catalog + Parquet files) under ``data/lake/<d>``.

DuckDB allows one read-write process per database file, so consumers never open a producer's
working files. Ports are published into the producer's lake, which gives concurrent readers,
ACID commits and immutable snapshots: a port version is the id of the snapshot that published
it, and the commit's ``extra_info`` records what the version was built with.

Only the owning domain attaches its lake read-write; other domains attach it read-only, and only
for ports whose descriptor grants them access (:func:`attach_port_reader`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import duckdb_extensions

from .descriptor import Domain, PortRef
from .errors import MeshError, MissingInputError
from .faults import crash_point
from .settings import MeshPaths, mesh_paths

EXTENSIONS = ("ducklake", "sqlite_scanner")
_installed = False


class PortAccessError(MeshError, PermissionError):
    """A domain tried to read a port it holds no grant for."""


def ensure_extensions() -> None:
    """Install DuckLake and SQLite from their PyPI wheels into DuckDB's extension directory.

    The wheels carry the extension binaries for this exact duckdb version, so nothing is
    downloaded; dbt-duckdb's ``LOAD`` then finds them too.
    """
    global _installed
    if _installed:
        return
    con = duckdb.connect()
    try:
        for name in EXTENSIONS:
            duckdb_extensions.import_extension(name, con=con)
    finally:
        con.close()
    _installed = True


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    ensure_extensions()
    con = duckdb.connect(database)
    for name in EXTENSIONS:
        con.load_extension(name)
    return con


def lake_alias(domain: str) -> str:
    return f"{domain}_lake"


def lake_attach_sql(domain: str, read_only: bool, paths: MeshPaths | None = None) -> str:
    paths = paths or mesh_paths()
    options = [f"DATA_PATH '{paths.lake_files(domain)}/'", "DATA_INLINING_ROW_LIMIT 0"]
    if read_only:
        options = ["READ_ONLY"]
    return (
        f"ATTACH IF NOT EXISTS 'ducklake:sqlite:{paths.lake_catalog(domain)}' "
        f"AS {lake_alias(domain)} ({', '.join(options)})"
    )


def attach_own_lake(con: duckdb.DuckDBPyConnection, domain: str) -> str:
    """Attach the domain's lake read-write (creating it on first use); returns the alias."""
    paths = mesh_paths()
    paths.lake_files(domain).mkdir(parents=True, exist_ok=True)
    con.execute(lake_attach_sql(domain, read_only=False, paths=paths))
    return lake_alias(domain)


def check_grant(consumer: str, producer: Domain, port: str) -> None:
    """Raise :class:`PortAccessError` unless ``consumer`` may read ``producer``'s ``port``."""
    out = producer.output_port(port)
    if consumer != producer.name and consumer not in out.grants:
        granted = ", ".join(out.grants) or "no other domain"
        raise PortAccessError(
            f"domain {consumer!r} may not read port {out.ref!r}: its descriptor "
            f"({producer.path}) grants read access to {granted}. Ask team "
            f"{producer.team!r} to add {consumer!r} to output_ports.{port}.grants."
        )


def attach_port_reader(
    con: duckdb.DuckDBPyConnection, consumer: str, producer: Domain, ports: Iterable[str]
) -> str:
    """Attach ``producer``'s lake read-only for ``consumer``, after checking every grant."""
    for port in ports:
        check_grant(consumer, producer, port)
    catalog = mesh_paths().lake_catalog(producer.name)
    if not catalog.exists():
        raise MissingInputError(
            f"domain {consumer!r} reads {producer.name!r}, whose lake {catalog} does not exist "
            f"yet: build {producer.name} first (mesh build)."
        )
    con.execute(lake_attach_sql(producer.name, read_only=True))
    return lake_alias(producer.name)


@dataclass(frozen=True)
class PortVersion:
    """One immutable published state of a port."""

    port: str
    version: int
    published_at: datetime
    info: dict[str, Any]


def port_versions(con: duckdb.DuckDBPyConnection, domain: str, port: str) -> list[PortVersion]:
    """Every published version of ``port`` in ``domain``'s (attached) lake, oldest first."""
    rows = con.execute(
        f"select snapshot_id, snapshot_time, commit_extra_info "
        f"from {lake_alias(domain)}.snapshots() where commit_extra_info is not null "
        f"order by snapshot_id"
    ).fetchall()
    versions = []
    for snapshot_id, ts, extra in rows:
        info = json.loads(extra)
        if port in info.get("ports", {}):
            versions.append(PortVersion(port, snapshot_id, ts, info))
    return versions


def current_version(con: duckdb.DuckDBPyConnection, domain: str, port: str) -> int | None:
    versions = port_versions(con, domain, port)
    return versions[-1].version if versions else None


def publish(
    con: duckdb.DuckDBPyConnection,
    domain: str,
    staged: dict[str, str],
    info: dict[str, Any],
) -> int:
    """Publish staged tables as new port versions in ONE lake commit; returns the snapshot id.

    ``staged`` maps port name to the fully qualified staged table. Either every port of the
    commit becomes visible, or (on any error, or a crash) none does.
    """
    alias = lake_alias(domain)
    con.execute("begin transaction")
    try:
        for port, table in staged.items():
            con.execute(f"create or replace table {alias}.main.{port} as select * from {table}")
        con.execute(
            f"call {alias}.set_commit_message(?, ?, extra_info => ?)",
            [f"mesh:{domain}", f"publish {', '.join(staged)}", json.dumps(info, default=str)],
        )
        crash_point("publish.before_commit")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    crash_point("publish.after_commit")
    return con.execute(f"select max(snapshot_id) from {alias}.snapshots()").fetchone()[0]


def input_port_versions(
    con: duckdb.DuckDBPyConnection, refs: Iterable[PortRef]
) -> dict[str, int | None]:
    """The current version of each input port, as seen by an attached reader."""
    return {r.ref: current_version(con, r.domain, r.port) for r in refs}
