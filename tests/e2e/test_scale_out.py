"""The mesh beyond one machine, for real, on this one: a PostgreSQL server holds the Dagster
instance, each domain is its own gRPC code server (``mesh serve-locations``), and
``dagster-webserver`` and ``dagster-daemon run`` load the workspace file that names them. The
tiny landing zone is generated and nothing is typed: the arrival sensors start the domains that
ingest it, process linkage and automation do the rest.

While npp's first run is in flight its code server is killed with the run (a crash of the
machine serving that domain): the other domains keep building, its consumer waits, ``mesh
status --workspace`` says the code location is unreachable, and nothing half-written is served.
Then ``mesh serve-locations --only npp`` brings it back on the same port: run
monitoring marks the lost run failed, run retries re-execute it, and the mesh converges to
exactly the ports, versions' row counts and passed contract checks that the same landing zone
gives on the embedded default (the test session's tiny build of every domain, on SQLite
catalogs, local files and a SQLite instance). Reads without a grant are refused.

The lakes are scaled out too: their catalogs live in the same PostgreSQL server (a database of
their own, a schema per domain) and their Parquet files on an S3-compatible server on loopback;
nothing of a lake is on local disk. The environment of every process is
:func:`scale_out_environment`: add a variable there to switch another piece on.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import dagster as dg
import pytest
from mesh_harness import built_copy, environment
from object_storage_harness import ObjectStorage, object_storage
from scale_out_harness import PostgresServer, free_port, postgres_server
from typer.testing import CliRunner

from mesh_domains.platform import instance_config, lake
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.ports import CONTRACT_CHECK
from mesh_domains.platform.query import MeshQuery, mesh_status
from mesh_domains.platform.settings import PROJECT_ROOT, mesh_paths
from pharma_example import generate

pytestmark = pytest.mark.slow

TINY = {"scale": 0.02, "seed": 7, "months": 2, "days": 3, "weeks": 3}  # test_dagster_dev's
# the domain whose code server is killed mid-run: a first-level domain whose consumer
# (brand_analytics) also waits for the longest chain, so the outage costs little wall time
VICTIM = "npp"
DEADLINE_S = 900
MONITORING_POLL_S = 5  # run monitoring's poll (the template's 30 s, shortened for the test)
SETTLED_S = 12  # no run in flight and no new run for this long: the mesh has converged
BIN = Path(sys.executable).parent
IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


LAKES_DB = "mesh_lakes"


def scale_out_environment(root: Path, pg: PostgresServer, s3: ObjectStorage) -> dict[str, str]:
    """The environment of the scaled-out processes (code servers, webserver, daemon) and of
    the test's own reads: a data root (landing zone, quarantine), a Dagster home, the instance
    on PostgreSQL, the lakes' catalogs on PostgreSQL and their files on object storage."""
    return {
        "MESH_DATA_DIR": str(root / "data"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "MESH_ENV": "ci",
        instance_config.POSTGRES_URL_VAR: pg.url("dagster"),
        "MESH_LAKE_CATALOG": pg.url(LAKES_DB),
        **s3.env,
    }


class Processes:
    """Background processes of the test, each a process group with its output in a log file;
    what they wrote is shown when the test fails."""

    def __init__(self, logs: Path, env: dict[str, str]):
        self.logs, self.env = logs, env
        self.procs: dict[str, subprocess.Popen] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *command: str, env: dict[str, str] | None = None):
        with (self.logs / f"{name}.log").open("w") as log:
            self.procs[name] = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=env or self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.procs[name]

    def output(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self, chars: int = 2500) -> str:
        return "\n".join(
            f"--- {name} (exit {proc.poll()}) ---\n{self.output(name)[-chars:]}"
            for name, proc in self.procs.items()
        )

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            with suppress(ProcessLookupError):
                self.stop(name)


def wait_for(
    what: str, condition: Callable[[], object], procs: Processes, deadline: float, every=2.0
):
    """Poll ``condition`` until it returns something truthy; fail with the logs at the
    deadline."""
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{procs.tails()}")
        time.sleep(every)


