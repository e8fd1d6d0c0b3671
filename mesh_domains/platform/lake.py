"""Each domain's own storage: a DuckLake (SQLite catalog + Parquet files) under ``data/lake/<d>``.

DuckDB allows one read-write process per database file, so consumers never open a producer's
working files. Ports are published into the producer's lake, which gives concurrent readers,
ACID commits and immutable snapshots: a port version is the id of the snapshot that published
it, and the commit's ``extra_info`` records what the version was built with.

Only the owning domain attaches its lake read-write. Other domains read only ports whose
descriptor grants them access: a build pins the served version (``current.json``, written after
each commit) as a view over its immutable files (:func:`open_port`); older versions and the
version history come from the catalog, attached read-only (:func:`attach_port_reader`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import duckdb_extensions

from .contract_sql import literal
from .descriptor import Domain, PortRef
from .errors import MeshError, MissingInputError
from .faults import crash_point
from .settings import (
    MeshPaths,
    lake_catalog_url,
    lake_data_url,
    mesh_paths,
    object_storage_settings,
)

EXTENSIONS = ("ducklake", "sqlite_scanner", "postgres_scanner", "httpfs")
POINTER_DATA_PATH = "files"  # a pointer's files are relative to this folder beside it
LOCK_RETRY_SECONDS = 120.0  # a loaded machine holds catalog locks longer
_TRANSIENT = ("database is locked", "database table is locked")
_installed = False


class PortAccessError(MeshError, PermissionError):
    """A domain tried to read a port it holds no grant for."""


def ensure_extensions() -> None:
    """Install DuckLake, SQLite, PostgreSQL and httpfs from their PyPI wheels into DuckDB's
    extension directory.

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


def extension_file(name: str) -> Path:
    """The binary of DuckDB extension ``name`` as its locked wheel installed it, checked once
    per process against the wheel's RECORD (the hash uv verified against the lock file)."""
    found = _checked.get(name)
    if found is not None:
        return found
    import base64
    import importlib
    import importlib.metadata

    package = f"duckdb_extension_{name}"
    folder = Path(importlib.import_module(package).__file__).parent
    path = folder / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    recorded = {
        str(f): f.hash.value
        for f in importlib.metadata.distribution(package).files or ()
        if f.hash is not None and f.hash.mode == "sha256"
    }
    wanted = recorded.get(f"{package}/extensions/v{duckdb.__version__}/{name}.duckdb_extension")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    actual = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    if actual != wanted:
        raise MeshError(
            f"DuckDB extension {name}: {path} is not the file its wheel installed (sha256 "
            f"{actual}, RECORD says {wanted}); reinstall: uv sync --frozen --reinstall"
        )
    _checked[name] = path
    return path


_checked: dict[str, Path] = {}
# every connection the platform opens, and dbt's to the same staging database (DuckDB refuses
# two configurations for one file in a process): extensions are checked by extension_file
CONNECTION_CONFIG = {"allow_unsigned_extensions": True}
# a domain's staging database is scratch, rewritten by every build: its tables are written
# uncompressed (about half the time of writing them compressed; the lake's Parquet files are
# compressed as ever). dbt opens the same file with the same configuration.
STAGING_CONFIG = {**CONNECTION_CONFIG, "force_compression": "uncompressed"}


