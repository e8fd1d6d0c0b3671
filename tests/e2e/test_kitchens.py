"""Kitchens on the tiny mesh: made in seconds without copying production, built side by side
without interfering, compared with production, promoted only when consumers are safe, and
never writing to production storage or the production Dagster instance except by promote."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pytest
from mesh_harness import built_copy

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.kitchens import sandbox
from mesh_domains.platform.kitchens.diff import diff_kitchen
from mesh_domains.platform.kitchens.promote import contract_check, promote
from mesh_domains.platform.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow
DW = "physician_dw"
# the commit the kitchens check out (a shared working tree may run ahead of HEAD's consistency)
REF = os.environ.get("MESH_TEST_KITCHEN_REF", "HEAD")
MODEL = Path("dbt_projects/physician_dw/models/marts/dim_physician.sql")
FINAL_SQL = "select * from final"
CHANGED_SQL = "select * replace (physician_name || ' (kitchen)' as physician_name) from final"


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """Production: every domain built (a copy of the test session's tiny build)."""
    for mesh in built_copy(tmp_path_factory, "kitchens"):
        yield mesh
        for kitchen in sandbox.all_kitchens():
            sandbox.destroy(kitchen)


def fingerprint(mesh) -> dict[str, str]:
    """SHA-256 of every file of production: its data root (kitchens aside) and its instance."""
    roots = [mesh.paths.data, Path(mesh.instance.root_directory)]
    out = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if "kitchens" not in path.relative_to(root).parts[:1]:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def kitchens(production):
    """Two kitchens of physician_dw built at the same time: one from HEAD with a changed
    dim_physician model, one of the working tree; production's fingerprint taken first."""
    before = fingerprint(production)
    changed = sandbox.create("changed", [DW], ref=REF)
    twin = sandbox.create("twin", [DW])  # the working tree: the code production runs here
    edit(changed.code / MODEL, FINAL_SQL, CHANGED_SQL)
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(lambda k: sandbox.build(k, capture=True, timeout=300), [changed, twin])
        )
    for run in runs:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return changed, twin, before


def test_create_is_fast_pins_production_and_copies_no_data(production):
    """A kitchen is ready in well under 5 s, writes a few pointer files (no Parquet, no
    database), pins the versions production serves, and leaves production byte-for-byte."""
    before, data_bytes = fingerprint(production), sandbox.disk_usage(production.paths.data)
    started = time.monotonic()
    plain = sandbox.create("plain", [DW])
    plain_s = time.monotonic() - started
    started = time.monotonic()
    from_ref = sandbox.create("from-ref", [DW], ref=REF)
    ref_s = time.monotonic() - started
    print(f"\ncreate: working tree {plain_s:.2f}s, --ref {REF} {ref_s:.2f}s")
    assert plain_s < 5 and ref_s < 5
    files = sorted(str(p.relative_to(plain.folder)) for p in plain.folder.rglob("*") if p.is_file())
    others = sorted(d for d in discover_domains() if d != DW)  # production's other domains
    assert files == sorted(
        ["dagster/dagster.yaml", "kitchen.json", *(f"lake/{d}/current.json" for d in others)]
    )
    written = sandbox.disk_usage(plain.folder)
    print(f"kitchen files: {files}, {written:,} bytes; production data {data_bytes:,} bytes")
    assert written < 20_000
    for domain in others:
        served = json.loads((production.paths.lake_dir(domain) / "current.json").read_text())
        assert plain.pinned[domain] == {p: e["version"] for p, e in served["ports"].items()}
    commit = subprocess.run(
        ["git", "rev-parse", f"{REF}^{{commit}}"], cwd=PROJECT_ROOT, capture_output=True, text=True
    ).stdout.strip()
    assert (from_ref.code / MODEL).exists() and from_ref.commit == commit
    assert sandbox.disk_usage(from_ref.folder, skip=("code",)) < 20_000
    assert {k.name for k in sandbox.all_kitchens()} >= {"plain", "from-ref"}
    sandbox.destroy(plain)
    sandbox.destroy(from_ref)
    assert not plain.folder.exists() and not from_ref.folder.exists()
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=PROJECT_ROOT, capture_output=True, text=True
    ).stdout
    assert str(from_ref.code) not in worktrees
    assert fingerprint(production) == before
    assert sandbox.disk_usage(production.paths.data) == data_bytes


