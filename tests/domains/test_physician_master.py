"""physician_master on tiny data, with a real Dagster instance: mastering, WAP, versions."""

import shutil

import dagster as dg
import duckdb
import pytest

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.status import port_status

pytestmark = pytest.mark.slow
DOMAIN = "physician_master"
PORTS = ("physicians", "physician_xref")


def _read(sql: str):
    con = lake.connect()
    try:
        lake.attach_own_lake(con, DOMAIN)
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_build_publishes_both_ports_with_metadata(mesh):
    """One run publishes physicians and physician_xref in one commit, with their metadata."""
    result = mesh.run_job(DOMAIN)
    assert result.success
    domain = discover_domains()[DOMAIN]
    statuses = [port_status(mesh.instance, domain, p) for p in ("physicians", "physician_xref")]
    assert {s.version for s in statuses} == {statuses[0].version} != {None}
    assert all(s.rows > 0 for s in statuses)
    # physicians: the contract and two warn rules on the match rate; xref: the contract
    assert [s.checks for s in statuses] == ["3/3", "1/1"]
    event = mesh.instance.get_latest_materialization_event(dg.AssetKey([DOMAIN, "physicians"]))
    meta = event.asset_materialization.metadata
    for key in ("port_version", "code_version", "input_port_versions", "crm_match_rate"):
        assert key in meta, key
    assert meta["crm_match_rate"].value > 0.8


def test_golden_records_cover_ama_and_unknown_prescribers(mesh):
    """Every AMA physician gets one golden record; unknown Rx prescribers become rx_only."""
    assert mesh.run_job(DOMAIN).success
    rows = dict(
        _read(
            "select record_source, count(*) from physician_master_lake.main.physicians group by 1"
        )
    )
    ama_rows = sum(1 for _ in mesh.landing_file("ama_physician").open()) - 1
    assert rows["ama"] == ama_rows
    assert rows.get("rx_only", 0) >= 1
    xref = dict(
        _read(
            "select match_method, count(*) from physician_master_lake.main.physician_xref "
            "where source_system = 'crm' group by 1"
        )
    )
    assert xref.get("npi", 0) > 0 and xref.get("name", 0) > 0


def test_rerun_publishes_a_new_version_with_identical_content_and_keeps_the_old(mesh):
    """Idempotent: the same inputs give the same content under a new, immutable version."""
    assert mesh.run_job(DOMAIN).success
    v1 = lake_version = _read("select max(snapshot_id) from physician_master_lake.snapshots()")[0][
        0
    ]
    assert mesh.run_job(DOMAIN).success
    v2 = _read("select max(snapshot_id) from physician_master_lake.snapshots()")[0][0]
    assert v2 > v1 == lake_version
    digest = (
        "select count(*), sum(hash(mesh_id, npi, status)) from "
        "physician_master_lake.main.physicians"
    )
    assert _read(f"{digest} at (version => {v1})") == _read(f"{digest} at (version => {v2})")
    stable = _read(
        f"select count(*) from (select * from physician_master_lake.main.physicians "
        f"at (version => {v1})) a join physician_master_lake.main.physicians b using (npi) "
        "where a.mesh_id <> b.mesh_id"
    )
    assert stable == [(0,)]


def _metadata(mesh, port: str = "physicians") -> dict:
    event = mesh.instance.get_latest_materialization_event(dg.AssetKey([DOMAIN, port]))
    return event.asset_materialization.metadata


def _reused(mesh) -> int | None:
    value = _metadata(mesh).get("crm_matches_reused_from_version")
    return None if value is None else value.value


def _files(port: str, version: int) -> list[str]:
    return sorted(
        f
        for (f,) in _read(
            f"select data_file from ducklake_list_files('physician_master_lake', '{port}', "
            f"snapshot_version => {version})"
        )
    )


