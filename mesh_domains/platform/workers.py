"""The processes ``mesh build`` runs domains in, side by side.

Workers are forked from a server (multiprocessing's forkserver) that imported
:mod:`.warm` once, so each domain pays for its own work, not for imports. The server takes a
few seconds to load; :func:`start_workers` starts it early, so that happens while the caller
does other things (imports, opening the instance, generating data). This module imports
nothing heavy, so calling it first costs nothing.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os

# imported once by the worker server, so that forked workers start warm
WORKER_PRELOAD = ("mesh_domains.platform.warm",)

_context = None


def build_parallelism() -> int:
    """How many domains may build at once: ``MESH_BUILD_PARALLEL``, default the cores."""
    value = os.environ.get("MESH_BUILD_PARALLEL", "")
    if value and not (value.isdigit() and int(value) >= 1):
        raise ValueError(f"MESH_BUILD_PARALLEL={value!r} must be a whole number >= 1")
    return int(value) if value else max(1, os.cpu_count() or 1)


def worker_context():
    """A forkserver that has imported the heavy libraries once: workers fork from it warm."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(list(WORKER_PRELOAD))
    return _context


def start_workers() -> None:
    """Start loading the worker server now (it serves the next side-by-side build); nothing
    to do when domains build one at a time."""
    try:
        if build_parallelism() < 2:
            return
    except ValueError:
        return  # the build says what is wrong with the setting
    worker_context()
    multiprocessing.forkserver.ensure_running()
