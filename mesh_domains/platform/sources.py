"""Raw source deliveries: found in the landing zone, checked against their contract, loaded.

A delivery is one file ``data/landing/<source>/<partition>/<file>``. Every delivery goes through
the same gates, declared per source in ``mesh_domains/landing.yaml`` and enforced here without
any per-source code:

1. **placement** - the file has the declared name, sits in a partition folder whose name parses
   with the declared ``partition.format`` (and, for weekly sources, ends on the declared weekday);
2. **bytes** - not empty, plain text (no binary, compressed or UTF-16 content), a header row in
   the declared delimiter and encoding;
3. **rows** - read by DuckDB with the declared dialect (nothing is sniffed or guessed): every row
   has the header's number of fields, closed quotes, valid encoding;
4. **shape and types** - exactly the contract's columns (missing, extra and renamed columns are
   named), every typed value in its canonical text form (``42``, ``2026-10-31``);
5. **contract** - the pandera contract (nullability, keys, ranges, allowed values, patterns, row
   rules) run inside DuckDB, plus the partition rules: every row dated within its partition
   (``partition.column``) and, across the deliveries loaded together, no primary key delivered
   twice (``unique_across_deliveries``).

A delivery that fails is copied to ``data/quarantine/<source>/<partition>/`` with
``<file>.reason.json`` beside it and the build stops before anything is published, so the last
good port versions stay served. The landing file is left in place: the ingesting domain keeps
failing until the file is fixed, replaced or removed, then ``mesh build --domain <domain>``
re-runs it. All bad deliveries of a source are reported (and quarantined) in one go.

A partition folder that holds other files but not the declared one is a misnamed delivery and
is rejected like a bad one; stray files next to the declared file and hidden files (``.name``)
are ignored with a warning.
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb

from .contract_sql import literal
from .contracts import (
    DUCKDB_TYPES,
    MAX_EXAMPLES,
    ContractReport,
    ContractViolation,
    Failure,
    validate_table,
)
from .descriptor import LANDING_DESCRIPTOR, DescriptorError, SourcePort, read_yaml
from .errors import MissingInputError
from .settings import PROJECT_ROOT, mesh_paths

logger = logging.getLogger(__name__)

# pseudo-columns for failures that are about the file, not one of its columns
FILE = "<file>"
HEADER = "<header>"
PARTITION = "<partition>"
UNPARTITIONED = "_unpartitioned"  # quarantine folder of files dropped outside any partition
SNIFF_BYTES = 64 * 1024
NUL = b"\0"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PERIOD_UNITS = {"daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter"}
PARTITION_MATCHES = ("in_period", "period_end")
DATED_TYPES = ("date", "timestamp")

# The one text form accepted for each typed column (DuckDB's casts alone are too lenient:
# they round '2.5' to 3 and read '0x10' as 16).
TEXT_FORMS = {
    "int64": (r"^[+-]?[0-9]+$", "whole number"),
    "float64": (r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$", "decimal number"),
    "date": (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "YYYY-MM-DD"),
    "timestamp": (
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?$",
        "YYYY-MM-DDTHH:MM:SS",
    ),
    "boolean": (r"^(?i)(true|false|t|f|yes|no|y|n|0|1)$", "true/false"),
}
# what a file that is not text usually is, by its first bytes
SIGNATURES = (
    (b"\x1f\x8b", "gzip-compressed"),
    (b"PK\x03\x04", "a zip archive (an Excel workbook?)"),
    (b"PAR1", "a Parquet file"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an OLE2 document (an old Excel workbook?)"),
    (b"\xff\xfe", "UTF-16/32 text (byte-order mark FF FE)"),
    (b"\xfe\xff", "UTF-16 text (byte-order mark FE FF)"),
)
# DuckDB's rejects-table error types, as contract rules a user recognises
ROW_ERRORS = {
    "MISSING COLUMNS": "every row has {n} fields (row cut short: truncated file?)",
    "TOO MANY COLUMNS": "every row has {n} fields (too many: unquoted delimiter?)",
    "UNQUOTED VALUE": "quoted values closed (unterminated quote)",
    "INVALID ENCODING": "encoding {encoding}",
    "INVALID UNICODE": "encoding {encoding}",
    "LINE SIZE OVER MAXIMUM": "line size under the maximum (no line breaks: not a CSV?)",
}


# --- what landing.yaml declares about deliveries ----------------------------------------------


@dataclass(frozen=True)
class PartitionSpec:
    """How partition folders are named and how a delivery's rows belong to their partition."""

    format: str | None = None
    week_ends_on: int | None = None  # date.weekday() of the last day of a weekly partition
    column: str | None = None
    match: str = "in_period"


