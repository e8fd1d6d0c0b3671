"""``mesh new-domain``: a new domain folder that builds green at once, or an existing dbt project
adopted unchanged.

``new_domain`` writes a working domain for either toolchain: the commented descriptor, the code
location, a builder (Python) or a dbt project (dbt) with one output port read from the landing
zone, a test on tiny data, the domain's README and its ``workspace.yaml`` entry.

``adopt_dbt`` copies an existing dbt project into ``dbt_projects/<name>/`` without touching it,
builds it once in a scratch database to read its manifest and catalog, and writes the
descriptor from them: the ports (the models named, else the project's public, contracted or
mart models), their columns and types, and the dbt tests and constraints that map onto a port
contract. Its ``source()``s are mapped to landing sources (same table name) or to other
domains' ports (source named after the domain); what cannot be mapped is reported.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
import yaml

from .descriptor import COLUMN_TYPES, TOOLCHAINS, discover_domains, load_landing
from .settings import PROJECT_ROOT

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DOCS = "docs/descriptor.md"


class ScaffoldError(ValueError):
    """The domain cannot be created; the message says why and what to do."""


@dataclass
class Layout:
    """Where a domain's files go in a project checkout (``root``)."""

    root: Path
    name: str

    @property
    def folder(self) -> Path:
        return self.root / "mesh_domains" / self.name

    @property
    def dbt_project(self) -> Path:
        return self.root / "dbt_projects" / self.name

    @property
    def test_file(self) -> Path:
        return self.root / "tests" / "domains" / f"test_{self.name}.py"

    @property
    def workspace(self) -> Path:
        return self.root / "workspace.yaml"


def _check_new(layout: Layout) -> None:
    if not NAME.match(layout.name):
        raise ScaffoldError(
            f"domain name {layout.name!r}: use lower case letters, digits and _ "
            "(it is a Python package, a dbt profile and a lake folder)"
        )
    taken = [p for p in (layout.folder, layout.dbt_project) if p.exists()]
    if taken or layout.name in {"platform", "landing"}:
        raise ScaffoldError(
            f"domain {layout.name!r} exists already ({', '.join(map(str, taken)) or 'reserved'})"
        )


