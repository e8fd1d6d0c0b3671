"""Fast-mesh benchmark: `mesh build` against the floor and a monolithic `dbt build`, per scale.

For every scale, in a fresh data root and Dagster home of its own, side by side in one run:

1. ``mesh generate --scale S`` (a subprocess): its time, and the landing rows it wrote;
2. ``mesh build`` (a subprocess, clean lakes): wall time, each domain's time (the CLI's
   ``<domain> built in`` lines, the Dagster run records and the ports' ``duration_s``), peak
   memory of its whole process tree;
3. the **floor** (``mesh_floor.py``, a subprocess): the same SQL of every domain back to back
   in ONE DuckDB process, without orchestration, contracts or publish; then, on the floor's
   tables, the time of the contract checks (output ports and source deliveries) and of publish,
   through the platform's public functions;
4. a **monolithic ``dbt build``**: the models of every dbt domain in ONE dbt project (generated
   at start into a temp dir, see ``dbt_sql.py``), reading the landing tables and the Python
   domains' ports that step 3 loaded into its database beforehand (not timed).

The smallest scale (``--tiny``, 0.02 by default) is always measured too: its build time minus
its floor is the **fixed overhead** of a build, for the whole build and per domain; it is also
built once more from scratch one domain at a time (``MESH_BUILD_PARALLEL=1``), which gives
each domain's fixed cost without another domain on the other core. Each code location's load
time (a fresh ``python -c "import mesh_domains.<d>.definitions"``, best of 3) and
``import dagster`` alone are measured once. Prints one table (stdout) and writes every
figure to a JSON file.

    .venv/bin/python benchmarks/fast_mesh.py --scales 0.2,2,20

Domains are discovered (``discover_domains()``); the dbt ones are those with toolchain dbt and
a project in ``dbt_projects/<domain>``. The real platform is driven only through its CLI and
public functions, so the harness keeps measuring while the platform changes underneath.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dbt_sql  # noqa: E402
from measure import Timed, run_timed  # noqa: E402

from mesh_domains.platform.descriptor import discover_domains, domain_levels  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MESH = str(BIN / "mesh")
PYTHON = sys.executable
FLOOR_SCRIPT = str(Path(__file__).resolve().parent / "mesh_floor.py")
RESULTS = ROOT / "benchmarks" / "results"
BUILD_BANNER = "building the mesh"
BUILT = re.compile(r"(\w+) built in ([0-9.]+)s")
FAILED = re.compile(r"(\w+) failed after ([0-9.]+)s")
SKIPPED = re.compile(r"(\w+) skipped")
GENERATED_IN = re.compile(r"in ([0-9.]+)s")


def say(message: str) -> None:
    """Progress goes to stderr: stdout carries only the result table."""
    print(message, file=sys.stderr, flush=True)


def mesh_environ(data: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MESH_CRASH_AT"}
    env.update(
        MESH_DATA_DIR=str(data),
        DAGSTER_HOME=str(home),
        PYTHONUNBUFFERED="1",
        COLUMNS="120",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    return env


# --- one scale ----------------------------------------------------------------------------------


def landing_rows(data: Path) -> dict[str, dict]:
    """Rows and bytes of every source's deliveries, as DuckDB reads them."""
    import duckdb

    con = duckdb.connect()
    out = {}
    landing = data / "landing"
    for source in sorted(p for p in landing.iterdir() if p.is_dir()):
        files = sorted(
            str(f)
            for f in source.glob("*/*")
            if f.is_file() and not f.name.startswith(".") and not f.parent.name.startswith(".")
        )
        if not files:
            continue
        listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        rows = con.execute(
            f"select count(*) from read_csv({listed}, header = true, all_varchar = true)"
        ).fetchone()[0]
        out[source.name] = {
            "deliveries": len(files),
            "rows": rows,
            "bytes": sum(Path(f).stat().st_size for f in files),
        }
    con.close()
    return out


