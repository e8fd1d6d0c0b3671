"""NPI check-digit rule, in Python and as an ibis expression running in DuckDB."""

import random

import duckdb
import ibis
import pytest

from mesh_domains.platform.npi import (
    is_valid_npi,
    make_npi,
    npi_check_digit,
    npi_valid_expr,
    npi_valid_sql,
)


def _plain_luhn_ok(number: str) -> bool:
    """Textbook Luhn check over the whole number (no shortcuts)."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_check_digit_matches_cms_example():
    """The CMS published example 123456789 has check digit 3."""
    assert npi_check_digit("123456789") == 3
    assert is_valid_npi("1234567893")


def test_prefix_shortcut_equals_luhn_with_80840():
    """Adding 24 is the same as running Luhn over "80840" + the NPI, for many random NPIs."""
    rng = random.Random(7)
    for _ in range(500):
        first9 = f"{rng.choice('12')}{rng.randrange(10**8):08d}"
        npi = first9 + str(npi_check_digit(first9))
        assert _plain_luhn_ok("80840" + npi)
        assert not _plain_luhn_ok("80840" + first9 + str((int(npi[-1]) + 1) % 10))


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "123456789",
        "12345678930",
        "3234567893",
        "1234567890",
        "12345678a3",
        " 1234567893",
        "1234567893\n",
        "１２３４５６７８９３",
        1234567893,
    ],
)
def test_malformed_values_are_invalid_not_errors(value):
    """Wrong length, wrong leading digit, bad check digit, non-ASCII digits or non-strings are
    rejected without raising."""
    assert not is_valid_npi(value)


def test_make_npi_is_valid_and_reproducible():
    """make_npi draws only from the given generator, so equal seeds give equal NPIs."""
    a = [make_npi(random.Random(3)) for _ in range(3)]
    b = [make_npi(random.Random(3)) for _ in range(3)]
    assert a == b
    npis = [make_npi(random.Random(s)) for s in range(200)]
    assert all(is_valid_npi(n) and n.startswith("1") for n in npis)


def _mixed_values() -> list[str | None]:
    """~200 valid NPIs and near misses of every kind."""
    rng = random.Random(11)
    valid = [make_npi(rng) for _ in range(80)]
    first9 = [f"2{rng.randrange(10**8):08d}" for _ in range(20)]
    valid += [f + str(npi_check_digit(f)) for f in first9]  # organisation NPIs
    bad_check = [n[:9] + str((int(n[9]) + rng.randint(1, 9)) % 10) for n in valid[:40]]
    transposed = [n[:3] + n[4] + n[3] + n[5:] for n in valid[40:80] if n[3] != n[4]]
    odd = [
        None,
        "",
        "abc",
        "123456789",
        "12345678931",
        "0000000000",
        "3234567893",
        " 1234567893",
        "1234567893 ",
        "12345-7893",
        "１２３４５６７８９３",
        "1.23456789",
    ]
    return valid + bad_check + transposed + odd + [n[1:] + n[0] for n in valid[:20]]


def test_ibis_expression_agrees_with_python():
    """npi_valid_expr, executed by DuckDB through ibis, gives the same answer as is_valid_npi
    for every value, including nulls (False)."""
    values = _mixed_values()
    assert len(values) >= 190
    table = ibis.memtable(
        {"i": list(range(len(values))), "npi": values}, schema={"i": "int64", "npi": "string"}
    )
    con = ibis.duckdb.connect()
    result = con.to_pyarrow(table.select("i", ok=npi_valid_expr(table.npi)).order_by("i"))
    got = result.column("ok").to_pylist()
    assert got == [is_valid_npi(v) for v in values]
    assert 0 < sum(got) < len(values)


def test_sql_expression_agrees_with_python():
    """npi_valid_sql, the form a compiled contract runs in DuckDB, gives the same answer as
    is_valid_npi for every value, including nulls (false)."""
    values = _mixed_values()
    con = duckdb.connect()
    con.execute("create table t (i integer, npi varchar)")
    con.executemany("insert into t values (?, ?)", list(enumerate(values)))
    got = [
        ok for (ok,) in con.execute(f"select {npi_valid_sql('npi')} from t order by i").fetchall()
    ]
    assert got == [is_valid_npi(v) for v in values]
    assert 0 < sum(got) < len(values)
