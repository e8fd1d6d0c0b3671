"""The floor of a mesh build, and the cost of its guarantees, in ONE DuckDB process.

``fast_mesh.py`` runs this as a child process per scale (so its time and memory are its own):

    python benchmarks/mesh_floor.py --data <data root> --work <dir> --manifests <json> \\
        --out <json> [--mono-db <file>]

1. **The floor**: the SQL of every domain back to back, in the order of the domain graph, with
   no orchestration, no contracts and no publish. Each domain writes into a database of its
   own, ``floor_<domain>.duckdb`` (as a build writes into its staging database).
   - Python domains: the domain's real builder functions (found in its package), given a
     :class:`FloorContext` whose ``source()`` reads the deliveries straight with ``read_csv``
     (the platform's typing, none of its checks) and whose ``stage()`` creates the table: the
     builder's own SQL, unchanged.
   - dbt domains: the compiled SQL of every model (``dbt compile``), as ``create table`` /
     ``create view``, in dependency order, after the relations its sources name are provided:
     landing deliveries loaded as above, other domains' ports as views over the floor's tables.
2. **What the guarantees cost**, through the platform's public functions, on the floor's tables:
   every output port's contract (``contracts.validate_table``), every source load the domain
   makes with its delivery checks (``BuildContext.source``, minus the plain load of the same
   files), and publishing each domain's ports into a fresh lake (``lake.attach_own_lake`` +
   ``lake.publish``). Checks and publish run in a scratch data root whose landing zone is the
   scale's, so no verdict or lake of the measured mesh build is reused.
3. **The monolith's inputs**: the relations the monolithic dbt project reads but does not build
   (landing tables, Python domains' ports) copied into its database, outside any timing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import pkgutil
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dbt_sql import Relation, compiled_models, compiled_sources, load_manifest  # noqa: E402

from mesh_domains.platform import lake  # noqa: E402
from mesh_domains.platform.contracts import DUCKDB_TYPES, validate_table  # noqa: E402
from mesh_domains.platform.descriptor import (  # noqa: E402
    ColumnSpec,
    Contract,
    Domain,
    SourcePort,
    discover_domains,
    domain_levels,
    load_landing,
)
from mesh_domains.platform.ports import BuildContext  # noqa: E402

log = logging.getLogger("mesh_floor")


def floor_db(domain: str) -> str:
    return f"floor_{domain}"


def _count(con, table: str) -> int:
    return con.execute(f"select count(*) from {table}").fetchone()[0]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- reading deliveries without checks ----------------------------------------------------------


def _dialect(source: SourcePort) -> tuple[str, str, str]:
    """The source's declared CSV dialect (the platform's reading, if it still offers it)."""
    try:
        from mesh_domains.platform.sources import delivery_rules

        rules = delivery_rules(source)
        return rules.delimiter, rules.quote, rules.encoding
    except (ImportError, AttributeError):
        return ",", '"', "utf-8"


def delivery_files(data: Path, source: SourcePort, latest_only: bool) -> list[Path]:
    """``landing/<source>/<partition>/<file>``, oldest partition first (partition folders are
    ISO dates, so their names sort in time order)."""
    root = data / "landing" / source.name
    files = sorted(
        p / source.file
        for p in (root.iterdir() if root.is_dir() else ())
        if p.is_dir() and not p.name.startswith(".") and (p / source.file).is_file()
    )
    if not files:
        raise FileNotFoundError(f"no deliveries of {source.name} under {root}")
    return files[-1:] if latest_only else files


def load_plain(
    con: duckdb.DuckDBPyConnection, data: Path, source: SourcePort, target: str, latest_only: bool
) -> int:
    """All (or the newest) deliveries of ``source`` as table ``target``: one ``read_csv``, the
    contract's column types and a ``_partition`` column, as the platform loads them."""
    delim, quote, encoding = _dialect(source)
    typed = ", ".join(
        f"try_cast(nullif(trim({_q(c.name)}), '') as {DUCKDB_TYPES[c.type]}) as {_q(c.name)}"
        for c in source.contract.columns
    )
    con.execute(
        f"create or replace table {target} as select {typed}, "
        "regexp_extract(filename, '([^/]+)/[^/]+$', 1) as _partition "
        "from read_csv(?, header = true, all_varchar = true, delim = ?, quote = ?, escape = ?, "
        "encoding = ?, filename = true)",
        [
            [str(p) for p in delivery_files(data, source, latest_only)],
            delim,
            quote,
            quote,
            encoding,
        ],
    )
    return con.execute(f"select count(*) from {target}").fetchone()[0]


