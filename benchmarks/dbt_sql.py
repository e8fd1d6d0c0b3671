"""The dbt side of the benchmark: each dbt domain's compiled SQL, and one monolithic project.

- :func:`compile_domain` runs ``dbt compile`` of ``dbt_projects/<domain>`` into a scratch
  folder (its own profile, target and log paths: nothing is written into the project), with
  the main database named ``floor_<domain>``; :func:`compiled_models` and
  :func:`compiled_sources` read what the floor executes from the manifest.
- :func:`write_monolith` generates ONE dbt project holding every dbt domain as a local package
  (``dbt_packages/<domain>``, each in its own schema, so equal model names in two domains do
  not collide). A ``source()`` on another dbt domain's port becomes a ``ref()`` to that model,
  so dbt builds the whole DAG in one run; every other source (landing deliveries, ports of
  Python domains) reads a table of the same schema and name in the monolith's database,
  loaded before the timed ``dbt build``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECTS = ROOT / "dbt_projects"
DBT = str(Path(sys.executable).parent / "dbt")
MONOLITH = "mesh_monolith"
SKIPPED_IN_COPY = ("target", "logs", "dbt_packages", ".user.yml")

_SOURCE = re.compile(r"""source\(\s*(['"])(\w+)\1\s*,\s*(['"])(\w+)\3\s*\)""")
_REF_ONE = re.compile(r"""\bref\(\s*(['"])(\w+)\1\s*\)""")


def dbt_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", DBT_PARTIAL_PARSE="true", **extra)
    return env


def dbt_domains(domains: dict) -> list[str]:
    """Domains whose toolchain is dbt and which have a project in ``dbt_projects/``."""
    return [n for n, d in domains.items() if d.toolchain == "dbt" and (DBT_PROJECTS / n).is_dir()]


def project_name(project_dir: Path) -> tuple[str, str]:
    """The project's ``name`` and ``profile`` from its ``dbt_project.yml``."""
    raw = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
    return raw["name"], raw.get("profile", raw["name"])


def _profile(path: Path, profile: str, database: Path, threads: int) -> Path:
    """A profiles.yml for ``profile`` whose main database is ``database`` (named after its
    file stem, as dbt-duckdb does)."""
    path.mkdir(parents=True, exist_ok=True)
    output = {"type": "duckdb", "path": str(database), "threads": threads}
    text = yaml.safe_dump({profile: {"target": "bench", "outputs": {"bench": output}}})
    (path / "profiles.yml").write_text(text)
    return path


def _dbt(args: list[str], project_dir: Path, profiles: Path, work: Path, env=None):
    result = subprocess.run(
        [
            DBT,
            *args,
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(profiles),
            "--target-path",
            str(work / "target"),
            "--log-path",
            str(work / "logs"),
        ],
        cwd=project_dir,
        env=env or dbt_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"`dbt {' '.join(args)}` failed for {project_dir}:\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return work / "target"


def compile_domain(domain: str, work: Path) -> Path:
    """``dbt compile`` of the domain's project into ``work``; returns its manifest."""
    project_dir = DBT_PROJECTS / domain
    _, profile = project_name(project_dir)
    work.mkdir(parents=True, exist_ok=True)
    profiles = _profile(work / "profile", profile, work / f"floor_{domain}.duckdb", 1)
    target = _dbt(["compile", "--quiet"], project_dir, profiles, work)
    return target / "manifest.json"


# --- what the floor executes, read from a compiled manifest -------------------------------------


@dataclass(frozen=True)
class Relation:
    database: str
    schema: str
    identifier: str

    @property
    def sql(self) -> str:
        return ".".join(f'"{p}"' for p in (self.database, self.schema, self.identifier))


@dataclass(frozen=True)
class CompiledModel:
    name: str
    relation: Relation
    materialized: str
    sql: str


@dataclass(frozen=True)
class CompiledSource:
    source_name: str
    name: str
    relation: Relation


def _package_nodes(manifest: dict, kind: str) -> dict[str, dict]:
    package = manifest["metadata"].get("project_name")
    return {
        uid: n
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] == kind and package in (None, n.get("package_name"))
    }


def compiled_models(manifest: dict) -> list[CompiledModel]:
    """The project's models that make a relation, in dependency order (ephemeral models are
    inlined as CTEs into the compiled SQL of the models that use them)."""
    nodes = {
        uid: n
        for uid, n in _package_nodes(manifest, "model").items()
        if n["config"].get("enabled", True) and n["config"]["materialized"] != "ephemeral"
    }
    ordered: list[str] = []
    pending = dict(nodes)
    while pending:
        ready = sorted(
            uid
            for uid, n in pending.items()
            if not any(d in pending for d in n["depends_on"]["nodes"])
        )
        if not ready:
            raise RuntimeError(f"cycle among dbt models: {sorted(pending)}")
        ordered += ready
        for uid in ready:
            del pending[uid]
    return [
        CompiledModel(
            name=nodes[uid]["name"],
            relation=Relation(
                nodes[uid]["database"],
                nodes[uid]["schema"],
                nodes[uid].get("alias") or nodes[uid]["name"],
            ),
            materialized=nodes[uid]["config"]["materialized"],
            sql=nodes[uid]["compiled_code"],
        )
        for uid in ordered
    ]


def compiled_sources(manifest: dict) -> list[CompiledSource]:
    package = manifest["metadata"].get("project_name")
    return [
        CompiledSource(
            s["source_name"],
            s["name"],
            Relation(s["database"], s["schema"], s.get("identifier") or s["name"]),
        )
        for s in manifest["sources"].values()
        if package in (None, s.get("package_name"))
    ]


def load_manifest(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# --- the monolithic project ---------------------------------------------------------------------


def _rewrite(text: str, package: str, dbt_domains_: set[str]) -> str:
    """``source('<dbt domain>', '<port>')`` → ``ref('<dbt domain>', '<port>')``; a one-argument
    ``ref('m')`` → ``ref('<package>', 'm')`` (the same model; unambiguous across packages)."""
    text = _SOURCE.sub(
        lambda m: f"ref('{m[2]}', '{m[4]}')" if m[2] in dbt_domains_ else m[0],
        text,
    )
    return _REF_ONE.sub(lambda m: f"ref('{package}', '{m[2]}')", text)


def _localise_macro_paths(source_dir: Path, dest: Path) -> None:
    """Copy the macro folders a project names outside itself (e.g. the platform's shared
    ``dbt_macros``, as ``../../mesh_domains/platform/dbt_macros``) into its package copy, and
    point its ``macro-paths`` at the copies: the package then compiles with the same macros,
    wherever the monolith lives."""
    project_file = dest / "dbt_project.yml"
    raw = yaml.safe_load(project_file.read_text()) or {}
    paths = raw.get("macro-paths")
    if not paths:
        return
    inside = source_dir.resolve()
    local = []
    for i, entry in enumerate(paths):
        folder = (source_dir / entry).resolve()
        if folder == inside or inside in folder.parents or not folder.is_dir():
            local.append(entry)
            continue
        copy = f"_shared_macros_{i}"
        shutil.copytree(folder, dest / copy, dirs_exist_ok=True)
        local.append(copy)
    if local != paths:
        raw["macro-paths"] = local
        project_file.write_text(yaml.safe_dump(raw, sort_keys=False))


def write_monolith(domains: list[str], work: Path, threads: int) -> tuple[Path, Path]:
    """Generate the monolithic project in ``work``; returns (project dir, profiles dir).

    Its database is always ``work/mono/mono.duckdb`` (a constant profile keeps dbt's partial
    parse valid from one scale to the next).
    """
    project = work / "project"
    shutil.rmtree(project, ignore_errors=True)
    models: dict[str, dict] = {}
    for domain in domains:
        source_dir = DBT_PROJECTS / domain
        package, _ = project_name(source_dir)
        dest = project / "dbt_packages" / package
        shutil.copytree(source_dir, dest, ignore=shutil.ignore_patterns(*SKIPPED_IN_COPY))
        _localise_macro_paths(source_dir, dest)
        for path in [*dest.rglob("*.sql"), *dest.rglob("*.yml"), *dest.rglob("*.yaml")]:
            if path.name == "dbt_project.yml":
                continue
            path.write_text(_rewrite(path.read_text(), package, set(domains)))
        models[package] = {"+schema": domain}
    (project / "dbt_project.yml").write_text(
        yaml.safe_dump(
            {
                "name": MONOLITH,
                "version": "1.0.0",
                "config-version": 2,
                "profile": MONOLITH,
                "models": models,
            },
            sort_keys=False,
        )
    )
    (work / "mono").mkdir(parents=True, exist_ok=True)
    profiles = _profile(work / "profile", MONOLITH, monolith_db(work), threads)
    return project, profiles


def monolith_db(work: Path) -> Path:
    return work / "mono" / "mono.duckdb"


def parse_monolith(project: Path, profiles: Path, work: Path) -> None:
    """Parse once before the timed builds, as a developer's warm project would be."""
    _dbt(["parse", "--quiet"], project, profiles, work)


def monolith_build_args(project: Path, profiles: Path, work: Path) -> list[str]:
    return [
        DBT,
        "build",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(profiles),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]


def run_results(work: Path) -> dict:
    """Seconds in models and in tests of the last monolithic build (dbt's run_results.json)."""
    path = work / "target" / "run_results.json"
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    spent = {"model": 0.0, "test": 0.0, "unit_test": 0.0}
    failed = []
    for r in raw.get("results", []):
        kind = r["unique_id"].split(".", 1)[0]
        spent[kind] = spent.get(kind, 0.0) + float(r.get("execution_time") or 0.0)
        if r.get("status") in ("error", "fail"):
            failed.append(f"{r['unique_id']}: {(r.get('message') or '').strip()[:200]}")
    return {
        "elapsed_s": round(float(raw.get("elapsed_time") or 0.0), 3),
        "models_s": round(spent["model"], 3),
        "tests_s": round(spent["test"] + spent["unit_test"], 3),
        "failed": failed,
    }
