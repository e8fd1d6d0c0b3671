"""A data root moved elsewhere keeps every version readable: the lakes' catalogs record file
locations relative to their data path and the served-version pointers name files relative to
their lake, so readers, time travel and the next build work from the new place."""

from __future__ import annotations

import json
import os

import pytest
from mesh_harness import Mesh, built_copy, environment

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.settings import MeshPaths

pytestmark = pytest.mark.slow


def _read_everything() -> dict[tuple[str, str], tuple[int, int]]:
    """Every served port of every domain, opened as its owner reads it: version and rows."""
    out = {}
    for name, domain in discover_domains().items():
        served = lake.served_ports(name)
        con = lake.connect()
        try:
            for port in served:
                view, version = lake.open_port(con, name, domain, port, served=served)
                out[(name, port)] = (
                    version,
                    con.execute(f"select count(*) from {view}").fetchone()[0],
                )
        finally:
            con.close()
    return out


def test_a_moved_data_root_serves_every_version_and_builds_on(tmp_path_factory):
    for mesh in built_copy(tmp_path_factory, "moved"):
        master = discover_domains()["physician_master"]
        assert mesh.build("physician_master").ok  # a second version: the first becomes old
        before = _read_everything()
        assert len(before) == sum(len(d.output_ports) for d in discover_domains().values())
        old = lake.served_ports("physician_master")["physicians"].version - 1
        pointer = json.loads(lake.pointer_path("physician_master").read_text())
        files = [f for entry in pointer["ports"].values() for f in entry["files"]]
        assert files and not any(os.path.isabs(f) for f in files), files[:2]

        elsewhere = mesh.paths.data.parent / "mounted_elsewhere"
        os.rename(mesh.paths.data, elsewhere)
        with environment(MESH_DATA_DIR=str(elsewhere)):
            moved = Mesh(MeshPaths(elsewhere), mesh.instance)
            assert _read_everything() == before
            con = lake.connect()
            try:  # an older version, through the catalog (time travel)
                view, pinned = lake.open_port(con, "physician_dw", master, "physicians", old)
                assert pinned == old
                assert con.execute(f"select count(*) from {view}").fetchone()[0] > 0
            finally:
                con.close()
            assert all(
                str(elsewhere) in f
                for s in lake.served_ports("physician_dw").values()
                for f in s.files
            )
            report = moved.build("physician_dw")  # the next build reads and writes there
            assert report.ok, [r.error for r in report.results]
            after = _read_everything()
            dw = {k: v for k, v in after.items() if k[0] == "physician_dw"}
            assert all(v[0] > before[k][0] and v[1] == before[k][1] for k, v in dw.items())
