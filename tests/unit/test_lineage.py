"""Data linkage without drift: lineage recorded per port version, merged transitively, and a
consumer that reads two ports derived from different versions of a shared upstream port is
refused (or pinned to the newest versions that agree), on real lakes."""

from pathlib import Path

import pytest
import yaml

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import load_domain
from mesh_domains.platform.lineage import (
    DriftError,
    Pin,
    conflicts,
    consistent_pins,
    merged_lineage,
)
from mesh_domains.platform.ports import attach_inputs

PHYSICIANS = "physician_master/physicians"
DIM = "physician_dw/dim_physician"


def test_conflicts_name_the_shared_upstream_and_each_path():
    pins = {
        DIM: Pin(DIM, 4, {PHYSICIANS: 3}),
        "payer_dw/dim_physician": Pin("payer_dw/dim_physician", 2, {PHYSICIANS: 5}),
        "npp/engagement_daily": Pin("npp/engagement_daily", 9, {}),
    }
    assert conflicts(pins) == {PHYSICIANS: {DIM: 3, "payer_dw/dim_physician": 5}}
    # reading the upstream port itself next to a port built from an older version is drift too
    direct = {PHYSICIANS: Pin(PHYSICIANS, 5), DIM: Pin(DIM, 4, {PHYSICIANS: 3})}
    assert conflicts(direct) == {PHYSICIANS: {PHYSICIANS: 5, DIM: 3}}
    assert not conflicts({DIM: Pin(DIM, 4, {PHYSICIANS: 3}), PHYSICIANS: Pin(PHYSICIANS, 3)})


def test_partitioned_ports_pass_their_lineage_on_but_are_not_compared():
    """A fact mixes periods built from different upstream versions by design; the comparison
    is between whole-table ports (dimensions, marts)."""
    fact = Pin("payer_dw/fact_claims", 3, {PHYSICIANS: 1}, compared=False)
    pins = {DIM: Pin(DIM, 4, {PHYSICIANS: 2}), "payer_dw/fact_claims": fact}
    assert not conflicts(pins)
    assert merged_lineage(pins)[PHYSICIANS] == 2  # the version the dimensions agree on
    pins["payer_dw/dim_physician"] = Pin("payer_dw/dim_physician", 2, {PHYSICIANS: 1})
    assert set(conflicts(pins)[PHYSICIANS]) == {DIM, "payer_dw/dim_physician"}


def test_consistent_pins_take_the_newest_agreeing_versions_never_newer_than_served():
    pins = {PHYSICIANS: Pin(PHYSICIANS, 5), DIM: Pin(DIM, 6, {PHYSICIANS: 3})}
    history = {
        PHYSICIANS: [(5, {}), (3, {}), (1, {})],
        DIM: [
            (7, {PHYSICIANS: 5}),
            (6, {PHYSICIANS: 3}),
            (4, {PHYSICIANS: 3}),
            (2, {PHYSICIANS: 1}),
        ],
    }
    agreed = consistent_pins(pins, history.__getitem__)
    # v7 of the dimension is not served yet: the consumer falls back to physicians v3
    assert {r: p.version for r, p in agreed.items()} == {PHYSICIANS: 3, DIM: 6}
    assert consistent_pins(pins, {PHYSICIANS: [(5, {})], DIM: [(6, {PHYSICIANS: 3})]}.get) is None


@pytest.fixture
def lakes(tmp_path, monkeypatch):
    """physician_master published twice (v1, v2) and physician_dw's dimension built from v1."""
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path / "data"))

    def publish(domain, port, value, info):
        con = lake.connect()
        lake.attach_own_lake(con, domain)
        con.execute(f"create table staged as select '{value}' as mesh_id")
        version = lake.publish(
            con, domain, {port: "staged"}, {"ports": {port: {"rows": 1}}, **info}
        )
        con.close()
        return version

    first = publish("physician_master", "physicians", "MP0000000001", {})
    lineage = {"input_versions": {PHYSICIANS: first}, "lineage": {PHYSICIANS: first}}
    dim_v1 = publish("physician_dw", "dim_physician", "MP0000000001", lineage)
    return publish, first, dim_v1


def _consumer(tmp_path: Path, on_drift: str | None = None):
    folder = tmp_path / "domains" / "brand_analytics"
    folder.mkdir(parents=True, exist_ok=True)
    raw = {
        "name": "brand_analytics",
        "team": "T",
        "owner": "team:t",
        "description": "consumer of both",
        "toolchain": "python",
        "input_ports": {"ports": [PHYSICIANS, DIM]},
        "output_ports": {"p": {"description": "p", "columns": {"id": "string"}}},
    }
    if on_drift:
        raw["on_drift"] = on_drift
    (folder / "domain.yaml").write_text(yaml.safe_dump(raw))
    return load_domain(folder)


def test_the_pointer_and_the_commit_carry_the_lineage(lakes):
    _, first, dim_v1 = lakes
    served = lake.served_ports("physician_dw")["dim_physician"]
    assert served.version == dim_v1 and served.lineage == {PHYSICIANS: first}


def test_consistent_inputs_pin_and_record_a_transitive_lineage(tmp_path, lakes):
    _, first, dim_v1 = lakes
    versions = attach_inputs(lake.connect(), _consumer(tmp_path))
    assert versions == {PHYSICIANS: first, DIM: dim_v1}
    assert versions.lineage == {PHYSICIANS: first, DIM: dim_v1} and not versions.repinned


def test_drifted_inputs_are_refused_with_both_paths_named(tmp_path, lakes):
    publish, first, dim_v1 = lakes
    second = publish("physician_master", "physicians", "MP0000000002", {})
    with pytest.raises(DriftError) as refused:
        attach_inputs(lake.connect(), _consumer(tmp_path))
    message = str(refused.value)
    assert f"{PHYSICIANS} v{first} -> {DIM} v{dim_v1}" in message
    assert f"{PHYSICIANS} v{second}" in message
    assert "mesh build --domain physician_dw" in message and "pin_consistent" in message


def test_pin_consistent_reads_the_older_consistent_set(tmp_path, lakes):
    publish, first, dim_v1 = lakes
    second = publish("physician_master", "physicians", "MP0000000002", {})
    con = lake.connect()
    versions = attach_inputs(con, _consumer(tmp_path, "pin_consistent"))
    assert versions == {PHYSICIANS: first, DIM: dim_v1}
    assert versions.repinned == {PHYSICIANS: (second, first)}
    # the view reads the older version's files
    assert con.execute("select mesh_id from physician_master.physicians").fetchall() == [
        ("MP0000000001",)
    ]


def test_a_new_version_of_the_same_content_is_no_drift(tmp_path, lakes):
    """A master republished with the same rows (its commit names the version whose content it
    has) is read at the new version, and the dimension built on the old one still agrees."""
    publish, first, dim_v1 = lakes
    same = {"ports": {"physicians": {"rows": 1, "same_as": first}}}
    second = publish("physician_master", "physicians", "MP0000000001", same)
    assert lake.served_ports("physician_master")["physicians"].content_version == first
    versions = attach_inputs(lake.connect(), _consumer(tmp_path))
    assert versions == {PHYSICIANS: second, DIM: dim_v1}
    assert versions.lineage == {PHYSICIANS: first, DIM: dim_v1} and not versions.repinned