def test_kitchens_build_side_by_side_and_diff_shows_the_change(production, kitchens):
    """Two kitchens of the same domain build at the same time, each into its own lake with its
    own code; diff shows the changed model as changed keys (compatible) in one, nothing in the
    other; production's storage and instance are untouched by all of it."""
    changed, twin, before = kitchens
    diffs = {d.port: d for d in diff_kitchen(changed)}
    dim = diffs["dim_physician"]
    assert dim.verdict == "compatible", dim.as_dict()
    assert dim.keys_changed > 0 and dim.keys_added == dim.keys_removed == 0
    assert dim.rows[0] == dim.rows[1]
    sample = dim.samples["changed_rows"][0]["changes"]
    assert set(sample) == {"physician_name"}
    old, new = sample["physician_name"]
    assert new == old + " (kitchen)"
    assert diffs["fact_rx_weekly"].verdict == "unchanged"
    assert all(d.verdict == "unchanged" for d in diff_kitchen(twin)), [
        d.as_dict() for d in diff_kitchen(twin)
    ]
    assert changed.paths.lake_dir(DW) != twin.paths.lake_dir(DW)
    for k in (changed, twin):  # each kitchen's own instance recorded its own runs
        with dg.DagsterInstance.from_config(str(k.dagster_home)) as instance:
            runs = instance.get_runs()
            assert runs and all(r.tags.get("mesh/domain") == DW for r in runs)
    assert fingerprint(production) == before


def test_a_dropped_contract_column_is_refused_at_promote(production):
    """Dropping a contract column breaks dim_physician's consumers: promote refuses it and
    publishes nothing, until the port's contract version is raised, and then it names them."""
    kitchen = sandbox.create("breaking", [DW], ref=REF)
    edit(kitchen.code / MODEL, "        me_number,\n", "")
    marts = kitchen.code / "dbt_projects/physician_dw/models/marts/_marts.yml"
    lines = marts.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if "name: me_number" in line)
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and len(lines[end]) - len(lines[end].lstrip()) > indent:
        end += 1
    marts.write_text("".join(lines[:start] + lines[end:]))
    descriptor = kitchen.code / "mesh_domains/physician_dw/domain.yaml"
    edit(descriptor, "      me_number: {type: string}\n", "")
    before = fingerprint(production)
    result = promote(kitchen, production.instance)
    assert not result.ok and not result.published
    assert any("me_number removed" in r and "version to 2" in r for r in result.refused)
    assert fingerprint(production) == before
    edit(descriptor, "  dim_physician:\n", "  dim_physician:\n    version: 2\n")
    refused, raised = contract_check(kitchen)
    assert refused == []
    assert raised == {"physician_dw/dim_physician": ["brand_analytics"]}
    sandbox.destroy(kitchen)


def test_a_compatible_change_promotes_with_kitchen_and_ref(production, kitchens):
    """A compatible change publishes a new production version of each port, recorded as
    promoted from the kitchen at its ref; the production instance records it too. Production
    has not moved since the kitchen's build, so that build is the one promoted."""
    changed, _, _ = kitchens
    served = lake.served_ports(DW)
    result = promote(changed, production.instance)
    assert result.ok, result.refused
    assert not result.rebuilt
    assert {d.port: d.verdict for d in result.diffs}["dim_physician"] == "compatible"
    version = result.published["physician_dw/dim_physician"]
    assert version > served["dim_physician"].version
    now = lake.served_ports(DW)
    assert now["dim_physician"].version == version
    con = lake.connect()
    owner = discover_domains()[DW]
    lake.attach_port_reader(con, DW, owner, ["dim_physician"])
    info = lake.port_versions(con, DW, "dim_physician")[-1].info
    assert info["promoted_from"]["kitchen"] == "changed"
    assert info["promoted_from"]["ref"] == REF
    assert info["promoted_from"]["commit"] == changed.commit
    assert info["promoted_from"]["dirty"] is True
    view, _ = lake.open_port(con, "brand_analytics", owner, "dim_physician")
    names = [n for (n,) in con.execute(f"select physician_name from {view}").fetchall()]
    assert names and all(n.endswith(" (kitchen)") for n in names)
    con.close()
    event = production.instance.get_latest_materialization_event(dg.AssetKey([DW, "dim_physician"]))
    metadata = event.asset_materialization.metadata
    assert metadata["port_version"].value == version
    assert metadata["promoted_from"].value == {"kitchen": "changed", "ref": REF}
    assert not (changed.folder / "promotion").exists()


def test_promotion_rebuilds_on_production_inputs_when_they_moved(production, kitchens):
    """Once production's inputs moved on since the kitchen's build (here a re-delivered
    landing file), promotion runs the kitchen's code again on production's current inputs,
    in a namespace of its own, and publishes that, leaving nothing behind."""
    _, twin, _ = kitchens
    redelivered = production.landing_file("field_calls")
    os.utime(redelivered)
    before = lake.served_ports(DW)
    result = promote(twin, production.instance)
    assert result.ok, result.refused
    assert result.rebuilt
    assert "physician_dw built" in result.build_output
    version = result.published["physician_dw/fact_calls"]
    assert version > before["fact_calls"].version
    con = lake.connect()
    lake.attach_port_reader(con, DW, discover_domains()[DW], ["fact_calls"])
    info = lake.port_versions(con, DW, "fact_calls")[-1].info
    con.close()
    assert info["promoted_from"]["kitchen"] == "twin"
    served = json.loads(
        (production.paths.lake_dir("physician_master") / "current.json").read_text()
    )
    assert (
        info["input_versions"]["physician_master/physicians"]
        == (served["ports"]["physicians"]["version"])
    )
    assert not (twin.folder / "promotion").exists()