def domain_of(run: dg.DagsterRun) -> str | None:
    if run.tags.get("mesh/domain"):
        return run.tags["mesh/domain"]
    keys = list(run.asset_selection or [])
    return keys[0].path[0] if keys else run.job_name.removeprefix("build_").split("__")[0]


def server_pid(procs: Processes, name: str, domain: str) -> int | None:
    found = re.findall(rf"^{domain}: up on \S+ \(pid (\d+)\)", procs.output(name), re.M)
    return int(found[-1]) if found else None


def _write_instance(env: dict[str, str]) -> Path:
    """`mesh instance` with the PostgreSQL URL set, then the test's shorter monitoring poll
    (the file no longer reads as the template's, so later `mesh` commands keep it)."""
    with environment(**env):
        result = CliRunner().invoke(cli_app(), ["instance"])
    assert result.exit_code == 0, result.output
    assert "PostgreSQL" in result.output
    path = Path(env["DAGSTER_HOME"]) / "dagster.yaml"
    text = path.read_text()
    assert "postgres_url:\n      env: MESH_INSTANCE_POSTGRES_URL" in text
    assert env[instance_config.POSTGRES_URL_VAR] not in text
    text = text.replace("poll_interval_seconds: 30", f"poll_interval_seconds: {MONITORING_POLL_S}")
    path.write_text(
        "# the scale-out test's instance: `mesh instance`, monitoring polled faster\n" + text
    )
    return path


def cli_app():
    from mesh_domains.platform.cli import app

    return app


def port_rows(instance: dg.DagsterInstance, answers=None) -> dict[str, tuple[int, int]]:
    """Per port, (rows of the served version as the domain query's status reports them, rows
    read through the lake's pointer)."""
    domains = discover_domains()
    rows = answers.status() if answers is not None else mesh_status(instance, domains)
    return {
        f"{r.domain}/{r.port}": (r.rows, _served_rows(r.domain, domains[r.domain], r.port)[1])
        for r in rows
    }


def embedded_rows(factory: pytest.TempPathFactory) -> dict[str, tuple[int, int]]:
    """The same, for the same landing zone built on the embedded default: a copy of the test
    session's tiny build of every domain (SQLite catalogs, local files, SQLite instance)."""
    for mesh in built_copy(factory, "embedded"):
        return port_rows(mesh.instance)
    raise AssertionError("no built mesh")


def test_the_mesh_builds_and_heals_on_postgres_and_one_code_server_per_domain(
    tmp_path, tmp_path_factory
):
    started = time.monotonic()
    deadline = started + DEADLINE_S
    domains = discover_domains()
    ports = [(d.name, p.name) for d in domains.values() for p in d.output_ports]
    scaled = tmp_path / "scaled"
    generate(scaled / "data" / "landing", **TINY)

    with postgres_server() as pg, object_storage() as s3:
        pg.create_database(LAKES_DB)
        settings = scale_out_environment(scaled, pg, s3)
        procs = Processes(tmp_path / "logs", {**os.environ, **settings})
        try:
            _write_instance(settings)
            base_port = 4266 + (os.getpid() % 200) * 10  # two test runs never share ports
            workspace = tmp_path / "workspace.yaml"
            serve = [str(BIN / "mesh"), "serve-locations", "--base-port", str(base_port)]
            serve += ["--workspace-out", str(workspace)]
            procs.start("servers", *serve)
            wait_for(
                "every domain's code server",
                lambda: all(server_pid(procs, "servers", d) for d in domains),
                procs,
                deadline,
            )
            loaded = workspace_entries(workspace)
            assert {e["location_name"] for e in loaded} == set(domains)
            assert all(e["host"] == "127.0.0.1" for e in loaded)
            web_port = free_port()
            procs.start(
                "webserver",
                str(BIN / "dagster-webserver"),
                *("-w", str(workspace), "-h", "127.0.0.1", "-p", str(web_port)),
            )
            procs.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", str(workspace))
            wait_for(
                "the webserver to load every domain's code server",
                lambda: loaded_locations(web_port) == set(domains),
                procs,
                deadline,
            )

            with environment(**settings), dg.DagsterInstance.get() as inst:
                assert type(inst.run_storage).__name__ == "PostgresRunStorage"
                _kill_and_restart(inst, procs, serve, deadline, domains)
                converged_at = _converged(inst, procs, deadline, ports)
                print(f"converged after {converged_at - started:.0f}s")
                _check_served(inst, domains, ports)
                _check_lakes_off_machine(domains, s3)
                got = port_rows(inst, MeshQuery(inst))
        finally:
            procs.stop_all()
    assert got == embedded_rows(tmp_path_factory)  # the same landing zone, embedded default
    print(f"scale-out test: {time.monotonic() - started:.0f}s")


