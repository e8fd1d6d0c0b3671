"""Named crash points for fault-injection tests: ``MESH_CRASH_AT=<point>`` kills the process
(SIGKILL, as ``kill -9`` would) when the build reaches that point.

The points sit where a crash could tear a port version if publishing were not atomic: after
staging, after the audit, inside the publish transaction, and right after the commit. Without
``MESH_CRASH_AT`` a crash point costs one environment lookup.
"""

from __future__ import annotations

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
        os.kill(os.getpid(), signal.SIGKILL)
