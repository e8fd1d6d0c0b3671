"""Contracts: pandera schemas built from the descriptor, validated inside DuckDB.

A contract is declared once in ``domain.yaml``; :func:`pandera_schemas` turns it into pandera
``DataFrameSchema`` objects (pandera's ibis backend). Validation runs on the data where it lies
(staging database or landing file), never in pandas, by one of two engines:

- ``sql`` (default): the pandera schemas are compiled into one DuckDB aggregate query for every
  row-level check plus one ``group by`` per unique key (:mod:`.contract_sql`); examples are
  fetched only for the rules that fail. Its cost is one scan of the table, whatever the number
  of checks, which matters when a build checks dozens of small deliveries.
- ``pandera``: pandera validates the schemas itself through ibis (one query per check). It is
  the reference semantics; ``MESH_CONTRACT_ENGINE=pandera`` selects it, and the tests check
  that both engines report the same failures.

Failures are summarised per column and rule, with a few example values, into a
:class:`ContractReport` whose message names the domain, the port, the file and the column.
"""

from __future__ import annotations

import ast
import operator
import os
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .descriptor import ColumnSpec, Contract, RowRule
from .errors import MeshError

if TYPE_CHECKING:
    import duckdb
    import pandera.ibis as pa

ENGINES = ("sql", "pandera")

IBIS_TYPES = {
    "string": "string",
    "int64": "int64",
    "float64": "float64",
    "date": "date",
    "timestamp": "timestamp(6)",
    "boolean": "boolean",
}
DUCKDB_TYPES = {
    "string": "varchar",
    "int64": "bigint",
    "float64": "double",
    "date": "date",
    "timestamp": "timestamp",
    "boolean": "boolean",
}
_OPS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "=": operator.eq,
    "!=": operator.ne,
}
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class Failure:
    """One broken rule on one column, with how many rows break it and a few examples."""

    column: str
    rule: str
    failing_rows: int | None
    examples: tuple[str, ...] = ()

    def describe(self) -> str:
        count = "" if self.failing_rows is None else f" — {self.failing_rows} failing row(s)"
        sample = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"column {self.column!r} rule {self.rule!r}{count}{sample}"


@dataclass
class ContractReport:
    """The result of checking one table against its contract."""

    domain: str
    port: str
    rows: int
    failures: list[Failure] = field(default_factory=list)
    file: str | None = None
    kind: str = "port"
    same_as: int | None = None  # kept as served: the rows of this version, which passed

    @property
    def passed(self) -> bool:
        return not self.failures

    def message(self) -> str:
        where = f"domain {self.domain!r}, {self.kind} {self.port!r}"
        if self.file:
            where += f", file {self.file}"
        if self.same_as is not None:
            return (
                f"contract passed: {where} ({self.rows} rows, unchanged: the rows of version "
                f"{self.same_as}, which passed this contract)"
            )
        if self.passed:
            return f"contract passed: {where} ({self.rows} rows)"
        lines = [f"contract failed: {where}"]
        lines += [f"  - {f.describe()}" for f in self.failures]
        return "\n".join(lines)

    def as_metadata(self) -> dict:
        return {
            "rows_checked": self.rows,
            "failures": [
                {
                    "column": f.column,
                    "rule": f.rule,
                    "failing_rows": f.failing_rows,
                    "examples": list(f.examples),
                }
                for f in self.failures
            ],
        }


class ContractViolation(MeshError):
    """Raised when a delivery or a staged port breaks its contract; nothing was published."""

    def __init__(self, report: ContractReport, hint: str = ""):
        self.report = report
        super().__init__(report.message() + (f"\n{hint}" if hint else ""))