def _check_lakes_off_machine(domains, s3: ObjectStorage) -> None:
    """Every lake's catalog is in PostgreSQL and its files on object storage: the data root
    holds no catalog file and no Parquet file, and every served file is in the bucket."""
    paths = mesh_paths()
    for name in domains:
        assert not paths.lake_catalog(name).exists(), name
        assert not list(paths.lake_dir(name).rglob("*.parquet")), name
        files = [f for served in lake.served_ports(name).values() for f in served.files]
        prefix = f"s3://{s3.bucket}/"
        assert files and all(f.startswith(f"{prefix}mesh/lake/{name}/") for f in files), name
        assert {f.removeprefix(prefix) for f in files} <= set(s3.keys(f"mesh/lake/{name}/"))


LOCATIONS_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename } } } } }"""


def loaded_locations(port: int) -> set[str]:
    """The code locations the webserver has loaded (its GraphQL API)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": LOCATIONS_QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
    except (OSError, KeyError, TypeError, ValueError):
        return set()
    return {
        e["name"]
        for e in entries
        if e["loadStatus"] == "LOADED"
        and (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
    }


def workspace_entries(path: Path) -> list[dict]:
    import yaml

    return [e["grpc_server"] for e in yaml.safe_load(path.read_text())["load_from"]]


def _kill_and_restart(inst, procs: Processes, serve: list[str], deadline, domains) -> None:
    """Kill the victim's code server with its run in flight; the others keep building; bring
    it back alone on the same port; its lost run is failed by run monitoring and retried."""

    def victim_run_mid_step():
        for run in inst.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            if domain_of(run) == VICTIM and inst.all_logs(
                run.run_id, of_type=dg.DagsterEventType.STEP_START
            ):
                return run
        return None

    print(f"[{time.strftime('%X')}] servers, webserver and daemon started")
    victim = wait_for(
        f"{VICTIM}'s first run to be mid-step", victim_run_mid_step, procs, deadline, every=0.5
    )
    pid = server_pid(procs, "servers", VICTIM)
    os.killpg(pid, signal.SIGKILL)  # the server and the run it runs: a crash of that machine
    killed_at = time.time()
    print(f"[{time.strftime('%X')}] killed {VICTIM}'s code server mid-run")
    wait_for(
        "the supervisor to report the exit",
        lambda: re.search(rf"^{VICTIM}: exited", procs.output("servers"), re.M),
        procs,
        deadline,
    )
    # mesh status names the unreachable code location; the others answer
    result = CliRunner().invoke(
        cli_app(), ["status", "--workspace", str(workspace_path(serve)), "--json"]
    )
    assert result.exit_code == 0, result.output
    states = {row["domain"]: row["code_location"] for row in json.loads(result.output)}
    assert states[VICTIM] == "unreachable"
    assert {d: s for d, s in states.items() if d != VICTIM} == {
        d: "serving" for d in domains if d != VICTIM
    }
    # other domains keep building meanwhile
    wait_for(
        "another domain's run to succeed after the crash",
        lambda: [
            r
            for r in inst.get_run_records(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])
            )
            if domain_of(r.dagster_run) != VICTIM and r.end_time and r.end_time > killed_at
        ],
        procs,
        deadline,
    )
    assert inst.get_run_by_id(victim.run_id).status == dg.DagsterRunStatus.STARTED  # unknown
    if lake.pointer_path(VICTIM).exists():  # the lost run got as far as publishing: whole
        for port in domains[VICTIM].output_ports:
            _served_rows(VICTIM, domains[VICTIM], port.name)

    consumers = [n for n, d in domains.items() if VICTIM in d.upstream_domains]
    assert consumers and not [
        r for r in inst.get_runs() if domain_of(r) in consumers
    ]  # its consumers wait: no run of theirs while an input port was never published
    print(f"[{time.strftime('%X')}] restarting {VICTIM}'s code server")
    procs.start("victim", *serve, "--only", VICTIM)
    wait_for(
        f"{VICTIM}'s server back", lambda: server_pid(procs, "victim", VICTIM), procs, deadline
    )
    lost = wait_for(
        "run monitoring to fail the lost run",
        lambda: (r := inst.get_run_by_id(victim.run_id)).is_finished and r,
        procs,
        deadline,
    )
    assert lost.status == dg.DagsterRunStatus.FAILURE
    messages = [e.message for e in inst.all_logs(victim.run_id)]
    assert any("no longer runs it" in (m or "") for m in messages), messages[-5:]
    wait_for(
        "the retry of the lost run to succeed",
        lambda: [
            r
            for r in inst.get_runs(
                filters=dg.RunsFilter(tags={"dagster/parent_run_id": victim.run_id})
            )
            if r.status == dg.DagsterRunStatus.SUCCESS
        ],
        procs,
        deadline,
    )
    print(f"[{time.strftime('%X')}] the lost run failed and its retry succeeded")