def test_a_week_of_known_prescribers_keeps_the_served_rows_without_rewriting_them(mesh):
    """A new week of Rx that names no prescriber the master lacks cannot change a row: the new
    version records the new delivery and keeps the served rows (same data files, no staging,
    its contract verdict the served version's), and says so."""
    assert mesh.run_job(DOMAIN).success
    v1 = _read("select max(snapshot_id) from physician_master_lake.snapshots()")[0][0]
    rows = {p: _read(f"select * from physician_master_lake.main.{p} order by all") for p in PORTS}
    figures = {k: _metadata(mesh)[k].value for k in ("crm_accounts", "crm_match_rate")}
    week = mesh.landing_file("rx_weekly")  # the newest week again, re-dated: same prescribers
    new_week = week.parent.parent / "2026-11-07" / week.name
    new_week.parent.mkdir()
    lines = week.read_text().splitlines()
    column = lines[0].split(",").index("week_ending")
    redated = [
        ",".join(["2026-11-07" if i == column else v for i, v in enumerate(line.split(","))])
        for line in lines[1:]
    ]
    new_week.write_text("\n".join([lines[0], *redated]) + "\n")

    result = mesh.run_job(DOMAIN)
    assert result.success
    v2 = _read("select max(snapshot_id) from physician_master_lake.snapshots()")[0][0]
    assert v2 > v1
    for port in PORTS:
        meta = _metadata(mesh, port)
        assert meta["rows_kept_from_version"].value == v1
        assert meta["port_version"].value == v2 and meta["mesh/unchanged"].value is True
        assert meta["mesh/changed"].value == {"landing/rx_weekly": ["2026-11-01"]}
        assert _files(port, v2) == _files(port, v1)  # no data file written
        assert _read(f"select * from physician_master_lake.main.{port} order by all") == rows[port]
        served = lake.served_ports(DOMAIN)[port]
        assert (served.version, served.content_version) == (v2, v1)
    checks = [
        r.dagster_event.event_specific_data
        for r in mesh.instance.all_logs(
            result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    ]
    assert len(checks) >= 2 and {c.passed for c in checks} == {True}
    contracts = [c for c in checks if c.check_name == "contract"]
    assert all("unchanged: the rows of version" in c.description for c in contracts)
    info = _read(
        f"select commit_extra_info from physician_master_lake.snapshots() where snapshot_id = {v2}"
    )[0][0]
    assert '"2026-11-07"' in info  # the new delivery is recorded on the kept version

    assert {k: _metadata(mesh)[k].value for k in figures} == figures

    assert mesh.run_job(DOMAIN).success  # nothing new at all: kept again, from the same rows
    assert _metadata(mesh)["rows_kept_from_version"].value == v2

    # a corrected earlier week without the one prescriber only it named: a served prescriber
    # is gone, so every delivery is read again and the master is computed again, without them
    con = duckdb.connect()
    landing = mesh.paths.landing / "rx_weekly"
    gone, path = con.execute(
        f"select prescriber_npi, any_value(filename) from read_csv('{landing}/*/rx_weekly.csv', "
        "all_varchar = true, filename = true) group by 1 having count(distinct filename) = 1 "
        "order by 1 limit 1"
    ).fetchone()
    con.execute(
        f"copy (select * from read_csv('{path}', all_varchar = true) "
        f"where prescriber_npi <> '{gone}') to '{path}' (header)"
    )
    prescribers = con.execute(
        f"select count(distinct prescriber_npi) from read_csv('{landing}/*/rx_weekly.csv', "
        "all_varchar = true)"
    ).fetchone()[0]
    con.close()
    assert mesh.run_job(DOMAIN).success
    meta = _metadata(mesh, "physician_xref")
    assert "rows_kept_from_version" not in meta and "rows_added_to_version" not in meta
    rx_ids = "select source_id from physician_master_lake.main.physician_xref where source_system"
    assert _read(f"{rx_ids} = 'rx' and source_id = '{gone}'") == []
    assert _read(f"select count(*) from ({rx_ids} = 'rx')") == [(prescribers,)]


def test_crm_matches_are_reused_only_while_ama_and_crm_deliveries_are_unchanged(mesh):
    """A rebuild with the same AMA and CRM deliveries (a new week of Rx, say) reuses the served
    version's CRM matches and publishes exactly what matching again would; a new CRM delivery
    matches again."""
    assert mesh.run_job(DOMAIN).success
    assert _reused(mesh) is None  # nothing served before: matched
    v1 = _read("select max(snapshot_id) from physician_master_lake.snapshots()")[0][0]
    xref = "select * from physician_master_lake.main.physician_xref"
    physicians = "select * from physician_master_lake.main.physicians"
    matched = (_read(f"{xref} order by all"), _read(f"{physicians} order by all"))

    week = mesh.landing_file("rx_weekly")  # a new week: the newest, re-dated, one prescriber new
    new_week = week.parent.parent / "2026-11-07" / week.name
    new_week.parent.mkdir()
    lines = week.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("week_ending")] = "2026-11-07"
    row[header.index("prescriber_npi")] = "1234567893"  # a valid NPI the AMA file lacks
    new_week.write_text("\n".join([lines[0], ",".join(row)]) + "\n")
    assert mesh.run_job(DOMAIN).success
    assert _reused(mesh) == v1
    assert "rows_kept_from_version" not in _metadata(mesh)  # a new prescriber: added
    xref_reused = _read(f"{xref} order by all")
    assert [r for r in xref_reused if r[0] == "crm"] == [r for r in matched[0] if r[0] == "crm"]
    assert ("rx", "1234567893") in {r[:2] for r in xref_reused}
    assert _read(f"{physicians} where npi = '1234567893'")[0][10] == "rx_only"

    crm = mesh.landing_file("crm_accounts")  # a CRM account renamed: match again
    lines = crm.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("last_name")] = row[header.index("last_name")] + "x"
    crm.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    assert mesh.run_job(DOMAIN).success
    assert _reused(mesh) is None


