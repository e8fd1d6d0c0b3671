"""dbt domains: a dbt-duckdb project builds the ports into staging; the platform audits and
publishes them exactly as for Python domains.

The dbt project lives in ``dbt_projects/<domain>/``; its models tagged ``port`` are the domain's
output ports. The platform writes the dbt profile: the main database is the domain's staging
database. Before dbt runs, the platform pins every input port (grant checked) as the view
``<producer>.<port>`` in that database, over the immutable files of the version current at the
start, so ``{{ source('<producer>', '<port>') }}`` reads one consistent version and dbt never
touches another domain's storage.
dbt tests surface as asset checks; the pandera contract of each port runs after ``dbt build``
and before publish.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource
from dagster_dbt.asset_utils import build_dbt_specs

from .definitions import port_check_specs, port_spec
from .descriptor import Domain, discover_domains
from .ports import (
    BuildContext,
    attach_inputs,
    audit_and_publish,
    code_version,
    staging_connection,
    user_errors,
)
from .settings import PROJECT_ROOT, MeshPaths, mesh_paths
from .versioning import folder_hash

DBT_PROJECTS = PROJECT_ROOT / "dbt_projects"
PORT_TAG = "port"
DBT_LOG_TAIL = 40


def dbt_executable() -> str:
    return str(Path(sys.executable).parent / "dbt")


DATA_DIR_VAR = "{{ env_var('MESH_DATA_DIR') }}"


def write_profile(domain: Domain, profiles_dir: Path) -> Path:
    """The domain's dbt profile: its main database is the domain's staging database.

    Paths are rendered by dbt from ``MESH_DATA_DIR``, so the file is the same for every data
    root: concurrent builds in different environments never rewrite each other's profile.
    """
    paths = MeshPaths(Path(DATA_DIR_VAR))
    output: dict[str, Any] = {
        "type": "duckdb",
        "path": str(paths.staging_db(domain.name)),
        "threads": 1,
    }
    profiles_dir.mkdir(parents=True, exist_ok=True)
    profile = {domain.name: {"target": "mesh", "outputs": {"mesh": output}}}
    path = profiles_dir / "profiles.yml"
    text = yaml.safe_dump(profile, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        _atomic_write(path, text.encode())
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def profile_dir(domain: Domain, project_dir: Path) -> Path:
    """The generated dbt profile, one for parse and build alike (so partial parsing holds)."""
    os.environ["MESH_DATA_DIR"] = str(mesh_paths().data)  # what the profile renders
    directory = project_dir / "target" / "mesh_profile"
    write_profile(domain, directory)
    return directory


def ensure_manifest(domain: Domain, project_dir: Path) -> Path:
    """Parse the dbt project when its manifest is missing or older than its sources.

    The manifest is build output (never committed); a content hash of the project and the
    shared macros tells when it must be made again, so a code location loads fast when nothing
    changed.
    """
    manifest = project_dir / "target" / "manifest.json"
    stamp = project_dir / "target" / "mesh_parse.hash"
    profiles_dir = profile_dir(domain, project_dir)
    wanted = (
        folder_hash(project_dir)
        + ":"
        + hashlib.sha256((profiles_dir / "profiles.yml").read_bytes()).hexdigest()[:12]
    )
    if manifest.exists() and stamp.exists() and stamp.read_text() == wanted:
        return manifest
    scratch = project_dir / "target" / f"parse-{os.getpid()}"
    result = subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(profiles_dir),
            "--target-path",
            str(scratch),
            "--quiet",
        ],
        cwd=project_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"domain {domain.name!r}: `dbt parse` failed for {project_dir}:\n"
            f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    # publish the parse atomically: a concurrent loader never sees half a manifest
    for name in ("partial_parse.msgpack", "manifest.json"):
        if (scratch / name).exists():
            os.replace(scratch / name, manifest.parent / name)
    shutil.rmtree(scratch, ignore_errors=True)
    _atomic_write(stamp, wanted.encode())
    return manifest


class MeshDbtTranslator(DagsterDbtTranslator):
    """Maps dbt nodes onto mesh keys: models → ``[domain, model]``, sources named after a
    domain → that domain's port ``[producer, port]``, other sources → ``[landing, table]``."""

    def __init__(self, domain: Domain, version: str):
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self.domain = domain
        self.version = version
        self.domains = set(discover_domains())

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        rtype = dbt_resource_props["resource_type"]
        if rtype == "source":
            source = dbt_resource_props["source_name"]
            table = dbt_resource_props["name"]
            return dg.AssetKey([source, table] if source in self.domains else ["landing", table])
        return dg.AssetKey([self.domain.name, dbt_resource_props["name"]])

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] != "model" or PORT_TAG not in props.get("tags", []):
            return spec
        port = self.domain.output_port(props["name"])
        mesh = port_spec(self.domain, port, "dbt", self.version, [])
        return spec.replace_attributes(
            group_name=mesh.group_name,
            owners=mesh.owners,
            code_version=mesh.code_version,
            automation_condition=mesh.automation_condition,
            freshness_policy=mesh.freshness_policy,
            description=mesh.description,
            tags={**spec.tags, **mesh.tags},
            kinds={*spec.kinds, *mesh.kinds},
        ).merge_attributes(metadata=mesh.metadata)


