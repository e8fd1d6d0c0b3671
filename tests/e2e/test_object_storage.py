"""The lakes on scaled-out storage: catalogs in a real PostgreSQL database, Parquet files on a
real S3-compatible server on loopback. The master and a dbt warehouse build, publish, pin
and read exactly as on the embedded default; nothing of the lakes' files is on local disk."""

from __future__ import annotations

import pytest
from mesh_harness import _make_mesh, built_template, environment
from object_storage_harness import object_storage
from scale_out_harness import postgres_server

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains

pytestmark = pytest.mark.slow
DOMAINS = ("physician_master", "reference", "physician_dw")


def _rows() -> dict[tuple[str, str], int]:
    out = {}
    for name in DOMAINS:
        domain = discover_domains()[name]
        served = lake.served_ports(name)
        con = lake.connect()
        try:
            for port in served:
                view, _ = lake.open_port(con, name, domain, port, served=served)
                out[(name, port)] = con.execute(f"select count(*) from {view}").fetchone()[0]
        finally:
            con.close()
    return out


def test_catalogs_on_postgres_and_files_on_object_storage(tmp_path, tmp_path_factory):
    template = built_template(tmp_path_factory)  # the same tiny data on the embedded default
    with environment(MESH_DATA_DIR=str(template / "data")):
        embedded = _rows()
    with postgres_server("mesh_lakes") as pg, object_storage() as s3:
        env = {**s3.env, "MESH_LAKE_CATALOG": pg.url("mesh_lakes")}
        with environment(**env):
            for mesh in _make_mesh(tmp_path / "scaled_out"):
                report = mesh.build(*DOMAINS)
                assert report.ok, [(r.domain, r.error) for r in report.results if r.error]
                assert _rows() == embedded
                for name in DOMAINS:
                    assert not mesh.paths.lake_catalog(name).exists()
                    assert not list(mesh.paths.lake_dir(name).rglob("*.parquet"))
                    files = [f for s in lake.served_ports(name).values() for f in s.files]
                    assert files and all(f.startswith("s3://mesh-lakes/mesh/lake/") for f in files)
                    keys = s3.keys(f"mesh/lake/{name}/files/")
                    assert {f.removeprefix("s3://mesh-lakes/") for f in files} <= set(keys)
                con = lake.connect()  # grants hold as before: npp may not read the master
                with pytest.raises(lake.PortAccessError):
                    lake.open_port(con, "npp", discover_domains()["physician_master"], "physicians")
                con.close()
