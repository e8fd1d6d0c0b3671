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

Fixed cost is kept to what dbt needs. The code location reads the parsed ``manifest.json``
(made by ``dbt parse`` only when the project changed) and builds the port specs and the dbt-test
check specs from it, without importing dbt or an adapter, so it loads fast. A build runs dbt
in-process through dbt's programmatic runner (``dbtRunner``) with the parsed manifest handed in
(kept as a pickle beside it), so no dbt process starts and nothing is parsed or selected twice.
A process that has dbt imported already (a build's worker) parses a changed project in-process
too and keeps the pickle from that same parse: a fresh clone's first build parses each project
once, without starting a dbt process. Each parse is also kept beside the profile it was made
with, so processes whose settings give another profile (lakes on object storage) and the
default take turns without parsing again.

A step runs the dbt unit tests of its nodes with the first build of each code version only
(:class:`UnitTestVerdicts`): their verdict depends on the code, not on the data. A model that
calls the macro ``mesh_incremental()`` is built from its served version and the partitions of
the domain's own ports that changed since, when that is sound (:func:`incremental_ports`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from . import lake
from .definitions import parameter_schema, port_check_specs, port_spec
from .descriptor import Domain, discover_domains
from .ports import (
    BuildContext,
    attach_inputs,
    audit_and_publish,
    code_version,
    given_parameters,
    partition_scope,
    staging_connection,
    user_errors,
)
from .settings import PROJECT_ROOT, lake_data_url, mesh_paths, object_storage_settings
from .versioning import folder_hash

DBT_PROJECTS = PROJECT_ROOT / "dbt_projects"
# the platform's dbt macros (mesh_history, mesh_partition_filter, mesh_incremental and its
# relations), on each project's macro path
DBT_MACROS = Path(__file__).resolve().parent / "dbt_macros"
PORT_TAG = "port"
DBT_LOG_TAIL = 40
# the parsed Manifest object, kept beside manifest.json for the in-process runner
PICKLE = "mesh_manifest.pickle"


def dbt_executable() -> str:
    return str(Path(sys.executable).parent / "dbt")


STAGING_VAR = "MESH_DBT_STAGING_DB"


def profile_text(domain: Domain) -> str:
    """The domain's dbt profile: its main database is the domain's staging database.

    The path is rendered by dbt from ``MESH_DBT_STAGING_DB`` (set by the platform from the data
    root and the environment's namespace), so the text is the same for every data root and
    variation. Credentials for object storage are ``env_var`` references, never values.
    """
    output: dict[str, Any] = {
        "type": "duckdb",
        "path": "{{ env_var('" + STAGING_VAR + "') }}",
        "threads": 1,
        "config_options": dict(lake.STAGING_CONFIG),  # the platform's, on the same file
    }
    if lake_data_url():  # inputs are views over files on object storage: dbt reads them too
        secret = {
            k: str(v).lower() if isinstance(v, bool) else v
            for k, v in object_storage_settings().items()
        }
        for key, var in (("key_id", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY")):
            secret[key] = "{{ env_var('" + var + "') }}"  # never written into the file
        output["secrets"] = [{"type": "s3", **secret}]
    profile = {profile_name(domain): {"target": "mesh", "outputs": {"mesh": output}}}
    return yaml.safe_dump(profile, sort_keys=False)


def write_profile(domain: Domain, profiles_dir: Path) -> Path:
    """Write :func:`profile_text` to ``profiles_dir/profiles.yml`` (unless it is there)."""
    text = profile_text(domain)
    profiles_dir.mkdir(parents=True, exist_ok=True)
    path = profiles_dir / "profiles.yml"
    if not path.exists() or path.read_text() != text:
        _atomic_write(path, text.encode())
    return path


def profile_name(domain: Domain) -> str:
    """The profile the dbt project asks for (``profile:`` in dbt_project.yml), else the domain."""
    project = yaml.safe_load((DBT_PROJECTS / domain.name / "dbt_project.yml").read_text()) or {}
    return str(project.get("profile") or domain.name)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def profile_dir(domain: Domain, project_dir: Path) -> Path:
    """The generated dbt profile, one for parse and build alike (so partial parsing holds),
    in a folder named by its content: processes whose settings give another profile (lakes on
    object storage beside the embedded default) never rewrite each other's."""
    os.environ[STAGING_VAR] = str(mesh_paths().staging_db(domain.name))  # what it renders
    digest = hashlib.sha256(profile_text(domain).encode()).hexdigest()[:12]
    directory = project_dir / "target" / "mesh_profile" / digest
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
        folder_hash(project_dir, DBT_MACROS)
        + ":"
        + hashlib.sha256((profiles_dir / "profiles.yml").read_bytes()).hexdigest()[:12]
    )
    if manifest.exists() and stamp.exists() and stamp.read_text() == wanted:
        return manifest
    if _restore_parse(project_dir, profiles_dir, wanted):
        return manifest
    install_vendored_packages(domain, project_dir, profiles_dir)
    scratch = project_dir / "target" / f"parse-{os.getpid()}"
    args = [
        "parse",
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profiles_dir),
        "--target-path",
        str(scratch),
        "--quiet",
    ]
    if "dbt.cli.main" in sys.modules:  # dbt is loaded here already: parse without a process
        _keep_manifest(project_dir, wanted, _parse_in_process(domain, project_dir, args))
    else:  # a code location: dbt's imports stay out of it
        result = subprocess.run(
            [dbt_executable(), *args], cwd=project_dir, capture_output=True, text=True, check=False
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
    _keep_parse(project_dir, profiles_dir, wanted)
    return manifest


# what a parse leaves in target/, kept per profile too: processes whose settings give another
# profile (lakes on object storage beside the embedded default) take turns without parsing again
PARSE_FILES = ("manifest.json", "partial_parse.msgpack", PICKLE)


def _keep_parse(project_dir: Path, profiles_dir: Path, key: str) -> None:
    """Copy the parse in ``target/`` (stamped ``key``) beside its profile."""
    kept = profiles_dir / "parse"
    kept.mkdir(exist_ok=True)
    for name in PARSE_FILES:
        if (project_dir / "target" / name).exists():
            _atomic_write(kept / name, (project_dir / "target" / name).read_bytes())
    _atomic_write(kept / "mesh_parse.hash", key.encode())


def _restore_parse(project_dir: Path, profiles_dir: Path, key: str) -> bool:
    """Put back the parse kept beside this profile when it is of these sources (``key``)."""
    kept = profiles_dir / "parse"
    stamp = kept / "mesh_parse.hash"
    if not (stamp.exists() and stamp.read_text() == key and (kept / "manifest.json").exists()):
        return False
    for name in PARSE_FILES:
        if (kept / name).exists():
            _atomic_write(project_dir / "target" / name, (kept / name).read_bytes())
    _atomic_write(project_dir / "target" / "mesh_parse.hash", key.encode())
    return True


def _declared_packages(project_dir: Path) -> list[dict]:
    packages: list[dict] = []
    for name in ("packages.yml", "dependencies.yml"):
        path = project_dir / name
        if path.exists():
            packages += (yaml.safe_load(path.read_text()) or {}).get("packages") or []
    return packages


def install_vendored_packages(domain: Domain, project_dir: Path, profiles_dir: Path) -> None:
    """dbt packages come from what the project vendors: the platform builds offline.

    Packages already installed in the project's ``packages-install-path`` (default
    ``dbt_packages/``, committed with the project) are used as they are; ``local:`` packages are
    installed from the project's own folders (``dbt deps`` needs no network for them); anything
    else missing stops the build with what to do.
    """
    packages = _declared_packages(project_dir)
    if not packages:
        return
    config = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
    install = project_dir / str(config.get("packages-install-path", "dbt_packages"))
    installed = {p.name for p in install.iterdir() if p.is_dir()} if install.exists() else set()
    remote = [p for p in packages if "local" not in p]
    missing_remote = [
        str(p.get("package") or p.get("git") or p)
        for p in remote
        if str(p.get("package") or p.get("git") or "").split("/")[-1].removesuffix(".git")
        not in installed
    ]
    if missing_remote:
        raise RuntimeError(
            f"domain {domain.name!r}: dbt package(s) {', '.join(missing_remote)} declared in "
            f"{project_dir}/packages.yml are not vendored in {install}. The platform builds "
            "offline and never downloads packages: run `dbt deps` in the project once, commit "
            f"{install.name}/ with it (or declare the package as `local:`), and build again."
        )
    local = [p for p in packages if "local" in p]
    if local and len(installed) < len(packages):
        result = subprocess.run(
            [
                dbt_executable(),
                "deps",
                "--project-dir",
                str(project_dir),
                "--profiles-dir",
                str(profiles_dir),
                "--quiet",
            ],
            cwd=project_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"domain {domain.name!r}: installing the project's local dbt packages failed "
                f"(`dbt deps` in {project_dir}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )


@dataclass(frozen=True)
class DbtPorts:
    """What the manifest says about a dbt domain's ports: their dependencies and dbt tests."""

    order: list[str]  # port models, upstream first
    deps: dict[str, list[list[str]]]  # port -> asset keys it depends on (its tests' too)
    nodes: dict[str, list[str]]  # port -> dbt nodes that build it (itself and non-port parents)
    tests: dict[str, tuple[str, str, str]]  # test unique_id -> (port, check name, severity)
    descriptions: dict[str, str]  # test check name -> description
    unit_tests: dict[str, list[str]]  # port -> its dbt unit tests
    # port -> dbt tests (data and unit) of the non-port nodes that build it (seeds, staging
    # models, snapshots): run with the step, blocking through dbt's own result
    inner_tests: dict[str, list[str]] = field(default_factory=dict)
    # input key ("landing/<source>" or "<producer>/<port>") -> (schema, identifier) the
    # project's dbt source points at
    source_relations: dict[str, tuple[str, str]] = field(default_factory=dict)
    # port -> column -> the description the dbt project gives it
    column_descriptions: dict[str, dict[str, str]] = field(default_factory=dict)
    # ports whose model can be built from its served version (it calls mesh_incremental())
    incremental: frozenset[str] = frozenset()

    def selection(self, ports: list[str]) -> list[str]:
        """The dbt nodes a step builds and tests: its ports with everything upstream of them
        inside the project (seeds, snapshots, staging models of any materialization) and the
        tests of those, the data tests attached to its ports (a relationships test runs with
        the port it is attached to, after the port it refers to) and their unit tests."""
        nodes = {node for p in ports for node in self.nodes[p]}
        tests = {name for port, name, _ in self.tests.values() if port in ports}
        units = {f"unit_test:{u}" for p in ports for u in self.unit_tests.get(p, [])}
        inner = {t for p in ports for t in self.inner_tests.get(p, [])}
        return sorted(nodes | tests | units | inner)


def _source_key(node: dict, domains: set[str]) -> list[str]:
    """A dbt source named after a domain is that domain's port; any other is a landing source."""
    source, table = node["source_name"], node["name"]
    return [source, table] if source in domains else ["landing", table]


def read_ports(domain: Domain, manifest: dict) -> DbtPorts:
    """Port models (tagged ``port``), the asset keys each depends on (through the project's
    non-port models, to sources and other ports), and the dbt tests attached to each port."""
    nodes, sources = manifest["nodes"], manifest["sources"]
    root = (manifest.get("metadata") or {}).get("project_name")
    declared = {p.name for p in domain.output_ports}
    # a port is a model tagged `port`, or a model of the project named in the descriptor
    # (an adopted project is used unchanged: it needs no tag)
    ports = {
        uid: n["name"]
        for uid, n in nodes.items()
        if n["resource_type"] == "model"
        and (PORT_TAG in n.get("tags", []) or (n["name"] in declared and n["package_name"] == root))
    }
    domains = set(discover_domains())

    def upstream(uid: str, seen: set[str]) -> list[list[str]]:
        keys: list[list[str]] = []
        for dep in nodes.get(uid, {}).get("depends_on", {}).get("nodes", []):
            if dep in seen:
                continue
            seen.add(dep)
            if dep in ports:
                keys.append([domain.name, ports[dep]])
            elif dep in sources:
                keys.append(_source_key(sources[dep], domains))
            elif dep in nodes:
                keys += upstream(dep, seen)
        return keys

    def builders(uid: str, seen: set[str]) -> list[str]:
        found = [uid]
        for dep in nodes[uid].get("depends_on", {}).get("nodes", []):
            if dep in nodes and dep not in ports and dep not in seen:
                seen.add(dep)
                found += builders(dep, seen)
        return found

    # a test of a port that also reads another port (relationships) runs after both
    test_parents: dict[str, set[str]] = {}
    for n in nodes.values():
        attached = n.get("attached_node")
        if n["resource_type"] == "test" and attached in ports:
            others = {ports[d] for d in n["depends_on"]["nodes"] if d in ports and d != attached}
            test_parents.setdefault(ports[attached], set()).update(others)
    deps, built_by, inner_tests = {}, {}, {}
    for uid, name in ports.items():
        unique = {tuple(k): k for k in upstream(uid, set())}
        for other in test_parents.get(name, ()):
            unique[(domain.name, other)] = [domain.name, other]
        deps[name] = [unique[k] for k in sorted(unique)]
        inner = set(builders(uid, set())) - {uid}
        built_by[name] = sorted({nodes[u]["name"] for u in inner | {uid}})
        inner_tests[name] = sorted(_tests_within(manifest, inner))
    relations = {}
    for src in sources.values():
        key = "/".join(_source_key(src, domains))
        relations[key] = (src.get("schema") or "main", src.get("identifier") or src["name"])
    order: list[str] = []
    pending = set(ports.values())
    while pending:
        ready = sorted(
            p for p in pending if not any(d[0] == domain.name and d[1] in pending for d in deps[p])
        )
        order += ready
        pending -= set(ready)
    tests, descriptions = {}, {}
    for uid, n in nodes.items():
        attached = n.get("attached_node") or next(
            iter(n.get("depends_on", {}).get("nodes", [])[-1:]), None
        )
        if n["resource_type"] == "test" and attached in ports:
            severity = str(n["config"].get("severity", "ERROR")).upper()
            tests[uid] = (ports[attached], n["name"], severity)
            descriptions[n["name"]] = n.get("description") or f"dbt test {n['name']}"
    units: dict[str, list[str]] = {}
    for u in (manifest.get("unit_tests") or {}).values():
        model = u.get("model")
        if model in ports.values():
            units.setdefault(model, []).append(u["name"])
    columns = {
        name: {
            c.get("name") or col: c["description"].strip()
            for col, c in (nodes[uid].get("columns") or {}).items()
            if (c.get("description") or "").strip()
        }
        for uid, name in ports.items()
    }
    incremental = frozenset(
        name
        for uid, name in ports.items()
        if any(
            m.rpartition(".")[2] == "mesh_incremental"
            for m in nodes[uid].get("depends_on", {}).get("macros", [])
        )
    )
    return DbtPorts(
        order,
        deps,
        built_by,
        tests,
        descriptions,
        units,
        inner_tests,
        relations,
        columns,
        incremental,
    )


def _tests_within(manifest: dict, inner: set[str]) -> list[str]:
    """dbt tests that read only ``inner`` nodes (and sources): the tests of a port's staging."""
    names = []
    for n in manifest["nodes"].values():
        if n["resource_type"] != "test":
            continue
        reads = [d for d in n["depends_on"]["nodes"] if not d.startswith("source.")]
        if reads and set(reads) <= inner:
            names.append(n["name"])
    inner_models = {manifest["nodes"][u]["name"] for u in inner}
    for u in (manifest.get("unit_tests") or {}).values():
        if u.get("model") in inner_models:
            names.append(f"unit_test:{u['name']}")
    return names


def dbt_domain_assets(domain: Domain) -> list[dg.AssetsDefinition]:
    """The dbt project of ``domain`` as write–audit–publish steps over its ports: one step per
    run of consecutive ports with the same partitioning (a Dagster step has one partitions
    definition; an unpartitioned port downstream of a partitioned one is a step of its own)."""
    project_dir = DBT_PROJECTS / domain.name
    manifest = json.loads(ensure_manifest(domain, project_dir).read_text())
    version = code_version(domain, project_dir, DBT_MACROS)
    found = read_ports(domain, manifest)
    missing = {p.name for p in domain.output_ports} - set(found.order)
    if missing:
        raise RuntimeError(
            f"domain {domain.name!r}: output port(s) {sorted(missing)} have no "
            f"dbt model tagged '{PORT_TAG}' in {project_dir}"
        )
    steps = dbt_steps(domain, found)
    return [
        _dbt_step(domain, project_dir, version, found, names, [p for s in steps for p in s])
        for names in steps
    ]


def dbt_steps(domain: Domain, found: DbtPorts) -> list[list[str]]:
    """Ports grouped into steps: a port joins its upstream ports' step when it has the same
    partitioning, so steps form a chain Dagster can order (no cycle between steps)."""
    level: dict[str, int] = {}
    for name in found.order:
        cadence = _cadence(domain, name)
        own = [d[1] for d in found.deps[name] if d[0] == domain.name]
        level[name] = max((level[d] + (_cadence(domain, d) != cadence) for d in own), default=0)
    groups: dict[tuple, list[str]] = {}
    for name in found.order:
        groups.setdefault((level[name], str(_cadence(domain, name))), []).append(name)
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1]))]