def dbt_domain_assets(domain: Domain) -> dg.AssetsDefinition:
    """The dbt project of ``domain`` as one write–audit–publish step over all its ports."""
    project_dir = DBT_PROJECTS / domain.name
    manifest_path = ensure_manifest(domain, project_dir)
    manifest = json.loads(manifest_path.read_text())
    version = code_version(domain, project_dir)
    translator = MeshDbtTranslator(domain, version)
    specs, dbt_checks = build_dbt_specs(
        translator=translator,
        manifest=manifest,
        select=f"tag:{PORT_TAG}",
        exclude="",
        selector="",
        io_manager_key=None,
        project=None,
    )
    port_names = [s.key.path[-1] for s in _topological(specs)]
    missing = {p.name for p in domain.output_ports} - set(port_names)
    if missing:
        raise RuntimeError(
            f"domain {domain.name!r}: output port(s) {sorted(missing)} have no "
            f"dbt model tagged '{PORT_TAG}' in {project_dir}"
        )
    ports = [domain.output_port(n) for n in port_names]

    @dg.multi_asset(
        name=f"{domain.name}__dbt_build",
        specs=specs,
        check_specs=[*dbt_checks, *(spec for p in ports for spec in port_check_specs(p))],
        can_subset=False,
        pool=f"{domain.name}_lake",
        op_tags={"dagster_dbt/select": f"tag:{PORT_TAG}"},
        allow_arbitrary_check_specs=True,
    )
    def _build(context):
        started = time.monotonic()
        with user_errors(domain, ports):
            with staging_connection(domain) as con:
                build = BuildContext(domain, con, context.log)
                build.input_versions = attach_inputs(con, domain)
                for source in domain.sources:
                    build.source(source.name)
            # dbt opens the staging database itself: the platform's connection is closed
            yield from _run_dbt(context, domain, project_dir, build)
            with staging_connection(domain) as con:
                build.con = con
                yield from audit_and_publish(context, build, ports, version, started)

    return _build


def _topological(specs) -> list[dg.AssetSpec]:
    """Ports in dependency order: Dagster wants a multi-asset's outputs yielded that way."""
    pending = {s.key: s for s in specs}
    ordered: list[dg.AssetSpec] = []
    while pending:
        ready = [s for s in pending.values() if not any(d.asset_key in pending for d in s.deps)]
        ordered += sorted(ready, key=lambda s: s.key.to_user_string())
        for s in ready:
            del pending[s.key]
    return ordered


def _run_dbt(context, domain: Domain, project_dir: Path, build: BuildContext):
    """``dbt build`` of the port models into staging; yields dbt test results as checks."""
    profiles_dir = profile_dir(domain, project_dir)
    dbt = DbtCliResource(
        project_dir=str(project_dir),
        profiles_dir=str(profiles_dir),
        dbt_executable=dbt_executable(),
    )
    invocation = dbt.cli(["build"], context=context, raise_on_error=False)
    for event in invocation.stream():
        if isinstance(event, dg.Output | dg.AssetMaterialization):
            continue  # staged only: the port is materialized when it is published
        yield event
    if not invocation.is_successful():
        failed = _failed_nodes(invocation)
        raise dg.Failure(
            description=f"domain {domain.name!r}: dbt build failed in {project_dir}; "
            f"nothing was published. dbt's artifacts are kept in {invocation.target_path}.\n"
            f"{failed}",
        )
    # a successful build's artifacts are in the run's events; don't let target/ grow per run
    shutil.rmtree(invocation.target_path, ignore_errors=True)


def _failed_nodes(invocation) -> str:
    lines = []
    try:
        results = invocation.get_artifact("run_results.json").get("results", [])
    except Exception:  # noqa: BLE001 — the log tail below still explains the failure
        results = []
    for r in results:
        if r.get("status") in {"error", "fail"}:
            lines.append(
                f"  - {r.get('unique_id')}: {r.get('status')}: "
                f"{(r.get('message') or '').strip()[:500]}"
            )
    if not lines:
        lines = [f"  {m}" for m in getattr(invocation, "_error_messages", [])[-DBT_LOG_TAIL:]] or [
            "  (see the run log)"
        ]
    return "\n".join(lines)
