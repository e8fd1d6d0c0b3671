"""``mesh serve-locations``: each domain's code location as its own gRPC code server.

The embedded default (``dagster dev -w workspace.yaml``) starts every code location as a
subprocess of the webserver. Beyond one machine each domain is served on its own — Dagster's
``dagster api grpc`` with exactly the arguments ``workspace.yaml`` implies for that domain (the
same ones ``mesh deploy render`` gives each user-code deployment: :func:`.deploy.grpc_args`) —
and the webserver and the daemon load a second workspace file that names each server by host
and port (``grpc_server`` entries, location name = the domain):

    mesh serve-locations                      # 7 servers on 127.0.0.1:4266..4272
    dagster-webserver -w data/code_servers/workspace.yaml
    dagster-daemon run -w data/code_servers/workspace.yaml

Ports follow ``workspace.yaml``'s order from ``--base-port``, so a domain keeps its port when
it is served alone (``--only``), e.g. to restart it while the others go on. Each server is a
process group of its own with its runs (Dagster's default launcher runs them as subprocesses of
the server): stopping a server stops its runs; run monitoring marks them failed once the server
answers again (:mod:`.launcher`), and run retries re-execute them there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from .deploy import WORKSPACE, grpc_args, grpc_workspace
from .descriptor import read_yaml
from .settings import PROJECT_ROOT, mesh_paths

DEFAULT_HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 4266
STOP_GRACE_S = 15  # SIGTERM, then SIGKILL
PING_TIMEOUT_S = 5


def default_workspace_out() -> Path:
    return mesh_paths().data / "code_servers" / "workspace.yaml"


@dataclass(frozen=True)
class CodeServer:
    """One domain's code location served over gRPC."""

    domain: str
    host: str
    port: int
    args: tuple[str, ...]  # what loads the code location: --module-name ... --working-directory

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dagster",
            "api",
            "grpc",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--location-name",
            self.domain,
            *self.args,
        ]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def code_servers(
    host: str = DEFAULT_HOST,
    base_port: int = DEFAULT_BASE_PORT,
    only: Iterable[str] | None = None,
    workspace: Path = WORKSPACE,
) -> list[CodeServer]:
    """Every code location of ``workspace`` (or ``only`` those) with its server's address: the
    ``i``-th location of the workspace on ``base_port + i``."""
    targets = grpc_args(workspace)
    wanted = set(only or targets)
    unknown = sorted(wanted - set(targets))
    if unknown:
        raise KeyError(
            f"no code location {', '.join(unknown)} in {workspace.name} "
            f"(known: {', '.join(targets)})"
        )
    return [
        CodeServer(name, host, base_port + i, tuple(args))
        for i, (name, args) in enumerate(targets.items())
        if name in wanted
    ]


def write_workspace(servers: Iterable[CodeServer], path: Path) -> Path:
    """The workspace file the webserver and the daemon load: one ``grpc_server`` per domain."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = grpc_workspace((s.domain, s.host, s.port) for s in servers)
    path.write_text(
        "# written by `mesh serve-locations`: one gRPC code server per domain\n"
        + yaml.safe_dump(content, sort_keys=False)
    )
    return path


def ping(host: str, port: int, timeout: float = PING_TIMEOUT_S) -> str | None:
    """None if the code server at ``host:port`` answers; else why not."""
    from dagster._grpc.client import DagsterGrpcClient

    try:
        DagsterGrpcClient(port=port, host=host).ping("")  # fails fast when refused
    except Exception as exc:  # noqa: BLE001 — any failure means: not serving
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


@dataclass(frozen=True)
class LocationState:
    location: str
    host: str
    port: int
    error: str | None  # None: serving

    @property
    def serving(self) -> bool:
        return self.error is None


def location_states(workspace: Path) -> dict[str, LocationState]:
    """Each ``grpc_server`` code location of a workspace file, pinged."""
    states = {}
    for entry in (read_yaml(workspace) or {}).get("load_from") or []:
        spec = entry.get("grpc_server")
        if not spec:
            continue
        host, port = spec.get("host", "localhost"), int(spec["port"])
        name = spec.get("location_name") or f"{host}:{port}"
        states[name] = LocationState(name, host, port, ping(host, port))
    return states


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class Supervisor:
    """Starts the servers, reports each one up or exited, stops them all at the end."""

    def __init__(
        self,
        servers: list[CodeServer],
        logs: Path,
        say: Callable[[str], None] = print,
        poll_s: float = 1.0,
    ):
        self.servers = servers
        self.logs = logs
        self.say = say
        self.poll_s = poll_s
        self.procs: dict[str, subprocess.Popen] = {}
        self.up: set[str] = set()

    def log_path(self, server: CodeServer) -> Path:
        return self.logs / f"code_server_{server.domain}.log"

    def start(self) -> None:
        taken = [s for s in self.servers if _port_taken(s.host, s.port)]
        if taken:
            raise OSError(
                "address in use: "
                + ", ".join(f"{s.domain} ({s.address})" for s in taken)
                + " — is it served already? (--only DOMAIN starts one, --base-port moves all)"
            )
        self.logs.mkdir(parents=True, exist_ok=True)
        for server in self.servers:
            env = {**os.environ, "MESH_DOMAIN": server.domain}
            with self.log_path(server).open("ab") as log:
                self.procs[server.domain] = subprocess.Popen(
                    server.command(),
                    cwd=PROJECT_ROOT,  # the workspace's working_directory is relative to it
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # the server and its runs: one process group
                )
            self.say(
                f"{server.domain}: starting on {server.address} "
                f"(pid {self.procs[server.domain].pid}, log {self.log_path(server)})"
            )

    def watch(self) -> int:
        """Report servers coming up or exiting until none is left; 1 if any exited."""
        failed = False
        while self.procs:
            for server in self.servers:
                proc = self.procs.get(server.domain)
                if proc is None:
                    continue
                code = proc.poll()
                if code is not None:
                    del self.procs[server.domain]
                    self.up.discard(server.domain)
                    failed = True
                    self.say(
                        f"{server.domain}: exited (code {code}) on {server.address}; "
                        f"log {self.log_path(server)}"
                    )
                elif server.domain not in self.up and ping(server.host, server.port) is None:
                    self.up.add(server.domain)
                    self.say(f"{server.domain}: up on {server.address} (pid {proc.pid})")
            time.sleep(self.poll_s)
        return 1 if failed else 0

    def stop(self) -> None:
        """SIGTERM to each server's process group (the server and its runs), SIGKILL after
        the grace period."""
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for domain, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            _signal_group(proc, signal.SIGKILL)  # runs the server left behind
            self.say(f"{domain}: stopped")
        self.procs.clear()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def serve_locations(
    host: str = DEFAULT_HOST,
    base_port: int = DEFAULT_BASE_PORT,
    only: Iterable[str] | None = None,
    workspace_out: Path | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Write the workspace file, start the servers (every domain, or ``only`` those) and
    supervise them in the foreground until Ctrl-C (or SIGTERM), then stop them all. Returns the
    exit code: 1 if a server exited by itself.

    The workspace file names every domain's server, also with ``only``: a domain restarted alone
    comes back at the address the webserver and the daemon already know."""
    servers = code_servers(host, base_port, only)
    workspace_out = workspace_out or default_workspace_out()
    write_workspace(code_servers(host, base_port), workspace_out)
    say(f"workspace: {workspace_out} (for dagster-webserver -w and dagster-daemon run -w)")
    supervisor = Supervisor(servers, mesh_paths().data / "logs", say)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        supervisor.start()
        return supervisor.watch()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        supervisor.stop()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