def run_records(home: Path) -> dict[str, dict]:
    """Each domain's runs on the Dagster instance: count, summed run time, statuses."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        out: dict[str, dict] = {}
        for record in instance.get_run_records():
            run = record.dagster_run
            domain = run.tags.get("mesh/domain") or run.job_name.removeprefix("build_")
            entry = out.setdefault(domain, {"runs": 0, "run_s": 0.0, "statuses": []})
            entry["runs"] += 1
            if record.start_time and record.end_time:
                entry["run_s"] = round(entry["run_s"] + record.end_time - record.start_time, 3)
            entry["statuses"].append(str(run.status.value))
        return out
    finally:
        instance.dispose()


def mesh_status(env: dict[str, str]) -> list[dict]:
    result = subprocess.run(
        [MESH, "status", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        return []


def build_domains(build: Timed, status: list[dict], runs: dict[str, dict], domains) -> dict:
    """Per-domain time of the mesh build, from what the CLI printed, the run records and the
    ports' materialization metadata (``duration_s``: from the step's start to publish)."""
    printed = {m[1]: float(m[2]) for m in BUILT.finditer(build.output)}
    failed = {m[1]: float(m[2]) for m in FAILED.finditer(build.output)}
    skipped = {m[1] for m in SKIPPED.finditer(build.output)}
    out = {}
    for name in domains:
        steps = [r.get("duration_s") for r in status if r.get("domain") == name]
        steps = [s for s in steps if isinstance(s, int | float)]
        run = runs.get(name, {})
        out[name] = {
            "state": _state(name, printed, failed, skipped, run.get("statuses", [])),
            "cli_s": printed.get(name, failed.get(name)),
            "run_s": run.get("run_s"),
            "runs": run.get("runs", 0),
            "statuses": run.get("statuses", []),
            "step_s": max(steps) if steps else None,
            "seconds": printed.get(name, failed.get(name, run.get("run_s"))),
        }
    return out


def _state(name: str, printed, failed, skipped, statuses: list[str]) -> str:
    """built / failed / skipped as the CLI reported it, else as the domain's runs ended."""
    for state, names in (("built", printed), ("failed", failed), ("skipped", skipped)):
        if name in names:
            return state
    if statuses:
        return "built" if all(s == "SUCCESS" for s in statuses) else "failed"
    return "unknown"


def timeline(build: Timed, done_marks: dict[str, str], seconds: dict[str, float]) -> dict:
    """Where the wall time of ``mesh build`` went, in four parts: its start-up (until it
    prints ``building the mesh``), the wait until the first domain starts (its ``built`` line's
    time minus the domain's own seconds), the domains (until the last one is reported built),
    the wrap-up (status table, exit). Times are taken when each line was read."""
    banner = build.marks.get(BUILD_BANNER)
    done = {n: build.marks[m] for n, m in done_marks.items() if m in build.marks}
    started = {n: t - seconds[n] for n, t in done.items() if seconds.get(n) is not None}
    complete = len(done) == len(done_marks) and banner is not None and started
    first = min(started.values()) if complete else None
    last = max(done.values()) if complete else None

    def span(a, b):
        return None if a is None or b is None else round(b - a, 3)

    return {
        "start_up_s": None if banner is None else round(banner, 3),
        "to_first_domain_s": span(banner, first),
        "domains_s": span(first, last),
        "wrap_up_s": span(last, build.seconds),
        "domain_started_at_s": {n: round(t, 3) for n, t in started.items()},
        "domain_done_at_s": {n: round(t, 3) for n, t in done.items()},
    }