def test_new_prescribers_are_added_to_the_served_rows_as_a_full_build_gives_them(mesh):
    """A week that adds prescribers (one the AMA file lacks, one AMA physician who never
    prescribed) adds their rows to the served ones, writing only those; a build from scratch
    on the same deliveries gives exactly the same rows."""
    assert mesh.run_job(DOMAIN).success
    v1 = _read("select max(snapshot_id) from physician_master_lake.snapshots()")[0][0]
    quiet = _read(
        "select npi from physician_master_lake.main.physicians where record_source = 'ama' "
        "and npi not in (select source_id from physician_master_lake.main.physician_xref "
        "where source_system = 'rx') order by npi limit 1"
    )[0][0]
    week = mesh.landing_file("rx_weekly")
    new_week = week.parent.parent / "2026-11-07" / week.name
    new_week.parent.mkdir()
    lines = week.read_text().splitlines()
    header = lines[0].split(",")
    rows = []
    for npi, line in zip(["1234567893", quiet], lines[1:3], strict=True):
        row = line.split(",")
        row[header.index("week_ending")] = "2026-11-07"
        row[header.index("prescriber_npi")] = npi
        rows.append(",".join(row))
    new_week.write_text("\n".join([lines[0], *rows]) + "\n")

    assert mesh.run_job(DOMAIN).success
    v2 = _read("select max(snapshot_id) from physician_master_lake.snapshots()")[0][0]
    meta = _metadata(mesh)
    assert meta["rows_added_to_version"].value == v1
    assert meta["prescribers_added"].value == 2
    assert meta["crm_matches_reused_from_version"].value == v1
    counts = {
        p: [
            _read(f"select count(*) from physician_master_lake.main.{p} at (version => {v})")[0][0]
            for v in (v1, v2)
        ]
        for p in PORTS
    }
    assert counts["physicians"][1] == counts["physicians"][0] + 1  # the one the AMA file lacks
    assert counts["physician_xref"][1] == counts["physician_xref"][0] + 2
    for port in PORTS:
        assert set(_files(port, v1)) < set(_files(port, v2))  # the served files stay
    added = {p: _read(f"select * from physician_master_lake.main.{p} order by all") for p in PORTS}

    shutil.rmtree(mesh.paths.lake_dir(DOMAIN))  # from scratch: nothing served, all computed
    mesh.paths.staging_db(DOMAIN).unlink()
    assert mesh.run_job(DOMAIN).success
    assert "rows_added_to_version" not in _metadata(mesh) and _reused(mesh) is None
    for port in PORTS:
        assert _read(f"select * from physician_master_lake.main.{port} order by all") == added[port]


def test_bad_delivery_fails_the_contract_and_keeps_the_published_version(mesh):
    """Duplicate NPIs and a null key block publish; the previous version is still served."""
    assert mesh.run_job(DOMAIN).success
    domain = discover_domains()[DOMAIN]
    before = port_status(mesh.instance, domain, "physicians").version
    ama = mesh.landing_file("ama_physician")
    lines = ama.read_text().splitlines()
    first = lines[1].split(",")
    nulled = lines[2].split(",")
    nulled[1] = ""
    ama.write_text(
        "\n".join([*lines, ",".join(["99999999999", *first[1:]]), ",".join(nulled)]) + "\n"
    )
    result = mesh.run_job(DOMAIN)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    for part in (
        "physician_master",
        "physicians",
        "ama_physician",
        str(ama.name),
        "'npi'",
        "unique",
        "not_null",
    ):
        assert part in message, part
    assert port_status(mesh.instance, domain, "physicians").version == before
    assert _read("select count(*) from physician_master_lake.main.physicians")[0][0] > 0
    assert (mesh.paths.quarantine / "ama_physician" / ama.parent.name / ama.name).exists()


def test_a_falling_match_rate_publishes_with_a_warning(mesh):
    """Warn-level rules don't block: a CRM delivery that matches worse still publishes, and the
    warn checks record the breach (severity WARN) for the domain query and the UI."""
    assert mesh.run_job(DOMAIN).success
    for crm in (mesh.paths.landing / "crm_accounts").glob("*/*.csv"):
        lines = crm.read_text().splitlines()
        header, rows = lines[0], [r.split(",") for r in lines[1:]]
        for row in rows[::2]:  # every other account: no NPI and an unrecognisable name
            row[1], row[3] = "", "Qqqqxz"
        crm.write_text("\n".join([header, *(",".join(r) for r in rows)]) + "\n")
    result = mesh.run_job(DOMAIN)
    assert result.success
    evaluations = {
        e.check_name: e
        for e in (
            r.dagster_event.event_specific_data
            for r in mesh.instance.all_logs(
                result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        )
    }
    falling = evaluations["crm_match_rate_not_falling"]
    assert not falling.passed and falling.severity == dg.AssetCheckSeverity.WARN
    assert "crm_match_rate went from" in falling.description
    assert evaluations["contract"].passed
