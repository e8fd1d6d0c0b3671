"""With ``dagster dev`` running (webserver, daemon, one code location per domain), a new
weekly Rx delivery dropped into the landing zone flows through the mesh with no command
typed: the arrival sensor starts physician_master, its publish starts physician_dw through
process linkage, and physician_dw publishes only that week of its weekly fact. Then a
physician_master run launched through the webserver with a parameter (an as-of day) leads to
exactly one physician_dw run carrying that parameter."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus
from mesh_harness import built_template
from test_variations import NEW_KEY, NEW_WEEK, deliver_week, materialized

from mesh_domains.platform.cli import INSTANCE_TEMPLATE
from mesh_domains.platform.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow
DEADLINE_S = 420
TINY = {"scale": 0.02, "seed": 7, "months": 2, "days": 3, "weeks": 3}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ticked(instance: dg.DagsterInstance, names: set[str]) -> bool:
    """Every named sensor has finished an evaluation by the daemon (a tick is recorded when it
    starts: a delivery dropped while the first one runs would be taken as the baseline)."""
    seen = set()
    for state in instance.all_instigator_state():
        if state.name in names:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=5)
            if any(t.status != TickStatus.STARTED for t in ticks):
                seen.add(state.name)
    return seen == names


WAREHOUSE_JOB = "build_physician_dw"  # the job a new Rx week starts in physician_dw


def _runs(
    instance: dg.DagsterInstance, trigger: str, job: str | None = None
) -> list[dg.DagsterRun]:
    """Runs the sensors started (``mesh/trigger``: arrival, process linkage), of ``job`` only
    if given (one publish starts every consuming domain: physician_dw, payer_dw, ...)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"mesh/trigger": trigger}))
    return [r for r in runs if job is None or r.job_name == job]


class DevMesh:
    """What `make demo` leaves behind, on tiny data: the mesh built in order (a copy of the
    session's build) and the mesh's instance settings in its Dagster home."""

    def __init__(self, root: Path, template: Path):
        for part in ("data", "dagster_home"):
            shutil.copytree(template / part, root / part, copy_function=shutil.copyfile)
        self.paths = type("P", (), {"landing": root / "data" / "landing"})()
        self.env = {
            **os.environ,
            "MESH_DATA_DIR": str(root / "data"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "MESH_ENV": "ci",
        }
        shutil.copy(INSTANCE_TEMPLATE, Path(self.env["DAGSTER_HOME"]) / "dagster.yaml")

    def landing_file(self, source: str) -> Path:
        return sorted((self.paths.landing / source).glob("*/*.csv"))[-1]


def _parameter_handed_over(instance, port: int, deadline: float, tmp_path: Path) -> None:
    """Launch physician_master with ``as_of`` as the launchpad would (the webserver's GraphQL
    API); process linkage starts physician_dw once, with the same parameter."""
    from dagster_graphql import DagsterGraphQLClient

    as_of = "2026-10-31"
    run_id = DagsterGraphQLClient("127.0.0.1", port_number=port).submit_job_execution(
        "build_physician_master",
        repository_location_name="physician_master",
        run_config={"ops": {"physician_master__master_physicians": {"config": {"as_of": as_of}}}},
    )
    linked: list[dg.DagsterRun] = []
    while not (linked and linked[0].is_finished):
        assert time.monotonic() < deadline, (tmp_path / "dagster_dev.log").read_text()[-3000:]
        time.sleep(2)
        linked = [
            r
            for r in _runs(instance, "process linkage", WAREHOUSE_JOB)
            if r.tags.get("mesh/upstream_run") == run_id
        ]
    time.sleep(12)  # two more sensor ticks: still exactly one run
    linked = [
        r
        for r in _runs(instance, "process linkage", WAREHOUSE_JOB)
        if r.tags.get("mesh/upstream_run") == run_id
    ]
    assert len(linked) == 1 and linked[0].status == dg.DagsterRunStatus.SUCCESS
    assert linked[0].tags["mesh/param/as_of"] == as_of
    configs = [op["config"] for op in linked[0].run_config["ops"].values()]
    assert configs and all(c == {"as_of": as_of} for c in configs)


def test_a_dropped_delivery_propagates_with_dagster_dev_running(
    tmp_path, tmp_path_factory, monkeypatch
):
    mesh = DevMesh(tmp_path, built_template(tmp_path_factory))
    for key in ("MESH_DATA_DIR", "DAGSTER_HOME", "MESH_ENV"):
        monkeypatch.setenv(key, mesh.env[key])
    with dg.DagsterInstance.get() as instance:
        assert {r.job_name for r in instance.get_runs()} >= {WAREHOUSE_JOB}
    dagster = str(Path(sys.executable).parent / "dagster")
    port = _free_port()
    proc = subprocess.Popen(
        [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=mesh.env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "dagster_dev.log").open("w"),
        start_new_session=True,
    )
    try:
        with dg.DagsterInstance.get() as instance:
            deadline = time.monotonic() + DEADLINE_S
            sensors = {"physician_master_arrivals", "physician_dw_linkage"}
            while not _ticked(instance, sensors):
                assert proc.poll() is None, (tmp_path / "dagster_dev.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the daemon never ticked the sensors"
                time.sleep(2)
            assert [
                r
                for r in _runs(instance, "physician_master")
                if r.tags.get("mesh/trigger") == "arrival"
            ] == []  # nothing new yet: no run

            deliver_week(mesh, NEW_WEEK)  # no command typed from here on
            warehouse = None
            while warehouse is None or not warehouse.is_finished:
                assert time.monotonic() < deadline, (tmp_path / "dagster_dev.log").read_text()[
                    -3000:
                ]
                time.sleep(2)
                linked = _runs(instance, "process linkage", WAREHOUSE_JOB)
                warehouse = linked[0] if linked else None
            assert warehouse.status == dg.DagsterRunStatus.SUCCESS
            arrivals = _runs(instance, "arrival")
            assert (
                len(arrivals) == 1 and len(_runs(instance, "process linkage", WAREHOUSE_JOB)) == 1
            )
            assert len(arrivals) == 1 and arrivals[0].status == dg.DagsterRunStatus.SUCCESS
            assert warehouse.tags["mesh/upstream_run"] == arrivals[0].run_id
            assert materialized(type("M", (), {"instance": instance})(), warehouse.run_id) == {
                "fact_rx_weekly": [NEW_KEY],
                "physician_brand_share": [None],
                "physician_product_activity": [None],
                "territory_performance": [None],
            }
            _parameter_handed_over(instance, port, deadline, tmp_path)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