def _cadence(domain: Domain, port: str):
    partition = domain.output_port(port).partition
    return partition.cadence if partition else None


def _dbt_step(
    domain: Domain,
    project_dir: Path,
    version: str,
    found: DbtPorts,
    names: list[str],
    all_ports: list[str],
) -> dg.AssetsDefinition:
    ports = [domain.output_port(n) for n in names]
    specs = [
        port_spec(
            domain, p, "dbt", version, found.deps[p.name], found.column_descriptions.get(p.name)
        )
        for p in ports
    ]
    test_checks = [
        dg.AssetCheckSpec(
            name,
            asset=[domain.name, port],
            blocking=severity == "ERROR",
            description=found.descriptions[name],
        )
        for port, name, severity in found.tests.values()
        if port in names
    ]
    partitioned = ports[0].partition is not None
    landing = sorted({k[1] for n in names for k in found.deps[n] if k[0] == "landing"})
    # the domain's own ports built by other steps are read as published (all partitions)
    earlier = sorted(
        {k[1] for n in names for k in found.deps[n] if k[0] == domain.name and k[1] not in names}
    )
    others = [p for p in all_ports if p not in names]
    suffix = "" if len(others) == 0 else "__" + "_".join(names)[:60]

    @dg.multi_asset(
        name=f"{domain.name}__dbt_build{suffix}",
        specs=specs,
        check_specs=[*test_checks, *(spec for p in ports for spec in port_check_specs(p))],
        can_subset=False,
        pool=f"{domain.name}_lake",
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        config_schema=parameter_schema(domain),
    )
    def _build(context):
        started = time.monotonic()
        with user_errors(domain, ports):
            with staging_connection(domain) as con:
                build = BuildContext(
                    domain, con, context.log, scope=partition_scope(context, ports)
                )
                build.params = given_parameters(context)
                build.code_version = version
                build.input_versions = attach_inputs(con, domain)
                for source in landing:
                    _alias(con, found, f"landing/{source}", f"main.{build.source(source)}")
                for ref in build.input_versions:
                    _alias(con, found, ref, ref.replace("/", "."))
                for port in earlier:
                    _drop_relation(con, port)
                    _, build.own_input_versions[port] = lake.open_port(
                        con, domain.name, domain, port, view=f"main.{port}"
                    )
                incremental = incremental_ports(build, found, names)
            # dbt opens the staging database itself: the platform's connection is closed
            dbt_vars = {**build.params}
            if incremental:
                dbt_vars["mesh_incremental"] = incremental
                context.log.info(
                    f"{domain.name}: {', '.join(incremental)} built from the served version and "
                    "the partitions of its inputs changed since"
                )
            if build.scope is not None:
                dbt_vars["partition_start"] = str(build.scope.first_day)
                dbt_vars["partition_end"] = str(build.scope.last_day)
            select = found.selection(names)
            units = [s for s in select if s.startswith("unit_test:")]
            verdict = UnitTestVerdicts(project_dir, version)
            if units and verdict.passed(units):
                select = [s for s in select if s not in units]
                context.log.info(
                    f"{domain.name}: the dbt unit tests of this step passed for code version "
                    f"{version} and are not run again ({len(units)}: "
                    f"{', '.join(u.removeprefix('unit_test:') for u in units)})"
                )
            yield from run_dbt(context, domain, project_dir, found, select, dbt_vars=dbt_vars)
            verdict.record([s for s in select if s.startswith("unit_test:")])
            with staging_connection(domain) as con:
                build.con = con
                for port in ports:
                    conform_types(con, port)
                yield from audit_and_publish(context, build, ports, version, started)

    return _build


