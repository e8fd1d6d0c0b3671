"""How much a new week costs, against a full build, measured side by side in one run.

In a fresh data root and Dagster instance: generate the landing zone at ``--scale``, build the
whole mesh (``mesh build``'s code path, every period), then drop one new week of Rx and let it
propagate exactly as the daemon would: tick every domain's arrival and process-linkage sensor,
run what they request (selection, partitions, tags, config as requested), repeat until nobody
requests anything. Reports the full build, the propagation, their ratio, and per run what it
published (ports and partitions) and each step's time. The runs execute in this process after
it has loaded what ``mesh build``'s workers load before they fork
(``mesh_domains/platform/warm.py``: Dagster, dbt, pandera, polars), so both sides are measured
warm: the week's runs pay for their work, not for importing dbt once.

    .venv/bin/python benchmarks/propagation.py --scale 20 --json benchmarks/results/prop.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--weeks",
        type=int,
        default=8,
        help="weeks of Rx and claims history in the landing zone (the generator's default: 8; "
        "a brand team keeps a year or more)",
    )
    parser.add_argument(
        "--new-prescribers",
        type=int,
        default=0,
        help="prescribers in the new week that no earlier delivery names (default 0: the week "
        "is the newest one re-dated, so the physician master's rows do not change)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--keep", action="store_true", help="keep the data root and instance (path printed)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mesh-propagation-"))
    os.environ["MESH_DATA_DIR"] = str(work / "data")
    os.environ["DAGSTER_HOME"] = str(work / "dagster_home")
    os.environ.setdefault("MESH_ENV", "dev")
    try:
        return run(args, work)
    finally:
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path) -> int:
    import dagster as dg
    import duckdb

    import mesh_domains.platform.warm  # noqa: F401  (as mesh build's workers: measured warm)
    from mesh_domains.platform.build import build_mesh, domain_job
    from mesh_domains.platform.cli import prepare_instance_home
    from mesh_domains.platform.descriptor import discover_domains, domain_levels
    from pharma_example import generate

    prepare_instance_home()
    started = time.monotonic()
    generate(work / "data" / "landing", scale=args.scale, seed=args.seed, weeks=args.weeks)
    generated = time.monotonic() - started
    domains = discover_domains()
    order = [d for level in domain_levels(domains) for d in level]
    with dg.DagsterInstance.get() as instance:
        started = time.monotonic()
        report = build_mesh(instance)
        full = time.monotonic() - started
        assert report.ok, [r.error for r in report.results]
        sensors = []
        for name in order:
            defs = importlib.import_module(f"mesh_domains.{name}.definitions").defs
            for sensor in defs.sensors or ():
                if sensor.name.endswith(("_arrivals", "_linkage")):
                    sensors.append([name, sensor, None])
        for entry in sensors:  # the daemon's first tick: what was built is the baseline
            entry[2] = _tick(instance, entry)[1]

        week = _new_week(work / "data" / "landing" / "rx_weekly", duckdb, args.new_prescribers)
        runs, started = [], time.monotonic()
        while True:
            requested = 0
            for entry in sensors:
                requests, entry[2] = _tick(instance, entry)
                for request in requests:
                    requested += 1
                    t0 = time.monotonic()
                    result = domain_job(entry[0]).execute_in_process(
                        instance=instance,
                        asset_selection=request.asset_selection,
                        partition_key=request.partition_key,
                        tags=request.tags,
                        run_config=request.run_config or None,
                        raise_on_error=False,
                    )
                    assert result.success, f"{entry[0]}: {request}"
                    runs.append(
                        {
                            "domain": entry[0],
                            "trigger": request.tags.get("mesh/trigger"),
                            "seconds": round(time.monotonic() - t0, 2),
                            "published": _published(instance, result.run_id),
                            "steps_s": _step_seconds(instance, result.run_id),
                        }
                    )
            if not requested:
                break
        propagation = time.monotonic() - started
        compute = sum(r["seconds"] for r in runs)
    result = {
        "scale": args.scale,
        "weeks": args.weeks,
        "new_prescribers": args.new_prescribers,
        "generate_s": round(generated, 2),
        "full_build_s": round(full, 2),
        "new_week": week,
        "propagation_s": round(propagation, 2),
        "propagation_runs_s": round(compute, 2),
        "fraction_of_full_build": round(compute / full, 4),
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _tick(instance, entry):
    import dagster as dg

    _, sensor, cursor = entry
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    for event in result.asset_events or ():
        instance.report_runless_asset_event(event)
    return list(result.run_requests or ()), result.cursor


def _new_week(folder: Path, duckdb, new_prescribers: int = 0) -> str:
    """The newest week's delivery, re-dated one week later: a new week of Rx arrives. With
    ``new_prescribers``, that many of its prescribers are replaced by NPIs (valid) that no
    delivery named before: new golden records, so the physician master's rows change."""
    from datetime import date, timedelta

    from mesh_domains.platform.npi import npi_check_digit

    newest = sorted(p.name for p in folder.iterdir())[-1]
    week = (date.fromisoformat(newest) + timedelta(days=7)).isoformat()
    target = folder / week / "rx_weekly.csv"
    target.parent.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        f"create table week as select * replace (date '{week}' as week_ending) from read_csv("
        f"'{folder / newest / 'rx_weekly.csv'}', all_varchar = true)"
    )
    if new_prescribers:
        known = con.execute(
            f"select distinct prescriber_npi from read_csv('{folder}/*/rx_weekly.csv', "
            "all_varchar = true)"
        ).fetchall()
        taken = {n for (n,) in known}
        fresh = (f"19{i:07d}" for i in range(10**7))
        npis = []
        for first9 in fresh:
            npi = f"{first9}{npi_check_digit(first9)}"
            if npi not in taken:
                npis.append(npi)
            if len(npis) == new_prescribers:
                break
        old = [
            n
            for (n,) in con.execute(
                f"select distinct prescriber_npi from week order by 1 limit {new_prescribers}"
            ).fetchall()
        ]
        con.execute("create table renamed (old varchar, new varchar)")
        con.executemany("insert into renamed values (?, ?)", list(zip(old, npis, strict=False)))
        con.execute(
            "update week set prescriber_npi = r.new from renamed r where prescriber_npi = r.old"
        )
    con.execute(f"copy week to '{target}' (header)")
    return week


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    """Each step's wall time in the run (start to success or failure), from its events."""
    import dagster as dg

    starts: dict[str, float] = {}
    out: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        ):
            out[event.step_key] = round(record.timestamp - starts.get(event.step_key, 0), 2)
    return out


def _published(instance, run_id: str) -> dict[str, list]:
    import dagster as dg

    out: dict[str, list] = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        m = record.dagster_event.event_specific_data.materialization
        out.setdefault(m.asset_key.to_user_string(), []).append(m.partition)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
