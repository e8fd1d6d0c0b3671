"""reference (dbt) on tiny data: products from the newest product master release, a calendar
with Saturday week endings, the geography and the territory alignment historised over the
quarterly alignment files, each port contract-checked before publish.

One tiny mesh is built once for the module; the tests read its published ports. The last
test delivers a bad release and proves that nothing is published.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
import pytest
from mesh_harness import Mesh, _make_mesh

from mesh_domains.platform import dbt as platform_dbt
from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.lake import PortAccessError
from mesh_domains.platform.ports import code_version
from mesh_domains.platform.status import port_status
from mesh_domains.platform.versioning import folder_hash

pytestmark = pytest.mark.slow

DOMAIN = "reference"
PORTS = ("products", "calendar", "geography", "territory_alignment")
ALIGNED = ("territory", "district", "region", "rep_id", "rep_name")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[tuple[Mesh, dg.ExecuteInProcessResult]]:
    """A tiny mesh with the reference domain built once (it reads only the landing zone)."""
    for mesh in _make_mesh(tmp_path_factory.mktemp("reference")):
        result = mesh.run_job(DOMAIN)
        assert result.success
        yield mesh, result


def _read(mesh: Mesh, sql: str) -> list[tuple]:
    """Query the served ports as a granted consumer (brand_analytics) sees them; ``{lake}``
    in ``sql`` names the reference lake."""
    con = lake.connect()
    try:
        alias = lake.attach_port_reader(
            con, "brand_analytics", discover_domains()[DOMAIN], list(PORTS)
        )
        return con.execute(sql.format(lake=f"{alias}.main")).fetchall()
    finally:
        con.close()


def _landing_rows(mesh: Mesh, source: str) -> dict[str, list[dict]]:
    """Every delivery of a landing source: partition folder -> rows, oldest first."""
    root = mesh.paths.landing / source
    return {
        part.name: list(csv.DictReader((part / f"{source}.csv").open()))
        for part in sorted(p for p in root.iterdir() if p.is_dir())
    }


def test_every_port_passes_its_contract_and_dbt_tests(built):
    """All four ports publish in one run: the pandera contract and every dbt data test (the
    one-current-row rule among them) pass as asset checks."""
    mesh, result = built
    records = mesh.instance.all_logs(
        result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    )
    evaluations = [r.dagster_event.event_specific_data for r in records]
    names = {(e.asset_key.path[-1], e.check_name) for e in evaluations}
    for port in PORTS:
        assert (port, "contract") in names
    assert ("territory_alignment", "one_current_alignment_per_zip3") in names
    assert ("calendar", "unique_calendar_day") in names
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]
    domain = discover_domains()[DOMAIN]
    versions = {port_status(mesh.instance, domain, p).version for p in PORTS}
    assert len(versions) == 1 and None not in versions, "published together, in one commit"


def test_products_are_the_newest_release(built):
    """products holds exactly the NDCs of the newest product master release."""
    mesh, _ = built
    newest = list(_landing_rows(mesh, "product_master").values())[-1]
    rows = _read(mesh, "select ndc, wac_unit_price, own_brand from {lake}.products order by ndc")
    assert [r[0] for r in rows] == sorted(r["ndc"] for r in newest)
    landed = {r["ndc"]: float(r["wac_unit_price"]) for r in newest}
    assert all(landed[ndc] == price for ndc, price, _ in rows)
    assert {own for *_, own in rows} == {True, False}


def test_calendar_weeks_end_on_saturday(built):
    """Every day from 2025-01-01 to 2027-12-31, each with the Saturday ending its week."""
    mesh, _ = built
    rows = _read(mesh, "select day, week_ending, month, quarter, year from {lake}.calendar")
    days = sorted(r[0] for r in rows)
    assert days[0] == date(2025, 1, 1) and days[-1] == date(2027, 12, 31)
    assert len(days) == (days[-1] - days[0]).days + 1 == 1095
    for day, week_ending, month, quarter, year in rows:
        assert week_ending.weekday() == 5 and 0 <= (week_ending - day).days <= 6
        assert month == day.strftime("%Y-%m") and year == day.year
        assert quarter == f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def test_geography_is_the_newest_alignment(built):
    """One row per zip3 of the newest alignment file, with its state."""
    mesh, _ = built
    newest = list(_landing_rows(mesh, "alignment").values())[-1]
    rows = _read(mesh, "select zip3, state from {lake}.geography")
    assert dict(rows) == {r["zip3"]: r["state"] for r in newest}


def test_territory_alignment_is_a_valid_history_of_the_files(built):
    """On the real files: a zip3 has a row per run of unchanged alignment (the expected runs
    are counted here from the CSVs), rows follow each other without gap or overlap, and
    exactly one row per zip3 is current, with the newest file's values."""
    mesh, _ = built
    files = _landing_rows(mesh, "alignment")
    assert len(files) >= 2, "the tiny landing zone holds at least two quarters"
    by_zip3: dict[str, list[tuple]] = {}
    for rows in files.values():
        for r in rows:
            by_zip3.setdefault(r["zip3"], []).append(tuple(r[c] or None for c in ALIGNED))
    expected_rows = {
        z: 1 + sum(a != b for a, b in zip(values, values[1:], strict=False))
        for z, values in by_zip3.items()
    }
    history = _read(
        mesh,
        "select zip3, territory, district, region, rep_id, rep_name, effective_from, "
        "effective_to, is_current from {lake}.territory_alignment order by zip3, effective_from",
    )
    got: dict[str, list[tuple]] = {}
    for row in history:
        got.setdefault(row[0], []).append(row)
    assert {z: len(rows) for z, rows in got.items()} == expected_rows
    assert sum(expected_rows.values()) > len(expected_rows), "some zip3s changed"
    newest = {r["zip3"]: tuple(r[c] or None for c in ALIGNED) for r in list(files.values())[-1]}
    for zip3, rows in got.items():
        last = rows[-1]
        assert last[8] and last[7] is None and tuple(last[1:6]) == newest[zip3]
        for row, following in zip(rows, rows[1:], strict=False):
            assert not row[8] and row[7] + timedelta(days=1) == following[6]


