"""Contracts: pandera schemas built from the descriptor, validated inside DuckDB.

A contract is declared once in ``domain.yaml``; :func:`pandera_schema` turns it into a pandera
``DataFrameSchema`` for pandera's ibis backend, so validation runs as SQL on the data where it
lies (staging database or landing file) instead of loading a port into pandas. Failures are
summarised per column and rule, with a few example values, into a :class:`ContractReport` whose
message names the domain, the port, the file and the column.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import duckdb
import ibis
import pandera.ibis as pa
from pandera.errors import SchemaError, SchemaErrors

from .descriptor import ColumnSpec, Contract, RowRule

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
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
        "=": operator.eq, "!=": operator.ne}
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

    @property
    def passed(self) -> bool:
        return not self.failures

    def message(self) -> str:
        where = f"domain {self.domain!r}, {self.kind} {self.port!r}"
        if self.file:
            where += f", file {self.file}"
        if self.passed:
            return f"contract passed: {where} ({self.rows} rows)"
        lines = [f"contract failed: {where}"]
        lines += [f"  - {f.describe()}" for f in self.failures]
        return "\n".join(lines)

    def as_metadata(self) -> dict:
        return {
            "rows_checked": self.rows,
            "failures": [
                {"column": f.column, "rule": f.rule, "failing_rows": f.failing_rows,
                 "examples": list(f.examples)}
                for f in self.failures
            ],
        }


class ContractViolation(Exception):
    """Raised when a delivery or a staged port breaks its contract; nothing was published."""

    def __init__(self, report: ContractReport, hint: str = ""):
        self.report = report
        super().__init__(report.message() + (f"\n{hint}" if hint else ""))


def _column_checks(spec: ColumnSpec) -> list[pa.Check]:
    checks: list[pa.Check] = []
    c = spec.checks
    if "isin" in c:
        checks.append(pa.Check.isin(list(c["isin"])))
    for bound, make in (("ge", pa.Check.ge), ("le", pa.Check.le),
                        ("gt", pa.Check.gt), ("lt", pa.Check.lt)):
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

        checks.append(pa.Check(lambda data: {data.key: npi_valid_expr(data.table[data.key])},
                               name="npi_check_digit",
                               error="valid NPI (10 digits, Luhn check digit, prefix 80840)"))
    return checks


def _rule_check(rule: RowRule) -> pa.Check:
    op = _OPS[rule.op]

    def check(data):
        return {rule.name: op(data.table[rule.left], data.table[rule.right])}

    return pa.Check(check, name=f"{rule.name}: {rule.left} {rule.op} {rule.right}")


def pandera_schema(contract: Contract, name: str) -> pa.DataFrameSchema:
    """The pandera (ibis backend) schema for a contract."""
    unique_sets = [list(contract.primary_key)] if contract.primary_key else []
    unique_sets += [[c.name] for c in contract.columns if c.unique and [c.name] != unique_sets[:1]]
    return pa.DataFrameSchema(
        {
            c.name: pa.Column(ibis.dtype(IBIS_TYPES[c.type]), nullable=c.nullable,
                              checks=_column_checks(c), description=c.description or None)
            for c in contract.columns
        },
        checks=[_rule_check(r) for r in contract.rules],
        unique=unique_sets or None,
        strict=True,
        name=name,
    )


def _rule_name(check: str, column: str | None) -> str:
    if check == "multiple_fields_uniqueness":
        return "unique"
    if check == "not_nullable":
        return "not_null"
    if check.startswith("dtype("):
        return f"type {check[6:-1].strip(chr(39))}"
    if check == "column_in_dataframe":
        return "column present"
    if check == "column_in_schema":
        return "no unexpected columns"
    return check


def _failures_from(errors: SchemaErrors | SchemaError) -> list[Failure]:
    cases = errors.failure_cases
    if cases is None or len(cases) == 0:
        return [Failure("<table>", str(errors), None)]
    failures = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        column = str(column) if column == column and column is not None else "<table>"
        values = [str(v) for v in group["failure_case"].tolist() if v is not None][:MAX_EXAMPLES]
        rows = len(group)
        rule = _rule_name(str(check), column)
        if rule in {"column present", "no unexpected columns"}:
            # schema-level failures name the offending column, not rows
            failures.append(Failure(values[0] if values else column, rule, None))
            continue
        if rule.startswith("type "):
            failures.append(Failure(column, rule, None, tuple(f"found {v}" for v in values)))
            continue
        failures.append(Failure(column, rule, rows, tuple(values)))
    return failures


def validate_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    contract: Contract,
    *,
    domain: str,
    port: str,
    file: str | None = None,
    kind: str = "port",
) -> ContractReport:
    """Check ``table`` (a name visible to ``con``) against ``contract`` inside DuckDB."""
    rows = con.execute(f"select count(*) from {table}").fetchone()[0]
    report = ContractReport(domain, port, rows, file=file, kind=kind)
    if rows < contract.min_rows:
        report.failures.append(Failure("<table>", f"at least {contract.min_rows} row(s)", rows))
        return report
    backend = ibis.duckdb.from_connection(con)
    expr = backend.sql(f"select * from {table}")
    try:
        pandera_schema(contract, f"{domain}/{port}").validate(expr, lazy=True)
    except (SchemaErrors, SchemaError) as errors:
        report.failures.extend(_failures_from(errors))
    return report
