"""payer_master (dbt) on tiny data: payers, plans with the newest month's values, and the
formulary history (SCD2) over every monthly formulary file, each port contract-checked before
publish.

One tiny mesh is built once for the module; the first tests read its published ports. The
last two deliver further months: one with a few changed listings (a new row only for those),
then one with a bad tier (kept aside, nothing published).
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
from mesh_harness import Mesh, _make_mesh

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.status import port_status

pytestmark = pytest.mark.slow

DOMAIN = "payer_master"
PORTS = ("payers", "plans", "formulary_history")
LISTED = ("coverage", "tier", "prior_auth", "step_therapy", "quantity_limit")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[tuple[Mesh, dg.ExecuteInProcessResult]]:
    """A tiny mesh with the payer master built once (it reads only the landing zone)."""
    for mesh in _make_mesh(tmp_path_factory.mktemp("payer_master")):
        result = mesh.run_job(DOMAIN)
        assert result.success
        yield mesh, result


def _read(sql: str) -> list[tuple]:
    """Query the served ports as a granted consumer (payer_dw) sees them; ``{lake}`` in
    ``sql`` names the payer master's lake."""
    con = lake.connect()
    try:
        alias = lake.attach_port_reader(con, "payer_dw", discover_domains()[DOMAIN], list(PORTS))
        return con.execute(sql.format(lake=f"{alias}.main")).fetchall()
    finally:
        con.close()


def _files(mesh: Mesh) -> dict[str, list[dict]]:
    """Every formulary file: month folder -> rows, oldest first."""
    root = mesh.paths.landing / "formulary"
    return {
        part.name: list(csv.DictReader((part / "formulary.csv").open()))
        for part in sorted(p for p in root.iterdir() if p.is_dir())
    }


def _listed(row: dict) -> tuple:
    """A CSV row's listed values as the port types them."""
    return (
        row["coverage"],
        int(row["tier"]) if row["tier"] else None,
        *(row[c] == "true" for c in LISTED[2:]),
    )


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _versions(mesh: Mesh) -> dict[str, int | None]:
    domain = discover_domains()[DOMAIN]
    return {p: port_status(mesh.instance, domain, p).version for p in PORTS}


def _history() -> dict[tuple[str, str], list[tuple]]:
    """The served formulary history: (plan, product) -> rows, oldest first."""
    rows = _read(
        "select plan_id, product, coverage, tier, prior_auth, step_therapy, quantity_limit, "
        "valid_from, valid_to, is_current from {lake}.formulary_history "
        "order by plan_id, product, valid_from"
    )
    history: dict[tuple[str, str], list[tuple]] = {}
    for row in rows:
        history.setdefault((row[0], row[1]), []).append(row)
    return history


def _assert_history_matches(files: dict[str, list[dict]]) -> dict[tuple[str, str], list[tuple]]:
    """The served history against the files themselves: one row per run of unchanged listed
    values of a plan and product (counted here from the CSVs), rows that follow each other
    without gap or overlap, and exactly one current row per listing of the newest file,
    holding that file's values."""
    by_listing: dict[tuple[str, str], list[tuple]] = {}
    for rows in files.values():
        for r in rows:
            by_listing.setdefault((r["plan_id"], r["product"]), []).append(_listed(r))
    expected_rows = {
        k: 1 + sum(a != b for a, b in zip(v, v[1:], strict=False)) for k, v in by_listing.items()
    }
    history = _history()
    assert {k: len(rows) for k, rows in history.items()} == expected_rows
    newest = {(r["plan_id"], r["product"]): _listed(r) for r in list(files.values())[-1]}
    for key, rows in history.items():
        current = [r for r in rows if r[9]]
        assert len(current) == 1 and current[0] is rows[-1] and rows[-1][8] is None
        assert tuple(rows[-1][2:7]) == newest[key]
        for row, following in zip(rows, rows[1:], strict=False):
            assert row[8] + timedelta(days=1) == following[7]
    return history


def test_every_port_passes_its_contract_and_dbt_tests(built):
    """All three ports publish in one run: the pandera contract and every dbt data test (the
    one-current-row rule and the plan/payer relationships among them) pass as asset checks."""
    mesh, result = built
    records = mesh.instance.all_logs(
        result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    )
    evaluations = [r.dagster_event.event_specific_data for r in records]
    names = {(e.asset_key.path[-1], e.check_name) for e in evaluations}
    for port in PORTS:
        assert (port, "contract") in names
    assert ("formulary_history", "one_current_listing_per_plan_and_product") in names
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]
    versions = set(_versions(mesh).values())
    assert len(versions) == 1 and None not in versions, "published together, in one commit"


