"""Reliability: bad input. Every kind of malformed source delivery is stopped before publish.

One tiny mesh is built once (physician_master, which ingests all three landing sources). Each
case then damages the landing zone in one way and rebuilds the domain, proving that:

(a) the build fails with a message naming the domain, the source, the file, the column and the
    rule, and saying how to re-run (``mesh build --domain physician_master``);
(b) the delivery is quarantined: a copy in ``quarantine/<source>/<partition>/`` and its
    ``.reason.json`` naming the same column and rule; the landing file is left in place;
(c) the published port versions are unchanged (in the Dagster instance and in the lake) and
    the old data is still readable, byte for byte the same.

After each case the landing zone is restored and the quarantine cleared. The last tests show
that fixing the file and re-running publishes a new version, and that a stray file next to a
good delivery is ignored (with a warning) rather than failing the build.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mesh_harness import Mesh, _make_mesh

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.status import port_status

pytestmark = pytest.mark.slow

DOMAIN = "physician_master"
PORTS = ("physicians", "physician_xref")
RERUN = f"mesh build --domain {DOMAIN}"


# --- the mesh under test -------------------------------------------------------------------------


@dataclass
class Bench:
    """The built mesh plus a pristine copy of its landing zone to restore after each case."""

    mesh: Mesh
    pristine: Path
    served: dict[str, object] = field(default_factory=dict)  # what the lake serves now

    @property
    def landing(self) -> Path:
        return self.mesh.paths.landing

    def restore(self) -> None:
        shutil.rmtree(self.landing)
        shutil.copytree(self.pristine, self.landing)
        shutil.rmtree(self.mesh.paths.quarantine, ignore_errors=True)

    def versions(self) -> dict[str, object]:
        """Port versions as Dagster records them and as the lake serves them, with a digest of
        the served rows (so "still readable, unchanged" is checked, not assumed)."""
        domain = discover_domains()[DOMAIN]
        con = lake.connect()
        try:
            lake.attach_own_lake(con, DOMAIN)
            state: dict[str, object] = {}
            for port in PORTS:
                state[f"{port}/dagster"] = port_status(self.mesh.instance, domain, port).version
                state[f"{port}/lake"] = lake.current_version(con, DOMAIN, port)
                state[f"{port}/rows"] = con.execute(
                    f"select count(*), sum(hash(columns(*))) from {lake.lake_alias(DOMAIN)}"
                    f".main.{port}"
                ).fetchone()
        finally:
            con.close()
        return state


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("bad_input")
    (root / "dagster_home").mkdir(exist_ok=True)
    for mesh in _make_mesh(root):
        report = mesh.build(DOMAIN)
        assert report.ok, [r.error for r in report.results]
        pristine = root / "pristine_landing"
        shutil.copytree(mesh.paths.landing, pristine)
        bench = Bench(mesh, pristine)
        bench.served = bench.versions()
        yield bench


# --- ways to damage a delivery -------------------------------------------------------------------


def _latest(bench: Bench, source: str) -> Path:
    return bench.mesh.landing_file(source)


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    path.write_text(out.getvalue())


def set_value(source: str, column: str, value: str, row: int = 0):
    """Overwrite one cell of the newest delivery."""

    def damage(bench: Bench) -> Path:
        path = _latest(bench, source)
        header, rows = _read(path)
        rows[row][header.index(column)] = value
        _write(path, header, rows)
        return path

    return damage


def set_values(source: str, **values: str):
    """Overwrite cells of the first row of the newest delivery."""

    def damage(bench: Bench) -> Path:
        path = _latest(bench, source)
        header, rows = _read(path)
        for column, value in values.items():
            rows[0][header.index(column)] = value
        _write(path, header, rows)
        return path

    return damage


def set_column(source: str, column: str, value: str):
    """Overwrite a whole column of the newest delivery."""

    def damage(bench: Bench) -> Path:
        path = _latest(bench, source)
        header, rows = _read(path)
        for row in rows:
            row[header.index(column)] = value
        _write(path, header, rows)
        return path

    return damage


def edit_table(source: str, edit: Callable[[list[str], list[list[str]]], None]):
    """Edit header and rows of the newest delivery in place."""

    def damage(bench: Bench) -> Path:
        path = _latest(bench, source)
        header, rows = _read(path)
        edit(header, rows)
        _write(path, header, rows)
        return path

    return damage


def rewrite_bytes(source: str, make: Callable[[bytes], bytes]):
    """Replace the newest delivery's bytes."""

    def damage(bench: Bench) -> Path:
        path = _latest(bench, source)
        path.write_bytes(make(path.read_bytes()))
        return path

    return damage