class UnitTestVerdicts:
    """The dbt unit tests that passed, per code version of the project (and dbt's versions).

    A unit test gives fixed inputs to a model's SQL and compares its output with fixed rows:
    its verdict depends on the code, never on the data, so a step runs its unit tests once per
    code version (dbt's own advice is to run them in development and CI, not on every
    production build). Any change to the domain, its dbt project or the platform's macros is
    a new code version, whose first build runs them again. Kept in the project's ``target/``
    (build output, shared by every data root and environment of the checkout)."""

    FILE = "mesh_unit_tests.json"
    KEPT = 8  # code versions remembered

    def __init__(self, project_dir: Path, code_version: str):
        self.path = project_dir / "target" / self.FILE
        self.key = f"{code_version}:{_toolchain_versions()}"

    def _read(self) -> dict[str, list[str]]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def passed(self, units: list[str]) -> bool:
        return set(units) <= set(self._read().get(self.key, []))

    def record(self, units: list[str]) -> None:
        """Remember ``units`` as passed (dbt ran them in a build that succeeded)."""
        if not units:
            return
        known = self._read()
        known[self.key] = sorted(set(known.pop(self.key, [])) | set(units))
        kept = dict(list(known.items())[-self.KEPT :])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.path, json.dumps(kept, indent=1).encode())


