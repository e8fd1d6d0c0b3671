"""The code behind a port (the "How"): the Python builder's source or the dbt model's SQL.

Read from the domain's files without importing them: a Python port's builder is the function
decorated with ``@port_builder(...)`` naming the port; a dbt port is the model of that name in
the domain's dbt manifest. The compiled SQL of dbt ports comes from ``dbt compile`` run once per
code version in a scratch folder (its own profile and database file, so it never touches the
domain's staging database), in the background: until it is done the answer says so.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..descriptor import Domain
from ..settings import PROJECT_ROOT
from ..versioning import folder_hash

DBT_PROJECTS = PROJECT_ROOT / "dbt_projects"
DBT_MACROS = Path(__file__).resolve().parents[1] / "dbt_macros"  # shared by every dbt domain
COMPILE_TIMEOUT_S = 300


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def current_code_version(domain: Domain) -> str:
    """The code version a build of the domain would record now (see ``ports.code_version``)."""
    if domain.toolchain == "dbt":
        return folder_hash(domain.folder, DBT_PROJECTS / domain.name, DBT_MACROS)
    return folder_hash(domain.folder)


@cache
def _python_builders(folder: Path, stamp: tuple) -> dict[str, dict[str, Any]]:
    """``{port: builder}`` for every ``@port_builder(...)`` function in the domain's modules."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "port_builder":
                    ports = [a.value for a in deco.args if isinstance(a, ast.Constant)]
                    builder = {
                        "builder": node.name,
                        "ports": ports,
                        "path": relative(path),
                        "line": node.lineno,
                        "source": ast.get_source_segment(text, node, padded=True),
                    }
                    found.update({p: builder for p in ports})
    return found


def python_code(domain: Domain, port: str) -> dict[str, Any] | None:
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(domain.folder.glob("*.py")))
    return _python_builders(domain.folder, stamp).get(port)


def _manifest(project: Path) -> dict:
    path = project / "target" / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _model(manifest: dict, domain: str, port: str) -> dict | None:
    return (manifest.get("nodes") or {}).get(f"model.{domain}.{port}")


class DbtCompiler:
    """Compiled SQL of dbt ports, per domain and code version, compiled in the background."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], dict[str, Any]] = {}
        self.generation = 0  # bumps when a compile finishes: answers that cite it are stale

    def compiled(self, domain: Domain) -> dict[str, Any]:
        """``{"status": "ready"|"compiling"|"failed", "models": {port: sql}, ...}``; starts a
        compile when this code version has none yet."""
        version = current_code_version(domain)
        key = (domain.name, version)
        with self._lock:
            state = self._state.get(key)
            if state is None:
                state = self._load(key) or {"status": "compiling", "models": {}}
                self._state[key] = state
                if state["status"] == "compiling":
                    threading.Thread(
                        target=self._compile, args=(domain, key), name=f"dbt-compile-{domain.name}"
                    ).start()
            return state

    def wait(self, domain: Domain, timeout_s: float = COMPILE_TIMEOUT_S) -> dict[str, Any]:
        """Block until the domain's compiled SQL is ready (or failed); for tests and exports."""
        import time

        deadline = time.monotonic() + timeout_s
        while (state := self.compiled(domain))["status"] == "compiling":
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return state

    def _cache_file(self, key: tuple[str, str]) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{key[0]}-{key[1]}.json"

    def _load(self, key: tuple[str, str]) -> dict[str, Any] | None:
        path = self._cache_file(key)
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None

    def _compile(self, domain: Domain, key: tuple[str, str]) -> None:
        try:
            state = {"status": "ready", "models": _compile_ports(domain)}
        except Exception as exc:  # noqa: BLE001 — reported in the answer, never fatal
            state = {"status": "failed", "models": {}, "error": str(exc)[-2000:]}
        with self._lock:
            self._state[key] = state
            self.generation += 1
        path = self._cache_file(key)
        if path is not None and state["status"] == "ready":
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, path)


def _compile_ports(domain: Domain) -> dict[str, str]:
    """``dbt compile`` of the port models in a scratch folder: its own profile, whose database
    file has the staging database's name, so relation names match those of a real build."""
    project = DBT_PROJECTS / domain.name
    dbt = str(Path(sys.executable).parent / "dbt")
    with tempfile.TemporaryDirectory(prefix=f"mesh-compile-{domain.name}-") as scratch:
        root = Path(scratch)
        (root / "db").mkdir()
        profile = {
            domain.name: {
                "target": "mesh",
                "outputs": {
                    "mesh": {
                        "type": "duckdb",
                        "path": str(root / "db" / f"{domain.name}.duckdb"),
                        "threads": 1,
                    }
                },
            }
        }
        (root / "profiles.yml").write_text(yaml.safe_dump(profile))
        result = subprocess.run(
            [
                dbt,
                "compile",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(root),
                "--target-path",
                str(root / "target"),
                "--log-path",
                str(root / "logs"),
                "--select",
                "tag:port",
                "--quiet",
            ],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"dbt compile failed: {result.stdout[-1500:]}{result.stderr[-500:]}")
        manifest = json.loads((root / "target" / "manifest.json").read_text())
    return {
        node["name"]: node.get("compiled_code") or ""
        for node in manifest.get("nodes", {}).values()
        if node.get("resource_type") == "model" and node.get("compiled_code")
    }


def dbt_code(domain: Domain, port: str, compiler: DbtCompiler | None) -> dict[str, Any] | None:
    project = DBT_PROJECTS / domain.name
    model = _model(_manifest(project), domain.name, port)
    if model is None:
        return None
    answer: dict[str, Any] = {
        "model": port,
        "path": relative(project / model["original_file_path"]),
        "sql": model.get("raw_code"),
        "depends_on": model.get("depends_on", {}).get("nodes", []),
    }
    if compiler is not None:
        state = compiler.compiled(domain)
        answer["compiled_sql"] = state["models"].get(port)
        answer["compiled_sql_status"] = state["status"]
        if state.get("error"):
            answer["compiled_sql_error"] = state["error"]
    return answer


def port_code(domain: Domain, port: str, compiler: DbtCompiler | None = None) -> dict[str, Any]:
    """The code that builds ``port``, by toolchain."""
    if domain.toolchain == "dbt":
        return {"dbt": dbt_code(domain, port, compiler)}
    return {"python": python_code(domain, port)}
