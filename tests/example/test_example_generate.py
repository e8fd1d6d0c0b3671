"""The example's generator: reproducible, laid out per source and cadence, sized by the scale."""

import re
from datetime import date

import numpy as np
import pytest
from example_helpers import read_rows

from mesh_domains.platform.npi import is_valid_npi
from pharma_example import SOURCES, generate, generate_landing
from pharma_example.people import RosterBook, npis
from pharma_example.prescribing import MAX_TRX, prescribers, rx_week
from pharma_example.streams import stream

TEN_SOURCES = (
    "ama_physician",
    "crm_accounts",
    "rx_weekly",
    "claims",
    "formulary",
    "rebates",
    "alignment",
    "field_calls",
    "npp_engagement",
    "product_master",
)
ONE_EACH = {"months": 1, "days": 1, "weeks": 1, "quarters": 1}


def _snapshot(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.csv"))}


def test_same_seed_gives_byte_identical_files(tmp_path):
    """Two runs with the same arguments into different folders write identical bytes for all
    ten sources; another seed writes different data at the same paths."""
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(first, scale=0.02, seed=5)
    generate(second, scale=0.02, seed=5)
    generate(other, scale=0.02, seed=6)
    assert {p.split("/")[0] for p in _snapshot(first)} == set(TEN_SOURCES)
    assert _snapshot(first) == _snapshot(second)
    assert _snapshot(first).keys() == _snapshot(other).keys()
    assert _snapshot(first) != _snapshot(other)


def test_layout_headers_and_cadences(landing):
    """Every source sits at landing/<source>/<partition>/<source>.csv with its declared header,
    one file per partition of its cadence, dates anchored on 2026-10-31: 3 months, 14 days,
    8 Saturdays, 2 quarters named after their first month, one product master release."""
    root, run = landing
    assert tuple(run.files) == TEN_SOURCES == tuple(SOURCES)
    for name, paths in run.files.items():
        source = SOURCES[name]
        for path in paths:
            assert path.parent.parent == root / name and path.name == f"{name}.csv"
            with path.open(encoding="utf-8", newline="") as fh:
                assert fh.readline() == ",".join(source.columns) + "\n"
            assert b"\r" not in path.read_bytes()
            assert run.rows[name] > 0
    folders = {name: [p.parent.name for p in paths] for name, paths in run.files.items()}
    for monthly in ("ama_physician", "formulary"):
        assert folders[monthly] == ["2026-08", "2026-09", "2026-10"]
    for daily in ("crm_accounts", "field_calls", "npp_engagement"):
        assert len(folders[daily]) == 14
        assert folders[daily][0] == "2026-10-18" and folders[daily][-1] == "2026-10-31"
    for weekly in ("rx_weekly", "claims"):
        assert len(folders[weekly]) == 8 and folders[weekly][-1] == "2026-10-31"
        assert all(date.fromisoformat(d).weekday() == 5 for d in folders[weekly])
    for quarterly in ("rebates", "alignment"):
        assert folders[quarterly] == ["2026-07", "2026-10"]
    assert folders["product_master"] == ["2026-07-01"]


def test_rows_counted_per_source(landing):
    """The run reports the rows it wrote per source (what `mesh generate` prints)."""
    _, run = landing
    for name, paths in run.files.items():
        assert run.rows[name] == sum(len(read_rows(p)) for p in paths)
        assert run.seconds[name] >= 0
    assert run.total_rows == sum(run.rows.values())


def test_physician_count_follows_scale(tmp_path):
    """The first AMA month has max(20, round(5000 * scale)) physicians."""
    written = generate(tmp_path, scale=0.001, **ONE_EACH)
    assert len(read_rows(written["ama_physician"][0])) == 20


def test_vectorised_npis_agree_with_the_platform_rule():
    """The generator's NumPy check digits agree with the platform's NPI rule."""
    bodies = stream(1, "npi-test").integers(100_000_000, 200_000_000, 2000)
    assert all(is_valid_npi(str(n)) for n in npis(bodies))
    assert not any(is_valid_npi(str(n + 1 if n % 10 < 9 else n - 1)) for n in npis(bodies))


def test_per_prescriber_volumes_do_not_grow_with_the_scale():
    """A market 100x bigger has 100x the prescribers, not bigger ones: the heaviest writer's
    weekly TRx stays capped at a few hundred, the typical one in the single digits to tens."""
    figures = {}
    for n in (2_000, 200_000):
        book = RosterBook(stream(3, "ama_physician"))
        roster = book.first_month(n)
        who = prescribers(3, roster, book)
        rx = rx_week(3, who, date(2026, 10, 31))
        figures[n] = (len(who), rx.trx.max(), np.median(rx.trx), rx.trx.mean(), len(rx.trx))
    (small, big) = figures[2_000], figures[200_000]
    assert big[0] == pytest.approx(100 * small[0], rel=0.05)
    assert big[4] == pytest.approx(100 * small[4], rel=0.05)
    assert small[1] <= big[1] <= MAX_TRX <= 600
    assert 2 <= small[2] <= 20 and 2 <= big[2] <= 20
    assert big[3] == pytest.approx(small[3], rel=0.15)


def test_rerun_overwrites_own_files_and_keeps_others(tmp_path):
    """Regenerating replaces files at the generator's paths but leaves unrelated files alone."""
    written = generate(tmp_path, scale=0.001, **ONE_EACH)
    target = written["rx_weekly"][0]
    expected = target.read_bytes()
    target.write_text("junk\n")
    stray = tmp_path / "rx_weekly" / "2020-01-04" / "rx_weekly.csv"
    stray.parent.mkdir(parents=True)
    stray.write_text("keep me\n")
    generate(tmp_path, scale=0.001, **ONE_EACH)
    assert target.read_bytes() == expected
    assert stray.read_text() == "keep me\n"


def test_weeks_are_independent_of_the_window(tmp_path):
    """A week's Rx file depends on the seed and its date, not on how many weeks are asked for:
    adding history adds files and leaves the newest week's bytes alone."""
    short = generate_landing(tmp_path / "short", scale=0.02, weeks=2)
    long = generate_landing(tmp_path / "long", scale=0.02, weeks=5)
    assert len(long.files["rx_weekly"]) == 5
    assert short.files["rx_weekly"][-1].read_bytes() == long.files["rx_weekly"][-1].read_bytes()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="scale must be > 0"):
        generate(tmp_path, scale=0)
    with pytest.raises(ValueError, match="quarters"):
        generate(tmp_path, scale=1, quarters=0)
    with pytest.raises(ValueError, match="NPP starts"):
        generate(tmp_path, scale=1, days=2000)
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_identifiers_have_their_formats(rows):
    """Keys look like their sources' keys (the contracts in landing.yaml check them too)."""
    assert all(re.fullmatch(r"CLM\d{16}", r["claim_id"]) for r in rows["claims"])
    assert all(re.fullmatch(r"CALL\d{14}", r["call_id"]) for r in rows["field_calls"])
    assert all(re.fullmatch(r"\d{5}-\d{4}-\d{2}", r["ndc"]) for r in rows["product_master"])
