"""Latency of the domain query under concurrent clients: p95 of ``/domains/{d}/ports/{p}``.

Builds a tiny mesh in a temporary data root (or reuses one with ``--root``), starts
``mesh serve`` on 127.0.0.1 as its own process, waits for ``/ready``, warms every port's answer
up, then runs ``--clients`` concurrent clients, each on its own keep-alive HTTP/1.1 connection,
sending requests back to back (closed loop, no think time) over every port of every domain
until ``--requests`` requests are answered or ``--max-seconds`` have passed. The clients are a
minimal asyncio HTTP client in a separate process, so that measuring costs little next to what
is measured. Every answer must be 200 with the port's four W's and an H. Prints the latency
percentiles and throughput; ``--json`` writes them to a file. Traffic stays on loopback and the
run stops by itself.

    .venv/bin/python benchmarks/query_latency.py                      # ≈ 1.5 min on 2 cores
    .venv/bin/python benchmarks/query_latency.py --clients 50 --requests 10000 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MESH = str(Path(sys.executable).parent / "mesh")
TINY = {"scale": 0.02, "seed": 7, "months": 2, "days": 3, "weeks": 3}
SECTIONS = ("what", "where", "when", "proof", "with", "how")


def build_tiny_mesh(root: Path) -> dict[str, str]:
    """Generate a tiny landing zone and build every domain; returns the environment to use."""
    env = {
        **os.environ,
        "MESH_DATA_DIR": str(root / "data"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "MESH_ENV": "ci",
    }
    if not (root / "data" / "lake").exists():
        from pharma_example import generate

        generate(root / "data" / "landing", **TINY)
        started = time.monotonic()
        subprocess.run([MESH, "build"], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"built the tiny mesh in {time.monotonic() - started:.1f}s under {root}")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(base: str, server: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mesh serve exited with {server.returncode}")
        try:
            if get(base + "/ready", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError("mesh serve did not become ready")


def wait_compiled(base: str, paths: list[str], timeout_s: float = 180) -> None:
    """Wait until the service has compiled the dbt ports' SQL (it does so once, at start),
    so that the measurement does not share the machine with dbt."""
    deadline = time.monotonic() + timeout_s
    for path in paths:
        while time.monotonic() < deadline:
            dbt = json.loads(get(base + path, timeout=60)[1])["how"]["code"].get("dbt")
            if dbt is None or dbt.get("compiled_sql_status") != "compiling":
                break
            time.sleep(0.5)


async def _client(host, port, paths, deadline, budget, latencies, failures):
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            path = paths[i % len(paths)]
            i += 1
            request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n"
            started = time.perf_counter()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(head.split(b" ", 2)[1])
            if status != 200 or not all(f'"{s}"'.encode() in body for s in SECTIONS):
                failures.append((path, status, body[:200]))
    finally:
        writer.close()


async def load(host, port, paths, clients, requests, max_seconds):
    latencies: list[float] = []
    failures: list = []
    budget = [requests]
    deadline = time.monotonic() + max_seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _client(
                host, port, paths[c % len(paths) :] + paths, deadline, budget, latencies, failures
            )
            for c in range(clients)
        )
    )
    return latencies, failures, time.perf_counter() - started


def _load_process(args_json: str) -> None:
    """Entry point of the client process: runs the load, prints JSON results."""
    a = json.loads(args_json)
    latencies, failures, elapsed = asyncio.run(
        load(a["host"], a["port"], a["paths"], a["clients"], a["requests"], a["max_seconds"])
    )
    print(
        json.dumps(
            {
                "latencies": latencies,
                "failures": failures[:5],
                "n_failures": len(failures),
                "elapsed": elapsed,
            }
        )
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="reuse (or create) the tiny mesh here")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20000, help="total, all clients")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    temp = None
    root = args.root
    if root is None:
        temp = tempfile.mkdtemp(prefix="mesh-query-latency-")
        root = Path(temp)
    root.mkdir(parents=True, exist_ok=True)
    env = build_tiny_mesh(root)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [MESH, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)],
        env=env | {"PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(base, server)
        domains = json.loads(get(base + "/domains")[1])["domains"]
        paths = [url for d in domains for url in d["links"]["ports"]]
        wait_compiled(base, paths)
        for path in paths * 3:  # warm up: first answers read the catalogs
            status, _ = get(base + path, timeout=60)
            assert status == 200, (path, status)
        client = subprocess.run(
            [sys.executable, __file__, "--load-process"],
            input=json.dumps(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "paths": paths,
                    "clients": args.clients,
                    "requests": args.requests,
                    "max_seconds": args.max_seconds,
                }
            ),
            capture_output=True,
            text=True,
            check=True,
            timeout=args.max_seconds + 60,
        )
        result = json.loads(client.stdout)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    ms = [x * 1000 for x in result["latencies"]]
    summary = {
        "endpoint": "/domains/{d}/ports/{p}",
        "ports": len(paths),
        "clients": args.clients,
        "workers": args.workers,
        "requests": len(ms),
        "failures": result["n_failures"],
        "seconds": round(result["elapsed"], 2),
        "requests_per_s": round(len(ms) / result["elapsed"], 1),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }
    print(json.dumps(summary, indent=2))
    if result["n_failures"]:
        print("failures (first 5):", result["failures"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return 1 if result["n_failures"] else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--load-process"]:
        _load_process(sys.stdin.read())
    else:
        sys.exit(main())