def test_payers_and_plans_match_the_newest_file(built):
    """One row per payer and per plan of the files; a plan's covered lives, channel and name
    are those of the newest month (covered lives drift month to month)."""
    mesh, _ = built
    files = _files(mesh)
    assert len(files) >= 2, "the tiny landing zone holds at least two months"
    newest = list(files.values())[-1]
    payers = dict(_read("select payer_id, payer_name from {lake}.payers"))
    assert payers == {r["payer_id"]: r["payer_name"] for r in newest}
    plans = _read("select plan_id, payer_id, plan_name, channel, covered_lives from {lake}.plans")
    expected = {
        r["plan_id"]: (r["payer_id"], r["plan_name"], r["channel"], int(r["covered_lives"]))
        for r in newest
    }
    assert {p[0]: tuple(p[1:]) for p in plans} == expected


def test_formulary_history_holds_the_real_files(built):
    """The history built from the tiny landing zone's months is exactly the files' runs of
    unchanged listings, with one current row per plan and product."""
    mesh, _ = built
    files = _files(mesh)
    history = _assert_history_matches(files)
    assert len(history) == len(list(files.values())[-1])
    first = date.fromisoformat(next(iter(files.values()))[0]["effective_date"])
    assert min(rows[0][7] for rows in history.values()) == first


def test_a_changed_listing_opens_a_row_and_drifting_lives_do_not(built):
    """A new month in which every plan's covered lives drift and two listings change (a tier,
    a prior authorisation): exactly those two get a new current row from the month's first
    day, their old rows end the day before; plans take the new covered lives."""
    mesh, _ = built
    before = _history()
    newest = list(_files(mesh).values())[-1]
    month = date.fromisoformat(newest[0]["effective_date"]).replace(day=28) + timedelta(days=4)
    month = month.replace(day=1)
    rows = [dict(r, effective_date=month.isoformat()) for r in newest]
    for r in rows:
        r["covered_lives"] = str(int(r["covered_lives"]) + 7)
    tiered = next(r for r in rows if r["tier"])
    tiered["tier"] = str(int(tiered["tier"]) % 5 + 1)
    flipped = next(r for r in rows if r is not tiered)
    flipped["prior_auth"] = "false" if flipped["prior_auth"] == "true" else "true"
    _write(mesh.paths.landing / "formulary" / month.strftime("%Y-%m") / "formulary.csv", rows)

    assert mesh.run_job(DOMAIN).success
    history = _assert_history_matches(_files(mesh))
    changed = {(r["plan_id"], r["product"]) for r in (tiered, flipped)}
    for key, listing in history.items():
        if key in changed:
            assert listing[:-2] == before[key][:-1]
            assert listing[-2][:8] == before[key][-1][:8]
            assert listing[-2][8] == month - timedelta(days=1) and not listing[-2][9]
            assert listing[-1][7] == month and listing[-1][9]
        else:
            assert listing == before[key]
    lives = dict(_read("select plan_id, covered_lives from {lake}.plans"))
    assert lives == {r["plan_id"]: int(r["covered_lives"]) for r in rows}


def test_a_bad_tier_is_kept_aside_and_the_last_good_version_stays_served(built):
    """A formulary file with a tier outside 1..5 fails the build before publish, naming the
    source, file, column and rule; it is quarantined, and every port stays at the version
    served before (the history is unchanged)."""
    mesh, _ = built
    before, history = _versions(mesh), _history()
    newest = list(_files(mesh).values())[-1]
    month = date.fromisoformat(newest[0]["effective_date"]) + timedelta(days=31)
    month = month.replace(day=1)
    rows = [dict(r, effective_date=month.isoformat()) for r in newest]
    next(r for r in rows if r["tier"])["tier"] = "7"
    bad = _write(mesh.paths.landing / "formulary" / month.strftime("%Y-%m") / "formulary.csv", rows)
    try:
        result = mesh.run_job(DOMAIN)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        message = failure.step_failure_data.error.to_string()
        for part in ("source 'formulary'", str(bad), "column 'tier'", "less_than_or_equal_to(5)"):
            assert part in message, f"{part!r} missing from:\n{message}"
        assert "Nothing was published" in message
        assert (mesh.paths.quarantine / "formulary" / bad.parent.name / bad.name).is_file()
        assert _versions(mesh) == before
        assert _history() == history
    finally:
        shutil.rmtree(bad.parent)