class FloorContext(BuildContext):
    """A build context with the platform taken out: ``source()`` loads without checks,
    ``stage()`` creates the table, ``port()`` names the floor's view of an input port."""

    def __init__(self, domain: Domain, con: duckdb.DuckDBPyConnection, data: Path):
        super().__init__(domain, con, log)
        self.data = data
        self.loads: list[dict] = []

    def source(self, name: str, *, latest_only: bool = False, **options) -> str:
        started = time.perf_counter()
        table = f"source_{name}"
        rows = load_plain(self.con, self.data, self.domain.source(name), table, latest_only)
        self.loads.append(
            {
                "source": name,
                "latest_only": latest_only,
                "rows": rows,
                "seconds": time.perf_counter() - started,
                **({"ignored_options": sorted(options)} if options else {}),
            }
        )
        return table

    def port(self, ref: str) -> str:
        producer, port = ref.split("/")
        return f"{producer}.{port}"

    def stage(self, port: str, sql: str) -> None:
        self.con.execute(f"create or replace table main.{port} as {sql}")


# --- the domains' code --------------------------------------------------------------------------


def python_builders(domain: str) -> list:
    """The domain's port builders (objects with ``fn`` and ``ports``), found in its package
    (its code location module last: it only wires them up)."""
    package = importlib.import_module(f"mesh_domains.{domain}")
    names = [
        m.name
        for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
        if not m.name.endswith(".definitions")
    ]
    found: list = []
    for name in [*names, f"{package.__name__}.definitions"]:
        if found and name.endswith(".definitions"):
            break
        module = importlib.import_module(name)
        for value in vars(module).values():
            is_builder = callable(getattr(value, "fn", None)) and isinstance(
                getattr(value, "ports", None), tuple
            )
            if is_builder and all(value is not f for f in found):
                found.append(value)
    return found


def provide_input_ports(con, domain: Domain, port_tables: dict[str, dict[str, str]]) -> None:
    """Each input port as the view ``<producer>.<port>`` in the domain's floor database."""
    for ref in domain.input_ports:
        con.execute(f"create schema if not exists {_q(ref.domain)}")
        con.execute(
            f"create or replace view {_q(ref.domain)}.{_q(ref.port)} as "
            f"select * from {port_tables[ref.domain][ref.port]}"
        )


def floor_python(con, domain: Domain, data: Path, port_tables) -> dict:
    ctx = FloorContext(domain, con, data)
    builders = python_builders(domain.name)
    if not builders:
        raise RuntimeError(f"no port builders found in mesh_domains/{domain.name}/")
    started = time.perf_counter()
    provide_input_ports(con, domain, port_tables)
    for builder in builders:
        builder.fn(ctx)
    total = time.perf_counter() - started
    port_tables[domain.name] = {
        p.name: f"{floor_db(domain.name)}.main.{p.name}" for p in domain.output_ports
    }
    load_s = sum(x["seconds"] for x in ctx.loads)
    return {
        "seconds": total,
        "load_s": load_s,
        "transform_s": total - load_s,
        "loads": ctx.loads,
        "builders": [b.fn.__name__ for b in builders],
    }