def _column_checks(spec: ColumnSpec) -> list[pa.Check]:
    import pandera.ibis as pa

    checks: list[pa.Check] = []
    c = spec.checks
    if "isin" in c:
        checks.append(pa.Check.isin(list(c["isin"])))
    for bound, make in (
        ("ge", pa.Check.ge),
        ("le", pa.Check.le),
        ("gt", pa.Check.gt),
        ("lt", pa.Check.lt),
    ):
        if bound in c:
            checks.append(make(c[bound]))
    if "str_length" in c:
        length = c["str_length"]
        lo, hi = (length, length) if isinstance(length, int) else (length[0], length[1])
        checks.append(pa.Check.str_length(lo, hi))
    if "matches" in c:
        checks.append(pa.Check.str_matches(c["matches"]))
    if c.get("npi"):
        from .npi import npi_valid_expr

        checks.append(
            pa.Check(
                lambda data: {data.key: npi_valid_expr(data.table[data.key])},
                name="npi_check_digit",
                error="valid NPI (10 digits, Luhn check digit, prefix 80840)",
            )
        )
        checks[-1].sql_form = ("npi",)  # how the SQL engine runs this custom check
    return checks


def _rule_check(rule: RowRule) -> pa.Check:
    import pandera.ibis as pa

    op = _OPS[rule.op]

    def check(data):
        # a row with a null operand (an open-ended validity, say) is not judged, as in the SQL
        # engine; pandera's ibis backend would fail a column of null results outright
        result = op(data.table[rule.left], data.table[rule.right])
        return {rule.name: result.fill_null(True)}

    compiled = pa.Check(check, name=f"{rule.name}: {rule.left} {rule.op} {rule.right}")
    compiled.sql_form = ("row_rule", rule.left, rule.op, rule.right)
    return compiled


def unique_keys(contract: Contract) -> list[list[str]]:
    """The primary key and every single-column unique key of a contract."""
    keys = [list(contract.primary_key)] if contract.primary_key else []
    return keys + [[c.name] for c in contract.columns if c.unique and [c.name] not in keys]


def pandera_schemas(contract: Contract, name: str) -> list[pa.DataFrameSchema]:
    """The contract as pandera (ibis backend) schemas: the column/row schema with the primary
    key, then one schema per further unique key (pandera reports one key per schema)."""
    import pandera.ibis as pa

    keys = unique_keys(contract)
    main = pandera_schema(contract, name, keys[:1])
    return [main] + [pa.DataFrameSchema(unique=k, name=f"{name} unique {k}") for k in keys[1:]]


def pandera_schema(
    contract: Contract, name: str, unique_sets: list[list[str]] | None = None
) -> pa.DataFrameSchema:
    """The pandera (ibis backend) schema for a contract's columns, rules and a key."""
    import ibis
    import pandera.ibis as pa

    unique_sets = unique_keys(contract)[:1] if unique_sets is None else unique_sets
    return pa.DataFrameSchema(
        {
            c.name: pa.Column(
                ibis.dtype(IBIS_TYPES[c.type]),
                nullable=c.nullable,
                checks=_column_checks(c),
                description=c.description or None,
            )
            for c in contract.columns
        },
        checks=[_rule_check(r) for r in contract.rules],
        unique=unique_sets or None,
        strict=True,
        name=name,
    )


_KEY_IN_MESSAGE = re.compile(r"columns '(\(.*?\))' not unique")
_COLUMN_IN_MESSAGE = re.compile(r"[Cc]olumn '([^']+)'")


def _rule_name(check) -> str:
    """A rule name a user recognises: the declared check, not pandera's internal key."""
    import pandera.ibis as pa

    if isinstance(check, pa.Check):
        return str(check.error or check.name)
    return {
        "multiple_fields_uniqueness": "unique",
        "not_nullable": "not_null",
        "column_in_dataframe": "column present",
        "column_in_schema": "no unexpected columns",
    }.get(str(check), str(check).replace("dtype(", "type(").replace("'", ""))


def _column_of(err) -> str:
    if err.column_name:
        return str(err.column_name)
    key = _KEY_IN_MESSAGE.search(str(err))
    if key:
        return ", ".join(ast.literal_eval(key.group(1)))
    found = _COLUMN_IN_MESSAGE.search(str(err))
    return found.group(1) if found else "<table>"