def deliver_copy(source: str, partition: str, of: str | None = None, name: str | None = None):
    """Drop a copy of a delivery (default: the newest) into another partition folder."""

    def damage(bench: Bench) -> Path:
        original = bench.mesh.landing_file(source, of)
        target = bench.landing / source / partition / (name or original.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(original, target)
        return target

    return damage


def rename_delivery(source: str, new_name: str):
    def damage(bench: Bench) -> Path:
        path = _latest(bench, source)
        return path.rename(path.with_name(new_name))

    return damage


def _drop_column(name: str):
    def edit(header, rows):
        i = header.index(name)
        for r in [header, *rows]:
            del r[i]

    return edit


def _add_column(name: str, value: str):
    def edit(header, rows):
        header.append(name)
        for r in rows:
            r.append(value)

    return edit


def _rename_column(old: str, new: str):
    def edit(header, rows):
        header[header.index(old)] = new

    return edit


def _duplicate_first_row(header, rows):
    rows.append(list(rows[0]))


def _duplicate_me_number(header, rows):
    i = header.index("me_number")
    rows[1][i] = rows[0][i]


def _bad_check_digit(header, rows):
    i = header.index("prescriber_npi")
    npi = rows[0][i]
    rows[0][i] = npi[:9] + str((int(npi[9]) + 1) % 10)


def _trx_below_nrx(header, rows):
    rows[0][header.index("nrx")], rows[0][header.index("trx")] = "9", "3"


def _truncate(data: bytes) -> bytes:
    cut = data.rstrip(b"\n").rfind(b"\n") + 15  # 14 bytes into the last row
    return data[:cut]


def _garbage(data: bytes) -> bytes:
    return random.Random(7).randbytes(len(data))


def _latin1(data: bytes) -> bytes:
    text = data.decode()
    header, first, rest = text.split("\n", 2)
    cells = first.split(",")
    cells[2] = "José"  # first_name
    return f"{header}\n{','.join(cells)}\n{rest}".encode("latin-1")


def _header_only(data: bytes) -> bytes:
    return data.split(b"\n", 1)[0] + b"\n"


def _no_header(data: bytes) -> bytes:
    return data.split(b"\n", 1)[1]


def _unterminated_quote(data: bytes) -> bytes:
    header, first, rest = data.split(b"\n", 2)
    return b"\n".join([header, first.replace(b",", b',"', 1), rest])


def _extra_field(data: bytes) -> bytes:
    header, first, rest = data.split(b"\n", 2)
    return b"\n".join([header, first + b",oops", rest])


def _duplicate_header(data: bytes) -> bytes:
    header, rest = data.split(b"\n", 1)
    return header.replace(b"trx", b"nrx") + b"\n" + rest


# --- the kinds of bad input ----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    id: str
    proves: str
    source: str
    damage: Callable[[Bench], Path]  # returns the delivery that must be rejected
    column: str
    rule: str


# fmt: off
KINDS = [
    # schema drift
    Kind("missing_column", "a delivery without a declared column is rejected", "rx_weekly",
         edit_table("rx_weekly", _drop_column("data_type")), "data_type", "column present"),
    Kind("extra_column", "a delivery with an undeclared column is rejected", "rx_weekly",
         edit_table("rx_weekly", _add_column("channel", "retail")), "channel",
         "no unexpected columns"),
    Kind("renamed_column", "a renamed column is named, with what it was renamed to", "rx_weekly",
         edit_table("rx_weekly", _rename_column("nrx", "new_rx")), "nrx",
         "column present (renamed to 'new_rx'?)"),
    Kind("duplicate_header_column", "a column named twice in the header is rejected",
         "rx_weekly", rewrite_bytes("rx_weekly", _duplicate_header), "nrx",
         "named once in the header"),
    Kind("retyped_int_column", "text in an integer column is rejected", "rx_weekly",
         set_value("rx_weekly", "nrx", "n/a"), "nrx", "type int64"),
    Kind("decimal_in_int_column", "'2.5' is not silently rounded into an integer column",
         "rx_weekly", set_value("rx_weekly", "trx", "2.5"), "trx", "type int64"),
    Kind("retyped_date_column", "a date column holding text is rejected", "rx_weekly",
         set_column("rx_weekly", "week_ending", "last week"), "week_ending", "type date"),
    Kind("unparseable_date", "a US-style date is not guessed at", "rx_weekly",
         set_value("rx_weekly", "week_ending", "10/31/2026"), "week_ending",
         "type date (YYYY-MM-DD)"),
    Kind("unparseable_timestamp", "an impossible timestamp is rejected", "crm_accounts",
         set_value("crm_accounts", "changed_at", "2026-10-31T25:61:00"), "changed_at",
         "type timestamp"),
    # keys
    Kind("null_in_key_column", "an empty primary-key value is rejected", "rx_weekly",
         set_value("rx_weekly", "prescriber_npi", ""), "prescriber_npi", "not_null"),
    Kind("blank_in_key_column", "a whitespace-only key counts as missing", "crm_accounts",
         set_value("crm_accounts", "crm_id", "   "), "crm_id", "not_null"),
    Kind("duplicate_key_in_file", "the same key twice in one file is rejected", "rx_weekly",
         edit_table("rx_weekly", _duplicate_first_row), "prescriber_npi, product, week_ending",
         "unique"),
    Kind("duplicate_unique_column", "a unique non-key column repeated is rejected",
         "ama_physician", edit_table("ama_physician", _duplicate_me_number), "me_number",
         "unique"),
    # values
    Kind("negative_count", "a negative NRx is rejected", "rx_weekly",
         set_value("rx_weekly", "nrx", "-3"), "nrx", "greater_than_or_equal_to(0)"),
    Kind("absurd_count", "a TRx above the declared maximum is rejected", "rx_weekly",
         set_value("rx_weekly", "trx", "5000000"), "trx", "less_than_or_equal_to(100000)"),
    Kind("npi_bad_check_digit", "an NPI failing the Luhn check is rejected", "rx_weekly",
         edit_table("rx_weekly", _bad_check_digit), "prescriber_npi", "valid NPI"),
    Kind("unknown_product", "a product outside the market basket is rejected", "rx_weekly",
         set_value("rx_weekly", "product", "ZENVIRAX"), "product", "isin"),
    Kind("trx_below_nrx", "a row with TRx < NRx breaks the declared row rule", "rx_weekly",
         edit_table("rx_weekly", _trx_below_nrx), "trx, nrx", "trx_covers_nrx: trx >= nrx"),
    Kind("invalid_status", "an AMA status outside the enum is rejected", "ama_physician",
         set_value("ama_physician", "status", "retierd"), "status", "isin"),
    Kind("invalid_change_type", "a CRM change type outside the enum is rejected", "crm_accounts",
         set_value("crm_accounts", "change_type", "upsert"), "change_type", "isin"),
    Kind("invalid_data_type", "an Rx data type outside the enum is rejected", "rx_weekly",
         set_value("rx_weekly", "data_type", "Actual "), "data_type", "isin"),
    Kind("bad_state", "a state that is not a US state code is rejected", "ama_physician",
         set_value("ama_physician", "state", "Mass"), "state", "isin"),
    Kind("bad_zip", "a zip that lost its leading zero (Excel) is rejected", "ama_physician",
         set_value("ama_physician", "zip", "2108"), "zip", "str_matches"),
    Kind("bad_me_number", "an ME number that is not 11 digits is rejected", "ama_physician",
         set_value("ama_physician", "me_number", "1234"), "me_number", "str_matches"),
    Kind("bad_crm_id", "a CRM id off its pattern is rejected", "crm_accounts",
         set_value("crm_accounts", "crm_id", "CRM12"), "crm_id", "str_matches"),
    Kind("bad_territory", "a territory code off its pattern is rejected", "crm_accounts",
         set_value("crm_accounts", "territory", "Territory 1"), "territory", "str_matches"),
    # dates against the partition
    Kind("future_rx_week", "an Rx week after the partition's week is future-dated", "rx_weekly",
         set_values("rx_weekly", week_ending="2026-11-07"), "week_ending", "future-dated"),
    Kind("future_crm_change", "a CRM change after the partition day is future-dated",
         "crm_accounts", set_value("crm_accounts", "changed_at", "2026-11-01T08:00:00"),
         "changed_at", "future-dated"),
    Kind("rows_of_an_earlier_week", "rows of last week in this week's partition are rejected",
         "rx_weekly", set_column("rx_weekly", "week_ending", "2026-10-24"), "week_ending",
         "belongs to an earlier partition"),
    # the file itself
    Kind("truncated_file", "a file cut mid-row is rejected, naming the first missing column",
         "rx_weekly", rewrite_bytes("rx_weekly", _truncate), "week_ending",
         "every row has 6 fields"),
    Kind("too_many_fields", "a row with an extra field is rejected", "rx_weekly",
         rewrite_bytes("rx_weekly", _extra_field), "<file>", "every row has 6 fields"),
    Kind("unterminated_quote", "a value with an unclosed quote is rejected", "rx_weekly",
         rewrite_bytes("rx_weekly", _unterminated_quote), "product", "quoted values closed"),
    Kind("binary_garbage", "random bytes are rejected as not a text CSV", "rx_weekly",
         rewrite_bytes("rx_weekly", _garbage), "<file>", "plain-text CSV"),
    Kind("gzip_file", "a compressed file under a .csv name is rejected", "rx_weekly",
         rewrite_bytes("rx_weekly", gzip.compress), "<file>", "plain-text CSV"),
    Kind("latin1_encoding", "latin-1 bytes are rejected, naming the column", "crm_accounts",
         rewrite_bytes("crm_accounts", _latin1), "first_name", "encoding utf-8"),
    Kind("utf16_encoding", "a UTF-16 file is rejected as not UTF-8 text", "crm_accounts",
         rewrite_bytes("crm_accounts", lambda b: b.decode().encode("utf-16")), "<file>",
         "plain-text CSV (utf-8)"),
    Kind("empty_file", "a 0-byte file is rejected", "rx_weekly",
         rewrite_bytes("rx_weekly", lambda b: b""), "<file>", "not empty"),
    Kind("header_only", "a file with a header and no rows is rejected", "rx_weekly",
         rewrite_bytes("rx_weekly", _header_only), "<table>", "at least 1 row"),
    Kind("missing_header", "a file whose first line is data is rejected", "rx_weekly",
         rewrite_bytes("rx_weekly", _no_header), "<header>", "header row naming"),
    Kind("semicolon_delimiter", "a ';'-delimited file is rejected, not sniffed", "rx_weekly",
         rewrite_bytes("rx_weekly", lambda b: b.replace(b",", b";")), "<header>",
         "delimiter ','"),
    Kind("tab_delimiter", "a tab-delimited file is rejected, not sniffed", "crm_accounts",
         rewrite_bytes("crm_accounts", lambda b: b.replace(b",", b"\t")), "<header>",
         "delimiter ','"),
    # deliveries and partitions
    Kind("crm_delivery_sent_twice", "a day's file re-sent as the next day repeats its keys",
         "crm_accounts", deliver_copy("crm_accounts", "2026-11-01"), "crm_id, changed_at",
         "unique across deliveries"),
    Kind("rx_delivery_sent_twice", "a week's file re-sent into the next week repeats keys",
         "rx_weekly", deliver_copy("rx_weekly", "2026-11-07"),
         "prescriber_npi, product, week_ending", "unique across deliveries"),
    Kind("partition_not_a_date", "a partition folder that is not a date is rejected",
         "rx_weekly", deliver_copy("rx_weekly", "2026-10-32"), "<partition>",
         "partition folder named %Y-%m-%d"),
    Kind("weekly_partition_not_saturday", "a weekly partition must end on a Saturday",
         "rx_weekly", deliver_copy("rx_weekly", "2026-10-30"), "<partition>",
         "weekly partition ends on a Saturday"),
    Kind("monthly_partition_bad_month", "an AMA month 13 is rejected even though a snapshot "
         "source loads only its newest partition", "ama_physician",
         deliver_copy("ama_physician", "2026-13"), "<partition>", "partition folder named %Y-%m"),
    Kind("old_snapshot_misfiled", "a misnamed older partition is not silently skipped",
         "ama_physician", deliver_copy("ama_physician", "2026-9", of="2026-09"), "<partition>",
         "partition folder named %Y-%m"),
    Kind("wrong_file_name", "a partition folder holding a misnamed file is rejected", "rx_weekly",
         rename_delivery("rx_weekly", "rx_weekly_20261031.csv"), "<file>",
         "file named rx_weekly.csv"),
    Kind("file_outside_partition", "a file dropped beside the partition folders is rejected",
         "crm_accounts", deliver_copy("crm_accounts", "."), "<partition>",
         "inside a partition folder"),
]
# fmt: on


def _quarantined(bench: Bench, delivery: Path, source: str) -> Path:
    partition = delivery.parent.name
    if delivery.parent == bench.landing / source:
        partition = "_unpartitioned"
    return bench.mesh.paths.quarantine / source / partition / delivery.name


@pytest.mark.parametrize("kind", KINDS, ids=[k.id for k in KINDS])
def test_bad_delivery_is_rejected_quarantined_and_old_versions_stay_served(bench, kind):
    """Each id names one kind of bad delivery (see ``Kind.proves``): the build stops before
    publish naming domain/source/file/column/rule, the delivery is quarantined with its
    reason, and the last good port versions are still served unchanged."""
    before = bench.served
    try:
        delivery = kind.damage(bench)
        report = bench.mesh.build(DOMAIN)
        assert not report.ok, f"{kind.id}: {kind.proves} - but the build passed"
        error = report.results[0].error or ""
        for part in (
            f"domain '{DOMAIN}'",
            f"source '{kind.source}'",
            f"file {delivery}",
            f"column '{kind.column}'",
            kind.rule,
            RERUN,
        ):
            assert part in error, f"{kind.id}: {part!r} missing from:\n{error}"

        kept = _quarantined(bench, delivery, kind.source)
        assert kept.is_file(), f"{kind.id}: no quarantined copy at {kept}"
        assert kept.read_bytes() == delivery.read_bytes()
        assert delivery.exists(), "the landing file stays until it is fixed or removed"
        reason = json.loads(kept.with_name(f"{kept.name}.reason.json").read_text())
        assert reason["domain"] == DOMAIN and reason["source"] == kind.source
        assert reason["file"] == str(delivery)
        assert any(
            f["column"] == kind.column and kind.rule in f["rule"] for f in reason["failures"]
        ), reason["failures"]
        assert RERUN in reason["rerun"]

        assert bench.versions() == before
    finally:
        bench.restore()


def test_all_bad_deliveries_of_a_source_are_reported_at_once(bench):
    """Two bad deliveries of one source (an old week and the newest) are both quarantined and
    both named in one error, so one round of fixes and one re-run is enough."""
    before = bench.served
    old = bench.mesh.landing_file("rx_weekly", "2026-10-17")
    try:
        set_value("rx_weekly", "nrx", "-1")(bench)
        new = _latest(bench, "rx_weekly")
        header, rows = _read(old)
        rows[0][header.index("product")] = "PLACEBO"
        _write(old, header, rows)
        report = bench.mesh.build(DOMAIN)
        assert not report.ok
        error = report.results[0].error or ""
        assert "2 deliveries of this source were rejected" in error
        for path, column in ((old, "product"), (new, "nrx")):
            assert f"file {path}" in error and f"column '{column}'" in error
            assert _quarantined(bench, path, "rx_weekly").is_file()
        assert f"remove {old}, {new}" in error and RERUN in error
        assert bench.versions() == before
    finally:
        bench.restore()


def test_fixed_delivery_rerun_publishes_a_new_version(bench):
    """After a rejected delivery is fixed, the re-run the hint names succeeds, publishes a new
    port version, and a fresh rejection of a still-bad file keeps it blocked until then."""
    before = bench.served
    path = set_value("rx_weekly", "nrx", "-3")(bench)
    good = bench.pristine / path.relative_to(bench.landing)
    try:
        assert not bench.mesh.build(DOMAIN).ok
        assert not bench.mesh.build(DOMAIN).ok, "the bad landing file keeps failing builds"
        assert bench.versions() == before
        shutil.copy2(good, path)  # the fix: a corrected delivery replaces the bad one
        report = bench.mesh.build(DOMAIN)
        assert report.ok, report.results[0].error
        after = bench.versions()
        for port in PORTS:
            assert after[f"{port}/lake"] > before[f"{port}/lake"]
            assert after[f"{port}/dagster"] == after[f"{port}/lake"]
            assert after[f"{port}/rows"] == before[f"{port}/rows"], "same input, same rows"
        bench.served = after
    finally:
        bench.restore()


def test_stray_file_beside_a_good_delivery_is_ignored(bench, caplog):
    """A partition holds one delivery: an extra file next to the declared one (a re-send, a
    README) is ignored with a warning naming it; the build still succeeds."""
    stray = _latest(bench, "rx_weekly").with_name("rx_weekly (1).csv")
    shutil.copy2(_latest(bench, "rx_weekly"), stray)
    try:
        with caplog.at_level("WARNING", logger="mesh_domains.platform.sources"):
            report = bench.mesh.build(DOMAIN)
        assert report.ok, report.results[0].error
        run_logs = bench.mesh.instance.all_logs(report.results[0].run_id)
        warnings = [r.getMessage() for r in caplog.records] + [e.user_message for e in run_logs]
        assert any(stray.name in w and "ignoring" in w for w in warnings)
        assert not bench.mesh.paths.quarantine.exists()
        bench.served = bench.versions()
    finally:
        bench.restore()
