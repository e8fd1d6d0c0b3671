"""Concurrency benchmark: every domain building at once under many concurrent port readers.

Each round adds one more week of Rx deliveries to the landing zone (so that consecutive
versions have different row counts), then starts ``--readers`` reader threads (each
its own DuckDB connection, attaching both lakes through the platform's grant-checked read-only
port reader) and both ``mesh build --domain physician_master`` and ``mesh build --domain
physician_dw`` as concurrent subprocesses; physician_dw reads the physician_master lake while it
is being published to. Readers read all ports of a domain, again and again, until both builds
have ended.

Half the readers read like consumers (``lake.open_port``: the served version pinned as a view
over its files, no catalog), half query the live catalog (``lake.attach_port_reader``).

Prints reads/s, reader errors (by kind of reader and exact message), reads that matched no
committed version, the versions the readers saw and every build failure. Exits 1 on any error,
bad read or failed build.

    .venv/bin/python benchmarks/concurrency.py --readers 40 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from reliability_helpers import (  # noqa: E402
    DOMAINS,
    TINY,
    BuildProcess,
    BuildRun,
    ReaderPool,
    audit_mesh,
    new_mesh_root,
    run_build,
)


def failure_text(run: BuildRun) -> str:
    """The ``✘ <domain> failed`` block of a build's output (or its tail)."""
    lines = run.output
    start = next((i for i, line in enumerate(lines) if "✘" in line), None)
    if start is None:
        return "".join(lines[-15:]).strip()
    return "".join(lines[start : start + 6]).strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between two reads")
    parser.add_argument(
        "--wal",
        action="store_true",
        help="experiment: switch the lakes' SQLite catalogs to WAL journal mode after the first "
        "build (what DuckLake's META_JOURNAL_MODE 'WAL' attach option would do)",
    )
    parser.add_argument("--root", type=Path, help="where the mesh lives (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)

    root = args.root or Path(tempfile.mkdtemp(prefix="mesh-concurrency-"))
    mesh = new_mesh_root(root)
    os.environ["MESH_DATA_DIR"] = str(mesh.data)
    print(f"mesh under test: {root}")
    first = run_build(mesh)
    if not all(first.built(d) for d in DOMAINS):
        print(first.tail())
        return 2
    if args.wal:
        for domain in DOMAINS:
            with sqlite3.connect(mesh.paths.lake_catalog(domain)) as catalog:
                mode = catalog.execute("pragma journal_mode = wal").fetchone()[0]
            print(f"{domain} catalog journal mode: {mode}")

    rounds, errors, bad, failures, reads = [], {}, [], [], {}
    seconds, mixed = 0.0, 0
    for r in range(args.rounds):
        mesh.generate(weeks=TINY["weeks"] + r + 1)  # one more Rx week each round
        before = {d: a.current_version for d, a in audit_mesh(mesh.paths).items()}
        with ReaderPool(args.readers, pause=args.pause) as pool:
            procs = {d: BuildProcess(mesh, (d,)) for d in DOMAINS}
            builds = {d: p.wait(timeout=900) for d, p in procs.items()}
        after = audit_mesh(mesh.paths)
        stats = pool.stats
        for kind, n in stats.reads.items():
            reads[kind] = reads.get(kind, 0) + n
        seconds += stats.seconds
        mixed += stats.mixed_pins
        for kind, by_text in stats.errors.items():
            for text, n in by_text.items():
                errors[(kind, text)] = errors.get((kind, text), 0) + n
        bad += stats.bad_reads
        torn = [t for a in after.values() for t in a.torn]
        for d, b in builds.items():
            if not b.built(d):
                failures.append({"round": r + 1, "domain": d, "error": failure_text(b)})
        rounds.append(
            {
                "round": r + 1,
                "reads": stats.reads,
                "reads_per_s": round(stats.reads_per_second, 1),
                "errors": {k: sum(e.values()) for k, e in stats.errors.items()},
                "mixed_pins": stats.mixed_pins,
                "bad_reads": len(stats.bad_reads),
                "torn": torn,
                "build_s": {d: round(b.seconds, 1) for d, b in builds.items()},
                "built": {d: b.built(d) for d, b in builds.items()},
                "versions": {d: [before[d], after[d].current_version] for d in DOMAINS},
                "seen": stats.seen,
            }
        )
        print(
            f"round {r + 1}: {stats.total_reads} reads {stats.reads} in {stats.seconds:.1f}s "
            f"({stats.reads_per_second:.0f}/s), errors "
            f"{ {k: sum(e.values()) for k, e in stats.errors.items()} }, "
            f"mixed pins {stats.mixed_pins}, "
            f"{len(stats.bad_reads)} bad reads, torn {len(torn)}, builds "
            + ", ".join(
                f"{d} {'ok' if b.built(d) else 'FAILED'} {b.seconds:.1f}s"
                for d, b in builds.items()
            )
            + f", versions seen {stats.seen}",
            flush=True,
        )

    summary = {
        "readers": args.readers,
        "rounds": args.rounds,
        "pause_s": args.pause,
        "wal": args.wal,
        "reads": reads,
        "reads_per_s": round(sum(reads.values()) / seconds, 1) if seconds else 0.0,
        "reader_errors": [
            {"reader": kind, "error": text, "count": n} for (kind, text), n in errors.items()
        ],
        "mixed_pins": mixed,
        "bad_reads": bad[:20],
        "bad_read_count": len(bad),
        "build_failures": failures,
        "rounds_detail": rounds,
    }
    print()
    print(
        f"readers            {args.readers} threads, pause {args.pause}s, {args.rounds} rounds"
        + (", catalogs in WAL mode" if args.wal else "")
    )
    print(
        f"reads              {sum(reads.values())} {reads} "
        f"({summary['reads_per_s']}/s while building)"
    )
    print(f"reader errors      {sum(errors.values())}")
    for (kind, text), n in sorted(errors.items(), key=lambda kv: -kv[1]):
        print(f"  {n:>6} × {kind} reader: {' '.join(text.split())[:400]}")
    print(
        f"mixed pins         {mixed} (served reads of a domain's ports pinned at different "
        "versions, one open_port per port)"
    )
    print(f"bad reads          {len(bad)} (reads matching no committed version)")
    for line in bad[:5]:
        print(f"  {line}")
    print(f"build failures     {len(failures)} of {2 * args.rounds} builds")
    for f in failures:
        print(f"  round {f['round']} {f['domain']}:\n    " + f["error"].replace("\n", "\n    "))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return 1 if errors or bad or failures else 0


if __name__ == "__main__":
    t0 = time.monotonic()
    code = main()
    print(f"done in {time.monotonic() - t0:.0f}s, exit {code}")
    sys.exit(code)