def _summarise(cases, column: str) -> tuple[int | None, tuple[str, ...]]:
    """Count failing rows and take a few examples, executing lazy (ibis) failure cases in
    DuckDB instead of pulling them into memory."""
    import ibis

    if cases is None:
        return None, ()
    if isinstance(cases, ibis.Table):
        count = int(cases.count().execute())
        cols = [c.strip() for c in column.split(",") if c.strip() in cases.columns]
        sample = cases.select(cols).limit(MAX_EXAMPLES).execute() if cols else None
        examples = (
            ()
            if sample is None
            else tuple("/".join(str(v) for v in row) for row in sample.itertuples(index=False))
        )
        return count, tuple(dict.fromkeys(e for e in examples if e not in ("None", "nan")))
    if hasattr(cases, "__len__") and "failure_case" in getattr(cases, "columns", ()):
        values = [
            "/".join(map(str, v.values())) if isinstance(v, dict) else str(v)
            for v in cases["failure_case"].tolist()
        ]
        return len(values), tuple(dict.fromkeys(values))[:MAX_EXAMPLES]
    return None, (str(cases)[:200],)


def _failures_from(errors) -> list[Failure]:
    from pandera.errors import SchemaErrors

    errs = errors.schema_errors if isinstance(errors, SchemaErrors) else [errors]
    failures = []
    for err in errs:
        rule = _rule_name(err.check)
        column = _column_of(err)
        if rule in {"column present", "no unexpected columns"} or rule.startswith("type("):
            # schema-level failures: the column itself (or its type) is wrong, not some rows
            detail = () if err.failure_cases is None else (str(err.failure_cases)[:80],)
            failures.append(Failure(column, rule, None, detail if rule.startswith("type(") else ()))
            continue
        count, examples = _summarise(err.failure_cases, column)
        failures.append(Failure(column, rule, count, examples))
    return failures


def contract_engine() -> str:
    engine = os.environ.get("MESH_CONTRACT_ENGINE", "sql")
    if engine not in ENGINES:
        raise ValueError(f"MESH_CONTRACT_ENGINE={engine!r} is not one of {', '.join(ENGINES)}")
    return engine


def validate_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    contract: Contract,
    *,
    domain: str,
    port: str,
    file: str | None = None,
    kind: str = "port",
    engine: str | None = None,
) -> ContractReport:
    """Check ``table`` (a name visible to ``con``) against ``contract`` inside DuckDB."""
    from .contract_sql import NotCompilable, validate_sql

    schemas = pandera_schemas(contract, f"{domain}/{port}")
    if (engine or contract_engine()) == "sql":
        try:
            rows, failures = validate_sql(con, table, schemas, contract.min_rows)
        except NotCompilable:
            pass  # a check with no SQL form: pandera runs the whole contract
        else:
            report = ContractReport(domain, port, rows, failures, file=file, kind=kind)
            return report
    return _validate_pandera(con, table, contract, schemas, domain, port, file, kind)


def _validate_pandera(con, table, contract, schemas, domain, port, file, kind) -> ContractReport:
    import ibis
    from pandera.errors import SchemaError, SchemaErrors

    rows = con.execute(f"select count(*) from {table}").fetchone()[0]
    report = ContractReport(domain, port, rows, file=file, kind=kind)
    if rows < contract.min_rows:
        report.failures.append(Failure("<table>", f"at least {contract.min_rows} row(s)", rows))
        return report
    backend = ibis.duckdb.from_connection(con)
    expr = backend.sql(f"select * from {table}")
    for schema in schemas:
        try:
            schema.validate(expr, lazy=True)
        except (SchemaErrors, SchemaError) as errors:
            report.failures.extend(_with_rule_columns(contract, _failures_from(errors)))
    return report


def _with_rule_columns(contract: Contract, failures: list[Failure]) -> list[Failure]:
    """Name the columns of a broken row rule (pandera reports table-level checks on no column)."""
    named = {f"{r.name}:": f"{r.left}, {r.right}" for r in contract.rules}
    out = []
    for f in failures:
        prefix = f.rule.split(":", 1)[0] + ":"
        out.append(
            replace(f, column=named[prefix]) if f.column == "<table>" and prefix in named else f
        )
    return out
