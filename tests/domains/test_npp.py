"""npp (dbt) on tiny data: one build from the landing deliveries, shared by the module's tests.

The ports reconcile with the NPP engagement files they were built from, every check passes
before publish, and a new day of deliveries publishes exactly that day of the daily port.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest
from mesh_harness import _make_mesh

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains

pytestmark = pytest.mark.slow
DOMAIN = "npp"
SOURCE = "npp_engagement"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny mesh with npp built once (it reads only the landing zone), and that run."""
    for mesh in _make_mesh(tmp_path_factory.mktemp("npp")):
        result = mesh.run_job(DOMAIN)
        assert result.success
        yield mesh, result


def served(sql: str, *ports: str) -> list[tuple]:
    """``sql`` over npp's ports as served now (each port a view named after it)."""
    con = lake.connect()
    try:
        domain = discover_domains()[DOMAIN]
        for port in ports:
            lake.open_port(con, DOMAIN, domain, port, view=port)
        return con.execute(sql).fetchall()
    finally:
        con.close()


def landing(mesh, sql: str) -> list[tuple]:
    """``sql`` over every delivered npp_engagement file, as the view ``landing``."""
    con = duckdb.connect()
    try:
        files = str(mesh.paths.landing / SOURCE / "*" / f"{SOURCE}.csv")
        con.execute(
            f"create view landing as select * from read_csv('{files}', header = true, "
            "types = {'recipient_hash': 'varchar', 'spend': 'double'})"
        )
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_every_check_passes_before_publish(built):
    """Both ports pass their pandera contract, and the mix the dbt test of the spend-share
    rule, in the build that published them."""
    mesh, result = built
    records = mesh.instance.all_logs(
        result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    )
    evaluations = [r.dagster_event.event_specific_data for r in records]
    names = {(e.asset_key.path[-1], e.check_name) for e in evaluations}
    assert {
        ("engagement_daily", "contract"),
        ("channel_mix", "contract"),
        ("channel_mix", "channel_mix_spend_shares_sum_to_one"),
    } <= names
    assert all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]


def test_daily_engagement_reconciles_with_the_landing_files(built):
    """Per day, campaign and channel: the volumes and spend are the landing rows' sums and
    recipients the distinct non-blank hashes (none for radio)."""
    mesh, _ = built
    expected = landing(
        mesh,
        "select activity_date, campaign_id, channel, count(distinct recipient_hash), "
        "sum(sends), sum(opens), sum(clicks), sum(visits), round(sum(spend), 2) "
        "from landing group by all order by all",
    )
    actual = served(
        "select activity_date, campaign_id, channel, recipients, sends, opens, clicks, visits, "
        "spend from engagement_daily order by all",
        "engagement_daily",
    )
    assert len(actual) >= 3 and actual == expected
    radio = served(
        "select max(recipients) from engagement_daily where channel = 'radio'", "engagement_daily"
    )
    assert radio == [(0,)]


def test_channel_mix_reconciles_and_splits_each_products_spend(built):
    """Per product and channel the mix sums the landing rows; a product's spend shares sum to
    1 and the click rate is clicks per open, within 0..1 (null without opens)."""
    mesh, _ = built
    expected = landing(
        mesh,
        "select product, channel, sum(sends), sum(opens), sum(clicks), sum(visits), "
        "round(sum(spend), 2) from landing group by all order by all",
    )
    actual = served(
        "select product, channel, sends, opens, clicks, visits, spend from channel_mix "
        "order by all",
        "channel_mix",
    )
    assert actual == expected
    shares = served(
        "select product, sum(spend_share) from channel_mix group by 1 order by 1", "channel_mix"
    )
    assert shares and all(abs(total - 1) < 1e-9 for _, total in shares)
    rates = served(
        "select channel, click_rate, clicks::double / nullif(opens, 0) from channel_mix",
        "channel_mix",
    )
    assert any(rate is not None for _, rate, _ in rates)
    assert all(rate == want and (rate is None or 0 <= rate <= 1) for _, rate, want in rates)


def _days_served() -> dict[str, tuple]:
    """engagement_daily as served: an order-free digest of each day's rows."""
    rows = served(
        "select activity_date::varchar, count(*), sum(hash(campaign_id, channel, recipients, "
        "sends, opens, clicks, visits, spend)) from engagement_daily group by 1 order by 1",
        "engagement_daily",
    )
    return {day: (n, digest) for day, n, digest in rows}


def test_a_new_day_publishes_only_that_days_partition(built):
    """A new day's delivery, built for that day only, replaces exactly that partition: every
    earlier day is served as it was, and the unpartitioned mix is rebuilt over all days."""
    mesh, _ = built
    before = _days_served()
    newest = max(before)
    new_day = (date.fromisoformat(newest) + timedelta(days=1)).isoformat()
    target = mesh.paths.landing / SOURCE / new_day / f"{SOURCE}.csv"
    target.parent.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        f"copy (select * replace (date '{new_day}' as activity_date) "
        f"from read_csv('{mesh.landing_file(SOURCE, newest)}', all_varchar = true)) "
        f"to '{target}' (header, delimiter ',')"
    )
    con.close()
    day = date.fromisoformat(new_day)
    result = mesh.run_job(DOMAIN, window=(day, day))
    assert result.success
    published = {}
    for record in mesh.instance.all_logs(
        result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ):
        m = record.dagster_event.event_specific_data.materialization
        published[m.asset_key.path[-1]] = m.partition
    assert published == {"engagement_daily": new_day, "channel_mix": None}
    after = _days_served()
    assert set(after) == set(before) | {new_day}
    assert {d: after[d] for d in before} == before
    assert after[new_day][0] == before[newest][0]  # the same rows, re-dated
    mix = served("select sum(sends) from channel_mix", "channel_mix")
    assert mix == served("select sum(sends) from engagement_daily", "engagement_daily")