def _write(path: Path, text: str, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    written.append(path)


def add_workspace_entry(workspace: Path, name: str) -> None:
    """Append the domain's code location to ``workspace.yaml`` (text kept as it is)."""
    text = workspace.read_text()
    module = f"mesh_domains.{name}.definitions"
    if module in text:
        return
    entry = f"  - python_module:\n      module_name: {module}\n      location_name: {name}\n"
    workspace.write_text(text.rstrip("\n") + "\n" + entry)


# --------------------------------------------------------------------------- new domain

PORT = "product_prices"

DESCRIPTOR = """\
# The product descriptor of the {name} domain ({toolchain} toolchain{where}).
# Every field is described in {docs}; `mesh build --domain {name}` builds it.
name: {name}  # must equal the folder name
title: {title}
team: {team}  # the owning team, shown as the ports' owner group
owner: {owner}  # a Dagster owner: team:<name> or an e-mail address
lifecycle_phase: launch  # launch | growth | mature | all
toolchain: {toolchain}  # python | dbt
description: >
  What this domain is for (replace me): a first port with the products of the newest product
  master release and their wholesale unit price.
sla:
  freshness_hours: 168  # how old the served ports may get before the domain is late

input_ports:
  sources: [product_master]  # landing sources (mesh_domains/landing.yaml)
  ports: []  # other domains' output ports, as <domain>/<port> (their descriptor must grant them)

output_ports:
  {port}:
    description: One row per NDC of the newest product master release, with its unit price.
    grants: []  # the domains allowed to read this port
    primary_key: [ndc]
    columns:  # the contract, checked before every publish (types: {types})
      ndc: {{type: string, nullable: false, matches: '^[0-9]{{5}}-[0-9]{{4}}-[0-9]{{2}}$'}}
      product: {{type: string, nullable: false}}
      unit_price: {{type: float64, nullable: false, gt: 0}}
"""

PY_DEFINITIONS = '''\
"""Code location of the {name} domain (Python)."""

from pathlib import Path

from mesh_domains.platform import domain_definitions

from .builder import build_{port}

defs = domain_definitions(Path(__file__).parent / "domain.yaml", builders=[build_{port}])
'''

PY_BUILDER = '''\
"""The {name} domain's port builders: each stages its ports in the domain's staging database;
the platform checks them against their contracts and publishes them."""

from __future__ import annotations

from mesh_domains.platform import BuildContext, port_builder


@port_builder("{port}")
def build_{port}(build: BuildContext) -> dict[str, dict]:
    """The products of the newest product master release and their unit price."""
    products = build.source("product_master", latest_only=True)
    build.stage(
        "{port}",
        "select distinct ndc, product, cast(wac_unit_price as double) as unit_price "
        f"from {{products}}",
    )
    (rows,) = build.con.execute("select count(*) from main.{port}").fetchone()
    return {{"{port}": {{"products": rows}}}}  # figures per port, shown on its materialization
'''

DBT_DEFINITIONS = '''\
"""Code location of the {name} domain (dbt: dbt_projects/{name})."""

from pathlib import Path

from mesh_domains.platform import domain_definitions, load_domain
from mesh_domains.platform.dbt import dbt_domain_assets

domain = load_domain(Path(__file__).parent / "domain.yaml")
defs = domain_definitions(domain.path, assets=dbt_domain_assets(domain))
'''

DBT_PROJECT = """\
name: {name}
version: "1.0.0"
config-version: 2
profile: {name}  # the platform writes this profile: its database is the domain's staging one

model-paths: ["models"]
macro-paths: ["macros", "../../mesh_domains/platform/dbt_macros"]  # + the platform's macros
test-paths: ["tests"]

models:
  {name}:
    staging:
      +materialized: table  # built in staging and tested, never published
    marts:
      +materialized: table
      +tags: ["port"]  # the domain's output ports (also: any model named in domain.yaml)
"""

DBT_SOURCES = """\
version: 2

sources:
  - name: landing
    description: >
      Raw deliveries this domain ingests: the platform checks each against its contract
      (mesh_domains/landing.yaml) and loads the passing ones into staging as source_<name>.
    schema: main
    tables:
      - name: product_master
        identifier: source_product_master
"""

DBT_STAGING = """\
-- the newest release of the product master
select *
from {{ source('landing', 'product_master') }}
qualify dense_rank() over (order by _partition desc) = 1
"""

DBT_PORT = """\
select distinct ndc, product, wac_unit_price::double as unit_price
from {{ ref('stg_product_master') }}
"""

DBT_MARTS = """\
version: 2

models:
  - name: stg_product_master
    columns:
      - name: ndc
        data_tests: [not_null]
  - name: {port}
    description: One row per NDC of the newest product master release, with its unit price.
    columns:
      - name: ndc
        data_tests: [unique, not_null]
"""

TEST = '''\
"""{name} on tiny data: the domain builds and publishes {port}, contract-checked.

Written by `mesh new-domain`; extend it with the domain's own rules.
"""

from __future__ import annotations

import pytest
from mesh_harness import _make_mesh

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains

pytestmark = pytest.mark.slow

DOMAIN = "{name}"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    for mesh in _make_mesh(tmp_path_factory.mktemp(DOMAIN)):
        result = mesh.run_job(DOMAIN)
        assert result.success
        yield mesh


def test_port_is_published_and_keeps_its_contract(mesh):
    con = lake.connect()
    try:
        view, version = lake.open_port(con, DOMAIN, discover_domains()[DOMAIN], "{port}")
        rows = con.execute(f"select ndc, unit_price from {{view}}").fetchall()
    finally:
        con.close()
    assert version >= 1 and rows
    assert len({{ndc for ndc, _ in rows}}) == len(rows)
    assert all(price > 0 for _, price in rows)
'''

README = """\
# {title}

What it is for: (replace me) the products of the newest product master release and their
wholesale unit price, as a first port to grow from.

- **Toolchain**: {toolchain}{where}.
- **Inputs**: the landing source `product_master`.
- **Ports**: `{port}` (one row per NDC; contract in `domain.yaml`).
- **Descriptor fields**: see [{docs}](../../{docs}).

Build and test:

```bash
uv run mesh build --domain {name}
uv run pytest tests/domains/test_{name}.py -q
```
"""


def new_domain(
    name: str,
    toolchain: str,
    *,
    team: str | None = None,
    owner: str | None = None,
    root: Path = PROJECT_ROOT,
) -> list[Path]:
    """Write a working ``toolchain`` domain ``name``; returns the files written."""
    layout = Layout(root, name)
    _check_new(layout)
    if toolchain not in TOOLCHAINS:
        raise ScaffoldError(f"toolchain {toolchain!r} is not one of {', '.join(TOOLCHAINS)}")
    where = f": dbt_projects/{name}" if toolchain == "dbt" else ""
    values = {
        "name": name,
        "title": name.replace("_", " ").title(),
        "team": team or name.replace("_", " ").title() + " team",
        "owner": owner or f"team:{name}",
        "toolchain": toolchain,
        "where": where,
        "docs": DOCS,
        "port": PORT,
        "types": ", ".join(COLUMN_TYPES),
    }
    written: list[Path] = []
    _write(layout.folder / "__init__.py", "", written)
    _write(layout.folder / "domain.yaml", DESCRIPTOR.format(**values), written)
    _write(layout.folder / "README.md", README.format(**values), written)
    if toolchain == "python":
        _write(layout.folder / "definitions.py", PY_DEFINITIONS.format(**values), written)
        _write(layout.folder / "builder.py", PY_BUILDER.format(**values), written)
    else:
        _write(layout.folder / "definitions.py", DBT_DEFINITIONS.format(**values), written)
        project = layout.dbt_project
        _write(project / "dbt_project.yml", DBT_PROJECT.format(**values), written)
        _write(project / "models" / "sources.yml", DBT_SOURCES, written)
        _write(project / "models" / "staging" / "stg_product_master.sql", DBT_STAGING, written)
        _write(project / "models" / "marts" / f"{PORT}.sql", DBT_PORT, written)
        _write(project / "models" / "marts" / "_models.yml", DBT_MARTS.format(**values), written)
        (project / "macros").mkdir(exist_ok=True)
        (project / "tests").mkdir(exist_ok=True)
    _write(layout.test_file, TEST.format(**values), written)
    add_workspace_entry(layout.workspace, name)
    written.append(layout.workspace)
    return written


# --------------------------------------------------------------------------- adopt dbt

# DuckDB's catalog types -> the descriptor's column types
_TYPES = {
    "VARCHAR": "string",
    "TEXT": "string",
    "STRING": "string",
    "TINYINT": "int64",
    "SMALLINT": "int64",
    "INTEGER": "int64",
    "BIGINT": "int64",
    "HUGEINT": "int64",
    "UTINYINT": "int64",
    "USMALLINT": "int64",
    "UINTEGER": "int64",
    "FLOAT": "float64",
    "REAL": "float64",
    "DOUBLE": "float64",
    "DECIMAL": "float64",
    "NUMERIC": "float64",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "BOOLEAN": "boolean",
}


@dataclass
class Adoption:
    """What ``adopt_dbt`` did and what it could not do."""

    name: str
    ports: list[str]
    sources: list[str] = field(default_factory=list)  # landing sources mapped
    input_ports: list[str] = field(default_factory=list)  # <domain>/<port> mapped
    unmapped: list[str] = field(default_factory=list)  # dbt sources nobody provides
    blocking: list[str] = field(default_factory=list)  # unmapped sources upstream of a port
    kept_as_dbt_tests: list[str] = field(default_factory=list)  # tests with no contract form
    grants_needed: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        lines = [f"domain {self.name}: ports {', '.join(self.ports)}"]
        if self.sources:
            lines.append(f"  landing sources: {', '.join(self.sources)}")
        if self.input_ports:
            lines.append(f"  input ports: {', '.join(self.input_ports)}")
        for ref in self.grants_needed:
            lines.append(f"  ! ask the owner of {ref} to grant it to {self.name} (grants:)")
        for src in self.unmapped:
            mark = " (upstream of a port: the build fails until it is provided)"
            lines.append(
                f"  ! source {src}: not mapped (no landing source or domain port of that "
                f"name){mark if src in self.blocking else ''}"
            )
        for test in self.kept_as_dbt_tests:
            lines.append(f"  dbt test {test}: no contract form, runs as a dbt-test check")
        return "\n".join(lines)


def _dbt(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    from .dbt import dbt_executable

    return subprocess.run(
        [dbt_executable(), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def _map_sources(manifest: dict, domains: dict, landing: dict) -> dict[str, tuple[str, str]]:
    """dbt source unique_id -> ("landing", source) | ("port", "<domain>/<port>") | ("", why)."""
    out = {}
    for uid, src in manifest["sources"].items():
        source, table = src["source_name"], src["name"]
        if source in domains:
            ports = {p.name for p in domains[source].output_ports}
            out[uid] = ("port", f"{source}/{table}") if table in ports else ("", "")
        elif table in landing:
            out[uid] = ("landing", table)
        else:
            out[uid] = ("", "")
    return out


def _default_ports(manifest: dict, root: str) -> list[str]:
    """The project's public, contracted or mart models."""
    chosen = []
    for n in manifest["nodes"].values():
        if n["resource_type"] != "model" or n["package_name"] != root:
            continue
        config = n.get("config") or {}
        public = n.get("access") == "public"
        contracted = (config.get("contract") or {}).get("enforced")
        mart = any(part in ("marts", "mart") for part in n["fqn"][1:-1])
        if public or contracted or mart:
            chosen.append(n["name"])
    return sorted(chosen)


def _upstream(manifest: dict, uid: str, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    for dep in manifest["nodes"].get(uid, {}).get("depends_on", {}).get("nodes", []):
        if dep not in seen:
            seen.add(dep)
            _upstream(manifest, dep, seen)
    return seen


def _scratch_inputs(db: Path, manifest: dict, mapping: dict, domains: dict, landing: dict) -> None:
    """Empty tables where the project's mapped sources point, typed from their contracts, so
    that the scratch build can run and the catalog can type every column."""
    import duckdb

    from .contract_sql import DUCKDB_OF_IBIS, q

    con = duckdb.connect(str(db))
    try:
        for uid, (kind, ref) in mapping.items():
            if not kind:
                continue
            if kind == "landing":
                contract = landing[ref].contract
            else:
                producer, port = ref.split("/")
                contract = domains[producer].output_port(port).contract
            src = manifest["sources"][uid]
            schema, table = src.get("schema") or "main", src.get("identifier") or src["name"]
            cols = ", ".join(f"{q(c.name)} {DUCKDB_OF_IBIS[c.type]}" for c in contract.columns)
            extra = ", _partition VARCHAR" if kind == "landing" else ""
            con.execute(f"create schema if not exists {q(schema)}")
            con.execute(f"create or replace table {q(schema)}.{q(table)} ({cols}{extra})")
    finally:
        con.close()


class _Scratch:
    """A throw-away copy of the project with its own profile and scratch database: parsed for
    the manifest, then built once on empty inputs for the catalog's column types."""

    def __init__(self, project: Path, profile: str) -> None:
        self.project = project
        self.dir = Path(tempfile.mkdtemp(prefix="mesh-adopt-"))
        self.work = self.dir / "project"
        shutil.copytree(project, self.work, ignore=shutil.ignore_patterns("target", "logs"))
        self.db = self.dir / "scratch.duckdb"
        output = {"type": "duckdb", "path": str(self.db), "threads": 1}
        (self.dir / "profiles.yml").write_text(
            yaml.safe_dump({profile: {"target": "adopt", "outputs": {"adopt": output}}})
        )
        self.common = ["--profiles-dir", str(self.dir), "--project-dir", str(self.work)]

    def _run(self, what: str, args: list[str]) -> dict:
        done = _dbt([*args, *self.common], self.work)
        if done.returncode != 0:
            raise ScaffoldError(f"{what} failed for {self.project}:\n{done.stdout[-3000:]}")
        return json.loads((self.work / "target" / "manifest.json").read_text())

    def manifest(self) -> dict:
        return self._run("`dbt parse`", ["parse"])

    def catalog(self, ports: list[str]) -> tuple[dict, dict]:
        select = ["--select", *[f"+{p}" for p in ports]]
        self._run(
            "the scratch build (seeds, then models on empty inputs)",
            ["build", "--empty", "--exclude", "resource_type:test", *select],
        )
        manifest = self._run("`dbt docs generate`", ["docs", "generate", *select])
        return manifest, json.loads((self.work / "target" / "catalog.json").read_text())

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _contract_from_tests(manifest: dict, uid: str, columns: dict, kept: list[str]) -> None:
    """dbt tests and constraints of model ``uid`` -> the columns' contract (in place)."""
    for n in manifest["nodes"].values():
        if n["resource_type"] != "test" or n.get("attached_node") != uid:
            continue
        meta = n.get("test_metadata") or {}
        column = n.get("column_name")
        kwargs = meta.get("kwargs") or {}
        spec = columns.get(column)
        kind = meta.get("name")
        if spec is not None and kind == "not_null":
            spec["nullable"] = False
        elif spec is not None and kind == "unique":
            spec["unique"] = True
        elif spec is not None and kind == "accepted_values" and kwargs.get("values"):
            spec["isin"] = list(kwargs["values"])
        else:
            kept.append(n["name"])
    model = manifest["nodes"][uid]
    for name, col in (model.get("columns") or {}).items():
        spec = columns.get(name)
        if spec is None:
            continue
        if col.get("description"):
            spec["description"] = col["description"]
        for constraint in col.get("constraints") or ():
            if constraint.get("type") in ("not_null", "primary_key"):
                spec["nullable"] = False
            if constraint.get("type") in ("unique", "primary_key"):
                spec["unique"] = True


def adopt_dbt(
    name: str,
    project: Path,
    *,
    ports: list[str] | None = None,
    team: str | None = None,
    owner: str | None = None,
    root: Path = PROJECT_ROOT,
) -> Adoption:
    """Copy the dbt project at ``project`` into ``dbt_projects/<name>/`` unchanged and write
    the domain around it (descriptor from its manifest and catalog, code location, README,
    workspace entry)."""
    import time

    started = time.monotonic()
    layout = Layout(root, name)
    _check_new(layout)
    project = Path(project).resolve()
    if not (project / "dbt_project.yml").exists():
        raise ScaffoldError(f"{project}: no dbt_project.yml here")
    config = yaml.safe_load((project / "dbt_project.yml").read_text()) or {}
    profile = str(config.get("profile") or name)
    scratch = _Scratch(project, profile)
    try:
        result = _adopt(name, project, layout, scratch, ports, team, owner)
    finally:
        scratch.close()
    result.seconds = time.monotonic() - started
    return result


def _adopt(name, project, layout, scratch, ports, team, owner) -> Adoption:
    domains = discover_domains(layout.root / "mesh_domains")
    landing = load_landing()
    manifest = scratch.manifest()
    project_name = manifest["metadata"]["project_name"]
    models = {
        n["name"]: uid
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] == "model" and n["package_name"] == project_name
    }
    chosen = list(ports or _default_ports(manifest, project_name))
    if not chosen:
        raise ScaffoldError(
            f"{project}: no public, contracted or mart model to publish; name the ports with "
            "--ports a,b"
        )
    unknown = [p for p in chosen if p not in models]
    if unknown:
        raise ScaffoldError(f"{project}: no model(s) {', '.join(unknown)} (--ports)")
    mapping = _map_sources(manifest, domains, landing)
    _scratch_inputs(scratch.db, manifest, mapping, domains, landing)
    manifest, catalog = scratch.catalog(chosen)
    needed = set().union(*(_upstream(manifest, models[p]) for p in chosen))
    result = Adoption(name, chosen)
    for uid, (kind, ref) in sorted(mapping.items()):
        src = manifest["sources"][uid]
        if kind == "landing" and uid in needed:
            result.sources.append(ref)
        elif kind == "port" and uid in needed:
            result.input_ports.append(ref)
            producer, port = ref.split("/")
            if name not in domains[producer].output_port(port).grants:
                result.grants_needed.append(ref)
        elif not kind:
            label = f"{src['source_name']}.{src['name']}"
            result.unmapped.append(label)
            if uid in needed:
                result.blocking.append(label)
    output_ports = {}
    for port in chosen:
        uid = models[port]
        node = manifest["nodes"][uid]
        table = (catalog.get("nodes") or {}).get(uid)
        if table is None:
            raise ScaffoldError(f"{project}: the catalog has no table for model {port}")
        columns: dict[str, dict] = {}
        for col in sorted(table["columns"].values(), key=lambda c: c["index"]):
            base = col["type"].split("(")[0].upper()
            columns[col["name"]] = {"type": _TYPES.get(base, "string")}
        _contract_from_tests(manifest, uid, columns, result.kept_as_dbt_tests)
        output_ports[port] = {
            "description": node.get("description") or f"dbt model {port} of {project_name}.",
            "grants": [],
            "columns": {c: _flow(spec) for c, spec in columns.items()},
        }
    descriptor = {
        "name": name,
        "title": name.replace("_", " ").title(),
        "team": team or name.replace("_", " ").title() + " team",
        "owner": owner or f"team:{name}",
        "lifecycle_phase": "launch",
        "toolchain": "dbt",
        "description": f"The dbt project {project_name}, adopted unchanged (dbt_projects/{name}).",
        "input_ports": {"sources": result.sources, "ports": result.input_ports},
        "output_ports": output_ports,
    }
    header = (
        f"# The product descriptor of the {name} domain: the dbt project {project_name}\n"
        f"# (dbt_projects/{name}), adopted unchanged by `mesh new-domain --from-dbt`.\n"
        f"# Written from its manifest and catalog; every field is described in {DOCS}.\n"
    )
    shutil.copytree(
        project,
        layout.dbt_project,
        ignore=shutil.ignore_patterns("target", "logs", ".user.yml"),
    )
    written = result.written
    _write(layout.folder / "__init__.py", "", written)
    _write(
        layout.folder / "domain.yaml",
        header + yaml.dump(descriptor, sort_keys=False, width=100, Dumper=_Dumper),
        written,
    )
    values = {"name": name}
    _write(layout.folder / "definitions.py", DBT_DEFINITIONS.format(**values), written)
    _write(
        layout.folder / "README.md",
        f"# {descriptor['title']}\n\nThe dbt project `{project_name}`, adopted unchanged into "
        f"`dbt_projects/{name}/` by `mesh new-domain --from-dbt`.\n\n"
        f"- **Ports**: {', '.join(f'`{p}`' for p in chosen)} (contracts in `domain.yaml`, "
        f"fields in [{DOCS}](../../{DOCS})).\n"
        f"- **Inputs**: {', '.join(result.sources + result.input_ports) or 'none'}.\n\n"
        "What the adoption reported:\n\n```\n" + result.report() + "\n```\n\n"
        f"Build: `uv run mesh build --domain {name}`.\n",
        written,
    )
    add_workspace_entry(layout.workspace, name)
    written.append(layout.workspace)
    return result


class _Flow(dict):
    """A column spec written on one line: ``{type: string, nullable: false}``."""


def _flow(spec: dict) -> dict:
    return _Flow(spec)


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
)


def new_domain_command(
    name: Annotated[str, typer.Argument(help="The domain's name: lower case, digits and _.")],
    toolchain: Annotated[
        str, typer.Option(help="python or dbt (a new domain; not with --from-dbt).")
    ] = "python",
    from_dbt: Annotated[
        Path | None,
        typer.Option("--from-dbt", help="Adopt this existing dbt project, unchanged (copied)."),
    ] = None,
    ports: Annotated[
        str | None,
        typer.Option(
            help="With --from-dbt: the models to publish, a,b (default: public, "
            "contracted or mart models)."
        ),
    ] = None,
    team: Annotated[str | None, typer.Option(help="The owning team.")] = None,
    owner: Annotated[str | None, typer.Option(help="team:<name> or an e-mail.")] = None,
) -> None:
    """Create a domain that builds at once, or adopt an existing dbt project unchanged."""
    from rich.console import Console

    console = Console()
    try:
        if from_dbt is not None:
            chosen = [p.strip() for p in ports.split(",") if p.strip()] if ports else None
            done = adopt_dbt(name, from_dbt, ports=chosen, team=team, owner=owner)
            written = done.written
            console.print(done.report(), markup=False)
            console.print(f"adopted {from_dbt} in {done.seconds:.1f}s")
        else:
            written = new_domain(name, toolchain, team=team, owner=owner)
    except ScaffoldError as exc:
        console.print(f"[red]✘[/] {exc}")
        raise typer.Exit(1) from exc
    for path in written:
        console.print(f"  wrote {path.relative_to(PROJECT_ROOT)}", markup=False)
    console.print(
        f"[green]✔[/] domain {name}: build it with `mesh build --domain {name}`, test it with "
        f"`pytest tests/domains/test_{name}.py`"
        + (" (write that test)" if from_dbt is not None else "")
    )