def measure_scale(scale: float, args, setup: dict, domains) -> dict:
    label = f"{scale:g}"
    root = args.root / f"scale-{label}"
    shutil.rmtree(root, ignore_errors=True)
    data, home = root / "data", root / "dagster_home"
    home.mkdir(parents=True)
    env = mesh_environ(data, home)
    out: dict = {"scale": scale, "root": str(root)}

    say(f"[scale {label}] mesh generate …")
    gen = run_timed(
        [MESH, "generate", "--scale", label, "--seed", str(args.seed)],
        env=env,
        cwd=ROOT,
        timeout=args.timeout,
    )
    out["generate"] = gen.as_dict()
    if not gen.ok:
        out["generate"]["error"] = gen.tail()
        return out
    reported = GENERATED_IN.findall(gen.output)
    out["generate"]["self_reported_s"] = float(reported[-1]) if reported else None
    out["landing"] = landing_rows(data)
    rows = sum(s["rows"] for s in out["landing"].values())
    out["generate"]["rows"] = rows
    out["generate"]["rows_per_s"] = round(rows / gen.seconds) if gen.seconds else None

    say(f"[scale {label}] {rows:,} landing rows in {gen.seconds:.1f}s; mesh build …")
    done_marks = {name: f"{name} built" for name in domains}
    build = run_timed(
        [MESH, "build"],
        env=env,
        cwd=ROOT,
        timeout=args.timeout,
        marks=(BUILD_BANNER, *done_marks.values()),
    )
    status = mesh_status(env)
    try:
        runs = run_records(home)
    except Exception as exc:  # noqa: BLE001 — the CLI's figures still stand
        runs = {}
        out["run_records_error"] = str(exc)[:1000]
    out["build"] = {
        **build.as_dict(),
        "domains": build_domains(build, status, runs, domains),
        "ports": status,
    }
    own = {n: d["cli_s"] for n, d in out["build"]["domains"].items()}
    out["build"]["timeline"] = timeline(build, done_marks, own)
    if not build.ok:
        out["build"]["error"] = build.tail(40)
    verdict = "ok" if build.ok else "FAILED"
    say(f"[scale {label}] mesh build {verdict} in {build.seconds:.1f}s")
    if scale == args.tiny:
        out["alone"] = alone_build(root, data, domains, args.timeout)
    say(f"[scale {label}] floor …")

    work = root / "floor"
    floor_json = root / "floor.json"
    floor = run_timed(
        [
            PYTHON,
            FLOOR_SCRIPT,
            "--data",
            str(data),
            "--work",
            str(work),
            "--manifests",
            json.dumps(setup["manifests"]),
            "--out",
            str(floor_json),
            *(
                ["--mono-db", str(dbt_sql.monolith_db(args.root / "monolith"))]
                if setup["mono"]
                else []
            ),
        ],
        env=env,
        cwd=ROOT,
        timeout=args.timeout,
    )
    out["floor"] = {"process": floor.as_dict()}
    if floor.ok and floor_json.exists():
        out["floor"].update(json.loads(floor_json.read_text()))
    else:
        out["floor"]["error"] = floor.tail(40)
    say(f"[scale {label}] floor {out['floor'].get('floor_s', float('nan')):.2f}s; monolith …")

    if setup["mono"] and "monolith_inputs_s" in out["floor"]:
        project, _ = setup["mono"]
        mono_work = args.root / "monolith"
        mono = run_timed(
            dbt_sql.monolith_build_args(project, mono_work / "profile", mono_work),
            env=dbt_sql.dbt_env(),
            cwd=project,
            timeout=args.timeout,
        )
        out["monolith"] = {**mono.as_dict(), **dbt_sql.run_results(mono_work)}
        if not mono.ok:
            out["monolith"]["error"] = mono.tail(40)
    elif setup["mono"]:
        out["monolith"] = {"error": out["floor"].get("monolith_inputs_error", "floor failed")}
    out["ratios"] = ratios(out)
    out["rows_match"] = rows_match(out)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return out


def alone_build(root: Path, data: Path, domains, timeout: float) -> dict:
    """``mesh build`` again from scratch (new lakes and Dagster home, the same landing zone),
    one domain at a time (``MESH_BUILD_PARALLEL=1``): each domain's time without another
    domain on the other core, which is what a domain's fixed cost is measured from."""
    scratch = root / "alone"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "data").mkdir(parents=True)
    (scratch / "dagster_home").mkdir()
    (scratch / "data" / "landing").symlink_to(data / "landing", target_is_directory=True)
    env = {**mesh_environ(scratch / "data", scratch / "dagster_home"), "MESH_BUILD_PARALLEL": "1"}
    say("[alone] mesh build, one domain at a time …")
    build = run_timed([MESH, "build"], env=env, cwd=ROOT, timeout=timeout)
    printed = {m[1]: float(m[2]) for m in BUILT.finditer(build.output)}
    out = {**build.as_dict(), "domains": {n: printed.get(n) for n in domains}}
    if not build.ok:
        out["error"] = build.tail(40)
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def rows_match(scale: dict) -> dict:
    """Whether the floor made the same ports as the mesh published: equal row counts per port
    (a cheap proof that the floor ran the same SQL on the same inputs)."""
    published = {
        (p.get("domain"), p.get("port")): p.get("rows") for p in scale["build"].get("ports", [])
    }
    made = {
        (d, port): rows
        for d, result in scale["floor"].get("domains", {}).items()
        for port, rows in result.get("ports", {}).items()
    }
    differ = [
        f"{d}/{p}: mesh {published.get((d, p))}, floor {rows}"
        for (d, p), rows in made.items()
        if published.get((d, p)) != rows
    ]
    return {"ports": len(made), "equal": len(made) - len(differ), "differ": differ}


