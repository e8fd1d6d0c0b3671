"""payer_dw (dbt) on tiny data: one real build of its upstream domains and of payer_dw (the test
session's), shared by read-only tests of its contracts and of its business rules on real data."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator

import dagster as dg
import pytest
from mesh_harness import Mesh, built_copy

from mesh_domains.platform import lake
from mesh_domains.platform.dbt import DBT_PROJECTS, read_ports
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.status import port_status

pytestmark = pytest.mark.slow
DOMAIN = "payer_dw"
PORTS = ("dim_plan", "dim_physician", "fact_claims", "gross_to_net", "plan_access")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[Mesh]:
    """A tiny mesh with payer_dw and the domains it reads built once (a copy of the test
    session's build of every domain)."""
    yield from built_copy(tmp_path_factory, DOMAIN)


def _query(sql: str, *readers: str) -> list[tuple]:
    """``sql`` over payer_dw's lake (``payer_dw_lake``) and, through payer_dw's grants, the
    lakes of ``readers`` (``<producer>_lake``)."""
    domains = discover_domains()
    con = lake.connect()
    try:
        lake.attach_own_lake(con, DOMAIN)
        for producer in readers:
            ports = [p.name for p in domains[producer].output_ports if DOMAIN in p.grants]
            lake.attach_port_reader(con, DOMAIN, domains[producer], ports)
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _landing_rows(mesh: Mesh, source: str) -> list[dict]:
    rows = []
    for part in sorted((mesh.paths.landing / source).iterdir()):
        with (part / f"{source}.csv").open(newline="") as fh:
            rows += list(csv.DictReader(fh))
    return rows


def test_every_port_is_published_after_its_checks_pass(built):
    """Each port is published with every check passed (pandera contract and dbt tests) and
    the input port versions it read recorded; the unit tests of the business rules belong to
    the ports whose build runs them."""
    domain = discover_domains()[DOMAIN]
    for port in PORTS:
        status = port_status(built.instance, domain, port)
        assert status.state == "published" and status.rows > 0, port
        assert status.checks_passed == status.checks_total >= 1, (port, status.checks)
        assert set(status.input_versions) == {f"{r.domain}/{r.port}" for r in domain.input_ports}
    run_ids = {port_status(built.instance, domain, p).run_id for p in PORTS}
    checks = [
        e.dagster_event.event_specific_data
        for run_id in run_ids
        for e in built.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ]
    contracts = {c.asset_key.path[-1] for c in checks if c.check_name == "contract" and c.passed}
    assert contracts == set(PORTS)
    names = {(c.asset_key.path[-1], c.check_name) for c in checks}
    assert ("fact_claims", "fact_claims_reversals_cancel_their_original") in names
    assert ("gross_to_net", "gross_to_net_net_is_gross_less_rebates_less_assistance") in names
    assert all(c.passed for c in checks)
    manifest = json.loads((DBT_PROJECTS / DOMAIN / "target" / "manifest.json").read_text())
    units = read_ports(domain, manifest).unit_tests
    assert "a_reversal_and_its_original_net_to_zero" in units["fact_claims"]
    assert len(units["gross_to_net"]) == 2 and len(units["plan_access"]) == 1


def test_claims_reconcile_with_the_landing_claims(built):
    """fact_claims holds every landing claim once, with its status: counts by status agree."""
    landing = Counter(r["status"] for r in _landing_rows(built, "claims"))
    published = dict(
        _query("select status, count(*) from payer_dw_lake.main.fact_claims group by 1")
    )
    assert published == dict(landing)
    assert set(landing) == {"paid", "rejected", "reversed"}


def test_every_reversal_nets_to_zero_against_its_original(built):
    """On the real data each reversal finds its paid original, and the two sum to zero on
    quantity, gross, co-pay and co-pay assistance."""
    rows = _query(
        """
        select
            count(*),
            count(original.claim_id),
            count(*) filter (where original.status = 'paid'),
            max(abs(reversal.signed_quantity + original.signed_quantity)),
            max(abs(reversal.gross_amount + original.gross_amount)),
            max(abs(reversal.copay + original.copay)),
            max(abs(reversal.copay_assist + original.copay_assist)),
            min(original.gross_amount)
        from payer_dw_lake.main.fact_claims as reversal
        left join payer_dw_lake.main.fact_claims as original
            on original.claim_id = reversal.reversal_of
        where reversal.status = 'reversed'
        """
    )
    reversals, found, paid, *residues, smallest_gross = rows[0]
    assert reversals > 0
    assert found == paid == reversals
    assert residues == [0, 0.0, 0.0, 0.0]
    assert smallest_gross > 0


def test_gross_to_net_identity_holds_to_the_cent(built):
    """net = gross - rebates - co-pay assistance on every row, all in whole cents; and the
    weekly gross sales add up to the claims' gross, rebates being earned on the real data."""
    bad, rows, rebated = _query(
        """
        select
            count(*) filter (where round((gross_sales - rebates - copay_assistance) * 100)
                <> round(net_sales * 100)
                or abs(net_sales * 100 - round(net_sales * 100)) > 1e-6
                or abs(rebates * 100 - round(rebates * 100)) > 1e-6),
            count(*),
            count(*) filter (where rebates > 0)
        from payer_dw_lake.main.gross_to_net
        """
    )[0]
    assert rows > 0 and rebated > 0 and bad == 0
    weekly, claims = _query(
        """
        select
            (select sum(gross_sales) from payer_dw_lake.main.gross_to_net),
            (select sum(gross_amount) from payer_dw_lake.main.fact_claims)
        """
    )[0]
    assert abs(weekly - claims) < 0.005


def test_dim_physician_agrees_with_the_physician_master(built):
    """Every physician of dim_physician is a golden record of physician_master/physicians,
    with the same NPI, name, specialty and state; and the claims' physicians are among them."""
    disagree, held, master = _query(
        """
        select
            count(*) filter (where m.mesh_id is null
                or d.npi is distinct from m.npi
                or d.state is distinct from m.state
                or d.specialty is distinct from coalesce(m.specialty, 'Unknown')
                or d.physician_name is distinct from
                    coalesce(m.first_name || ' ' || m.last_name, 'Unknown prescriber ' || m.npi)),
            count(*),
            (select count(*) from physician_master_lake.main.physicians)
        from payer_dw_lake.main.dim_physician as d
        left join physician_master_lake.main.physicians as m on m.mesh_id = d.physician_id
        """,
        "physician_master",
    )[0]
    assert held > 0 and disagree == 0
    assert held == master
    orphans = _query(
        "select count(*) from payer_dw_lake.main.fact_claims f "
        "left join payer_dw_lake.main.dim_physician d using (physician_id) "
        "where f.physician_id is not null and d.physician_id is null"
    )
    assert orphans == [(0,)]
