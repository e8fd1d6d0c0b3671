"""DuckLake storage: atomic publish, immutable versions, read-only grants — with the lakes'
catalogs in SQLite files (the embedded default) and in a real PostgreSQL database."""

import itertools

import duckdb
import pytest
from scale_out_harness import postgres_server

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains

_databases = itertools.count()


@pytest.fixture(scope="module")
def postgres():
    with postgres_server(database=None) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def data_dir(request, tmp_path, monkeypatch):
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path))
    if request.param == "postgres":  # a database of its own per test
        server = request.getfixturevalue("postgres")
        url = server.create_database(f"lakes_{next(_databases)}")
        monkeypatch.setenv("MESH_LAKE_CATALOG", url)
    return tmp_path


def _publish(n: int) -> int:
    con = lake.connect()
    lake.attach_own_lake(con, "physician_master")
    con.execute(f"create table staged as select range as id from range({n})")
    version = lake.publish(
        con,
        "physician_master",
        {"physicians": "staged"},
        {"ports": {"physicians": {"rows": n}}, "run_id": f"run-{n}"},
    )
    con.close()
    return version


def test_every_publish_is_a_new_version_and_old_versions_stay_readable(data_dir):
    """Two publishes give two versions; the first is still readable by its id."""
    v1, v2 = _publish(3), _publish(5)
    assert v2 > v1
    con = lake.connect()
    lake.attach_own_lake(con, "physician_master")
    count = "select count(*) from physician_master_lake.main.physicians"
    assert con.execute(count).fetchone()[0] == 5
    assert con.execute(f"{count} at (version => {v1})").fetchone()[0] == 3
    versions = lake.port_versions(con, "physician_master", "physicians")
    assert [v.version for v in versions] == [v1, v2]
    assert versions[0].info["run_id"] == "run-3"


def test_a_failed_publish_leaves_the_previous_version(data_dir):
    """An error inside the publish transaction rolls back: nothing half-published."""
    v1 = _publish(3)
    con = lake.connect()
    lake.attach_own_lake(con, "physician_master")
    con.execute("create table staged as select range as id from range(7)")
    with pytest.raises(duckdb.Error):
        lake.publish(con, "physician_master", {"physicians": "staged", "xref": "missing"}, {})
    assert lake.current_version(con, "physician_master", "physicians") == v1
    assert (
        con.execute("select count(*) from physician_master_lake.main.physicians").fetchone()[0] == 3
    )


def test_ungranted_domain_is_refused_and_granted_domain_reads_read_only(data_dir):
    """Grants in the producer's descriptor decide who may attach its lake; readers can't write."""
    _publish(4)
    producer = discover_domains()["physician_master"]
    con = lake.connect()
    with pytest.raises(lake.PortAccessError) as refused:
        lake.attach_port_reader(con, "npp", producer, ["physicians"])
    assert "'npp' may not read port 'physician_master/physicians'" in str(refused.value)
    alias = lake.attach_port_reader(con, "physician_dw", producer, ["physicians"])
    assert con.execute(f"select count(*) from {alias}.main.physicians").fetchone()[0] == 4
    with pytest.raises(duckdb.Error, match="(?i)read.only"):
        con.execute(f"insert into {alias}.main.physicians values (99)")


def test_the_catalog_lives_where_configured_and_the_served_version_reads(data_dir, request):
    """SQLite file beside the data, or the domain's schema in PostgreSQL (no file); either
    way the pointer serves the newest version to a granted reader."""
    v1, v2 = _publish(2), _publish(6)
    paths = lake.mesh_paths()
    on_postgres = request.node.callspec.params["data_dir"] == "postgres"
    assert paths.lake_catalog("physician_master").exists() is not on_postgres
    assert paths.catalog_uri("physician_master").startswith(
        "ducklake:postgres:" if on_postgres else "ducklake:sqlite:"
    )
    con = lake.connect()
    producer = discover_domains()["physician_master"]
    view, version = lake.open_port(con, "physician_dw", producer, "physicians")
    assert version == v2 and con.execute(f"select count(*) from {view}").fetchone()[0] == 6
    view, version = lake.open_port(con, "physician_dw", producer, "physicians", v1, view="old")
    assert version == v1 and con.execute("select count(*) from old").fetchone()[0] == 2


def test_a_fingerprint_follows_content_not_row_order():
    """Equal rows in any order give one fingerprint; a changed value, a repeated row or a
    renamed or retyped column give another. The served version's pointer names the version
    whose content it has."""
    con = duckdb.connect()
    con.execute("create table a as select * from (values (1, 'x'), (2, 'y')) t(id, name)")
    con.execute("create table b as select * from (values (2, 'y'), (1, 'x')) t(id, name)")
    con.execute("create table c as select * from (values (1, 'x'), (2, 'z')) t(id, name)")
    con.execute("create table d as select * from (values (1, 'x'), (2, 'y'), (2, 'y')) t(id, name)")
    con.execute("create table e as select id, name as label from a")
    con.execute("create table f as select id::varchar as id, name from a")
    prints = {t: lake.fingerprint(con, t) for t in "abcdef"}
    assert prints["a"] == prints["b"]
    assert len({prints[t] for t in "acdef"}) == 5
    info = {"ports": {"physicians": {"same_as": 3}, "physician_xref": {}}}
    assert lake.content_version(info, "physicians", 7) == 3
    assert lake.content_version(info, "physician_xref", 7) == 7


def test_a_build_on_a_plain_connection_has_nothing_served_to_reuse(data_dir):
    """Without the domain's lake attached (a plain DuckDB connection, as the benchmark's floor
    runs the builders) there is no served version to reuse: the builder computes everything."""
    from mesh_domains.platform.ports import BuildContext

    _publish(3)  # a served version exists, but the connection below does not see the lake
    domain = discover_domains()["physician_master"]
    build = BuildContext(domain, duckdb.connect(), log=None)
    assert build.unchanged_since_served("physicians", "ama_physician") is None
    assert build.served_metrics("physicians") == {}
    assert build.keep_served("physicians", "physician_xref") is None
    assert build.extend_served({"physicians": "select 1"}) is None and not build.extended


def test_extensions_load_from_their_wheels_files_checked_against_the_record(monkeypatch):
    """The lake extensions load from the files their locked wheels installed, each checked
    once per process against the wheel's RECORD; a file that differs is refused by name."""
    import importlib.metadata

    path = lake.extension_file("ducklake")
    assert path.is_file() and "duckdb_extension_ducklake" in str(path)
    con = lake.connect()
    lake.load_extensions(con)
    loaded = dict(con.execute("select extension_name, loaded from duckdb_extensions()").fetchall())
    assert loaded["ducklake"] and loaded["sqlite_scanner"]

    class Recorded(str):  # a RECORD entry whose hash is not the file's
        hash = type("FileHash", (), {"mode": "sha256", "value": "A" * 43})

    class Tampered:
        def __init__(self, name):
            self.files = [Recorded(str(f)) for f in real(name).files]

    real = importlib.metadata.distribution
    monkeypatch.setattr(lake, "_checked", {})
    monkeypatch.setattr(importlib.metadata, "distribution", Tampered)
    with pytest.raises(lake.MeshError, match="extension ducklake: .* is not the file its wheel"):
        lake.extension_file("ducklake")