def workspace_path(serve: list[str]) -> Path:
    return Path(serve[serve.index("--workspace-out") + 1])


def _converged(inst, procs: Processes, deadline, ports) -> float:
    """Every port published, no run in flight, and no new run for SETTLED_S seconds."""

    def settled():
        if any(
            inst.get_latest_materialization_event(dg.AssetKey([d, p])) is None for d, p in ports
        ):
            return False
        if inst.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT), limit=1):
            return False
        count = inst.get_runs_count()
        time.sleep(SETTLED_S)
        return (
            inst.get_runs_count() == count
            and not inst.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT), limit=1)
            and time.monotonic()
        )

    return wait_for("the mesh to converge", settled, procs, deadline, every=3)


def _served_rows(domain: str, descriptor, port: str) -> tuple[int, int]:
    """(version, rows) of a port as its pointer serves it, read through the port reader."""
    con = lake.connect()
    try:
        view, version = lake.open_port(con, domain, descriptor, port)
        return version, con.execute(f"select count(*) from {view}").fetchone()[0]
    finally:
        con.close()


def _check_served(inst, domains, ports) -> None:
    """Every domain's pointer serves a complete version: the rows read through it are the rows
    its publish recorded; every blocking contract check of the served versions passed; a
    domain without a grant cannot read a port."""
    status = {(r.domain, r.port): r for r in mesh_status(inst, domains)}
    for d in domains:
        assert lake.pointer_path(d).exists(), d
    for d, p in ports:
        row = status[(d, p)]
        assert row.state == "published" and row.version is not None, (d, p)
        assert row.checks_total > 0 and row.checks_passed == row.checks_total, (d, p)
        (record,) = inst.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey([d, p]), CONTRACT_CHECK), limit=1
        )
        assert record.status.value == "SUCCEEDED", (d, p, record.status)
        assert _served_rows(d, domains[d], p) == (row.version, row.rows), (d, p)
    ungranted = next(
        name
        for name in domains
        if name != "physician_master"
        and name not in domains["physician_master"].output_port("physicians").grants
    )
    with pytest.raises(lake.PortAccessError):
        lake.check_grant(ungranted, domains["physician_master"], "physicians")
    answer = MeshQuery(inst).port_answer("physician_master", "physicians", caller=ungranted)
    assert answer["where"]["granted"] is False