def floor_dbt(con, domain: Domain, data: Path, manifest: dict, domains, port_tables) -> dict:
    loads, models = [], []
    landing = None
    started = time.perf_counter()
    provide_input_ports(con, domain, port_tables)
    for src in compiled_sources(manifest):
        rel = src.relation
        con.execute(f"create schema if not exists {_q(rel.database)}.{_q(rel.schema)}")
        if src.source_name in domains:
            con.execute(
                f"create or replace view {rel.sql} as "
                f"select * from {port_tables[src.source_name][src.name]}"
            )
            continue
        t0 = time.perf_counter()
        try:
            source = domain.source(src.name)
        except KeyError:
            landing = landing or load_landing()
            source = landing[src.name]
        rows = load_plain(con, data, source, rel.sql, latest_only=False)
        loads.append(
            {
                "source": src.name,
                "latest_only": False,
                "rows": rows,
                "seconds": time.perf_counter() - t0,
            }
        )
    by_name: dict[str, Relation] = {}
    for model in compiled_models(manifest):
        t0 = time.perf_counter()
        kind = "view" if model.materialized == "view" else "table"
        con.execute(f"create or replace {kind} {model.relation.sql} as (\n{model.sql}\n)")
        models.append({"model": model.name, "seconds": time.perf_counter() - t0})
        by_name[model.name] = model.relation
    total = time.perf_counter() - started
    missing = [p.name for p in domain.output_ports if p.name not in by_name]
    if missing:
        raise RuntimeError(f"{domain.name}: no compiled model for port(s) {missing}")
    port_tables[domain.name] = {
        p.name: ".".join(
            (by_name[p.name].database, by_name[p.name].schema, by_name[p.name].identifier)
        )
        for p in domain.output_ports
    }
    load_s = sum(x["seconds"] for x in loads)
    return {
        "seconds": total,
        "load_s": load_s,
        "transform_s": total - load_s,
        "loads": loads,
        "models": models,
    }


def run_floor(con, data: Path, work: Path, manifests: dict[str, str], domains) -> dict:
    """Every domain's SQL, level by level; returns per-domain figures and the port tables."""
    port_tables: dict[str, dict[str, str]] = {}
    results: dict[str, dict] = {}
    for level in domain_levels(domains):
        for name in level:
            domain = domains[name]
            path = work / f"{floor_db(name)}.duckdb"
            con.execute(f"attach '{path}' as {floor_db(name)}")
            con.execute(f"use {floor_db(name)}")
            try:
                if name in manifests:
                    manifest = load_manifest(Path(manifests[name]))
                    results[name] = floor_dbt(con, domain, data, manifest, domains, port_tables)
                    results[name]["toolchain"] = "dbt"
                else:
                    results[name] = floor_python(con, domain, data, port_tables)
                    results[name]["toolchain"] = "python"
            except Exception as exc:  # noqa: BLE001 — reported, the other domains still run
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                log.exception("floor of %s failed", name)
                continue
            finally:
                con.execute("use memory")
            results[name]["ports"] = {
                port: con.execute(f"select count(*) from {table}").fetchone()[0]
                for port, table in port_tables[name].items()
            }
    return {"domains": results, "port_tables": port_tables}


# --- what the guarantees cost -------------------------------------------------------------------


def scratch_root(data: Path, work: Path) -> Path:
    """A data root whose landing zone is ``data``'s and whose everything else is new."""
    scratch = work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    link = scratch / "landing"
    if not link.exists():
        link.symlink_to(data / "landing", target_is_directory=True)
    return scratch


def port_checks(con, domains, port_tables) -> dict:
    out = {}
    for name, tables in port_tables.items():
        ports = {}
        for port, table in tables.items():
            t0 = time.perf_counter()
            try:
                report = validate_table(
                    con, table, domains[name].output_port(port).contract, domain=name, port=port
                )
                ports[port] = {"seconds": time.perf_counter() - t0, "passed": report.passed}
                if not report.passed:
                    ports[port]["failures"] = report.message()[:2000]
            except Exception as exc:  # noqa: BLE001
                ports[port] = {"seconds": time.perf_counter() - t0, "error": str(exc)[:2000]}
        out[name] = {"seconds": sum(p["seconds"] for p in ports.values()), "ports": ports}
    return out


def source_checks(floor: dict, domains) -> dict:
    """Every source load of every domain again, through the platform (checks included)."""
    out = {}
    for name, result in floor.items():
        loads = result.get("loads", [])
        checked, errors = 0.0, []
        con = duckdb.connect()
        try:
            build = BuildContext(domains[name], con, log)
            for load in loads:
                t0 = time.perf_counter()
                try:
                    build.source(load["source"], latest_only=load["latest_only"])
                except Exception as exc:  # noqa: BLE001 — a rejected delivery is a finding
                    errors.append(f"{load['source']}: {str(exc)[:1500]}")
                checked += time.perf_counter() - t0
        finally:
            con.close()
        plain = sum(x["seconds"] for x in loads)
        out[name] = {
            "seconds": max(0.0, checked - plain),
            "checked_load_s": checked,
            "plain_load_s": plain,
            "errors": errors,
        }
    return out


