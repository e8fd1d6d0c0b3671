"""The generator and the landing contracts agree: every delivery of every source, at a medium
scale, passes its contract in ``mesh_domains/landing.yaml`` through the platform's own checker
(placement, bytes, dialect, types, pandera contract, partition and cross-delivery rules)."""

import shutil

import duckdb
import pytest

from mesh_domains.platform.contracts import ContractViolation
from mesh_domains.platform.descriptor import load_landing
from mesh_domains.platform.sources import (
    Delivery,
    check_delivery,
    delivery_rules,
    load_source,
    partition_period,
)
from pharma_example import SOURCES, generate_landing

MEDIUM = 1.0  # 5,000 physicians: ~54k Rx rows, ~55k claims, 70 deliveries


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    """A medium landing zone under a temporary MESH_DATA_DIR (default windows, scale 1)."""
    root = tmp_path_factory.mktemp("medium")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESH_DATA_DIR", str(root))
        yield root, generate_landing(root / "landing", scale=MEDIUM, seed=11)


def test_landing_yaml_declares_what_the_generator_writes():
    """landing.yaml declares each of the ten sources with the generator's columns (in order),
    cadence and partition folder format."""
    declared = load_landing()
    assert set(SOURCES) <= set(declared)
    for name, source in SOURCES.items():
        contract = declared[name]
        assert contract.contract.column_names == list(source.columns), name
        assert contract.cadence == source.cadence, name
        assert contract.file == source.file_name
        assert delivery_rules(contract).partition.format == source.partition_format, name


def test_every_delivery_passes_its_contract(medium):
    """All deliveries of all ten sources load through ``load_source`` (which runs
    ``check_delivery`` on each, plus uniqueness across deliveries) with every row kept."""
    _, run = medium
    con = duckdb.connect()
    declared = load_landing()
    for name in SOURCES:
        try:
            table, chosen, *_ = load_source(con, "example", declared[name])
        except ContractViolation as exc:  # pragma: no cover - the message says what broke
            pytest.fail(f"{name}: {exc}")
        assert [d.path for d in chosen] == run.files[name]
        assert con.execute(f"select count(*) from {table}").fetchone()[0] == run.rows[name]


def test_quarterly_partitions_cover_three_months(medium, tmp_path):
    """A quarterly partition is named after the quarter's first month and covers three months:
    an alignment delivery filed under 2026-08 is rejected with the rule named."""
    root, run = medium
    alignment = load_landing()["alignment"]
    rules = delivery_rules(alignment)
    period, failures = partition_period(alignment, rules, "2026-10")
    assert period[0].isoformat() == "2026-10-01" and period[1].isoformat() == "2026-12-31"
    assert not failures
    misfiled = root / "landing" / "alignment" / "2026-08" / "alignment.csv"
    misfiled.parent.mkdir()
    shutil.copy(run.files["alignment"][-1], misfiled)
    try:
        with pytest.raises(ContractViolation, match="quarter's first month"):
            check_delivery(
                duckdb.connect(), "example", alignment, Delivery("alignment", "2026-08", misfiled)
            )
    finally:
        shutil.rmtree(misfiled.parent)
