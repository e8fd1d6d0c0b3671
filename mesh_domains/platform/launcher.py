"""Dagster's default run launcher, with what run monitoring needs to see a run whose process
is gone.

A run launched by the webserver or the daemon runs as a subprocess of its code location's gRPC
server (``dagster api grpc``: one per domain under ``mesh serve-locations``, or the servers
``dagster dev`` manages). Dagster's :class:`~dagster.DefaultRunLauncher` cannot tell run
monitoring whether that process still lives, so a run whose server was killed together with it
would stay "started" forever. :class:`CodeServerRunLauncher` answers with the server's own
view, the one Dagster uses to cancel a run (``can_cancel_execution``):

- the server runs it: the run is running;
- the server answers but does not run it (it was restarted, or the run's process died): the
  run has failed — run monitoring marks it failed, frees its concurrency slots, and run retries
  re-execute it on that server;
- the server does not answer: nobody can tell yet; the run keeps its state until its server is
  back (``mesh status --workspace`` shows the code location as unreachable meanwhile).

Runs that no server launched (``mesh build`` runs in process) are left to
:mod:`.recovery`.
"""

from __future__ import annotations

import json

from dagster import DefaultRunLauncher
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import GRPC_INFO_TAG

HEALTH_TIMEOUT_S = 10


class CodeServerRunLauncher(DefaultRunLauncher):
    """:class:`~dagster.DefaultRunLauncher` that supports run worker health checks."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        from dagster._grpc.client import DagsterGrpcClient
        from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
        from dagster._serdes import deserialize_value

        info = run.tags.get(GRPC_INFO_TAG)
        if not info:  # not launched through a code server (e.g. in process)
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not launched by a code server")
        server = json.loads(info)
        where = f"{server.get('host')}:{server.get('port') or server.get('socket')}"
        client = DagsterGrpcClient(
            port=server.get("port"),
            socket=server.get("socket"),
            host=server.get("host", "localhost"),
            use_ssl=bool(server.get("use_ssl", False)),
        )
        try:
            reply = client.can_cancel_execution(
                CanCancelExecutionRequest(run_id=run.run_id), timeout=HEALTH_TIMEOUT_S
            )
        except DagsterUserCodeUnreachableError:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, f"its code server {where} is unreachable: state unknown"
            )
        if deserialize_value(reply, CanCancelExecutionResult).can_cancel:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"its code server {where} no longer runs it (the server was restarted, or the run's "
            "process died)",
        )
