"""Access grants: the port reader that both toolchains use (Python builds and the dbt profile)
attaches a producer's lake read-only, and only for consumers the producer's descriptor grants."""

from pathlib import Path

import pytest
import yaml

from mesh_domains.platform import lake
from mesh_domains.platform.dbt import DBT_PROJECTS, profile_dir
from mesh_domains.platform.descriptor import discover_domains, load_domain
from mesh_domains.platform.ports import attach_inputs


@pytest.fixture
def published(tmp_path, monkeypatch):
    """physician_master's lake with one published version of its physicians port."""
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path / "data"))
    con = lake.connect()
    lake.attach_own_lake(con, "physician_master")
    con.execute("create table staged as select 'MP0000000001' as mesh_id")
    version = lake.publish(
        con, "physician_master", {"physicians": "staged"}, {"ports": {"physicians": {"rows": 1}}}
    )
    con.close()
    return version


def _consumer(tmp_path: Path, name: str) -> object:
    folder = tmp_path / "domains" / name
    folder.mkdir(parents=True)
    (folder / "domain.yaml").write_text(
        yaml.safe_dump(
            {
                "name": name,
                "team": "T",
                "owner": "team:t",
                "description": "consumer",
                "toolchain": "python",
                "input_ports": {"ports": ["physician_master/physicians"]},
                "output_ports": {"p": {"description": "p", "columns": {"id": "string"}}},
            }
        )
    )
    return load_domain(folder)


def test_ungranted_consumer_gets_a_permission_error_naming_port_and_consumer(tmp_path, published):
    """npp holds no grant on physician_master/physicians: its build cannot attach the lake."""
    con = lake.connect()
    with pytest.raises(lake.PortAccessError) as denied:
        attach_inputs(con, _consumer(tmp_path, "npp"))
    message = str(denied.value)
    assert "'npp' may not read port 'physician_master/physicians'" in message
    assert "grants" in message and "physician_dw" in message
    attached = [
        r[0] for r in con.execute("select database_name from duckdb_databases()").fetchall()
    ]
    assert "physician_master_lake" not in attached


def test_granted_consumer_reads_the_pinned_version_read_only(tmp_path, published):
    """brand_analytics is granted: it attaches read-only and sees the current version."""
    con = lake.connect()
    versions = attach_inputs(con, _consumer(tmp_path, "brand_analytics"))
    assert versions == {"physician_master/physicians": published}
    readonly = con.execute(
        "select readonly from duckdb_databases() where database_name = 'physician_master_lake'"
    ).fetchone()[0]
    assert readonly


def test_dbt_profile_attaches_only_declared_producers_read_only(published):
    """The generated dbt profile of physician_dw attaches physician_master's lake, read-only,
    and nothing else: dbt sources can only reach granted input ports."""
    domain = discover_domains()["physician_dw"]
    directory = profile_dir(domain, DBT_PROJECTS / domain.name)
    profile = yaml.safe_load((directory / "profiles.yml").read_text())
    attach = profile["physician_dw"]["outputs"]["mesh"]["attach"]
    assert [(a["alias"], a["read_only"]) for a in attach] == [("physician_master_lake", True)]