def publish_ports(con, domains, port_tables) -> dict:
    """Attach each domain's (new) lake and publish all its ports in one commit."""
    out = {}
    for name, tables in port_tables.items():
        rows = {p: _count(con, t) for p, t in tables.items()}
        info = {"ports": {p: {"rows": n} for p, n in rows.items()}, "run_id": "fast_mesh"}
        t0 = time.perf_counter()
        try:
            alias = lake.attach_own_lake(con, name)
            version = lake.publish(con, name, dict(tables), info)
            out[name] = {"seconds": time.perf_counter() - t0, "version": version}
            con.execute(f"detach {alias}")
        except Exception as exc:  # noqa: BLE001
            out[name] = {"seconds": time.perf_counter() - t0, "error": str(exc)[:2000]}
    return out


def monolith_inputs(con, mono_db: Path, manifests: dict[str, str], domains) -> float:
    """Copy what the monolithic dbt project reads but does not build into its database."""
    started = time.perf_counter()
    mono_db.parent.mkdir(parents=True, exist_ok=True)
    mono_db.unlink(missing_ok=True)
    con.execute(f"attach '{mono_db}' as mono")
    try:
        for path in manifests.values():
            for src in compiled_sources(load_manifest(Path(path))):
                if src.source_name in manifests:  # built by the monolith itself (a ref)
                    continue
                schema, ident = _q(src.relation.schema), _q(src.relation.identifier)
                con.execute(f"create schema if not exists mono.{schema}")
                con.execute(
                    f"create table if not exists mono.{schema}.{ident} as "
                    f"select * from {src.relation.sql}"
                )
    finally:
        con.execute("detach mono")
    return time.perf_counter() - started


def warm_up(con) -> None:
    """Pay the process's one-time costs before any timing: the first parameterised query
    imports pandas/numpy in duckdb's Python client (≈ 2 s here), the first contract check
    builds pandera's and ibis's machinery, and the first polars frame read from or registered
    with DuckDB imports pyarrow (≈ 0.1 s; polars domains such as brand_analytics). The mesh
    pays them once per build process; they are part of its fixed overhead (measured at the
    tiny scale), not of the floor or the checks."""
    con.execute("select ?::bigint", [1]).fetchall()
    con.execute("create or replace temp table _warm_up as select 1::bigint as x")
    contract = Contract((ColumnSpec("x", "int64", nullable=False, checks={"ge": 0}),), ("x",))
    validate_table(con, "_warm_up", contract, domain="warm_up", port="warm_up")
    try:
        import polars  # noqa: F401 — only if a domain's builders use it
    except ImportError:
        pass
    else:
        con.register("_warm_up_frame", con.execute("select * from _warm_up").pl())
        con.execute("select count(*) from _warm_up_frame").fetchall()
        con.unregister("_warm_up_frame")
    con.execute("drop table _warm_up")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the scale's data root")
    parser.add_argument("--work", type=Path, required=True, help="a fresh folder for the floor")
    parser.add_argument("--manifests", required=True, help="JSON: dbt domain → manifest path")
    parser.add_argument("--mono-db", type=Path, help="the monolithic dbt project's database")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    data, work = args.data.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    manifests = json.loads(args.manifests)
    os.environ["MESH_DATA_DIR"] = str(data)
    domains = discover_domains()
    con = duckdb.connect()
    warm_up(con)

    started = time.perf_counter()
    floor = run_floor(con, data, work, manifests, domains)
    result: dict = {"floor_s": time.perf_counter() - started, **floor}
    tables = floor["port_tables"]

    os.environ["MESH_DATA_DIR"] = str(scratch_root(data, work))
    result["port_checks"] = port_checks(con, domains, tables)
    result["source_checks"] = source_checks(floor["domains"], domains)
    result["publish"] = publish_ports(con, domains, tables)
    if args.mono_db:
        try:
            result["monolith_inputs_s"] = monolith_inputs(con, args.mono_db, manifests, domains)
        except Exception as exc:  # noqa: BLE001
            result["monolith_inputs_error"] = str(exc)[:2000]
    con.close()
    args.out.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
