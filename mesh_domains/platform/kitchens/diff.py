"""A kitchen's ports against production's: what changed, and whether consumers would notice.

Both sides are read as pinned views over their immutable files (grants checked, as for any
reader). For each port: the columns (added, removed, retyped), the contract (the kitchen code's
descriptor against production's), rows, keys by the port's primary key (added, removed, changed,
with samples), and both contracts run on the kitchen's rows. A change is **breaking** when a
consumer relying on the production contract could fail: a column of the contract removed or
retyped, a key removed, a production contract rule no longer met, a primary key changed.
Added columns, added keys and changed values are **compatible**.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import lake
from ..contracts import validate_table
from ..descriptor import Domain, OutputPort, discover_domains
from .sandbox import Kitchen, production_paths

SAMPLES = 5


@dataclass
class PortDiff:
    """One port: the kitchen's version against production's."""

    domain: str
    port: str
    kitchen_version: int | None = None
    production_version: int | None = None
    contract_version: tuple[int, int] = (1, 1)  # (production, kitchen)
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    columns_retyped: dict[str, tuple[str, str]] = field(default_factory=dict)
    contract_changes: list[str] = field(default_factory=list)
    rows: tuple[int | None, int | None] = (None, None)  # (production, kitchen)
    key: list[str] = field(default_factory=list)
    keys_added: int = 0
    keys_removed: int = 0
    keys_changed: int = 0
    samples: dict[str, list] = field(default_factory=dict)
    contract_results: dict[str, str] = field(default_factory=dict)
    breaking: list[str] = field(default_factory=list)
    compatible: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.note:
            return self.note
        if self.breaking:
            return "breaking"
        return "compatible" if self.compatible else "unchanged"

    @property
    def version_raised(self) -> bool:
        return self.contract_version[1] > self.contract_version[0]

    def as_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def consumers_of(ref: str, domains: dict[str, Domain]) -> list[str]:
    """The domains whose input ports read ``ref`` (``producer/port``)."""
    return sorted(d.name for d in domains.values() if any(r.ref == ref for r in d.input_ports))


def contract_changes(old: OutputPort, new: OutputPort) -> tuple[list[str], list[str]]:
    """(breaking, compatible) changes between two contracts of a port."""
    breaking, compatible = [], []
    before = {c.name: c for c in old.contract.columns}
    after = {c.name: c for c in new.contract.columns}
    for name in before.keys() - after.keys():
        breaking.append(f"contract column {name} removed")
    for name in after.keys() - before.keys():
        compatible.append(f"contract column {name} added")
    for name in before.keys() & after.keys():
        a, b = before[name], after[name]
        if a.type != b.type:
            breaking.append(f"contract column {name} retyped {a.type} -> {b.type}")
        if not a.nullable and b.nullable:
            breaking.append(f"contract column {name} may now be null")
        if a.checks != b.checks or a.unique != b.unique or (a.nullable and not b.nullable):
            compatible.append(f"contract rules of column {name} changed")
    if old.contract.primary_key != new.contract.primary_key:
        breaking.append(
            f"primary key {list(old.contract.primary_key)} -> {list(new.contract.primary_key)}"
        )
    if {r.name for r in old.contract.rules} - {r.name for r in new.contract.rules}:
        compatible.append("contract row rules removed")
    return sorted(breaking), sorted(compatible)


def diff_kitchen(kitchen: Kitchen, folder: Path | None = None) -> list[PortDiff]:
    """Every port of the kitchen's domains against production (``folder``: a namespace of the
    kitchen's other than its own, e.g. a promotion's)."""
    production = discover_domains()
    ours = kitchen.descriptors()
    root = folder or kitchen.folder
    diffs = []
    for name in kitchen.domains:
        served_here = _pointer(root / "lake" / name / "current.json")
        served_there = _pointer(production_paths().lake_dir(name) / "current.json")
        for port in ours[name].output_ports:
            old = _port_or_none(production.get(name), port.name)
            diffs.append(
                diff_port(old or port, port, served_here, served_there, production, ours[name])
            )
    return diffs


def _pointer(path: Path) -> dict[str, lake.Served]:
    return lake.read_pointer(path) if path.exists() else {}


def _port_or_none(domain: Domain | None, port: str) -> OutputPort | None:
    return next((p for p in domain.output_ports if p.name == port), None) if domain else None


def diff_port(
    old: OutputPort,
    new: OutputPort,
    here: dict[str, lake.Served],
    there: dict[str, lake.Served],
    production: dict[str, Domain],
    owner: Domain,
) -> PortDiff:
    d = PortDiff(new.domain, new.name, contract_version=(old.version, new.version))
    d.consumers = consumers_of(new.ref, production)
    d.breaking, d.compatible = contract_changes(old, new) if old is not new else ([], [])
    d.contract_changes = d.breaking + d.compatible
    if new.name not in here:
        d.note = "not built in the kitchen"
        return d
    con = lake.connect()
    try:
        _, d.kitchen_version = lake.open_port(
            con, owner.name, owner, new.name, served=here, view="kitchen_port"
        )
        if new.name in there:
            _, d.production_version = lake.open_port(
                con, owner.name, owner, new.name, served=there, view="production_port"
            )
        _compare(con, d, old, new, has_production=new.name in there)
        _contracts(con, d, old, new)
    finally:
        con.close()
    if d.keys_removed:
        d.breaking.append(f"{d.keys_removed} key(s) removed")
    if d.keys_added:
        d.compatible.append(f"{d.keys_added} key(s) added")
    if d.keys_changed:
        d.compatible.append(f"{d.keys_changed} key(s) with changed values")
    for name in d.columns_removed:
        if name in old.contract.column_names:
            d.breaking.append(f"column {name} removed")
    for name, (a, b) in d.columns_retyped.items():
        d.breaking.append(f"column {name} retyped {a} -> {b}")
    if d.columns_added:
        d.compatible.append(f"column(s) {', '.join(d.columns_added)} added")
    if d.contract_results.get("production", "passed") != "passed":
        d.breaking.append("fails the production contract")
    d.breaking = sorted(set(d.breaking))
    d.compatible = sorted(set(d.compatible))
    return d


def _schema(con, view: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"describe select * from {view}").fetchall()}


def _compare(con, d: PortDiff, old: OutputPort, new: OutputPort, has_production: bool) -> None:
    mine = _schema(con, "kitchen_port")
    count = "select count(*) from {}"
    kitchen_rows = con.execute(count.format("kitchen_port")).fetchone()[0]
    if not has_production:
        d.rows = (None, kitchen_rows)
        d.compatible.append("a new port")
        return
    theirs = _schema(con, "production_port")
    d.columns_added = [c for c in mine if c not in theirs]
    d.columns_removed = [c for c in theirs if c not in mine]
    d.columns_retyped = {
        c: (theirs[c], mine[c]) for c in mine if c in theirs and mine[c] != theirs[c]
    }
    d.rows = (con.execute(count.format("production_port")).fetchone()[0], kitchen_rows)
    key = [c for c in (old.contract.primary_key or new.contract.primary_key) if c in mine]
    if not key or len(key) != len(old.contract.primary_key or new.contract.primary_key):
        return
    if any(c not in theirs for c in key):
        return
    d.key = key
    keys = ", ".join(f'"{c}"' for c in key)
    common = ", ".join(f'"{c}"' for c in mine if c in theirs and c not in d.columns_retyped)
    queries = {
        "added": f"select {keys} from kitchen_port except select {keys} from production_port",
        "removed": f"select {keys} from production_port except select {keys} from kitchen_port",
        "changed": (
            f"select distinct {keys} from (select {common} from kitchen_port except "
            f"select {common} from production_port) semi join production_port using ({keys})"
        ),
    }
    for kind, sql in queries.items():
        n = con.execute(f"select count(*) from ({sql})").fetchone()[0]
        setattr(d, f"keys_{kind}", n)
        if n:
            rows = con.execute(f"select * from ({sql}) order by all limit {SAMPLES}").fetchall()
            d.samples[kind] = [_key_sample(key, row) for row in rows]
    if d.keys_changed:
        d.samples["changed_rows"] = _changed_rows(con, key, keys, common)


def _key_sample(key: list[str], row) -> str | dict:
    values = [str(v) for v in row]
    return values[0] if len(key) == 1 else dict(zip(key, values, strict=True))


def _changed_rows(con, key: list[str], keys: str, common: str) -> list[dict]:
    """A few changed keys with the values that changed (production -> kitchen)."""
    sql = (
        f"select {keys} from (select {common} from kitchen_port except "
        f"select {common} from production_port) semi join production_port using ({keys}) "
        f"order by all limit {SAMPLES}"
    )
    out = []
    cols = [c.strip('"') for c in common.split(", ")]
    for row in con.execute(sql).fetchall():
        where = " and ".join(f'"{c}" is not distinct from ?' for c in key)
        a = con.execute(f"select {common} from production_port where {where}", list(row)).fetchone()
        b = con.execute(f"select {common} from kitchen_port where {where}", list(row)).fetchone()
        changes = {
            c: [str(x), str(y)] for c, x, y in zip(cols, a or (), b or (), strict=False) if x != y
        }
        out.append({"key": _key_sample(key, row), "changes": changes})
    return out


def _contracts(con, d: PortDiff, old: OutputPort, new: OutputPort) -> None:
    """The kitchen's rows against its own contract, and against production's (over the
    columns production's contract declares: an added column does not fail it)."""
    mine = _schema(con, "kitchen_port")
    declared = [c for c in old.contract.column_names if c in mine]
    cols = ", ".join(f'"{c}"' for c in declared)
    con.execute(f"create or replace view production_columns as select {cols} from kitchen_port")
    for label, port, view in (
        ("kitchen", new, "kitchen_port"),
        ("production", old, "production_columns"),
    ):
        report = validate_table(con, view, port.contract, domain=port.domain, port=port.name)
        d.contract_results[label] = "passed" if report.passed else report.message()