@dataclass(frozen=True)
class DeliveryRules:
    """The on-disk form of a source's deliveries (``csv``, ``partition``, cross-delivery key)."""

    delimiter: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    partition: PartitionSpec = field(default_factory=PartitionSpec)
    unique_across_deliveries: bool = False


@lru_cache(maxsize=8)
def _landing_raw(path: Path, mtime_ns: int) -> dict[str, dict]:
    raw = read_yaml(path) or {}
    return {name: spec or {} for name, spec in (raw.get("sources") or {}).items()}


def delivery_rules(source: SourcePort, path: Path = LANDING_DESCRIPTOR) -> DeliveryRules:
    """The delivery rules declared for ``source`` in ``landing.yaml`` (defaults if none)."""
    spec = _landing_raw(path, path.stat().st_mtime_ns).get(source.name, {})
    where = f"{path}: source {source.name}"
    dialect = spec.get("csv") or {}
    part = spec.get("partition") or {}
    for block, allowed, name in (
        (dialect, {"delimiter", "quote", "encoding"}, "csv"),
        (part, {"format", "week_ends_on", "column", "match"}, "partition"),
    ):
        unknown = set(block) - allowed
        if unknown:
            raise DescriptorError(f"{where}: unknown {name} field(s) {', '.join(sorted(unknown))}")
    ends_on = part.get("week_ends_on")
    if ends_on is not None and str(ends_on).lower() not in WEEKDAYS:
        raise DescriptorError(f"{where}: partition.week_ends_on {ends_on!r} is not a weekday")
    column, match = part.get("column"), part.get("match", "in_period")
    if match not in PARTITION_MATCHES:
        raise DescriptorError(
            f"{where}: partition.match {match!r} is not one of {', '.join(PARTITION_MATCHES)}"
        )
    if column is not None:
        types = {c.name: c.type for c in source.contract.columns}
        if types.get(column) not in DATED_TYPES:
            raise DescriptorError(
                f"{where}: partition.column {column!r} must be a declared date or timestamp column"
            )
        if not part.get("format") or source.cadence not in PERIOD_UNITS:
            raise DescriptorError(
                f"{where}: partition.column needs partition.format and a cadence of "
                f"{', '.join(PERIOD_UNITS)}"
            )
    rules = DeliveryRules(
        delimiter=str(dialect.get("delimiter", ",")),
        quote=str(dialect.get("quote", '"')),
        encoding=str(dialect.get("encoding", "utf-8")).lower(),
        partition=PartitionSpec(
            format=part.get("format"),
            week_ends_on=None if ends_on is None else WEEKDAYS.index(str(ends_on).lower()),
            column=column,
            match=match,
        ),
        unique_across_deliveries=bool(spec.get("unique_across_deliveries", False)),
    )
    if spec.get("unique_across_deliveries") and not source.contract.primary_key:
        raise DescriptorError(f"{where}: unique_across_deliveries needs a primary_key")
    return rules


# --- finding deliveries -------------------------------------------------------------------------


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


def _survey(source: SourcePort, log: Any = None) -> tuple[list[Delivery], list[Delivery]]:
    """The deliveries of a source (its declared file in each partition folder), and the files
    that are not where a delivery belongs: misnamed, or outside any partition folder."""
    root = mesh_paths().landing / source.name
    found: list[Delivery] = []
    misfiled: list[Delivery] = []
    if not root.is_dir():
        return found, misfiled
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            misfiled.append(Delivery(source.name, UNPARTITIONED, entry))
            continue
        visible = sorted(p for p in entry.iterdir() if not p.name.startswith("."))
        expected = entry / source.file
        if expected.is_file():
            found.append(Delivery(source.name, entry.name, expected))
            for other in visible:
                if other != expected:
                    (log or logger).warning(
                        f"source {source.name}: ignoring {other}: a partition folder holds one "
                        f"delivery, {source.file}; move or remove other files"
                    )
        elif any(p.is_file() for p in visible):
            misfiled += [Delivery(source.name, entry.name, p) for p in visible if p.is_file()]
        else:
            (log or logger).warning(
                f"source {source.name}: partition folder {entry} holds no {source.file}; ignored"
            )
    return found, misfiled


def deliveries(source: SourcePort) -> list[Delivery]:
    """All deliveries of a source, oldest partition first."""
    return _survey(source)[0]


# --- quarantine and the re-run hint -------------------------------------------------------------