def connect(database: str = ":memory:", *, staging: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection; the lake extensions load on first attach (reading a served port
    needs none of them, which keeps a reader's connection cheap). With the lakes' files on
    object storage, the connection reads and writes there with this process's credentials.

    Extensions load from their locked wheels' files (:func:`extension_file`), checked once
    per process; DuckDB's own signature check would hash each 20-40 MB binary again on every
    load into every new database (0.1-0.6 s each), so it is left off for these connections."""
    con = duckdb.connect(database, config=dict(STAGING_CONFIG if staging else CONNECTION_CONFIG))
    if lake_data_url():
        ensure_extensions()
        con.execute(f"load {literal(str(extension_file('httpfs')))}")
        settings = object_storage_settings()
        con.execute(
            "create or replace temporary secret mesh_lakes ("
            + ", ".join(["type s3", *(f"{k} {literal(v)}" for k, v in settings.items())])
            + ")"
        )
    return con


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    ensure_extensions()
    for name in EXTENSIONS[:2] + (EXTENSIONS[2:3] if lake_catalog_url() else ()):
        con.execute(f"load {literal(str(extension_file(name)))}")


def retrying(action: Callable[[], Any], deadline_s: float = LOCK_RETRY_SECONDS) -> Any:
    """Run ``action`` (its catalog statements, every result fetched), retrying while the SQLite
    catalog is locked ("database is locked"); the process's catalog actions take turns.

    A lake has one writer and many readers. A SQLite catalog (rollback journal) lets a commit
    wait for the readers' locks to clear (DuckDB's SQLite busy timeout: 5 s), admitting no new
    reader meanwhile, except from a process that already holds a read lock: SQLite locks are
    per process. So readers in one process whose reads overlap, or that leave a result
    unfetched (its transaction, and the read lock, stay open until the connection's next
    statement), can hold the catalog for good; the commit then fails, and the writer's
    catalog connection keeps that commit's lock, so its retries fail as well.

    Each attempt therefore holds this process's turn at the catalogs (:func:`catalog_turn`):
    its catalog reads never overlap, between two of them it holds no lock, and a commit waiting
    for a catalog gets it. Collisions with other processes are retried with jittered backoff.
    """
    deadline, wait = time.monotonic() + deadline_s, 0.02
    while True:
        try:
            with catalog_turn():
                return action()
        except duckdb.Error as exc:
            if not any(t in str(exc) for t in _TRANSIENT) or time.monotonic() > deadline:
                raise
        time.sleep(wait * (0.5 + random.random()))
        wait = min(wait * 2, 1.0)


def lake_alias(domain: str) -> str:
    return f"{domain}_lake"


def lake_attach_sql(domain: str, read_only: bool, paths: MeshPaths | None = None) -> str:
    """Attach ``domain``'s lake. Its data path is always the one under the data root it is
    reached through (``OVERRIDE_DATA_PATH``): the catalog records file locations relative to
    the data path, so a lake moved or mounted elsewhere stays readable."""
    paths = paths or mesh_paths()
    options = [f"DATA_PATH '{paths.lake_data_path(domain)}/'", "OVERRIDE_DATA_PATH true"]
    options = ["READ_ONLY", *options] if read_only else [*options, "DATA_INLINING_ROW_LIMIT 0"]
    if schema := paths.catalog_schema(domain):
        options.append(f"METADATA_SCHEMA '{schema}'")
    return (
        f"ATTACH IF NOT EXISTS '{paths.catalog_uri(domain)}' "
        f"AS {lake_alias(domain)} ({', '.join(options)})"
    )


def attach_own_lake(con: duckdb.DuckDBPyConnection, domain: str) -> str:
    """Attach the domain's lake read-write (creating it on first use); returns the alias."""
    paths = mesh_paths()
    (paths.lake_dir(domain) if lake_data_url() else paths.lake_files(domain)).mkdir(
        parents=True, exist_ok=True
    )
    load_extensions(con)
    retrying(lambda: con.execute(lake_attach_sql(domain, read_only=False, paths=paths)))
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
    paths = _reading(producer.name, consumer)
    if not paths.lake_exists(producer.name):
        raise MissingInputError(
            f"domain {consumer!r} reads {producer.name!r}, whose lake "
            f"{paths.lake_dir(producer.name)} does not exist yet: build {producer.name} first "
            "(mesh build)."
        )
    load_extensions(con)
    retrying(lambda: con.execute(lake_attach_sql(producer.name, read_only=True, paths=paths)))
    return lake_alias(producer.name)


def _reading(producer: str, consumer: str) -> MeshPaths:
    """Which namespace of ``producer``'s storage ``consumer`` reads: a domain reads its own
    namespace; another domain reads the canary lake when it runs as canary and the producer
    has one, production otherwise."""
    paths = mesh_paths()
    if producer == consumer:
        return paths
    for candidate in paths.reading_order():
        if candidate.lake_exists(producer):
            return candidate
    return paths.production()


def pointer_path(domain: str) -> Path:
    """The lake's served-version pointer: which version of each port consumers read now."""
    return mesh_paths().lake_dir(domain) / "current.json"


def write_pointer(con: duckdb.DuckDBPyConnection, domain: str, version: int, ports) -> None:
    """Point consumers at ``version`` of ``ports`` (atomically: a reader sees the old pointer
    or the new one, never half of one). Lists each port's immutable files at that version so
    readers never need the catalog, whose SQLite locks would otherwise collide with commits;
    and the upstream port versions the version derives from (its lineage, for drift checks)."""
    alias = lake_alias(domain)
    path = pointer_path(domain)
    pointer = json.loads(path.read_text()) if path.exists() else {"ports": {}}
    data_path = f"{mesh_paths().lake_data_path(domain)}/"
    extra = retrying(
        lambda: con.execute(
            f"select commit_extra_info from {alias}.snapshots() where snapshot_id = ?", [version]
        ).fetchone()
    )
    info = json.loads(extra[0]) if extra and extra[0] else {}
    lineage = commit_lineage(info)
    for port in ports:
        files = retrying(lambda port=port: version_files(con, alias, port, version))
        if any(delete for _, delete in files):
            raise RuntimeError(f"{domain}/{port} v{version} has delete files; not supported")
        pointer["ports"][port] = {
            "version": version,
            "content_version": content_version(info, port, version),
            "files": [f.removeprefix(data_path) for f, _ in files],
            "lineage": lineage,
        }
    pointer["data_path"] = data_path if lake_data_url() else POINTER_DATA_PATH
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(pointer, indent=1))
    os.replace(tmp, path)


