"""What the lakes say about ports: the served version, every published version, their files.

The served version comes from the lake's pointer file (``current.json``), re-read only when it
changes; the version history and a version's files come from the catalog, attached read-only.
Port versions are immutable, so what was read about one version is kept for good.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import lake
from ..descriptor import Domain
from ..settings import lake_catalog_url, mesh_paths


@dataclass(frozen=True)
class VersionInfo:
    """One port version as its lake commit recorded it."""

    port: str
    version: int
    published_at: str
    rows: int | None
    info: dict[str, Any]

    @property
    def run_id(self) -> str | None:
        return self.info.get("run_id")

    @property
    def input_versions(self) -> dict[str, int | None]:
        return dict(self.info.get("input_versions") or {})


def _stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


class LakeReader:
    """Reads every domain's lake for the domain query; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pointers: dict[str, tuple[int | None, dict]] = {}
        self._histories: dict[str, tuple[tuple, dict[str, list[VersionInfo]]]] = {}
        self._files: dict[tuple[str, str, int], list[str]] = {}

    # --- the served version: the pointer file ---------------------------------------------------

    def pointer_stamp(self, domain: str) -> int | None:
        return _stamp(lake.pointer_path(domain))

    def served(self, domain: str) -> dict[str, dict]:
        """``{port: {"version": v, "files": [...]}}`` as the pointer names them now."""
        stamp = self.pointer_stamp(domain)
        cached = self._pointers.get(domain)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            served = lake.read_pointer(lake.pointer_path(domain)) if stamp else {}
            ports = {port: s._asdict() for port, s in served.items()}
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            ports = {}  # replaced atomically, so a broken file is a foreign one: serve nothing
        self._pointers[domain] = (stamp, ports)
        return ports

    def served_version(self, domain: str, port: str) -> int | None:
        entry = self.served(domain).get(port)
        return None if entry is None else int(entry["version"])

    # --- the history: the catalog -----------------------------------------------------------------

    def history(self, domain: Domain) -> dict[str, list[VersionInfo]]:
        """Every published version of every port of ``domain``, oldest first (from the catalog,
        re-read only after a new commit moved the pointer or touched the catalog)."""
        paths = mesh_paths()
        catalog = _stamp(paths.lake_catalog(domain.name)) if not lake_catalog_url() else None
        exists = paths.lake_exists(domain.name)
        stamp = (self.pointer_stamp(domain.name), catalog, exists)
        cached = self._histories.get(domain.name)
        if cached and cached[0] == stamp:
            return cached[1]
        history: dict[str, list[VersionInfo]] = {p.name: [] for p in domain.output_ports}
        if exists:
            with self._lock:
                con = lake.connect()
                try:
                    lake.attach_port_reader(con, domain.name, domain, [])
                    for port in domain.output_ports:
                        history[port.name] = [
                            VersionInfo(
                                port=port.name,
                                version=v.version,
                                published_at=v.published_at.isoformat(timespec="seconds"),
                                rows=(v.info.get("ports", {}).get(port.name) or {}).get("rows"),
                                info=v.info,
                            )
                            for v in lake.port_versions(con, domain.name, port.name)
                        ]
                finally:
                    con.close()
        self._histories[domain.name] = (stamp, history)
        return history

    def version(self, domain: Domain, port: str, version: int) -> VersionInfo | None:
        for info in self.history(domain).get(port, []):
            if info.version == version:
                return info
        return None

    def files(self, domain: Domain, port: str, version: int) -> list[str]:
        """The immutable Parquet files of one port version (from the pointer when served)."""
        entry = self.served(domain.name).get(port)
        if entry is not None and int(entry["version"]) == version:
            return list(entry["files"])
        key = (domain.name, port, version)
        if key not in self._files:
            with self._lock:
                con = lake.connect()
                try:
                    alias = lake.attach_port_reader(con, domain.name, domain, [port])
                    rows = lake.retrying(lambda: lake.version_files(con, alias, port, version))
                finally:
                    con.close()
            self._files[key] = [f for f, _ in rows]
        return self._files[key]


def where(domain: Domain, port: str, version: int, files: list[str], served: bool) -> dict:
    """How a granted consumer reads one port version: lake, table, files, DuckDB snippets."""
    paths = mesh_paths()
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    alias = lake.lake_alias(domain.name)
    return {
        "lake": str(paths.lake_dir(domain.name)),
        "catalog": paths.catalog_uri(domain.name),
        "pointer": str(lake.pointer_path(domain.name)),
        "table": f"{alias}.main.{port}",
        "version": version,
        "served": served,
        "files": files,
        "duckdb": {
            "files": f"select * from read_parquet([{listed}]);",
            "time_travel": (
                "install ducklake; load ducklake; "
                f"attach '{paths.catalog_uri(domain.name)}' as {alias} "
                f"(read_only, data_path '{paths.lake_files(domain.name)}/', "
                "override_data_path true); "
                f"select * from {alias}.main.{port} at (version => {version});"
            ),
        },
        "python": (
            "from mesh_domains.platform import discover_domains, lake\n"
            "con = lake.connect()\n"
            f"view, version = lake.open_port(con, '<your domain>', "
            f"discover_domains()['{domain.name}'], '{port}', {version})"
        ),
    }
