"""The synthetic landing-zone generator: reproducible, correctly shaped, realistically messy."""

import csv
import re
from datetime import date
from pathlib import Path

import pytest

from mesh_domains.platform.npi import is_valid_npi
from mesh_domains.platform.synthetic import NICKNAMES, PRODUCTS, SOURCES, generate

SCALE = 0.05  # 250 physicians: big enough for every kind of noise, fast enough for unit tests


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _all_rows(paths: list[Path]) -> list[dict[str, str]]:
    return [row for p in paths for row in _read(p)]


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> tuple[Path, dict[str, list[Path]]]:
    root = tmp_path_factory.mktemp("landing")
    return root, generate(root, scale=SCALE)


@pytest.fixture(scope="module")
def ama_npis(landing) -> set[str]:
    return {r["npi"] for p in landing[1]["ama_physician"] for r in _read(p)}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.csv"))}


def test_same_seed_gives_byte_identical_files(tmp_path):
    """Two runs with the same arguments into different folders write identical bytes; another
    seed writes different data."""
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(first, scale=0.02, seed=5)
    generate(second, scale=0.02, seed=5)
    generate(other, scale=0.02, seed=6)
    assert _snapshot(first) == _snapshot(second)
    assert _snapshot(first).keys() == _snapshot(other).keys()
    assert _snapshot(first) != _snapshot(other)


def test_layout_headers_and_fixed_calendar(landing):
    """Files sit at landing/<source>/<partition>/<file> with the declared header, and dates are
    anchored on 2026-10-31 (months to 2026-10, 14 days, 8 Saturdays)."""
    root, written = landing
    assert set(written) == set(SOURCES)
    for name, paths in written.items():
        source = SOURCES[name]
        for path in paths:
            assert path.parent.parent == root / name and path.name == source.file_name
            with path.open(encoding="utf-8", newline="") as fh:
                assert fh.readline() == ",".join(source.columns) + "\n"
            assert b"\r" not in path.read_bytes()
    folders = {name: [p.parent.name for p in paths] for name, paths in written.items()}
    assert folders["ama_physician"] == ["2026-08", "2026-09", "2026-10"]
    assert len(folders["crm_accounts"]) == 14
    assert (
        folders["crm_accounts"][0] == "2026-10-18" and folders["crm_accounts"][-1] == "2026-10-31"
    )
    assert len(folders["rx_weekly"]) == 8 and folders["rx_weekly"][-1] == "2026-10-31"
    assert all(date.fromisoformat(d).weekday() == 5 for d in folders["rx_weekly"])


def test_physician_count_follows_scale(tmp_path):
    """The first AMA month has max(20, round(5000 * scale)) physicians."""
    written = generate(tmp_path, scale=0.001, months=1, days=1, weeks=1)
    assert len(_read(written["ama_physician"][0])) == 20


def test_ama_npis_valid_unique_and_stable(landing):
    """Every AMA snapshot has valid, unique NPIs and 11-digit unique ME numbers, 5-digit zips
    (leading zeros kept), grows month on month, and never changes a physician's NPI."""
    snapshots = [_read(p) for p in landing[1]["ama_physician"]]
    me_to_npi: dict[str, str] = {}
    for rows in snapshots:
        assert all(is_valid_npi(r["npi"]) for r in rows)
        assert len({r["npi"] for r in rows}) == len(rows)
        assert len({r["me_number"] for r in rows}) == len(rows)
        assert all(re.fullmatch(r"\d{11}", r["me_number"]) for r in rows)
        assert all(re.fullmatch(r"\d{5}", r["zip"]) for r in rows)
        for r in rows:
            assert me_to_npi.setdefault(r["me_number"], r["npi"]) == r["npi"]
    assert len(snapshots[0]) < len(snapshots[1]) < len(snapshots[2])
    assert any(r["zip"].startswith("0") for r in snapshots[-1])
    statuses = [r["status"] for r in snapshots[-1]]
    assert statuses.count("active") > 0.8 * len(statuses)


def test_crm_has_missing_wrong_npis_nicknames_and_one_insert_per_account(landing, ama_npis):
    """CRM inserts include blank NPIs, NPIs that match no AMA physician and nicknames; every
    account id is inserted exactly once; duplicates and several territories exist."""
    rows = _all_rows(landing[1]["crm_accounts"])
    inserts = [r for r in rows if r["change_type"] == "insert"]
    assert {r["change_type"] for r in rows} == {"insert", "update"}
    assert len({r["crm_id"] for r in inserts}) == len(inserts)
    assert {r["crm_id"] for r in rows} == {r["crm_id"] for r in inserts}
    assert all(re.fullmatch(r"CRM\d{7}", r["crm_id"]) for r in rows)
    missing = [r for r in inserts if not r["npi"]]
    wrong = [r for r in inserts if r["npi"] and r["npi"] not in ama_npis]
    assert 0.05 < len(missing) / len(inserts) < 0.15
    assert 0.01 < len(wrong) / len(inserts) < 0.10
    assert any(not is_valid_npi(r["npi"]) for r in wrong)
    assert any(r["first_name"] in NICKNAMES.values() for r in inserts)
    keyed = [r["npi"] for r in inserts if r["npi"] in ama_npis]
    assert len(set(keyed)) < len(keyed)  # some physicians have two accounts
    assert len({r["territory"] for r in inserts}) >= 2
    for path in landing[1]["crm_accounts"]:
        day = path.parent.name
        assert all(r["changed_at"].startswith(day + "T") for r in _read(path))


def test_rx_counts_flags_and_unknown_prescribers(landing, ama_npis):
    """Rx rows have 0 <= nrx <= trx, both actual and projected data, one row per
    (prescriber, product, week), only basket products and valid NPIs, some unknown to AMA."""
    rows = _all_rows(landing[1]["rx_weekly"])
    assert all(0 <= int(r["nrx"]) <= int(r["trx"]) for r in rows)
    assert {r["data_type"] for r in rows} == {"actual", "projected"}
    keys = [(r["prescriber_npi"], r["product"], r["week_ending"]) for r in rows]
    assert len(set(keys)) == len(keys)
    assert {r["product"] for r in rows} == set(PRODUCTS)
    prescribers = {r["prescriber_npi"] for r in rows}
    assert all(is_valid_npi(n) for n in prescribers)
    unknown = prescribers - ama_npis
    assert 0 < len(unknown) < 0.1 * len(prescribers)
    for path in landing[1]["rx_weekly"]:
        assert {r["week_ending"] for r in _read(path)} == {path.parent.name}


def test_rerun_overwrites_own_files_and_keeps_others(tmp_path):
    """Regenerating replaces files at the generator's paths but leaves unrelated files alone."""
    written = generate(tmp_path, scale=0.001, months=1, days=1, weeks=1)
    target = written["rx_weekly"][0]
    expected = target.read_bytes()
    target.write_text("junk\n")
    stray = tmp_path / "rx_weekly" / "2020-01-04" / "rx_weekly.csv"
    stray.parent.mkdir(parents=True)
    stray.write_text("keep me\n")
    generate(tmp_path, scale=0.001, months=1, days=1, weeks=1)
    assert target.read_bytes() == expected
    assert stray.read_text() == "keep me\n"
