"""The SQL engine of contracts: pandera schemas compiled into DuckDB queries.

A contract's pandera schemas (see :func:`.contracts.pandera_schemas`) are read, not re-declared:
each column's dtype, nullability and checks (by the built-in check's name and statistics, or a
custom check's ``sql_form``), the schema's unique keys and its table-level row rules become SQL
predicates. Every row-level predicate is counted in ONE aggregate query (one scan of the table),
every unique key in one hash aggregate (a ``group by`` when it finds a repeat); only rules that
fail are queried again for examples.

Semantics follow pandera's: value checks skip nulls, a non-nullable column fails on nulls,
``unique`` counts every row of a repeated key, and a strict schema refuses unexpected columns.
A check this module cannot compile raises :class:`NotCompilable`, and the caller lets pandera
validate that contract itself.
"""

from __future__ import annotations

from typing import Any

from .contracts import MAX_EXAMPLES, Failure, _rule_name

TABLE = "<table>"
DUCKDB_OF_IBIS = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "date": "DATE",
    "timestamp(6)": "TIMESTAMP",
    "timestamp": "TIMESTAMP",
    "boolean": "BOOLEAN",
}
_COMPARE = {
    "greater_than_or_equal_to": (">=", "min_value"),
    "less_than_or_equal_to": ("<=", "max_value"),
    "greater_than": (">", "min_value"),
    "less_than": ("<", "max_value"),
    "equal_to": ("=", "value"),
    "not_equal_to": ("!=", "value"),
}


class NotCompilable(Exception):
    """A check of the schema has no SQL form here; pandera must run the contract."""


def q(name: str) -> str:
    """A quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _check_ok(check, column: str, helpers: dict[str, str] | None = None) -> str:
    """SQL that is true where ``check`` holds for ``column`` (a non-null value). A check that
    reads a value derived from the column several times asks for it in ``helpers`` (name ->
    expression): the caller computes it once per row, beside the table's columns."""
    form = getattr(check, "sql_form", None)
    col = q(column)
    if form and form[0] == "npi":
        from .npi import npi_number_sql, npi_valid_sql

        if helpers is None:
            return npi_valid_sql(col)
        number = f"__npi_number_{column}"
        helpers[number] = npi_number_sql(col)
        return npi_valid_sql(col, q(number))
    stats = check.statistics or {}
    name = check.name
    if name == "isin":
        return f"{col} in ({', '.join(literal(v) for v in stats['allowed_values'])})"
    if name == "notin":
        return f"{col} not in ({', '.join(literal(v) for v in stats['forbidden_values'])})"
    if name in _COMPARE:
        op, key = _COMPARE[name]
        return f"{col} {op} {literal(stats[key])}"
    if name == "in_range":
        lo = ">=" if stats.get("include_min", True) else ">"
        hi = "<=" if stats.get("include_max", True) else "<"
        low, high = literal(stats["min_value"]), literal(stats["max_value"])
        return f"({col} {lo} {low} and {col} {hi} {high})"
    if name == "str_length":
        if stats.get("exact_value") is not None:
            return f"length({col}) = {int(stats['exact_value'])}"
        parts = []
        if stats.get("min_value") is not None:
            parts.append(f"length({col}) >= {int(stats['min_value'])}")
        if stats.get("max_value") is not None:
            parts.append(f"length({col}) <= {int(stats['max_value'])}")
        return " and ".join(parts) or "true"
    if name == "str_matches":
        pattern = str(stats["pattern"])
        pattern = pattern if pattern.startswith("^") else f"^{pattern}"
        return f"regexp_matches({col}, {literal(pattern)})"
    if name == "str_startswith":
        return f"starts_with({col}, {literal(stats['string'])})"
    if name == "str_endswith":
        return f"ends_with({col}, {literal(stats['string'])})"
    raise NotCompilable(f"check {name!r} on column {column!r}")


def _rule_ok(check) -> tuple[str, str]:
    """SQL true where a table-level row rule holds, and the columns it names."""
    form = getattr(check, "sql_form", None)
    if not form or form[0] != "row_rule":
        raise NotCompilable(f"table-level check {check.name!r}")
    _, left, op, right = form
    sql_op = "=" if op == "=" else op
    return f"{q(left)} {sql_op} {q(right)}", f"{left}, {right}"


