"""Named crash points for fault-injection tests: ``MESH_CRASH_AT=<point>`` kills the process
(SIGKILL, as ``kill -9`` would) when the build reaches that point.

The points sit where a crash could tear a port version if publishing were not atomic: after
staging, after the audit, inside the publish transaction, and right after the commit. Without
``MESH_CRASH_AT`` a crash point costs one environment lookup.
"""

from __future__ import annotations

import contextlib
import os
import signal

CRASH_POINTS = (
    "build.after_stage",
    "build.after_audit",
    "publish.before_commit",
    "publish.after_commit",
)


def crash_point(name: str) -> None:
    """Die here, without cleanup, if ``MESH_CRASH_AT`` names this point."""
    if name not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {name!r}; known: {', '.join(CRASH_POINTS)}")
    if os.environ.get("MESH_CRASH_AT") == name:
        # a build worker takes the `mesh build` that started it down too, as a lost machine would
        parent = os.environ.get("MESH_BUILD_PID", "")
        if parent.isdigit() and int(parent) != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(parent), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
