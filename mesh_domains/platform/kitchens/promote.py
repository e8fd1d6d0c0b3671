"""Promotion: a kitchen's code becomes production's ports, the safe way.

1. The kitchen code's contracts are compared with production's: a breaking change (a contract
   column removed or retyped, the primary key changed) is refused before anything runs, unless
   the port's contract ``version`` was raised in the kitchen's descriptor.
2. The kitchen's code builds its domains again, in a promotion namespace of the kitchen
   (``<kitchen>/promotion``), on production's inputs at their current versions (not the
   kitchen's pins), with production's variation; its own contracts and dbt tests run as usual.
   When the kitchen's last build read exactly that (same code, variation, upstream versions
   and landing files: :func:`.sandbox.build_state`), that build is promoted as it is.
3. Each port is compared with production's served version and audited with the production
   contract (:mod:`.diff`); a breaking difference (a key removed, a production rule no longer
   met) is refused unless the contract version was raised.
4. Only then are the ports published to production's lake, each domain's ports in one commit
   whose info records ``promoted_from`` (kitchen, ref, commit) and the contract versions; the
   pointer moves, and the production Dagster instance records the new versions. When the
   contract version was raised, the consumers that read the port are named.
"""

from __future__ import annotations

import json
import shutil
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from .. import lake
from ..descriptor import discover_domains
from ..settings import KITCHEN, MeshPaths, mesh_env
from .diff import PortDiff, _pointer, consumers_of, contract_changes, diff_kitchen
from .sandbox import Kitchen, build, build_state, production_paths, production_versions

PROMOTION = "promotion"


@dataclass
class Promotion:
    """What a promotion did: refused (and why), or the production versions it published."""

    kitchen: str
    ref: str
    refused: list[str] = field(default_factory=list)
    diffs: list[PortDiff] = field(default_factory=list)
    published: dict[str, int] = field(default_factory=dict)  # producer/port -> version
    consumers: dict[str, list[str]] = field(default_factory=dict)  # raised ports' readers
    build_output: str = ""
    rebuilt: bool = False  # False: the kitchen's last build already read production's inputs

    @property
    def ok(self) -> bool:
        return not self.refused


def contract_check(kitchen: Kitchen) -> tuple[list[str], dict[str, list[str]]]:
    """The kitchen code's contracts against production's, before anything runs: refusals of
    breaking changes whose contract version was not raised, and the consumers of each port
    whose contract version was raised (they must be told)."""
    refused: list[str] = []
    raised: dict[str, list[str]] = {}
    production = discover_domains()
    for name, ours in kitchen.descriptors().items():
        for port in ours.output_ports:
            old = next((p for p in production[name].output_ports if p.name == port.name), None)
            if old is None:
                continue
            if port.version > old.version:
                raised[port.ref] = consumers_of(port.ref, production)
            breaking = contract_changes(old, port)[0]
            if breaking and port.version <= old.version:
                refused.append(_refusal(port.ref, breaking, old.version, ours.path))
        kept = {p.name for p in ours.output_ports}
        for port in production[name].output_ports:
            if port.name not in kept:
                readers = ", ".join(consumers_of(port.ref, production)) or "no domain"
                refused.append(f"{port.ref}: the kitchen removes it (read by {readers})")
    return refused, raised


def promote(kitchen: Kitchen, instance: dg.DagsterInstance | None = None) -> Promotion:
    """Promote the kitchen's domains to production (see the module's docstring); nothing is
    published unless every step passes."""
    provenance = kitchen.provenance()
    result = Promotion(kitchen.name, provenance["ref"])
    ours = kitchen.descriptors()
    result.refused, raised = contract_check(kitchen)
    if result.refused:
        return result
    folder = kitchen.folder
    current = build_state(kitchen, production_versions(), mesh_env())
    if not kitchen.built or kitchen.built != current:
        result.rebuilt, folder = True, kitchen.folder / PROMOTION
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        done = build(kitchen, folder=folder, env=mesh_env(), capture=True)
        result.build_output = done.stdout + done.stderr
        if done.returncode != 0:
            result.refused.append(
                "the kitchen's code failed on production's current inputs (nothing was "
                "published):\n" + "\n".join(result.build_output.strip().splitlines()[-25:])
            )
            return result
    result.diffs = diff_kitchen(kitchen, folder=folder)
    for d in result.diffs:
        if d.breaking and not d.version_raised:
            result.refused.append(
                _refusal(f"{d.domain}/{d.port}", d.breaking, d.contract_version[0], None)
            )
    if result.refused:
        return result
    remap: dict[str, int] = {}
    for name in kitchen.domains:
        ports = [p.name for p in ours[name].output_ports]
        version = _publish(kitchen, folder, name, ports, remap, provenance, ours[name])
        for port in ports:
            remap[f"{name}/{port}"] = version
            result.published[f"{name}/{port}"] = version
    result.consumers = raised
    if instance is not None:
        _record(instance, result, folder)
    if result.rebuilt:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _refusal(ref: str, breaking: list[str], version: int, descriptor: Path | None) -> str:
    where = f" in {descriptor}" if descriptor else " in the kitchen's descriptor"
    port = ref.split("/")[1]
    consumers = consumers_of(ref, discover_domains())
    return (
        f"{ref}: breaking change ({'; '.join(breaking)}) refused: raise "
        f"output_ports.{port}.version to {version + 1}{where} to publish it, and tell its "
        f"consumers ({', '.join(consumers) or 'none'})"
    )