def _toolchain_versions() -> str:
    from importlib.metadata import version

    return ",".join(version(p) for p in ("dbt-core", "dbt-duckdb", "duckdb"))


def incremental_ports(build: BuildContext, found: DbtPorts, names: list[str]) -> list[str]:
    """The ports of this step that can be built incrementally, their relations made ready.

    A port qualifies when its model calls ``mesh_incremental()``, reads only the domain's own
    partitioned ports (built by earlier steps) and input ports of other domains, and its served
    version was built by this code, in this variation, from the versions of those other input
    ports pinned now, recording the versions of the own ports it read. Publishing a partition
    replaces that partition's files whole, so the files that differ between the version it
    read and the version pinned now are exactly the partitions that changed since. For each
    qualifying port the staging database gets the views ``__mesh_served_<port>`` (its served
    rows) and, for each own port it reads, ``__mesh_before_<input>`` and
    ``__mesh_after_<input>`` (the rows of the changed partitions then and now): the macros
    ``mesh_incremental()``, ``mesh_served()``, ``mesh_before(port)`` and ``mesh_after(port)``
    name them. A model that uses them keeps its full query for every other build.
    """
    domain, con = build.domain, build.con
    served = lake.served_ports(domain.name)
    alias = lake.lake_alias(domain.name)
    ready: list[str] = []
    for name in names:
        if name not in found.incremental:
            continue
        deps = found.deps[name]
        own = [d[1] for d in deps if d[0] == domain.name]
        others = ["/".join(d) for d in deps if d[0] not in (domain.name, "landing")]
        if not own or len(own) + len(others) != len(deps) or name not in served:
            continue
        if any(domain.output_port(p).partition is None for p in own):
            continue
        version = build.unchanged_since_served(name, *others)
        if version is None or served[name].version != version:
            continue
        info = lake.latest_versions(con, domain.name, [name])[name].info
        read_then = info.get("own_input_versions") or {}
        changes = {}
        for port in own:
            if port not in read_then or port not in build.own_input_versions:
                break
            diff = _partition_files_changed(
                con, alias, port, read_then[port], served[port].files, served[port].version
            )
            if diff is None or served[port].version != build.own_input_versions[port]:
                break
            changes[port] = diff
        else:
            _view_of_files(con, f"__mesh_served_{name}", served[name].files, f"main.{name}")
            for port, (before, after) in changes.items():
                _view_of_files(con, f"__mesh_before_{port}", before, f"main.{port}")
                _view_of_files(con, f"__mesh_after_{port}", after, f"main.{port}")
            ready.append(name)
    return ready


