"""Raw source deliveries: found in the landing zone, checked against their contract, loaded.

A delivery is one file ``data/landing/<source>/<partition>/<file>``. Every delivery is read as
text, checked for shape (readable, expected columns), typed, and validated against the source
contract in the consuming domain's descriptor. A delivery that fails is copied to
``data/quarantine/<source>/<partition>/`` with the reason beside it and the build stops before
anything is published, so the last good port versions stay served.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from .contracts import (
    DUCKDB_TYPES,
    MAX_EXAMPLES,
    ContractReport,
    ContractViolation,
    Failure,
    validate_table,
)
from .descriptor import SourcePort
from .settings import PROJECT_ROOT, mesh_paths


@dataclass(frozen=True)
class Delivery:
    source: str
    partition: str
    path: Path

    @property
    def display(self) -> str:
        """The file as a user would type it: relative to the project when possible."""
        try:
            return str(self.path.relative_to(PROJECT_ROOT))
        except ValueError:
            return str(self.path)


def deliveries(source: SourcePort) -> list[Delivery]:
    """All deliveries of a source, oldest partition first."""
    root = mesh_paths().landing / source.name
    return [
        Delivery(source.name, part.name, part / source.file)
        for part in sorted(p for p in root.glob("*") if p.is_dir())
        if (part / source.file).exists()
    ]


def quarantine(delivery: Delivery, report: ContractReport) -> Path:
    """Keep a rejected delivery aside, with the reason, without touching the landing zone."""
    target = mesh_paths().quarantine / delivery.source / delivery.partition
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(delivery.path, target / delivery.path.name)
    reason = {
        "file": delivery.display,
        "domain": report.domain,
        "source": delivery.source,
        "partition": delivery.partition,
        "quarantined_at": datetime.now(UTC).isoformat(),
        "message": report.message(),
        **report.as_metadata(),
    }
    (target / f"{delivery.path.name}.reason.json").write_text(json.dumps(reason, indent=2))
    return target / delivery.path.name


def _reject(delivery: Delivery, report: ContractReport) -> ContractViolation:
    kept = quarantine(delivery, report)
    return ContractViolation(
        report,
        hint=f"The delivery was kept aside in {kept} (with the reason). The last good port "
        f"versions stay served. Fix or replace {delivery.display}, then re-run the build.",
    )


def _read_raw(con: duckdb.DuckDBPyConnection, delivery: Delivery, table: str) -> None:
    con.execute(
        f"create or replace temp table {table} as select * from read_csv(?, all_varchar = true, "
        "header = true, auto_detect = true, sample_size = -1, strict_mode = true)",
        [str(delivery.path)],
    )


def _shape_failures(con, table: str, source: SourcePort) -> list[Failure]:
    found = [r[0] for r in con.execute(f"describe {table}").fetchall()]
    expected = source.contract.column_names
    failures = [Failure(c, "column present", None) for c in expected if c not in found]
    failures += [Failure(c, "no unexpected columns", None) for c in found if c not in expected]
    return failures


def _typed_select(source: SourcePort, raw: str) -> str:
    cols = ", ".join(
        f"try_cast(nullif(trim({c.name}), '') as {DUCKDB_TYPES[c.type]}) as {c.name}"
        for c in source.contract.columns
    )
    return f"select {cols} from {raw}"


def _type_failures(con, source: SourcePort, raw: str) -> list[Failure]:
    failures = []
    for c in source.contract.columns:
        if c.type == "string":
            continue
        bad = con.execute(
            f"select {c.name} from {raw} where nullif(trim({c.name}), '') is not null "
            f"and try_cast(trim({c.name}) as {DUCKDB_TYPES[c.type]}) is null"
        ).fetchall()
        if bad:
            examples = tuple(repr(v[0]) for v in bad[:MAX_EXAMPLES])
            failures.append(Failure(c.name, f"type {c.type}", len(bad), examples))
    return failures


def check_delivery(
    con: duckdb.DuckDBPyConnection, domain: str, source: SourcePort, delivery: Delivery
) -> str:
    """Validate one delivery; returns a temp table of its typed rows or raises (quarantined)."""
    raw, typed = f"_raw_{source.name}", f"_typed_{source.name}"
    report = ContractReport(domain, source.name, 0, file=delivery.display, kind="source")
    try:
        _read_raw(con, delivery, raw)
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        report.failures.append(Failure("<file>", f"readable UTF-8 CSV ({first_line})", None))
        raise _reject(delivery, report) from exc
    report.failures += _shape_failures(con, raw, source)
    if not report.failures:
        report.failures += _type_failures(con, source, raw)
    if report.failures:
        report.rows = con.execute(f"select count(*) from {raw}").fetchone()[0]
        raise _reject(delivery, report)
    con.execute(f"create or replace temp table {typed} as {_typed_select(source, raw)}")
    report = validate_table(
        con,
        typed,
        source.contract,
        domain=domain,
        port=source.name,
        file=delivery.display,
        kind="source",
    )
    if not report.passed:
        raise _reject(delivery, report)
    return typed


def load_source(
    con: duckdb.DuckDBPyConnection, domain: str, source: SourcePort, *, latest_only: bool = False
) -> tuple[str, list[Delivery]]:
    """Load a source's deliveries (checked) into table ``source_<name>`` with a ``_partition``.

    ``latest_only`` keeps only the newest partition, for full-snapshot sources.
    """
    found = deliveries(source)
    if not found:
        raise FileNotFoundError(
            f"domain {domain!r}: no deliveries of source {source.name!r} under "
            f"{mesh_paths().landing / source.name}/<partition>/{source.file}; "
            "run `mesh generate` or drop the files there."
        )
    chosen = found[-1:] if latest_only else found
    table = f"source_{source.name}"
    con.execute(f"drop table if exists {table}")
    for delivery in chosen:
        typed = check_delivery(con, domain, source, delivery)
        select = f"select *, '{delivery.partition}' as _partition from {typed}"
        if con.execute(
            "select count(*) from information_schema.tables where table_name = ?", [table]
        ).fetchone()[0]:
            con.execute(f"insert into {table} {select}")
        else:
            con.execute(f"create table {table} as {select}")
    return table, chosen
