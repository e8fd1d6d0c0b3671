"""Contracts: declared once as pandera schemas, checked in DuckDB, reported by column and rule.

Every test runs with both engines: pandera itself (through ibis) and the pandera schemas
compiled to SQL, and the engines must agree on every failure."""

import pytest

from mesh_domains.platform import lake
from mesh_domains.platform.contracts import pandera_schemas, validate_table
from mesh_domains.platform.descriptor import ColumnSpec, Contract, RowRule, discover_domains

PHYSICIANS = discover_domains()["physician_master"].output_port("physicians").contract

GOOD_ROWS = """
    ('MP0000000001', '1234567893', '12345678901', 'Ann', 'Lee', 'Cardiology', 'NY', '10001',
     'active', 'ama', 1),
    ('MP0000000002', '1245319599', null, null, null, null, null, null, 'unknown', 'rx_only', 0)
"""


@pytest.fixture(autouse=True, params=["sql", "pandera"])
def engine(request, monkeypatch):
    monkeypatch.setenv("MESH_CONTRACT_ENGINE", request.param)
    return request.param


@pytest.fixture
def con():
    connection = lake.connect()
    yield connection
    connection.close()


def _table(con, rows: str = GOOD_ROWS) -> str:
    con.execute(
        "create or replace table physicians (mesh_id varchar, npi varchar, me_number varchar, "
        "first_name varchar, last_name varchar, specialty varchar, state varchar, zip varchar, "
        "status varchar, record_source varchar, crm_accounts bigint)"
    )
    con.execute(f"insert into physicians values {rows}")
    con.execute(  # the conformed name the master publishes, derived as the master does
        "alter table physicians add column physician_name varchar; "
        "update physicians set physician_name = "
        "coalesce(first_name || ' ' || last_name, 'Unknown prescriber ' || npi)"
    )
    return "physicians"


def _check(con, table="physicians"):
    return validate_table(con, table, PHYSICIANS, domain="physician_master", port="physicians")


def test_good_rows_pass(con):
    """Valid rows (including an rx-only physician with null names) pass the contract."""
    report = _check(con, _table(con))
    assert report.passed, report.message()
    assert report.rows == 2


@pytest.mark.parametrize(
    ("mutation", "column", "rule"),
    [
        ("update physicians set mesh_id = null where npi = '1234567893'", "mesh_id", "not_null"),
        ("update physicians set mesh_id = 'MP0000000001'", "mesh_id", "unique"),
        ("update physicians set npi = '1245319599'", "npi", "unique"),
        (
            "update physicians set npi = '1234567890' where mesh_id = 'MP0000000001'",
            "npi",
            "valid NPI",
        ),
        ("update physicians set status = 'asleep' where npi = '1234567893'", "status", "isin"),
        (
            "update physicians set crm_accounts = -1 where npi = '1234567893'",
            "crm_accounts",
            "greater_than_or_equal_to(0)",
        ),
        ("update physicians set state = 'NYC' where npi = '1234567893'", "state", "str_length"),
        ("update physicians set mesh_id = 'X1' where npi = '1234567893'", "mesh_id", "str_matches"),
    ],
)
def test_each_broken_rule_is_named_with_its_column(con, mutation, column, rule):
    """Every kind of violation fails the contract and the message names column and rule; the
    SQL engine reports exactly what pandera reports (column, rule, failing rows, examples)."""
    _table(con)
    con.execute(mutation)
    report = _check(con)
    assert not report.passed
    message = report.message()
    assert "domain 'physician_master'" in message and "port 'physicians'" in message
    assert any(f.column == column and rule in f.rule for f in report.failures), message
    reports = {
        engine: validate_table(
            con, "physicians", PHYSICIANS, domain="d", port="p", engine=engine
        ).failures
        for engine in ("sql", "pandera")
    }
    assert sorted(reports["sql"], key=str) == sorted(reports["pandera"], key=str)


def test_schema_drift_and_type_changes_fail(con):
    """A missing column, an extra column and a changed type are all contract failures."""
    _table(con)
    con.execute("alter table physicians drop column zip")
    con.execute("alter table physicians add column surprise integer")
    con.execute("alter table physicians alter crm_accounts type integer")
    report = _check(con)
    rules = {(f.column, f.rule.split("(")[0]) for f in report.failures}
    assert ("zip", "column present") in rules
    assert ("surprise", "no unexpected columns") in rules
    assert any(c == "crm_accounts" and r.startswith("type") for c, r in rules), rules