def test_grants_follow_the_port_interfaces(built):
    """geography is readable by every domain; territory_alignment only by its grantees."""
    mesh, _ = built
    domain = discover_domains()[DOMAIN]
    con = lake.connect()
    try:
        lake.attach_port_reader(con, "npp", domain, ["geography", "calendar"])
        with pytest.raises(PortAccessError, match="territory_alignment"):
            lake.attach_port_reader(con, "npp", domain, ["territory_alignment"])
    finally:
        con.close()


def test_a_bad_release_is_kept_aside_and_the_last_products_stay_served(built):
    """A new product master release with a non-positive price fails the build before
    publish, naming the source, file, column and rule; it is quarantined, and the served
    version of every port stays the last good one."""
    mesh, _ = built
    domain = discover_domains()[DOMAIN]
    before = {p: port_status(mesh.instance, domain, p).version for p in PORTS}
    good = mesh.landing_file("product_master")
    bad = mesh.paths.landing / "product_master" / "2026-11-02" / "product_master.csv"
    bad.parent.mkdir()
    rows = list(csv.DictReader(good.open()))
    rows[0]["wac_unit_price"] = "0"
    with bad.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    try:
        result = mesh.run_job(DOMAIN)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        message = failure.step_failure_data.error.to_string()
        for part in ("source 'product_master'", str(bad), "column 'wac_unit_price'", "Nothing"):
            assert part in message, f"{part!r} missing from:\n{message}"
        assert (mesh.paths.quarantine / "product_master" / "2026-11-02" / bad.name).is_file()
        assert {p: port_status(mesh.instance, domain, p).version for p in PORTS} == before
        assert _read(mesh, "select count(*) from {lake}.products") == [(len(rows),)]
    finally:
        shutil.rmtree(bad.parent)


def _dbt_messages(mesh: Mesh, run_id: str) -> list[str]:
    """What the run logged about the dbt build it started (its selection) and skipped."""
    return [
        e.user_message
        for e in mesh.instance.all_logs(run_id)
        if "dbt build --select" in e.user_message or "not run again" in e.user_message
    ]


def test_dbt_unit_tests_run_once_per_code_version_and_a_failing_one_publishes_nothing(
    built, tmp_path, monkeypatch
):
    """The project's dbt unit tests run with the first build of a code version: one that
    fails stops the build before publish and leaves no verdict; once they pass, later builds
    of the same code skip them (and say so), and the ports still pass every check."""
    mesh, _ = built
    domain = discover_domains()[DOMAIN]
    projects = tmp_path / "dbt_projects"  # a copy of the project: a code version of its own
    shutil.copytree(
        platform_dbt.DBT_PROJECTS / DOMAIN,
        projects / DOMAIN,
        ignore=shutil.ignore_patterns("target", "logs"),
    )
    macros = tmp_path / "mesh_domains" / "platform" / "dbt_macros"  # where its macro path goes
    macros.parent.mkdir(parents=True)
    macros.symlink_to(platform_dbt.DBT_MACROS, target_is_directory=True)
    monkeypatch.setattr(platform_dbt, "DBT_PROJECTS", projects)
    spec = projects / DOMAIN / "models" / "marts" / "_marts.yml"
    good = spec.read_text()
    wrong = good.replace(
        "{day: 2027-01-03, week_ending: 2027-01-09", "{day: 2027-01-03, week_ending: 2027-01-10"
    )
    assert wrong != good
    before = {p: port_status(mesh.instance, domain, p).version for p in PORTS}

    def build() -> tuple[dg.ExecuteInProcessResult, platform_dbt.UnitTestVerdicts]:
        project = projects / DOMAIN
        folder_hash.cache_clear()  # the code changed under this process: hash it again
        verdicts = platform_dbt.UnitTestVerdicts(
            project, code_version(domain, project, platform_dbt.DBT_MACROS)
        )
        assets = platform_dbt.dbt_domain_assets(domain)
        return dg.materialize(assets, instance=mesh.instance, raise_on_error=False), verdicts

    spec.write_text(wrong)
    failed, verdicts = build()
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.to_string()
    assert "calendar_week_ending_is_the_saturday_ending_the_week" in message, message
    assert "nothing was published" in message
    assert {p: port_status(mesh.instance, domain, p).version for p in PORTS} == before
    units = ["unit_test:calendar_week_ending_is_the_saturday_ending_the_week"]
    assert not verdicts.passed(units)

    spec.write_text(good)
    first, verdicts = build()
    assert first.success
    (selection,) = _dbt_messages(mesh, first.run_id)
    assert "unit_test:calendar_week_ending_is_the_saturday_ending_the_week" in selection
    assert "unit_test:products_come_from_the_newest_release" in selection
    assert verdicts.passed([*units, "unit_test:products_come_from_the_newest_release"])

    again, _ = build()
    assert again.success
    skipped, selection = _dbt_messages(mesh, again.run_id)
    assert "not run again (" in skipped and "unit_test:" not in selection
    checks = again.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    after = {p: port_status(mesh.instance, domain, p).version for p in PORTS}
    assert all(after[p] > before[p] for p in PORTS)
