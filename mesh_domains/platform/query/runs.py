"""Asking a domain to build (``POST /domains/{d}/runs``): the same path as ``mesh build``.

A request starts ``mesh build --domain <d>`` as a process of its own, against the same Dagster
instance and data root as the service: the build runs ``build_<d>`` exactly as the command line
does, its run and events land in the instance, and the caller follows it on ``/events``. One
build per domain at a time: a second request while one runs is refused. Parameters the domain
declares (an as-of day …) are passed as ``--set key=value``: the run records them, and the
process-linkage sensors hand them over to the domains that read it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..settings import mesh_paths

MESH = str(Path(sys.executable).parent / "mesh")


class BuildAlreadyRunning(RuntimeError):
    """The domain is being built by an earlier request."""


@dataclass
class BuildRequest:
    domain: str
    process: subprocess.Popen
    started_at: float
    log: Path

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def as_dict(self) -> dict:
        code = self.process.poll()
        return {
            "domain": self.domain,
            "pid": self.process.pid,
            "state": "running" if code is None else ("built" if code == 0 else "failed"),
            "exit_code": code,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "log": str(self.log),
        }


class BuildLauncher:
    """Starts and tracks the build processes this service was asked for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._builds: dict[str, BuildRequest] = {}

    def start(self, domain: str, parameters: dict | None = None) -> BuildRequest:
        with self._lock:
            current = self._builds.get(domain)
            if current is not None and current.running:
                raise BuildAlreadyRunning(
                    f"{domain} is already being built (pid {current.process.pid}, asked at "
                    f"{current.as_dict()['started_at']}); follow it on /events?domain={domain}"
                )
            log = mesh_paths().data / "logs" / f"{domain}.requested.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as out:
                process = subprocess.Popen(
                    [
                        MESH,
                        "build",
                        "--domain",
                        domain,
                        *(a for k, v in (parameters or {}).items() for a in ("--set", f"{k}={v}")),
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, "MESH_DATA_DIR": str(mesh_paths().data)},
                    start_new_session=True,
                )
            request = BuildRequest(domain, process, time.time(), log)
            self._builds[domain] = request
            return request

    def get(self, domain: str) -> BuildRequest | None:
        return self._builds.get(domain)

    def wait(self, domain: str, timeout_s: float) -> int | None:
        request = self._builds.get(domain)
        if request is None:
            return None
        try:
            return request.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