def test_an_empty_table_fails_min_rows(con):
    """A port with no rows is not published: min_rows defaults to 1."""
    con.execute("create table physicians as select * from (select 1) where false")
    report = _check(con)
    assert not report.passed and "at least 1 row" in report.message()


def test_row_rules_compare_columns(con):
    """Cross-column rules (trx >= nrx) are part of the contract."""
    rx = discover_domains()["physician_dw"].output_port("fact_rx_weekly").contract
    con.execute(
        "create table fact as select 'MP0000000001' as physician_id, 'ZENVIRA' as product, "
        "date '2026-10-31' as week_ending, 5::bigint as nrx, 3::bigint as trx, "
        "false as is_projected"
    )
    report = validate_table(con, "fact", rx, domain="physician_dw", port="fact_rx_weekly")
    assert [f.rule for f in report.failures] == ["trx_covers_nrx: trx >= nrx"]


@pytest.mark.parametrize("open_ended", ["every row", "some rows"])
def test_row_rules_skip_rows_with_a_null_operand(con, open_ended):
    """A rule over a nullable column (valid_to >= valid_from, null = still valid) judges only
    the rows where both are set, in both engines, also when the column is entirely null."""
    validity = Contract(
        columns=(
            ColumnSpec("valid_from", "date", nullable=False),
            ColumnSpec("valid_to", "date"),
        ),
        rules=(RowRule("ends_after_it_starts", "valid_to", ">=", "valid_from"),),
    )
    second = "null" if open_ended == "every row" else "date '2026-10-31'"
    con.execute(
        "create table validity as select * from (values (date '2026-10-01', null::date), "
        f"(date '2026-09-01', {second})) as t(valid_from, valid_to)"
    )
    assert validate_table(con, "validity", validity, domain="d", port="p").passed
    con.execute("insert into validity values (date '2026-10-01', date '2026-09-30')")
    report = validate_table(con, "validity", validity, domain="d", port="p")
    assert [f.rule for f in report.failures] == ["ends_after_it_starts: valid_to >= valid_from"]


def test_every_unique_key_gets_its_own_pandera_schema():
    """pandera reports one key per schema, so each extra unique key is checked on its own."""
    schemas = pandera_schemas(PHYSICIANS, "physician_master/physicians")
    assert [s.unique for s in schemas] == [[["mesh_id"]], ["npi"]]


@pytest.mark.parametrize("repeat", ["none", "a repeated key", "a key with a null part"])
def test_a_composite_key_is_unique_or_its_repeats_are_counted(con, repeat):
    """A unique key over several columns: proven unique when it is, else every row of a
    repeated key (nulls included, as one value) is counted, with the key as example, in both
    engines."""
    key = Contract(
        columns=(
            ColumnSpec("npi", "string"),
            ColumnSpec("product", "string", nullable=False),
            ColumnSpec("trx", "int64", nullable=False),
        ),
        primary_key=("npi", "product"),
    )
    rows = [("'1234567893'", "'A'"), ("'1234567893'", "'B'"), ("'1245319599'", "'A'")]
    if repeat == "a repeated key":
        rows += [("'1234567893'", "'B'")] * 2
    elif repeat == "a key with a null part":
        rows += [("null", "'A'")] * 2
    values = ", ".join(f"({n}, {p}, {i}::bigint)" for i, (n, p) in enumerate(rows))
    con.execute(f"create table keyed as select * from (values {values}) as t(npi, product, trx)")
    reports = {
        engine: validate_table(con, "keyed", key, domain="d", port="p", engine=engine)
        for engine in ("sql", "pandera")
    }
    unique = [f for f in reports["sql"].failures if f.rule == "unique"]
    if repeat == "none":
        assert reports["sql"].passed and reports["pandera"].passed
    elif repeat == "a repeated key":
        assert [(f.column, f.failing_rows, f.examples) for f in unique] == [
            ("npi, product", 3, ("1234567893/B",))
        ]
    else:
        assert [(f.column, f.failing_rows) for f in unique] == [("npi, product", 2)]
    assert sorted(reports["sql"].failures, key=str) == sorted(reports["pandera"].failures, key=str)