def _commit_infos(folder: Path, domain: str, served: dict[str, lake.Served]) -> dict[str, dict]:
    """The promotion build's commit info of each port's version."""
    paths = MeshPaths(folder, KITCHEN, upstream=production_paths().data)
    con = lake.connect()
    try:
        lake.load_extensions(con)
        con.execute(lake.lake_attach_sql(domain, read_only=True, paths=paths))
        infos = {}
        for port, s in served.items():
            versions = lake.port_versions(con, domain, port)
            infos[port] = next(v.info for v in versions if v.version == s.version)
        return infos
    finally:
        con.close()


def _publish(kitchen, folder: Path, name: str, ports, remap, provenance, owner) -> int:
    """Publish the promotion build's ports of ``name`` to production in one commit."""
    served = _pointer(folder / "lake" / name / "current.json")
    infos = _commit_infos(folder, name, served)
    base = infos[ports[-1]]
    inputs = {ref: remap.get(ref, v) for ref, v in (base.get("input_versions") or {}).items()}
    lineage = {ref: remap.get(ref, v) for ref, v in (base.get("lineage") or {}).items()}
    info = {
        **base,
        "ports": {p: {"rows": infos[p]["ports"][p]["rows"]} for p in ports},
        "input_versions": inputs,
        "lineage": lineage,
        "promoted_from": {
            **provenance,
            "kitchen_versions": {p: served[p].version for p in ports},
            "runs": sorted({infos[p].get("run_id", "") for p in ports}),
        },
        "contract_versions": {p.name: p.version for p in owner.output_ports},
    }
    con = lake.connect()
    try:
        for port in ports:
            lake.open_port(con, name, owner, port, served=served, view=f"promoted_{port}")
        alias = lake.attach_own_lake(con, name)
        partition = {p.name: p.partition.column for p in owner.output_ports if p.partition}
        version = lake.retrying(lambda: _commit(con, alias, name, ports, partition, info))
        lake.write_pointer(con, name, version, ports)
        return version
    finally:
        con.close()


def _commit(con, alias: str, name: str, ports, partition: dict[str, str], info: dict) -> int:
    con.execute("begin transaction")
    try:
        for port in ports:
            target, source = f"{alias}.main.{port}", f"promoted_{port}"
            if port in partition:  # replaced whole, still partitioned by its period
                con.execute(f"create or replace table {target} as select * from {source} limit 0")
                con.execute(f"alter table {target} set partitioned by ({partition[port]})")
                con.execute(f"insert into {target} select * from {source}")
            else:
                con.execute(f"create or replace table {target} as select * from {source}")
        con.execute(
            f"call {alias}.set_commit_message(?, ?, extra_info => ?)",
            [f"mesh:{name}", f"promote {', '.join(ports)}", json.dumps(info, default=str)],
        )
        con.execute("commit")
    except BaseException:
        with suppress(Exception):  # a failed commit has rolled back already
            con.execute("rollback")
        raise
    return con.execute(f"select max(snapshot_id) from {alias}.snapshots()").fetchone()[0]


def _record(instance: dg.DagsterInstance, result: Promotion, folder: Path) -> None:
    """The promoted versions as materializations on the production instance."""
    by_port = {f"{d.domain}/{d.port}": d for d in result.diffs}
    for ref, version in result.published.items():
        domain, port = ref.split("/")
        d = by_port.get(ref)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=[domain, port],
                description=f"promoted from kitchen {result.kitchen} at {result.ref}",
                metadata={
                    "port_version": version,
                    "dagster/row_count": d.rows[1] if d else None,
                    "port_rows": d.rows[1] if d else None,
                    "variation": mesh_env(),
                    "promoted_from": dg.MetadataValue.json(
                        {"kitchen": result.kitchen, "ref": result.ref}
                    ),
                    "change": d.verdict if d else "",
                    "lake": dg.MetadataValue.path(str(production_paths().lake_dir(domain))),
                },
            )
        )
