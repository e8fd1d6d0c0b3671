"""Recovery of runs whose process died (kill -9, power loss) before they could say so.

Dagster's run monitoring (in the daemon) marks such runs failed for runs the daemon launched.
``mesh build`` runs domains in its own process, so it does the same for its own runs before it
starts: a run still "started" whose process (tag ``mesh/pid`` on this host) no longer exists is
marked failed and its concurrency-pool slots are freed, so the domain's lake gets its writer
slot back. Nothing in the lake needs repair: a publish is one atomic commit.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

PID_TAG = "mesh/pid"
HOST_TAG = "mesh/host"


def run_tags() -> dict[str, str]:
    """Tags that let a later process tell whether this one is still alive."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark this host's orphaned mesh runs failed and free their pool slots; returns run ids."""
    recovered = []
    in_flight = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
        tags={HOST_TAG: socket.gethostname()},
    )
    for run in instance.get_runs(filters=in_flight):
        pid = int(run.tags.get(PID_TAG, "0"))
        if pid and pid != os.getpid() and not _alive(pid):
            instance.report_run_failed(
                run, f"The process of this run (pid {pid}) died; marked failed by mesh build."
            )
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            recovered.append(run.run_id)
    return recovered
