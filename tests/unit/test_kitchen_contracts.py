"""How a kitchen's contract changes are judged for the port's consumers (no build needed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.kitchens.diff import consumers_of, contract_changes
from mesh_domains.platform.kitchens.sandbox import KitchenError, create


@pytest.fixture
def dim():
    return discover_domains()["physician_dw"].output_port("dim_physician")


def without(port, column):
    columns = tuple(c for c in port.contract.columns if c.name != column)
    return replace(port, contract=replace(port.contract, columns=columns))


def test_removed_or_retyped_contract_columns_break_consumers(dim):
    breaking, _ = contract_changes(dim, without(dim, "me_number"))
    assert breaking == ["contract column me_number removed"]
    retyped = tuple(
        replace(c, type="int64") if c.name == "me_number" else c for c in dim.contract.columns
    )
    breaking, _ = contract_changes(
        dim, replace(dim, contract=replace(dim.contract, columns=retyped))
    )
    assert breaking == ["contract column me_number retyped string -> int64"]
    rekeyed = replace(dim, contract=replace(dim.contract, primary_key=("npi",)))
    assert contract_changes(dim, rekeyed)[0] == ["primary key ['physician_id'] -> ['npi']"]


def test_added_columns_and_tighter_rules_are_compatible(dim):
    breaking, compatible = contract_changes(without(dim, "me_number"), dim)
    assert breaking == [] and compatible == ["contract column me_number added"]
    tighter = tuple(
        replace(c, nullable=False) if c.name == "me_number" else c for c in dim.contract.columns
    )
    breaking, compatible = contract_changes(
        dim, replace(dim, contract=replace(dim.contract, columns=tighter))
    )
    assert breaking == [] and compatible == ["contract rules of column me_number changed"]
    loose = tuple(replace(c, nullable=True) if c.name == "npi" else c for c in dim.contract.columns)
    assert contract_changes(dim, replace(dim, contract=replace(dim.contract, columns=loose)))[
        0
    ] == ["contract column npi may now be null"]


def test_consumers_are_the_domains_whose_input_ports_read_the_port():
    domains = discover_domains()
    assert consumers_of("physician_dw/dim_physician", domains) == ["brand_analytics"]
    assert "physician_dw" in consumers_of("physician_master/physicians", domains)


def test_bad_names_and_unknown_domains_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path))
    with pytest.raises(KitchenError, match="lowercase"):
        create("Bad Name", ["physician_dw"])
    with pytest.raises(KitchenError, match="unknown domain"):
        create("k", ["no_such_domain"])
    assert not (tmp_path / "kitchens" / "k").exists()