def _total(part: dict | None) -> float | None:
    if not part:
        return None
    values = [v.get("seconds") for v in part.values() if isinstance(v, dict)]
    return sum(v for v in values if v is not None)


def ratios(scale: dict) -> dict:
    build = scale.get("build", {})
    floor = scale.get("floor", {})
    mono = scale.get("monolith", {})
    wall = build.get("seconds") if build.get("returncode") == 0 else None
    checks_ports = _total(floor.get("port_checks"))
    checks_sources = _total(floor.get("source_checks"))
    publish = _total(floor.get("publish"))

    def over(a, b):
        return round(a / b, 3) if a is not None and b else None

    checks = None if checks_ports is None else checks_ports + (checks_sources or 0.0)
    parts = floor.get("domains") or {}
    complete = bool(parts) and all("error" not in d for d in parts.values())
    monolith = mono.get("seconds") if mono.get("returncode") == 0 else None
    # the monolith holds the dbt domains only: the Python domains' SQL (their floor) beside it
    python = [d.get("seconds") for d in parts.values() if d.get("toolchain") == "python"]
    with_python = (
        monolith + sum(python)
        if monolith is not None and complete and all(x is not None for x in python)
        else None
    )
    return {
        "floor_complete": complete,
        "build_over_floor": over(wall, floor.get("floor_s") if complete else None),
        "build_over_monolith": over(wall, monolith),
        "build_over_monolith_and_python": over(wall, with_python),
        "checks_s": checks,
        "port_checks_s": checks_ports,
        "source_checks_s": checks_sources,
        "publish_s": publish,
        "checks_share": over(checks, wall),
        "publish_share": over(publish, wall),
    }


# --- once per run -------------------------------------------------------------------------------


def prepare(args, domains) -> dict:
    """Compile each dbt domain (for the floor) and generate + parse the monolithic project."""
    started = time.perf_counter()
    names = dbt_sql.dbt_domains(domains)
    manifests = {}
    for name in names:
        say(f"[setup] dbt compile {name} …")
        manifests[name] = str(dbt_sql.compile_domain(name, args.root / "compiled" / name))
    mono = None
    if names:
        say("[setup] monolithic dbt project: " + ", ".join(names))
        work = args.root / "monolith"
        project, profiles = dbt_sql.write_monolith(names, work, args.dbt_threads)
        dbt_sql.parse_monolith(project, profiles, work)
        mono = (project, profiles)
    return {
        "manifests": manifests,
        "mono": mono,
        "dbt_domains": names,
        "seconds": round(time.perf_counter() - started, 3),
    }