def version_files(
    con: duckdb.DuckDBPyConnection, alias: str, port: str, version: int
) -> list[tuple[str, str | None]]:
    """The data files of ``port`` at ``version`` in the attached lake ``alias``, each with its
    delete file (None when it has none). One catalog read: callers retry it when the catalog
    may be locked (:func:`retrying`)."""
    return con.execute(
        "select data_file, delete_file from ducklake_list_files(?, ?, snapshot_version => ?)",
        [alias, port, version],
    ).fetchall()


def content_version(info: dict, port: str, version: int) -> int:
    """The version whose content ``port`` at ``version`` has: the earliest of the versions
    before it with the same rows (a rebuild from the same inputs publishes a new version of the
    same content, which changes nothing for consumers), or ``version`` itself."""
    same_as = ((info.get("ports") or {}).get(port) or {}).get("same_as")
    return int(same_as) if same_as is not None else version


def fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """An order-free digest of a table's columns and rows: equal for equal content."""
    columns = con.execute(f"describe {table}").fetchall()
    rows, first, second = con.execute(
        f"select count(*), sum(hash(t)::hugeint), bit_xor(hash(t, 'mesh')) from {table} t"
    ).fetchone()
    schema = ",".join(f"{name}:{kind}" for name, kind, *_ in columns)
    return f"{rows}:{first or 0}:{second or 0}:{hash_text(schema)}"


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def commit_lineage(info: dict) -> dict[str, int]:
    """The upstream port versions (``producer/port`` -> version) a commit derives from,
    transitively; commits made before lineage was recorded give their direct inputs."""
    if "lineage" in info:
        return {ref: int(v) for ref, v in info["lineage"].items()}
    return {ref: int(v) for ref, v in (info.get("input_versions") or {}).items() if v is not None}


