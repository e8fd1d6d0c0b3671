"""physician_master's CRM matching rules, on real DuckDB tables shaped like its build's.

The matcher scores each distinct pair of surnames meeting in a block once; these tests pin the
rules it must keep (NPI first when the names agree, else nickname-aware name match within the
state, best score then lowest mesh id) and check it against the row-by-row formulation on
generated accounts with typos, nicknames, blank and wrong NPIs.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import duckdb
import pytest

from mesh_domains.physician_master.assets import (
    NAME_MATCH_THRESHOLD,
    NICKNAMES,
    NPI_MATCHES,
    _match_accounts,
    _nickname_table,
)

# The name rule as first written: every CRM account against every golden record of its block
# (the NPI matches are the builder's own: that part was not changed).
ROW_BY_ROW = f"""
    with {NPI_MATCHES},
    candidates as (
        select c.crm_id, p.mesh_id, 'name' as match_method,
               jaro_winkler_similarity(lower(c.last_name), lower(p.last_name)) as match_score
        from crm_current c
        join main.physicians p on p.state = c.state and lower(p.first_name) = c.given_name
        where c.crm_id not in (select crm_id from npi_ok)
    ),
    by_name as (
        select * from candidates
        where match_score >= {NAME_MATCH_THRESHOLD}
        qualify row_number() over (partition by crm_id order by match_score desc, mesh_id) = 1
    )
    select * from npi_ok union all select * from by_name
"""


def _build(physicians: list[tuple], accounts: list[tuple]) -> SimpleNamespace:
    """A DuckDB connection holding ``main.physicians`` and ``crm_current`` as the builder
    stages them (given names resolved from nicknames)."""
    con = duckdb.connect()
    build = SimpleNamespace(con=con)
    _nickname_table(build)
    con.execute(
        "create table main.physicians (mesh_id varchar, npi varchar, first_name varchar, "
        "last_name varchar, state varchar, record_source varchar)"
    )
    con.executemany("insert into main.physicians values (?, ?, ?, ?, ?, ?)", physicians)
    con.execute(
        "create temp table crm_raw (crm_id varchar, npi varchar, first_name varchar, "
        "last_name varchar, state varchar)"
    )
    con.executemany("insert into crm_raw values (?, ?, ?, ?, ?)", accounts)
    con.execute("""
        create temp table crm_current as
        select r.*, coalesce(n.given_name, lower(r.first_name)) as given_name
        from crm_raw r left join nicknames n on n.nickname = lower(r.first_name)
    """)
    return build


def _matches(build: SimpleNamespace) -> dict[str, tuple]:
    _match_accounts(build)
    rows = build.con.execute("select * from crm_matches").fetchall()
    return {crm_id: (mesh_id, method, round(score, 6)) for crm_id, mesh_id, method, score in rows}


def test_the_matching_rules():
    physicians = [
        ("MP01", "1000000001", "William", "Anderson", "MA", "ama"),
        ("MP02", "1000000002", "Mary", "Johnson", "NY", "ama"),
        ("MP03", "1000000003", "Mary", "Johnston", "NY", "ama"),
        ("MP04", "1000000004", "James", "Smith", "CA", "ama"),
        ("MP05", "1000000005", "James", "Smith", "CA", "ama"),  # a namesake in the same state
        ("MP06", "1000000006", None, None, None, "rx_only"),
    ]
    accounts = [
        ("CRM1", "1000000001", "Bill", "Anderson", "MA"),  # NPI, names agree
        ("CRM2", "1000000002", "Mary", "Garcia", "NY"),  # NPI of someone else: by name, none
        ("CRM3", None, "Bill", "Andersen", "MA"),  # nickname and a typo, no NPI
        ("CRM4", None, "Mary", "Johnson", "NY"),  # exact beats the close Johnston
        ("CRM5", None, "James", "Smith", "CA"),  # two equal candidates: the lowest mesh id
        ("CRM6", None, "William", "Anderson", "TX"),  # another state: unmatched
        ("CRM7", "1000000006", "Ann", "Lee", "MA"),  # an rx-only NPI is not an NPI match
    ]
    got = _matches(_build(physicians, accounts))
    assert got["CRM1"][:2] == ("MP01", "npi")
    assert "CRM2" not in got and "CRM6" not in got and "CRM7" not in got
    assert got["CRM3"][:2] == ("MP01", "name") and got["CRM3"][2] >= NAME_MATCH_THRESHOLD
    assert got["CRM4"] == ("MP02", "name", 1.0)
    assert got["CRM5"] == ("MP04", "name", 1.0)


@pytest.mark.parametrize("seed", [1, 2])
def test_scoring_surname_pairs_once_matches_row_by_row(seed):
    """On generated accounts (nicknames, typos, blank and wrong NPIs, namesakes), the matcher
    and the row-by-row rule pick the same golden record with the same score for every
    account."""
    rng = random.Random(seed)
    firsts = ["william", "mary", "james", "elizabeth", "robert", "katherine"]
    lasts = ["anderson", "johnson", "johnston", "smith", "smyth", "garcia", "nguyen", "lee"]
    states = ["MA", "NY", "CA"]
    nick_of = {v: k for k, v in NICKNAMES.items()}
    physicians = []
    for i in range(400):
        physicians.append(
            (
                f"MP{i:04d}",
                f"{2000000000 + i}",
                rng.choice(firsts).title(),
                rng.choice(lasts).title(),
                rng.choice(states),
                "ama",
            )
        )
    accounts = []
    for i in range(600):
        _, npi, first, last, state, _ = rng.choice(physicians)
        if rng.random() < 0.3:
            first = nick_of.get(first.lower(), first)
        if rng.random() < 0.2 and len(last) > 3:  # drop a letter
            j = rng.randrange(1, len(last) - 1)
            last = last[:j] + last[j + 1 :]
        if rng.random() < 0.3:
            npi = None
        elif rng.random() < 0.1:
            npi = rng.choice(physicians)[1]  # someone else's NPI
        if rng.random() < 0.05:
            state = rng.choice(states)
        accounts.append((f"CRM{i:04d}", npi, first, last, state))
    build = _build(physicians, accounts)
    got = _matches(build)
    rows = build.con.execute(ROW_BY_ROW).fetchall()
    expected = {c: (m, method, round(s, 6)) for c, m, method, s in rows}
    assert sum(1 for v in expected.values() if v[1] == "name") > 100  # the name rule is used
    assert got == expected
