"""Crash-safety benchmark: kill -9 domain builds many times, prove no torn version is ever seen.

A tiny mesh is built fault-free first; its port contents are the reference. Then, ``--kills``
times, a ``mesh build --domain <d>`` subprocess (physician_master or physician_dw, chosen by a
seeded RNG) is killed, either at a named crash point (``MESH_CRASH_AT``) or by a SIGKILL of its
process group after a random delay into the build, sometimes against a fresh lake (the domain's
lake and staging deleted first), otherwise against the existing one. After each kill a READ-ONLY
reader checks the lake:

- torn versions: a committed snapshot recording ports whose ports are not all readable at that
  version with exactly the recorded row counts (or which wrote tables it did not record);
- last good version served: every earlier version is still there with the same content, the
  current version is the previous one or one complete new one, the lake's served-version
  pointer names one committed version for all ports with exactly its files, and a consumer
  reading through ``lake.open_port`` gets exactly that version's content;

then the build is re-run without faults and must converge: a new version whose content digest
equals the reference.

Prints the figures (kills, kills per crash point, torn versions, violations, mean re-run time)
and exits 1 if any torn version was found (2 if no torn version but another violation: the last
good version not served, or a re-run that did not converge).

    .venv/bin/python benchmarks/crash_safety.py --kills 50
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from reliability_helpers import (  # noqa: E402
    CRASH_POINTS,
    DOMAINS,
    FAULTS,
    RANDOM,
    MeshRoot,
    audit_lake,
    audit_mesh,
    kill_problems,
    new_mesh_root,
    run_build,
    served_to_consumer,
    uninitialized,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="kills that must land")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--random-fraction", type=float, default=0.5, help="share of random-delay kills"
    )
    parser.add_argument(
        "--fresh-fraction", type=float, default=0.2, help="share of kills on a fresh lake"
    )
    parser.add_argument(
        "--kill-mode",
        choices=("group", "process"),
        default="group",
        help="random-delay kills: the run's whole process group (dbt included) or only the "
        "mesh process, as a plain `kill -9 <pid>` would",
    )
    parser.add_argument("--root", type=Path, help="where the mesh lives (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write every kill and the figures here")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    root = args.root or Path(tempfile.mkdtemp(prefix="mesh-crash-"))
    mesh: MeshRoot = new_mesh_root(root)
    print(f"mesh under test: {root} (seed {args.seed})", flush=True)

    window: dict[str, float] = {}
    for domain in DOMAINS:
        run = run_build(mesh, domain)
        if not run.built(domain):
            print(run.tail())
            return 2
        window[domain] = run.build_seconds or run.seconds
    reference = {d: a.current.digests for d, a in audit_mesh(mesh.paths).items()}
    print(
        "reference built; build windows " + ", ".join(f"{d} {s:.1f}s" for d, s in window.items()),
        flush=True,
    )

    kills, attempts = [], 0
    while len(kills) < args.kills and attempts < 3 * args.kills:
        attempts += 1
        domain = rng.choice(DOMAINS)
        fault = RANDOM if rng.random() < args.random_fraction else rng.choice(CRASH_POINTS)
        fresh = rng.random() < args.fresh_fraction
        delay = rng.uniform(0.0, window[domain]) if fault == RANDOM else None
        if fresh:
            mesh.reset_domain(domain)
        before = audit_lake(mesh.paths, domain)

        killed = run_build(
            mesh,
            domain,
            crash_at=None if fault == RANDOM else fault,
            kill_after=delay,
            kill_group=args.kill_mode == "group",
        )
        landed = killed.killed_by_harness if fault == RANDOM else killed.died_of_sigkill
        t0 = time.monotonic()
        after = audit_lake(mesh.paths, domain)
        audit_s = time.monotonic() - t0
        problems = kill_problems(before, after)
        left_uninitialized = uninitialized(before, after)
        if after.current is not None and not after.unreadable:
            try:
                served = served_to_consumer(mesh.paths, domain)
            except Exception as exc:  # noqa: BLE001 — a consumer error is a finding
                problems.append(f"consumer read failed: {type(exc).__name__}: {exc}")
                served = {}
            pinned = {v for v, _ in served.values()}
            content = {port: digest for port, (_, digest) in served.items()}
            if len(pinned) > 1:
                problems.append(f"consumer served ports at different versions: {pinned}")
            elif served:
                (version,) = pinned
                if version not in (before.current_version, after.current_version):
                    problems.append(f"consumer served version {version}")
                elif content != after.digests_at(version):
                    problems.append(f"consumer read other content than version {version}")
                if after.current_version == before.current_version != version:
                    problems.append("the last good version is not served")

        rerun = run_build(mesh, domain)
        final = audit_lake(mesh.paths, domain)
        differing = final.differing_ports(reference[domain])
        converged = (
            rerun.built(domain)
            and final.current is not None
            and not differing
            and final.current_version != after.current_version
        )
        record = {
            "n": len(kills) + 1 if landed else None,
            "domain": domain,
            "fault": fault,
            "fresh_lake": fresh,
            "delay_s": None if delay is None else round(delay, 2),
            "landed": landed,
            "returncode": killed.returncode,
            "killed_run_s": round(killed.seconds, 2),
            "version_before": before.current_version,
            "version_after_kill": after.current_version,
            "served_after_kill": after.served_version,
            "committed_before_death": after.current_version != before.current_version,
            "lake_left_uninitialized": left_uninitialized,
            "unreadable_after_kill": after.unreadable,
            "torn": after.torn + final.torn,
            "problems": problems,
            "audit_s": round(audit_s, 3),
            "rerun_s": round(rerun.seconds, 2),
            "rerun_returncode": rerun.returncode,
            "converged": converged,
            "ports_differing_from_reference": differing,
            "version_after_rerun": final.current_version,
        }
        if not converged:
            record["rerun_tail"] = rerun.tail(25)
        if landed:
            kills.append(record)
        print(
            f"[{attempts:>3}] {'kill ' + str(record['n']) if landed else 'missed':>8} "
            f"{domain:<16} {fault:<21}{' fresh' if fresh else '      '}"
            f"{'' if delay is None else f' @{delay:5.1f}s'} → v{before.current_version}"
            f"→v{after.current_version} (served v{after.served_version})→v{final.current_version}"
            f" torn {len(record['torn'])} "
            f"{'converged' if converged else 'NOT CONVERGED'} re-run {rerun.seconds:.1f}s"
            + (f" PROBLEMS {problems}" if problems else ""),
            flush=True,
        )

    torn = [t for k in kills for t in k["torn"]]
    problems = [(k["n"], p) for k in kills for p in k["problems"]]
    not_converged = [k["n"] for k in kills if not k["converged"]]
    per_fault = Counter((k["domain"], k["fault"]) for k in kills)
    rerun_s = [k["rerun_s"] for k in kills]
    summary = {
        "kills": len(kills),
        "attempts": attempts,
        "seed": args.seed,
        "kill_mode": args.kill_mode,
        "per_fault": {f"{d}:{f}": n for (d, f), n in sorted(per_fault.items())},
        "fresh_lake_kills": sum(k["fresh_lake"] for k in kills),
        "committed_before_death": sum(k["committed_before_death"] for k in kills),
        "lakes_left_uninitialized": sum(k["lake_left_uninitialized"] for k in kills),
        "torn_versions": len(torn),
        "torn": torn,
        "violations": problems,
        "not_converged": not_converged,
        "mean_rerun_s": round(statistics.mean(rerun_s), 2) if rerun_s else None,
        "max_rerun_s": max(rerun_s, default=None),
        "mean_rerun_s_by_domain": {
            d: round(statistics.mean(s), 2)
            for d in DOMAINS
            if (s := [k["rerun_s"] for k in kills if k["domain"] == d])
        },
        "mean_audit_s": round(statistics.mean(k["audit_s"] for k in kills), 3) if kills else None,
        "build_window_s": {d: round(s, 1) for d, s in window.items()},
    }

    print()
    print(f"kills              {len(kills)} landed of {attempts} attempts (seed {args.seed})")
    print(f"  on a fresh lake  {summary['fresh_lake_kills']}")
    print("  per fault        domain            " + "  ".join(f"{f:>21}" for f in FAULTS))
    for d in DOMAINS:
        print(
            f"                   {d:<17} " + "  ".join(f"{per_fault[(d, f)]:>21}" for f in FAULTS)
        )
    print(f"committed, then killed  {summary['committed_before_death']} (new version complete)")
    print(
        f"new lake left uninitialized  {summary['lakes_left_uninitialized']} (killed while "
        "creating it; nothing published yet; the re-run initializes it)"
    )
    print(f"torn versions      {len(torn)}")
    for t in torn[:10]:
        print(f"  {t}")
    print(f"other violations   {len(problems)}")
    for n, p in problems[:10]:
        print(f"  kill {n}: {p}")
    print(f"not converged      {len(not_converged)} {not_converged or ''}")
    differing = Counter(
        f"{k['domain']}.{p}" for k in kills for p in k["ports_differing_from_reference"]
    )
    for port, n in differing.items():
        print(f"  {n:>3} re-run(s) published {port} with other content than the reference")
    print(
        f"re-run (recovery)  mean {summary['mean_rerun_s']}s, max {summary['max_rerun_s']}s; "
        + ", ".join(f"{d} {s}s" for d, s in summary["mean_rerun_s_by_domain"].items())
    )
    print(f"read-only audit    mean {summary['mean_audit_s']}s per lake")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "kills": kills}, indent=2))
    if torn:
        return 1
    return 2 if problems or not_converged else 0


if __name__ == "__main__":
    t0 = time.monotonic()
    code = main()
    print(f"done in {time.monotonic() - t0:.0f}s, exit {code}")
    sys.exit(code)