def _partition_files_changed(
    con, alias: str, port: str, then: int, files_now: list[str], now: int
) -> tuple[list[str], list[str]] | None:
    """The data files of ``port`` only at version ``then`` and only at ``now``, when they are
    whole partitions (hive-style ``<column>=<value>/<file>``: no partition has files on both
    sides and among the files kept); None when they are not, or ``then`` is not in the lake.
    Files are matched by partition folder and name (unique in a lake), so a data root that
    moved since ``then`` still matches; the files of ``then`` are read where ``now``'s are."""
    import duckdb

    if then == now:
        return [], []
    try:
        listed = lake.retrying(lambda: lake.version_files(con, alias, port, then))
    except duckdb.Error:
        return None
    if any(delete for _, delete in listed) or not files_now:
        return None

    def key(path: str) -> tuple[str, str] | None:
        folder, _, name = path.rstrip("/").rpartition("/")
        partition = folder.rpartition("/")[2]
        return (partition, name) if "=" in partition else None

    then_keys = {key(f) for f, _ in listed}
    now_by_key = {key(f): f for f in files_now}
    if None in then_keys or None in now_by_key:
        return None
    sample_key, sample = next(iter(now_by_key.items()))
    base = sample[: -len("/".join(sample_key))]
    before = sorted(then_keys - set(now_by_key))
    after = sorted(set(now_by_key) - then_keys)
    changed = {k[0] for k in before + after}
    if changed & {k[0] for k in then_keys & set(now_by_key)}:
        return None
    return [base + "/".join(k) for k in before], [now_by_key[k] for k in after]