def refresh_pointer(con: duckdb.DuckDBPyConnection, domain: Domain) -> None:
    """Catch the pointer up with the lake after a crash between a commit and its pointer."""
    path = pointer_path(domain.name)
    served = json.loads(path.read_text())["ports"] if path.exists() else {}
    lagging: dict[int, list[str]] = {}
    for port in domain.output_ports:
        latest = current_version(con, domain.name, port.name)
        if latest is not None and served.get(port.name, {}).get("version") != latest:
            lagging.setdefault(latest, []).append(port.name)
    for version, ports in sorted(lagging.items()):  # ports of one commit move together
        write_pointer(con, domain.name, version, ports)


class Served(NamedTuple):
    """A port's served version, its immutable files, and the upstream versions it derives from."""

    version: int
    files: list[str]
    lineage: dict[str, int]
    content_version: int | None = None  # the version with the same content (see content_version)


def read_pointer(path: Path) -> dict[str, Served]:
    """The ports a pointer file serves, their files resolved against the pointer's data path
    (relative to the pointer's folder: moving a data root keeps every served version
    readable; pointers written before data paths were recorded name absolute files)."""
    pointer = json.loads(path.read_text())
    data_path = pointer.get("data_path", "")
    if "://" in data_path:  # object storage
        base = data_path.rstrip("/") + "/"
    else:
        base = f"{path.parent / data_path}{os.sep}"
    return {
        name: Served(
            entry["version"],
            [f if os.path.isabs(f) or "://" in f else base + f for f in entry["files"]],
            entry.get("lineage", {}),
            entry.get("content_version", entry["version"]),
        )
        for name, entry in pointer["ports"].items()
    }


def pin_pointer(pointer: Path, target: Path) -> None:
    """Copy ``pointer`` to ``target`` (a kitchen pins production's served versions), its data
    path made relative to the copy's folder so the copy still names the original files."""
    data = json.loads(pointer.read_text())
    if "://" not in data.get("data_path", ""):  # object storage URLs name their files already
        data_path = (pointer.parent / data.get("data_path", "")).resolve()
        data["data_path"] = os.path.relpath(data_path, target.parent.resolve())
    target.write_text(json.dumps(data, indent=1))


def served_ports(producer: str) -> dict[str, Served]:
    """The served version and files of every port of ``producer``, read in one go: the
    pointer is replaced atomically per commit, so ports published together are pinned
    together."""
    path = next(
        (
            p.lake_dir(producer) / "current.json"
            for p in mesh_paths().reading_order()
            if (p.lake_dir(producer) / "current.json").exists()
        ),
        None,
    )
    return {} if path is None else read_pointer(path)


def port_history(
    con: duckdb.DuckDBPyConnection, consumer: str, producer: Domain, port: str
) -> list[tuple[int, dict[str, int], int]]:
    """Every published version of ``producer``'s ``port`` with its lineage and content version,
    newest first (the producer's catalog attached read-only for ``consumer``, grants checked)."""
    attach_port_reader(con, consumer, producer, [port])
    return [
        (v.version, commit_lineage(v.info), v.content_version)
        for v in reversed(port_versions(con, producer.name, port))
    ]


