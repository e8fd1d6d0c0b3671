"""Access grants: the port reader that both toolchains use (Python builds and the dbt profile)
attaches a producer's lake read-only, and only for consumers the producer's descriptor grants."""

import os
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


def test_granted_consumer_reads_the_pinned_version(tmp_path, published):
    """brand_analytics is granted: its build pins the current version of the port."""
    con = lake.connect()
    versions = attach_inputs(con, _consumer(tmp_path, "brand_analytics"))
    assert versions == {"physician_master/physicians": published}
    assert con.execute("select count(*) from physician_master.physicians").fetchone()[0] == 1


def test_granted_inputs_become_pinned_views_and_the_producer_lake_is_detached(tmp_path, published):
    """What dbt and Python builds read: the view <producer>.<port> over the pinned version's
    files, in the consumer's own database; the producer's catalog is no longer attached."""
    con = lake.connect(str(tmp_path / "staging.duckdb"))
    attach_inputs(con, _consumer(tmp_path, "physician_dw"))
    assert con.execute("select mesh_id from physician_master.physicians").fetchall() == [
        ("MP0000000001",)
    ]
    attached = {
        r[0] for r in con.execute("select database_name from duckdb_databases()").fetchall()
    }
    assert "physician_master_lake" not in attached
    con.close()


def test_dbt_profile_reaches_no_other_domain_storage():
    """The generated dbt profile opens only the domain's staging database: dbt can read other
    domains' ports only through the views the platform pinned after checking grants."""
    domain = discover_domains()["physician_dw"]
    directory = profile_dir(domain, DBT_PROJECTS / domain.name)
    output = yaml.safe_load((directory / "profiles.yml").read_text())["physician_dw"]["outputs"]
    assert "attach" not in output["mesh"]
    assert output["mesh"]["path"] == "{{ env_var('MESH_DBT_STAGING_DB') }}"
    assert os.environ["MESH_DBT_STAGING_DB"].endswith("staging/physician_dw.duckdb")


def test_dbt_profiles_of_other_settings_live_apart(monkeypatch):
    """A process with the lakes on object storage gets a profile with the storage secret (its
    credentials by ``env_var`` reference only) in a folder of its own: a process on the
    embedded default, building the same project at the same time, never reads it."""
    domain = discover_domains()["physician_dw"]
    project = DBT_PROJECTS / domain.name
    monkeypatch.delenv("MESH_LAKE_DATA_URL", raising=False)
    embedded = profile_dir(domain, project)
    monkeypatch.setenv("MESH_LAKE_DATA_URL", "s3://lakes/mesh")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-id-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-value")
    remote = profile_dir(domain, project)
    assert remote != embedded
    local = yaml.safe_load((embedded / "profiles.yml").read_text())["physician_dw"]
    assert "secrets" not in local["outputs"]["mesh"]
    text = (remote / "profiles.yml").read_text()
    (secret,) = yaml.safe_load(text)["physician_dw"]["outputs"]["mesh"]["secrets"]
    assert secret["type"] == "s3" and secret["key_id"] == "{{ env_var('AWS_ACCESS_KEY_ID') }}"
    assert "key-id-value" not in text and "secret-value" not in text