def _view_of_files(con, view: str, files: list[str], like: str) -> None:
    """``main.<view>`` over Parquet ``files`` (none: no rows, with ``like``'s columns)."""
    from .contract_sql import literal, q

    if files:
        listed = ", ".join(literal(f) for f in files)
        body = f"select * from read_parquet([{listed}], hive_partitioning = false)"
    else:
        body = f"select * from {like} limit 0"
    con.execute(f"create or replace view main.{q(view)} as {body}")


def _alias(con, found: DbtPorts, key: str, relation: str) -> None:
    """Where the project's dbt source points elsewhere than the platform's relation for that
    input (an adopted project's own schema and table names), a view there over it."""
    wanted = found.source_relations.get(key)
    if wanted is None or ".".join(wanted) == relation:
        return
    schema, identifier = wanted
    con.execute(f'create schema if not exists "{schema}"')
    con.execute(f'create or replace view "{schema}"."{identifier}" as select * from {relation}')


# staged column types widened, losslessly or as dbt-duckdb arithmetic gives them, to the
# contract's type (a project's SQL is not edited to please the contract)
_WIDEN = {
    "BIGINT": ("TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER", "HUGEINT"),
    "DOUBLE": ("FLOAT", "DECIMAL"),
    "TIMESTAMP": ("TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"),
}