def _columns(con, table: str) -> dict[str, str]:
    rows = con.execute(f"describe select * from {table}").fetchall()
    return {name: dtype for name, dtype, *_ in rows}


def validate_sql(con, table: str, schemas: list, min_rows: int) -> tuple[int, list[Failure]]:
    """Validate ``table`` against pandera ``schemas`` in DuckDB; returns (rows, failures)."""
    main = schemas[0]
    present = _columns(con, table)
    failures: list[Failure] = []
    wanted = main.columns
    for name in wanted:
        if name not in present:
            failures.append(Failure(name, "column present", None))
    if main.strict:
        failures += [Failure(n, "no unexpected columns", None) for n in present if n not in wanted]
    # (column, rule, failing-row predicate, example select)
    probes: list[tuple[str, str, str, str]] = []
    helpers: dict[str, str] = {}
    for name, column in wanted.items():
        if name not in present:
            continue
        expected = DUCKDB_OF_IBIS.get(str(column.dtype))
        if expected is None:
            raise NotCompilable(f"dtype {column.dtype} of column {name!r}")
        if present[name] != expected:
            rule = f"type({column.dtype})"
            failures.append(Failure(name, rule, None, (present[name].lower(),)))
            continue  # values of a mistyped column are not judged by its checks
        if not column.nullable:
            probes.append((name, "not_null", f"{q(name)} is null", ""))
        for check in column.checks:
            bad = f"{q(name)} is not null and not ({_check_ok(check, name, helpers)})"
            probes.append((name, _rule_name(check), bad, q(name)))
    mistyped = {f.column for f in failures}
    for check in main.checks:
        ok, columns = _rule_ok(check)
        if not {c.strip() for c in columns.split(",")} & (mistyped | (set(wanted) - set(present))):
            probes.append((columns, _rule_name(check), f"not coalesce({ok}, true)", ""))
    counts = ", ".join(f"count(*) filter (where {bad})" for _, _, bad, _ in probes)
    rows_of = table
    if helpers:
        derived = ", ".join(f"{expr} as {q(name)}" for name, expr in helpers.items())
        rows_of = f"(select *, {derived} from {table})"
    row = con.execute(f"select count(*){', ' + counts if counts else ''} from {rows_of}").fetchone()
    rows = int(row[0])
    if rows < min_rows:
        return rows, [Failure(TABLE, f"at least {min_rows} row(s)", rows)]
    for (column, rule, bad, example), count in zip(probes, row[1:], strict=True):
        if count:
            examples = _examples(con, rows_of, bad, example)
            failures.append(Failure(column, rule, int(count), examples))
    for schema in schemas:
        for key in _unique_sets(schema.unique):
            if set(key) <= set(present) and not set(key) & mistyped:
                failures += _unique_failures(con, table, key)
    return rows, failures


def _unique_sets(unique) -> list[list[str]]:
    if not unique:
        return []
    if isinstance(unique, str):
        return [[unique]]
    if all(isinstance(u, str) for u in unique):
        return [list(unique)]
    return [list(u) for u in unique]


def _examples(con, table: str, bad: str, select: str) -> tuple[str, ...]:
    if not select:
        return ()
    values = con.execute(f"select {select} from {table} where {bad} limit 50").fetchall()
    shown = dict.fromkeys(str(v) for (v,) in values if v is not None)
    return tuple(shown)[:MAX_EXAMPLES]


def _unique_failures(con, table: str, key: list[str]) -> list[Failure]:
    cols = ", ".join(q(k) for k in key)
    # distinct hashes are distinct keys: as many as rows proves the key unique in one hash
    # aggregate; otherwise (a repeat, a null, or a collision) the groups are counted exactly
    (rows, hashes) = con.execute(
        f"select count(*), count(distinct hash({cols})) from {table}"
    ).fetchone()
    if rows == hashes:
        return []
    groups = f"select {cols}, count(*) as _n from {table} group by all having count(*) > 1"
    (count,) = con.execute(f"select coalesce(sum(_n), 0) from ({groups})").fetchone()
    if not count:
        return []
    sample = con.execute(f"select {cols} from ({groups}) limit {MAX_EXAMPLES}").fetchall()
    examples = tuple(dict.fromkeys("/".join(str(v) for v in r) for r in sample))
    return [Failure(", ".join(key), "unique", int(count), examples)]