def open_port(
    con: duckdb.DuckDBPyConnection,
    consumer: str,
    producer: Domain,
    port: str,
    version: int | None = None,
    served: dict[str, Served] | None = None,
    view: str | None = None,
) -> tuple[str, int]:
    """Pin ``producer``'s ``port`` at ``version`` (default: the served one) for ``consumer``.

    Checks the grant, resolves the version's immutable Parquet files, and creates the view
    ``<producer>.<port>`` over them in ``con``'s database: everything the consumer reads
    afterwards comes from one consistent version. The served version comes from the lake's
    pointer file, without touching the catalog; an older version is looked up in the catalog.
    Pass ``served`` (from :func:`served_ports`) to pin several ports of one producer from
    the same pointer. Returns the view name and the pinned version.
    """
    for_port = [port]
    if version is None and served is None:
        served = served_ports(producer.name)
    entry = (served or {}).get(port) if version is None else None
    if entry is not None:
        check_grant(consumer, producer, port)
        pinned, files = entry.version, entry.files
    else:
        alias = attach_port_reader(con, consumer, producer, for_port)

        def resolve():
            wanted = version if version is not None else current_version(con, producer.name, port)
            if wanted is None:
                raise MissingInputError(
                    f"domain {consumer!r} reads port {producer.name}/{port}, which has no "
                    f"published version yet: build {producer.name} first (mesh build builds "
                    "in order)."
                )
            return wanted, [f for f, _ in version_files(con, alias, port, wanted)]

        pinned, files = retrying(resolve)
    if view is None:
        view = f"{producer.name}.{port}"
        con.execute(f"create schema if not exists {producer.name}")
    if not files:
        raise MissingInputError(f"{producer.name}/{port} version {pinned} has no data files")
    listed = ", ".join(literal(f) for f in files)
    # a partitioned port's files sit in hive-style folders; their columns are in the files
    con.execute(
        f"create or replace view {view} as "
        f"select * from read_parquet([{listed}], hive_partitioning = false)"
    )
    return view, pinned


@dataclass(frozen=True)
class PortVersion:
    """One immutable published state of a port."""

    port: str
    version: int
    published_at: datetime
    info: dict[str, Any]

    @property
    def content_version(self) -> int:
        return content_version(self.info, self.port, self.version)


def port_versions(con: duckdb.DuckDBPyConnection, domain: str, port: str) -> list[PortVersion]:
    """Every published version of ``port`` in ``domain``'s (attached) lake, oldest first."""
    rows = retrying(
        lambda: con.execute(
            f"select snapshot_id, snapshot_time, commit_extra_info "
            f"from {lake_alias(domain)}.snapshots() where commit_extra_info is not null "
            f"order by snapshot_id"
        ).fetchall()
    )
    versions = []
    for snapshot_id, ts, extra in rows:
        info = json.loads(extra)
        if port in info.get("ports", {}):
            versions.append(PortVersion(port, snapshot_id, ts, info))
    return versions


def latest_versions(
    con: duckdb.DuckDBPyConnection, domain: str, ports: Iterable[str]
) -> dict[str, PortVersion]:
    """The current version of each of ``ports`` that has one (one read of the catalog)."""
    wanted, out = set(ports), {}
    rows = retrying(
        lambda: con.execute(
            f"select snapshot_id, snapshot_time, commit_extra_info "
            f"from {lake_alias(domain)}.snapshots() where commit_extra_info is not null "
            f"order by snapshot_id desc"
        ).fetchall()
    )
    for snapshot_id, ts, extra in rows:
        info = json.loads(extra)
        for port in wanted.intersection(info.get("ports", {})) - set(out):
            out[port] = PortVersion(port, snapshot_id, ts, info)
        if len(out) == len(wanted):
            break
    return out


def current_version(con: duckdb.DuckDBPyConnection, domain: str, port: str) -> int | None:
    versions = port_versions(con, domain, port)
    return versions[-1].version if versions else None


def publish(
    con: duckdb.DuckDBPyConnection,
    domain: str,
    staged: dict[str, str],
    info: dict[str, Any],
    replace: dict[str, tuple[str, Any, Any]] | None = None,
    kept: list[str] | None = None,
    append: list[str] | None = None,
) -> int:
    """Publish staged tables as new port versions in ONE lake commit; returns the snapshot id.

    ``staged`` maps port name to the fully qualified staged table. A port named in
    ``replace`` (port -> (date column, first day, last day)) keeps its other rows: only the
    rows of that window are deleted and the staged ones inserted, in the same commit. Such a
    table is partitioned by that column in the lake, so replacing a period swaps whole files
    and never leaves delete files behind. Either every port of the commit becomes visible, or
    (on any error, or a crash) none does. A commit that collides with a reader's lock on the
    catalog is rolled back and tried again. A port named in ``kept`` gets a new version with
    the rows it has (its table's comment is all the commit changes of it: no data file); a
    port named in ``append`` keeps its rows and gets the staged ones added.
    """
    return retrying(
        lambda: _publish_once(con, domain, staged, info, replace or {}, kept or [], append or [])
    )