def code_location_loads(domains, repeats: int, root: Path) -> dict:
    """Seconds to import each code location in a fresh process (best of ``repeats``)."""
    env = mesh_environ(root / "loads" / "data", root / "loads" / "dagster_home")
    probes = {"python": "pass", "import dagster": "import dagster"}
    probes.update({name: f"import mesh_domains.{name}.definitions" for name in domains})
    out = {}
    for name, code in probes.items():
        samples, error = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = subprocess.run(
                [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
            )
            samples.append(round(time.perf_counter() - t0, 3))
            if result.returncode != 0:
                error = result.stderr[-1500:]
                break
        out[name] = {
            "best_s": min(samples),
            "samples": samples,
            **({"error": error} if error else {}),
        }
        say(f"[loads] {name}: best {min(samples):.2f}s of {samples}")
    return out


def fixed_overhead(tiny: dict | None) -> dict | None:
    """The tiny build's time above its floor, for the whole build and per domain."""
    if (
        not tiny
        or tiny.get("build", {}).get("returncode") != 0
        or "floor_s" not in tiny.get("floor", {})
    ):
        return None
    floor_domains = tiny["floor"].get("domains", {})
    per_domain = {}
    for name, d in tiny["build"]["domains"].items():
        if d.get("seconds") is not None:
            per_domain[name] = round(
                d["seconds"] - floor_domains.get(name, {}).get("seconds", 0.0), 3
            )
    alone = tiny.get("alone") or {}
    per_domain_alone = {
        name: round(seconds - floor_domains.get(name, {}).get("seconds", 0.0), 3)
        for name, seconds in (alone.get("domains") or {}).items()
        if seconds is not None and alone.get("returncode") == 0
    }
    return {
        "scale": tiny["scale"],
        "build_s": round(tiny["build"]["seconds"] - tiny["floor"]["floor_s"], 3),
        "domains": per_domain,
        "domains_alone": per_domain_alone,
    }


# --- output -------------------------------------------------------------------------------------


def _s(v, digits=1) -> str:
    return "-" if v is None else f"{v:.{digits}f}s"


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}×"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def table(report: dict) -> str:
    scales = report["scales"]
    domains = list(report["domains"])
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, fn) -> None:
        cells = []
        for s in scales:
            try:
                cells.append(fn(s))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("-")
        rows.append((label, cells))

    row("landing rows (all sources)", lambda s: f"{s['generate']['rows']:,}")
    row(
        "  mesh generate (rows/s, peak memory)",
        lambda s: (
            f"{_s(s['generate']['seconds'])} ({s['generate']['rows_per_s']:,}/s, "
            f"{s['generate']['peak_tree_mb']:,.0f} MB)"
        ),
    )
    row(
        "mesh build (wall)",
        lambda s: _s(s["build"]["seconds"]) + ("" if s["build"]["returncode"] == 0 else " FAILED"),
    )
    row(
        "  start-up / to 1st domain / domains / end",
        lambda s: " / ".join(
            _s(s["build"]["timeline"][k])
            for k in ("start_up_s", "to_first_domain_s", "domains_s", "wrap_up_s")
        ),
    )
    for d in domains:
        row(
            f"  {d}",
            lambda s, d=d: (
                _s(s["build"]["domains"][d]["seconds"])
                + ("" if s["build"]["domains"][d]["state"] == "built" else " FAILED")
            ),
        )
    row(
        "  peak memory: all processes / largest",
        lambda s: f"{s['build']['peak_tree_mb']:,.0f} / {s['build']['peak_process_mb']:,.0f} MB",
    )
    row(
        "floor (one DuckDB process)",
        lambda s: (
            _s(s["floor"]["floor_s"], 2) + ("" if s["ratios"]["floor_complete"] else " INCOMPLETE")
        ),
    )
    for d in domains:
        row(f"  {d}", lambda s, d=d: _s(s["floor"]["domains"][d]["seconds"], 2))
    row(
        "  ports with the mesh's row counts",
        lambda s: f"{s['rows_match']['equal']}/{s['rows_match']['ports']}",
    )
    if report["dbt_domains"]:
        row(
            "monolithic dbt build",
            lambda s: (
                _s(s["monolith"]["seconds"])
                + ("" if s["monolith"]["returncode"] == 0 else " FAILED")
            ),
        )
        row(
            "  dbt: models / tests",
            lambda s: f"{_s(s['monolith']['models_s'], 2)} / {_s(s['monolith']['tests_s'], 2)}",
        )
    row(
        "contract checks: ports / sources",
        lambda s: (
            f"{_s(s['ratios']['port_checks_s'], 2)} / {_s(s['ratios']['source_checks_s'], 2)}"
        ),
    )
    row("publish", lambda s: _s(s["ratios"]["publish_s"], 2))
    row("mesh build / floor", lambda s: _x(s["ratios"]["build_over_floor"]))
    if report["dbt_domains"]:
        row("mesh build / monolithic dbt build", lambda s: _x(s["ratios"]["build_over_monolith"]))
        row(
            "  / monolith + Python domains' floor",
            lambda s: _x(s["ratios"].get("build_over_monolith_and_python")),
        )
    row("checks share of mesh build", lambda s: _pct(s["ratios"]["checks_share"]))
    row("publish share of mesh build", lambda s: _pct(s["ratios"]["publish_share"]))
    overhead = report.get("fixed_overhead")
    if overhead:
        row(
            "fixed overhead share",
            lambda s: (
                _pct(overhead["build_s"] / s["build"]["seconds"])
                if s["build"]["returncode"] == 0
                else "-"
            ),
        )

    header = ("scale", [f"{s['scale']:g}" for s in scales])
    width = max(len(r[0]) for r in [header, *rows])
    cols = [max(len(header[1][i]), *(len(r[1][i]) for r in rows)) for i in range(len(scales))]
    lines = []
    for label, cells in [header, *rows]:
        lines.append(
            f"{label:<{width}}  " + "  ".join(f"{c:>{cols[i]}}" for i, c in enumerate(cells))
        )
        if label == "scale":
            lines.append("-" * len(lines[-1]))
    if overhead:
        per = ", ".join(f"{d} {_s(v)}" for d, v in overhead["domains"].items())
        lines.append("")
        lines.append(
            f"fixed overhead (scale {overhead['scale']:g}, build − floor): "
            f"{_s(overhead['build_s'])}; per domain, side by side: {per}"
        )
        if overhead.get("domains_alone"):
            alone = ", ".join(f"{d} {_s(v)}" for d, v in overhead["domains_alone"].items())
            lines.append(f"per domain, one at a time: {alone}")
    loads = report.get("code_location_loads")
    if loads:
        lines.append(
            "code location load (fresh process, best of "
            f"{len(next(iter(loads.values()))['samples'])}): "
            + ", ".join(
                f"{n} {_s(v['best_s'], 2)}" + (" FAILED" if "error" in v else "")
                for n, v in loads.items()
            )
        )
    return "\n".join(lines)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in (
        "duckdb",
        "dagster",
        "dagster-dbt",
        "dbt-core",
        "dbt-duckdb",
        "pandera",
        "ibis-framework",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_sha() -> str | None:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (result.stdout.strip() + ("+dirty" if dirty else "")) if result.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.2,2,20", help="comma-separated scale factors")
    parser.add_argument(
        "--tiny", type=float, default=0.02, help="scale of the fixed overhead (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--json", type=Path, help="default: benchmarks/results/fast_mesh-<time>.json"
    )
    parser.add_argument(
        "--root", type=Path, help="where the temporary meshes live (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep each scale's data root")
    parser.add_argument(
        "--dbt-threads", type=int, default=os.cpu_count() or 1, help="monolith's dbt threads"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per command")
    parser.add_argument("--load-repeats", type=int, default=3, help="code location loads (0: skip)")
    args = parser.parse_args(argv)

    scales = sorted(
        {float(s) for s in args.scales.split(",") if s.strip()}
        | ({args.tiny} if args.tiny else set())
    )
    created = args.root is None
    args.root = (args.root or Path(tempfile.mkdtemp(prefix="fast-mesh-"))).resolve()
    args.root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC)
    out_path = args.json or RESULTS / f"fast_mesh-{stamp:%Y%m%d-%H%M%S}.json"
    found = discover_domains()
    domains = {name: found[name] for level in domain_levels(found) for name in level}
    say(
        f"fast mesh benchmark: scales {', '.join(f'{s:g}' for s in scales)}; "
        f"domains {', '.join(domains)}; under {args.root}"
    )

    started = time.perf_counter()
    report: dict = {
        "started_at": stamp.isoformat(timespec="seconds"),
        "git": git_sha(),
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "load_average_at_start": os.getloadavg(),
        },
        "versions": versions(),
        "domains": {n: d.toolchain for n, d in domains.items()},
        "seed": args.seed,
        "dbt_threads": args.dbt_threads,
    }
    setup = prepare(args, domains)
    report["dbt_domains"] = setup["dbt_domains"]
    report["setup_s"] = setup["seconds"]
    report["scales"] = [measure_scale(s, args, setup, domains) for s in scales]
    tiny = next((s for s in report["scales"] if s["scale"] == args.tiny), None)
    report["fixed_overhead"] = fixed_overhead(tiny)
    if args.load_repeats:
        report["code_location_loads"] = code_location_loads(domains, args.load_repeats, args.root)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["total_s"] = round(time.perf_counter() - started, 1)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, default=str))
    machine = report["machine"]
    print(
        f"fast mesh benchmark — {report['started_at']}, git {report['git']}, "
        f"{machine['cores']} cores, {machine['memory_gb']} GB, run took {report['total_s']:.0f}s"
    )
    print(table(report))
    print(f"\nall figures: {out_path}")
    if created and not args.keep:
        shutil.rmtree(args.root, ignore_errors=True)
    failed = any(
        s.get("build", {}).get("returncode") != 0
        or "error" in s.get("floor", {})
        or "error" in s.get("monolith", {})
        for s in report["scales"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