def quarantine_path(delivery: Delivery) -> Path:
    """Where a rejected delivery is kept (its reason beside it, ``<file>.reason.json``)."""
    return mesh_paths().quarantine / delivery.source / delivery.partition / delivery.path.name


def rerun_instruction(domain: str, files: list[str]) -> str:
    return (
        f"To re-run: fix, replace, move (misnamed/misplaced) or remove {', '.join(files)} "
        "(the landing file is left in place, so builds keep failing until then), then run "
        f"`mesh build --domain {domain}`."
    )


def quarantine(delivery: Delivery, report: ContractReport) -> Path:
    """Keep a rejected delivery aside, with the reason, without touching the landing zone."""
    kept = quarantine_path(delivery)
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(delivery.path, kept)
    reason = {
        "file": delivery.display,
        "landing_file": str(delivery.path),
        "domain": report.domain,
        "source": delivery.source,
        "partition": delivery.partition,
        "quarantined_at": datetime.now(UTC).isoformat(),
        "message": report.message(),
        "rerun": rerun_instruction(report.domain, [delivery.display]),
        **report.as_metadata(),
    }
    kept.with_name(f"{kept.name}.reason.json").write_text(json.dumps(reason, indent=2))
    return kept


def _hint(domain: str, rejected: list[tuple[Delivery, ContractReport]]) -> str:
    lines = [
        f"Quarantined: {quarantine_path(d)} (reason in {quarantine_path(d).name}.reason.json)"
        for d, _ in rejected
    ]
    lines.append("Nothing was published: the last good port versions stay served.")
    lines.append(rerun_instruction(domain, [d.display for d, _ in rejected]))
    return "\n".join(lines)


def _reject(delivery: Delivery, report: ContractReport) -> ContractViolation:
    quarantine(delivery, report)
    return ContractViolation(report, hint=_hint(report.domain, [(delivery, report)]))


def _rejected_together(domain: str, rejected: list[tuple[Delivery, ContractReport]]):
    """One error for every bad delivery of a source: the first report, then the others."""
    first = rejected[0][1]
    others = [r.message() for _, r in rejected[1:]]
    if others:
        others.insert(0, f"{len(rejected)} deliveries of this source were rejected; the others:")
    return ContractViolation(first, hint="\n".join([*others, _hint(domain, rejected)]))


# --- gates ---------------------------------------------------------------------------------------


def _examples(values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(repr(v) if isinstance(v, str) else str(v) for v in values))[
        :MAX_EXAMPLES
    ]


def partition_date(rules: DeliveryRules, partition: str) -> date | None:
    """The partition folder's date, or None when it does not print back from its format."""
    fmt = rules.partition.format
    try:
        parsed = datetime.strptime(partition, fmt).date()
    except (TypeError, ValueError):
        return None
    return parsed if parsed.strftime(fmt) == partition else None


def partition_period(
    source: SourcePort, rules: DeliveryRules, partition: str
) -> tuple[tuple[date, date] | None, list[Failure]]:
    """The first and last day a partition covers, or the failures of its folder name."""
    fmt = rules.partition.format
    if not fmt:
        return None, []
    day = partition_date(rules, partition)
    if day is None:
        rule = f"partition folder named {fmt} ({source.cadence})"
        return None, [Failure(PARTITION, rule, None, (repr(partition),))]
    ends_on = rules.partition.week_ends_on
    if ends_on is not None and day.weekday() != ends_on:
        rule = f"weekly partition ends on a {WEEKDAYS[ends_on].capitalize()}"
        found = f"{partition} is a {WEEKDAYS[day.weekday()].capitalize()}"
        return None, [Failure(PARTITION, rule, None, (found,))]
    if source.cadence == "weekly":
        return (day - timedelta(days=6), day), []
    if source.cadence == "monthly":
        last = calendar.monthrange(day.year, day.month)[1]
        return (day.replace(day=1), day.replace(day=last)), []
    if source.cadence == "quarterly":  # named after the quarter's first month
        if day.month % 3 != 1 or day.day != 1:
            rule = "quarterly partition named after a quarter's first month (01, 04, 07, 10)"
            return None, [Failure(PARTITION, rule, None, (repr(partition),))]
        end = date(day.year, day.month + 2, calendar.monthrange(day.year, day.month + 2)[1])
        return (day, end), []
    return (day, day), []