def conform_types(con, port) -> None:
    """Cast the staged port's columns to the contract's types where dbt made a narrower one
    (INTEGER for BIGINT, DECIMAL for DOUBLE, ...); any other mismatch is left for the
    contract to report."""
    from .contract_sql import DUCKDB_OF_IBIS, q

    present = {r[0]: r[1] for r in con.execute(f"describe main.{port.name}").fetchall()}
    want = {c.name: DUCKDB_OF_IBIS[c.type] for c in port.contract.columns}
    casts = {
        name: want[name]
        for name, dtype in present.items()
        if name in want
        and dtype != want[name]
        and dtype.split("(")[0] in _WIDEN.get(want[name], ())
    }
    if not casts:
        return
    select = ", ".join(
        f"cast({q(n)} as {casts[n]}) as {q(n)}" if n in casts else q(n) for n in present
    )
    tmp = f"main.{q('__mesh_conform_' + port.name)}"
    con.execute(f"create or replace table {tmp} as select {select} from main.{port.name}")
    _drop_relation(con, port.name)
    con.execute(f"alter table {tmp} rename to {q(port.name)}")


def _drop_relation(con, name: str) -> None:
    """Drop ``main.<name>`` whether a table (staged by an earlier step) or a view."""
    kind = con.execute(
        "select table_type from information_schema.tables "
        "where table_schema = 'main' and table_name = ? and table_catalog = current_database()",
        [name],
    ).fetchone()
    if kind is not None:
        con.execute(f"drop {'view' if kind[0] == 'VIEW' else 'table'} main.{name}")