def _publish_once(
    con, domain: str, staged: dict[str, str], info: dict[str, Any], replace, kept, append
) -> int:
    alias = lake_alias(domain)
    existing = {
        name
        for (name,) in con.execute(
            "select table_name from duckdb_tables() where database_name = ?", [alias]
        ).fetchall()
    }
    con.execute("begin transaction")
    try:
        for port, table in staged.items():
            target = f"{alias}.main.{port}"
            if port in append:
                con.execute(f"insert into {target} select * from {table}")
                continue
            if port not in replace:
                con.execute(f"create or replace table {target} as select * from {table}")
                continue
            column, first, last = replace[port]
            if port not in existing:
                con.execute(f"create table {target} as select * from {table} limit 0")
                con.execute(f"alter table {target} set partitioned by ({column})")
            con.execute(
                f"delete from {target} where cast({column} as date) between ? and ?", [first, last]
            )
            con.execute(f"insert into {target} select * from {table}")
        for port in kept:
            same = ((info.get("ports") or {}).get(port) or {}).get("same_as")
            note = literal(f"rows unchanged since version {same}")
            con.execute(f"comment on table {alias}.main.{port} is {note}")
        info = _with_totals(con, alias, info, staged, {*replace, *append})
        con.execute(
            f"call {alias}.set_commit_message(?, ?, extra_info => ?)",
            [f"mesh:{domain}", f"publish {', '.join(staged)}", json.dumps(info, default=str)],
        )
        crash_point("publish.before_commit")
        con.execute("commit")
    except BaseException:
        with suppress(duckdb.Error):  # a failed COMMIT has already rolled back
            con.execute("rollback")
        raise
    crash_point("publish.after_commit")
    version = retrying(
        lambda: con.execute(f"select max(snapshot_id) from {alias}.snapshots()").fetchone()[0]
    )
    write_pointer(con, domain, version, [*staged, *kept])
    return version


def _with_totals(con, alias: str, info: dict, staged, partial) -> dict:
    """The commit records each port's rows as a reader sees them at this version; for a port
    of which it wrote a part (partitions replaced, rows added), also the rows this commit wrote
    (``published_rows``)."""
    ports = {name: dict(entry) for name, entry in (info.get("ports") or {}).items()}
    for port, table in staged.items():
        if port in partial:
            entry = ports.setdefault(port, {})
            entry["published_rows"] = con.execute(f"select count(*) from {table}").fetchone()[0]
            entry["rows"] = con.execute(f"select count(*) from {alias}.main.{port}").fetchone()[0]
    return {**info, "ports": ports}


def port_row_counts(con: duckdb.DuckDBPyConnection, domain: str, ports) -> dict[str, int]:
    """Rows of each port as now published in ``domain``'s attached lake."""
    alias = lake_alias(domain)
    return {p: con.execute(f"select count(*) from {alias}.main.{p}").fetchone()[0] for p in ports}


def input_port_versions(
    con: duckdb.DuckDBPyConnection, refs: Iterable[PortRef]
) -> dict[str, int | None]:
    """The current version of each input port, as seen by an attached reader."""
    return {r.ref: current_version(con, r.domain, r.port) for r in refs}


_CATALOG_TURN = threading.RLock()


def catalog_turn() -> threading.RLock:
    """This process's turn at the lakes' catalogs: the re-entrant lock that every
    :func:`retrying` attempt holds, so that the process's catalog actions run one at a time
    (what a thread reads from the catalog outside :func:`retrying` should be read under it).
    """
    return _CATALOG_TURN