def _placement_failures(source: SourcePort, rules: DeliveryRules, d: Delivery) -> list[Failure]:
    if d.partition == UNPARTITIONED:
        folder = rules.partition.format or "partition"
        rule = f"inside a partition folder: {source.name}/<{folder}>/{source.file}"
        return [Failure(PARTITION, rule, None, (f"{d.path.name!r} outside any partition",))]
    if d.path.name != source.file:
        return [Failure(FILE, f"file named {source.file}", None, (repr(d.path.name),))]
    return partition_period(source, rules, d.partition)[1]


def _not_text(head: bytes, encoding: str) -> str | None:
    """Why the first bytes of a file are not a text CSV, or None."""
    for magic, what in SIGNATURES:
        if head.startswith(magic) and not (what.startswith("UTF-16") and "16" in encoding):
            return f"file is {what}"
    if "16" in encoding or "32" in encoding:
        return None
    if NUL in head:
        return f"file is binary (NUL byte at offset {head.index(NUL)})"
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    if control > max(2, len(head) // 100):
        return f"file is binary ({control} control bytes in the first {len(head)})"
    return None


def _header(
    source: SourcePort, rules: DeliveryRules, path: Path
) -> tuple[list[str] | None, list[Failure]]:
    """The header row's column names, or why the file has no usable header."""
    enc = rules.encoding
    size = path.stat().st_size
    if size == 0:
        return None, [Failure(FILE, "not empty", None, ("0 bytes",))]
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    what = _not_text(head, enc)
    if what:
        return None, [Failure(FILE, f"plain-text CSV ({enc})", None, (what,))]
    first = head.split(b"\n", 1)[0]
    try:
        text = first.decode("utf-8-sig" if enc in ("utf-8", "utf8") else enc)
    except UnicodeDecodeError as exc:
        bad = f"byte 0x{first[exc.start]:02x} at offset {exc.start}"
        return None, [Failure(HEADER, f"encoding {enc}", None, (bad,))]
    text = text.rstrip("\r")
    names = next(csv.reader([text], delimiter=rules.delimiter, quotechar=rules.quote), [])
    expected = source.contract.column_names
    if not any(n.strip() for n in names):
        return None, [Failure(HEADER, "header row first", None, ("first line is empty",))]
    if len(names) == 1 and len(expected) > 1:
        for other in (",", ";", "\t", "|"):
            if other != rules.delimiter and len(text.split(other)) >= len(expected) // 2 + 1:
                rule = f"delimiter {rules.delimiter!r}"
                return None, [Failure(HEADER, rule, None, (f"header is split by {other!r}",))]
    failures = []
    empty = [str(i + 1) for i, n in enumerate(names) if not n.strip()]
    if empty:
        failures.append(Failure(HEADER, "every header field named", None, (f"field {empty[0]}",)))
    seen: set[str] = set()
    for name in names:
        if name in seen and name.strip():
            failures.append(Failure(name, "named once in the header", None, (repr(name),)))
        seen.add(name)
    if not set(names) & set(expected):
        rule = f"header row naming the declared columns ({', '.join(expected)})"
        failures.append(Failure(HEADER, rule, None, (repr(text[:80]),)))
    return (None if failures else names), failures


def _read_raw(
    con: duckdb.DuckDBPyConnection,
    rules: DeliveryRules,
    path: Path,
    header: list[str],
    raw: str,
    select: str = "*",
) -> list[Failure]:
    """Read the file as text columns in DuckDB with the declared dialect (no sniffing); rows
    DuckDB cannot split are collected in a rejects table and returned as failures.
    ``select`` is what the table ``raw`` keeps of the text columns (all of them by default)."""
    rejects, scans = f"{raw}_rejects", f"{raw}_scans"
    con.execute(f"drop table if exists {rejects}")
    con.execute(f"drop table if exists {scans}")
    try:
        con.execute(
            f"create or replace temp table {raw} as select {select} from read_csv(?, columns = ?, "
            "header = true, auto_detect = false, delim = ?, quote = ?, escape = ?, "
            "encoding = ?, strict_mode = true, store_rejects = true, "
            f"rejects_table = '{rejects}', rejects_scan = '{scans}')",
            [
                str(path),
                dict.fromkeys(header, "VARCHAR"),
                rules.delimiter,
                rules.quote,
                rules.quote,
                rules.encoding,
            ],
        )
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        return [Failure(FILE, f"readable CSV ({first_line})", None)]
    summary = con.execute(
        f"select error_type, count(distinct line), "
        f"arg_min(column_name, line * 100000 + column_idx), min(line) "
        f"from {rejects} group by error_type order by min(line)"
    ).fetchall()
    failures = []
    for error_type, lines, column, _ in summary:
        rule = ROW_ERRORS.get(error_type, error_type.lower()).format(
            n=len(header), encoding=rules.encoding
        )
        samples = con.execute(
            f"select distinct on (line) line, csv_line from {rejects} "
            f"where error_type = ? order by line limit {MAX_EXAMPLES}",
            [error_type],
        ).fetchall()
        examples = tuple(f"line {n}: {text.strip()[:60]!r}" for n, text in samples)
        where = column if column and error_type != "TOO MANY COLUMNS" else FILE
        failures.append(Failure(where, rule, lines, examples))
    return failures


def _shape_failures(header: list[str], source: SourcePort) -> list[Failure]:
    """Missing, extra and renamed columns (a column replaced at the same position)."""
    expected = source.contract.column_names
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    failures = []
    renamed = set()
    for col in missing:
        i = expected.index(col)
        if i < len(header) and header[i] in extra:
            renamed.add(header[i])
            failures.append(Failure(col, f"column present (renamed to {header[i]!r}?)", None))
        else:
            failures.append(Failure(col, "column present", None))
    failures += [Failure(c, "no unexpected columns", None) for c in extra if c not in renamed]
    return failures


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _type_failures(con, source: SourcePort, raw: str) -> list[Failure]:
    """Typed columns whose text is not the type's canonical form (or does not cast); all
    columns are counted in one scan, examples are fetched only for the failing ones."""
    bad_of = _mistyped_text(source)
    if not bad_of:
        return []
    counts = con.execute(
        "select "
        + ", ".join(f"count(*) filter (where {b})" for b in bad_of.values())
        + f" from {raw}"
    ).fetchone()
    types = {c.name: c.type for c in source.contract.columns}
    failures = []
    for (name, bad), count in zip(bad_of.items(), counts, strict=True):
        if count:
            rows = con.execute(f"select {_q(name)} from {raw} where {bad} limit 10").fetchall()
            form = TEXT_FORMS.get(types[name], (None, types[name]))[1]
            failures.append(
                Failure(name, f"type {types[name]} ({form})", count, _examples(r[0] for r in rows))
            )
    return failures


def _mistyped_text(source: SourcePort) -> dict[str, str]:
    """Per typed column, SQL over the text column that is true where its text is not the
    type's canonical form (or does not cast). A blank is a null, not a type failure."""
    bad_of = {}
    for c in source.contract.columns:
        if c.type == "string":
            continue
        value = f"trim({_q(c.name)})"
        pattern, _ = TEXT_FORMS.get(c.type, (None, c.type))
        bad = f"try_cast({value} as {DUCKDB_TYPES[c.type]}) is null"
        if pattern:
            bad += f" or not regexp_full_match({value}, '{pattern}')"
        bad_of[c.name] = f"nullif({value}, '') is not null and ({bad})"
    return bad_of


def _typed_columns(source: SourcePort) -> str:
    return ", ".join(
        f"try_cast(nullif(trim({_q(c.name)}), '') as {DUCKDB_TYPES[c.type]}) as {_q(c.name)}"
        for c in source.contract.columns
    )


def _typed_select(source: SourcePort, raw: str) -> str:
    return f"select {_typed_columns(source)} from {raw}"


def _read_typed(
    con, source: SourcePort, rules: DeliveryRules, path: Path, header: list[str], typed: str
) -> bool:
    """The common case in one pass over the file: parse, type and flag every row, straight
    into ``typed``. True when every row split and every value is its type's canonical form;
    otherwise False, and the caller reads the file again to say exactly what is wrong."""
    bad = " or ".join(f"({b})" for b in _mistyped_text(source).values()) or "false"
    select = f"{_typed_columns(source)}, ({bad}) as _mistyped"
    if _read_raw(con, rules, path, header, typed, select):
        return False
    mistyped = con.execute(f"select count(*) filter (where _mistyped) from {typed}").fetchone()
    if mistyped[0]:
        return False
    con.execute(f"alter table {typed} drop column _mistyped")
    return True


def _partition_column_failures(
    con, source: SourcePort, rules: DeliveryRules, partition: str, period, typed: str
) -> list[Failure]:
    """Rows dated outside their partition: after it (future-dated) or before it (belonging to
    an earlier partition: a file filed under the wrong partition, or arriving out of order)."""
    spec = rules.partition
    if not spec.column or period is None:
        return []
    start, end = period
    lower = end if spec.match == "period_end" else start
    unit = PERIOD_UNITS[source.cadence]
    if spec.match == "period_end":
        expect = f"{spec.column} = {end}"
    else:
        expect = f"{unit} {end}" if start == end else f"{unit} {start}..{end}"
    base = f"dated within partition {partition} ({expect})"
    value = f"cast({_q(spec.column)} as date)"
    failures = []
    outside = (
        (f"{value} > date '{end}'", "future-dated"),
        (f"{value} < date '{lower}'", "belongs to an earlier partition"),
    )
    counts = con.execute(
        f"select {', '.join(f'count(*) filter (where {c})' for c, _ in outside)} from {typed}"
    ).fetchone()
    for (cond, what), count in zip(outside, counts, strict=True):
        if count:
            rows = con.execute(
                f"select distinct {_q(spec.column)} from {typed} where {cond} "
                f"order by 1 limit {MAX_EXAMPLES}"
            ).fetchall()
            failures.append(
                Failure(spec.column, f"{base}: {what}", count, _examples(r[0] for r in rows))
            )
    return failures


def _cross_delivery_failures(
    con, source: SourcePort, rules: DeliveryRules, typed: str, earlier: str | None
) -> list[Failure]:
    """Primary keys this delivery repeats from the deliveries already loaded with it."""
    key = list(source.contract.primary_key)
    if not (rules.unique_across_deliveries and key and earlier):
        return []
    on = " and ".join(f"t.{_q(k)} = e.{_q(k)}" for k in key)
    joined = f"from {typed} t join {earlier} e on {on}"
    count = con.execute(f"select count(*) {joined}").fetchone()[0]
    if not count:
        return []
    parts = ", ".join(
        r[0] for r in con.execute(f"select distinct e._partition {joined} order by 1").fetchall()
    )
    sample = con.execute(
        f"select {', '.join(f't.{_q(k)}' for k in key)} {joined} limit {MAX_EXAMPLES}"
    ).fetchall()
    rule = f"unique across deliveries (key already delivered in partition {parts})"
    examples = tuple("/".join(str(v) for v in row) for row in sample)
    return [Failure(", ".join(key), rule, count, examples)]


# --- verdicts kept by content hash --------------------------------------------------------------

VERDICT_FORMAT = 1  # bump when a gate changes, so every delivery is checked again


def content_hash(path: Path) -> str:
    """The delivery's identity: a SHA-256 of its bytes (also its data version in Dagster)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _rules_digest(source: SourcePort) -> str:
    """What the delivery was judged by: the source's declaration in landing.yaml."""
    spec = _landing_raw(LANDING_DESCRIPTOR, LANDING_DESCRIPTOR.stat().st_mtime_ns).get(source.name)
    text = json.dumps([VERDICT_FORMAT, spec], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def verdict_path(delivery: Delivery) -> Path:
    return mesh_paths().data / "verdicts" / delivery.source / f"{delivery.partition}.json"


def stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def passed_before(source: SourcePort, delivery: Delivery) -> str | None:
    """The content hash of ``delivery`` if these very bytes already passed these very rules
    (in any domain that ingests the source), else None: a passed delivery is checked once.
    An unchanged file (same size, mtime and inode) is trusted without hashing it again."""
    path = verdict_path(delivery)
    if not path.exists():
        return None
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if kept.get("rules") != _rules_digest(source) or kept.get("file") != str(delivery.path):
        return None
    if kept.get("stat") == stat_key(delivery.path):
        return kept["sha256"]
    sha = content_hash(delivery.path)
    return sha if sha == kept.get("sha256") else None


def record_pass(source: SourcePort, delivery: Delivery, rows: int, sha: str | None = None) -> str:
    """Keep the verdict of a delivery that passed every gate; returns its content hash."""
    sha = sha or content_hash(delivery.path)
    path = verdict_path(delivery)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = {
        "file": str(delivery.path),
        "sha256": sha,
        "stat": stat_key(delivery.path),
        "rules": _rules_digest(source),
        "rows": rows,
        "checked_at": datetime.now(UTC).isoformat(),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(kept))
    os.replace(tmp, path)
    return sha


def typed_file(delivery: Delivery, sha: str) -> Path:
    """The checked delivery's typed rows as Parquet (with ``_partition``): named after its
    content hash, so it is immutable and readers never see it half-written or replaced."""
    return verdict_path(delivery).with_name(f"{delivery.partition}.{sha[:16]}.parquet")


def _keep_typed(con, typed: str, delivery: Delivery, sha: str) -> Path:
    """Write a delivery's checked, typed rows once; every later build reads them from here
    (a Parquet scan, not a CSV parse) until the delivery changes."""
    path = typed_file(delivery, sha)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        con.execute(
            f"copy (select *, {literal(delivery.partition)}::varchar as _partition "
            f"from {typed}) to {literal(str(tmp))} "
            "(format parquet)"
        )
        os.replace(tmp, path)
    return path


def _parquet_view(con, name: str, files: list[Path], temp: bool = True) -> str:
    """A view over checked deliveries' Parquet files: the rows are read where they lie."""
    listed = ", ".join(literal(str(f)) for f in files)
    _drop(con, name)
    kind = "temp view" if temp else "view"
    con.execute(f"create {kind} {name} as select * from read_parquet([{listed}])")
    return name


def _drop(con, name: str) -> None:
    for kind in ("view", "table"):
        try:
            con.execute(f"drop {kind} if exists {name}")
        except duckdb.CatalogException:
            continue  # the other kind of object has that name


def _load_trusted(
    con, source: SourcePort, rules: DeliveryRules, delivery: Delivery, kept: Path | None = None
) -> str:
    """Read a delivery that already passed its checks straight into its typed table: from its
    kept typed rows (``kept``) when they exist, else from the file."""
    raw, typed = f"_raw_{source.name}", f"_typed_{source.name}"
    _drop(con, typed)
    if kept is not None and kept.exists():
        con.execute(
            f"create temp view {typed} as select * exclude (_partition) "
            f"from read_parquet({literal(str(kept))})"
        )
        return typed
    header, _ = _header(source, rules, delivery.path)
    con.execute(
        f"create or replace temp table {raw} as select * from read_csv(?, columns = ?, "
        "header = true, auto_detect = false, delim = ?, quote = ?, escape = ?, encoding = ?)",
        [
            str(delivery.path),
            dict.fromkeys(header or source.contract.column_names, "VARCHAR"),
            rules.delimiter,
            rules.quote,
            rules.quote,
            rules.encoding,
        ],
    )
    con.execute(f"create or replace temp table {typed} as {_typed_select(source, raw)}")
    return typed


# --- checking and loading ------------------------------------------------------------------------


def check_delivery(
    con: duckdb.DuckDBPyConnection,
    domain: str,
    source: SourcePort,
    delivery: Delivery,
    *,
    earlier: str | None = None,
    trusted: bool = False,
    kept: Path | None = None,
) -> str:
    """Validate one delivery; returns a temp table of its typed rows or raises (quarantined).

    ``earlier`` names a table of deliveries already loaded (with ``_partition``), against which
    the primary key must not repeat when the source declares ``unique_across_deliveries``.
    A ``trusted`` delivery (its bytes passed these rules before) is only loaded (from its
    ``kept`` typed rows when given) and checked against the deliveries loaded with it.
    """
    rules = delivery_rules(source)
    raw, typed = f"_raw_{source.name}", f"_typed_{source.name}"
    report = ContractReport(domain, source.name, 0, file=delivery.display, kind="source")
    if trusted:
        typed = _load_trusted(con, source, rules, delivery, kept)
        report.failures += _cross_delivery_failures(con, source, rules, typed, earlier)
        if report.failures:
            report.rows = con.execute(f"select count(*) from {typed}").fetchone()[0]
            raise _reject(delivery, report)
        return typed

    def reject() -> ContractViolation:
        return _reject(delivery, report)

    _drop(con, typed)  # the previous delivery's may be a view over its kept rows

    report.failures += _placement_failures(source, rules, delivery)
    if delivery.path.name != source.file or delivery.partition == UNPARTITIONED:
        raise reject()
    period = None if report.failures else partition_period(source, rules, delivery.partition)[0]
    header, failures = _header(source, rules, delivery.path)
    report.failures += failures
    if header is None:
        raise reject()
    shape = _shape_failures(header, source)
    if (
        report.failures
        or shape
        or not _read_typed(con, source, rules, delivery.path, header, typed)
    ):
        # something is wrong: read the text again and say exactly what, row by row
        report.failures += _read_raw(con, rules, delivery.path, header, raw)
        report.failures += shape
        if not any(f.rule.startswith("column present") for f in report.failures):
            report.failures += _type_failures(con, source, raw)
        if report.failures:
            report.rows = con.execute(f"select count(*) from {raw}").fetchone()[0]
            raise reject()
        con.execute(f"create or replace temp table {typed} as {_typed_select(source, raw)}")
    extra = _partition_column_failures(con, source, rules, delivery.partition, period, typed)
    if extra or rules.partition.column not in source.contract.primary_key:
        # a key holding the partition's own date cannot repeat in other partitions whose rows
        # all passed the partition rule; rows that did not may repeat an earlier delivery
        extra += _cross_delivery_failures(con, source, rules, typed, earlier)
    report = validate_table(
        con,
        typed,
        source.contract,
        domain=domain,
        port=source.name,
        file=delivery.display,
        kind="source",
    )
    report.failures = report.failures + extra
    if not report.passed:
        raise reject()
    return typed


def load_source(
    con: duckdb.DuckDBPyConnection,
    domain: str,
    source: SourcePort,
    *,
    latest_only: bool = False,
    log: Any = None,
    within: tuple[date, date] | None = None,
) -> tuple[str, list[Delivery], dict[str, str]]:
    """Load a source's deliveries (checked) into table ``source_<name>`` with a ``_partition``.

    ``latest_only`` keeps only the newest partition, for full-snapshot sources; the placement
    of every delivery (file name, partition folder) is still checked. ``within`` (first, last
    day) keeps the deliveries whose period overlaps it: a partitioned build reads only its own
    periods. Every bad delivery is quarantined; one :class:`ContractViolation` then reports
    them all. Returns the table, the deliveries loaded, and their content hashes by partition.
    """
    log = log or logger
    found, misfiled = _survey(source, log)
    if not found and not misfiled:
        raise MissingInputError(
            f"domain {domain!r}: no deliveries of source {source.name!r} under "
            f"{mesh_paths().landing / source.name}/<partition>/{source.file}; "
            "run `mesh generate` or drop the files there."
        )
    rules = delivery_rules(source)
    rejected: list[tuple[Delivery, ContractReport]] = []
    valid: list[Delivery] = []
    for delivery in [*misfiled, *found]:
        failures = _placement_failures(source, rules, delivery)
        if failures:
            report = ContractReport(domain, source.name, 0, failures, delivery.display, "source")
            quarantine(delivery, report)
            rejected.append((delivery, report))
        else:
            valid.append(delivery)
    if rules.partition.format:
        valid.sort(key=lambda d: partition_date(rules, d.partition))
    if within is not None and rules.partition.format and not latest_only:
        valid = [d for d in valid if _overlaps(source, rules, d.partition, within)]
    chosen = valid[-1:] if latest_only else valid
    table = f"source_{source.name}"
    _drop(con, table)
    loaded: list[Delivery] = []
    files: list[Path] = []
    versions: dict[str, str] = {}
    # keys that hold the partition's own date cannot repeat across partitions that each
    # passed the partition rule: deliveries checked before need no cross-delivery check
    pinned = rules.partition.column in source.contract.primary_key
    for delivery in chosen:
        sha = passed_before(source, delivery)
        kept = typed_file(delivery, sha) if sha else None
        if kept is not None and kept.exists() and (pinned or not rules.unique_across_deliveries):
            files.append(kept)
            versions[delivery.partition] = sha
            loaded.append(delivery)
            continue
        earlier = _parquet_view(con, f"_earlier_{source.name}", files) if files else None
        try:
            typed = check_delivery(
                con, domain, source, delivery, earlier=earlier, trusted=bool(sha), kept=kept
            )
        except ContractViolation as exc:
            rejected.append((delivery, exc.report))
            continue
        if sha is None:
            rows = con.execute(f"select count(*) from {typed}").fetchone()[0]
            sha = record_pass(source, delivery, rows)
        files.append(_keep_typed(con, typed, delivery, sha))
        versions[delivery.partition] = sha
        loaded.append(delivery)
    if loaded:
        _parquet_view(con, table, files, temp=False)
    if rejected:
        for delivery, _ in rejected:
            log.warning(
                f"{domain}: source {source.name}: rejected {delivery.display}, "
                f"quarantined in {quarantine_path(delivery).parent}"
            )
        raise _rejected_together(domain, rejected)
    if not loaded:
        if within is not None:  # no delivery in these periods: an empty table of the source
            con.execute(f"create table {table} as {_empty_select(source)}")
            return table, [], {}
        raise MissingInputError(f"domain {domain!r}: no usable delivery of {source.name!r}")
    return table, chosen, versions


def _overlaps(source: SourcePort, rules: DeliveryRules, partition: str, within) -> bool:
    period, _ = partition_period(source, rules, partition)
    return period is None or (period[0] <= within[1] and period[1] >= within[0])


def _empty_select(source: SourcePort) -> str:
    cols = ", ".join(
        f"null::{DUCKDB_TYPES[c.type]} as {_q(c.name)}" for c in source.contract.columns
    )
    return f"select {cols}, null::varchar as _partition where false"