def load_manifest(domain: Domain, project_dir: Path):
    """dbt's parsed ``Manifest`` object for the runner, kept as a pickle next to the JSON one
    and made again (by dbt, in-process, with partial parsing) when the project changed."""
    stamp = project_dir / "target" / "mesh_parse.hash"
    cached = project_dir / "target" / PICKLE
    wanted = stamp.read_text() if stamp.exists() else ""
    if cached.exists() and wanted:
        with cached.open("rb") as fh:
            key, state = pickle.load(fh)
        if key == wanted and isinstance(state, dict):
            return _manifest_from(state)
    profiles_dir = profile_dir(domain, project_dir)
    args = ["parse", "--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir)]
    parsed = _keep_manifest(
        project_dir, wanted, _parse_in_process(domain, project_dir, [*args, "--quiet"])
    )
    _keep_parse(project_dir, profiles_dir, wanted)
    return parsed


def _keep_manifest(project_dir: Path, key: str, parsed):
    """Keep a parsed ``Manifest`` as the pickle :func:`load_manifest` reads (valid while the
    parse stamp is ``key``); returns a copy with its own objects, as from the cache."""
    data = pickle.dumps((key, _manifest_state(parsed)))
    _atomic_write(project_dir / "target" / PICKLE, data)
    return _manifest_from(pickle.loads(data)[1])


def _parse_in_process(domain: Domain, project_dir: Path, args: list[str]):
    """``dbt parse`` through dbt's programmatic runner: the parsed ``Manifest``."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(args)
    if not result.success:
        raise RuntimeError(
            f"domain {domain.name!r}: dbt could not parse {project_dir}: {result.exception}"
        )
    return result.result


def _manifest_state(manifest) -> dict[str, Any]:
    """A parsed ``Manifest``'s own fields, without its lookup caches.

    dbt-core 1.11's ``Manifest.__reduce_ex__`` (what ``copy`` and ``pickle`` use) leaves out
    ``fixtures`` and ``_saved_query_lookup``, so a copy gets every lookup one field off: once a
    unit test has filled the ref lookup, ``source()`` resolves through it and fails to compile
    ("RefableLookup.find() missing 1 required positional argument"). The manifest is therefore
    copied and kept field by field; dbt rebuilds its lookups on first use.
    """
    from dataclasses import fields

    return {f.name: getattr(manifest, f.name) for f in fields(manifest) if f.name[0] != "_"}


def _manifest_from(state: dict[str, Any]):
    from dbt.contracts.graph.manifest import Manifest

    return Manifest(**state)


def run_dbt(
    context,
    domain: Domain,
    project_dir: Path,
    found: DbtPorts,
    select: list[str],
    exclude: list[str] = (),
    dbt_vars: dict | None = None,
):
    """``dbt build`` of ``select`` into staging, in-process; yields dbt tests as checks."""
    from dbt.cli.main import dbtRunner

    # dbt mutates what it runs: each run gets its own (load_manifest never hands one out twice)
    manifest = load_manifest(domain, project_dir)
    target = project_dir / "target" / f"run-{context.run.run_id[:8]}-{os.getpid()}"
    args = [
        "build",
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profile_dir(domain, project_dir)),
        "--target-path",
        str(target),
        "--log-path",
        str(mesh_paths().data / "logs" / "dbt" / domain.name),
        "--indirect-selection",
        "empty",  # tests are selected by name, each with its step
        "--no-write-json",  # the results come back in-process; no manifest to write again
        "--select",
        *select,
    ]
    if exclude:
        args += ["--exclude", *exclude]
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    context.log.info(f"{domain.name}: dbt {' '.join(args[:1] + args[12:])}")
    result = dbtRunner(manifest=manifest).invoke(args)
    results = list(getattr(result.result, "results", None) or [])
    for r in results:
        node = r.node
        if node.unique_id not in found.tests:
            continue
        port, name, _ = found.tests[node.unique_id]
        status = str(r.status)
        if status == "skipped":
            continue
        yield dg.AssetCheckResult(
            asset_key=[domain.name, port],
            check_name=name,
            passed=status in ("pass", "warn"),
            severity=dg.AssetCheckSeverity.WARN
            if status == "warn"
            else dg.AssetCheckSeverity.ERROR,
            description=(r.message or status),
            metadata={"failures": int(r.failures or 0), "dbt_status": status},
        )
    if not result.success:
        raise dg.Failure(
            description=f"domain {domain.name!r}: dbt build failed in {project_dir}; "
            f"nothing was published. dbt's compiled SQL is kept in {target}.\n"
            f"{_failed_nodes(result, results)}",
        )
    shutil.rmtree(target, ignore_errors=True)


def _failed_nodes(result, results) -> str:
    lines = [
        f"  - {r.node.unique_id}: {r.status}: {(r.message or '').strip()[:500]}"
        for r in results
        if str(r.status) in {"error", "fail"}
    ]
    if not lines and result.exception is not None:
        lines = [f"  {str(result.exception).strip()[:2000]}"]
    return "\n".join(lines) or "  (see the run log)"
