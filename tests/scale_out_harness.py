"""Throwaway servers for the scaled-out mesh's tests: a real PostgreSQL from Debian's
``postgresql`` package (``make postgres`` installs it), on a free loopback port, with its data
directory and unix socket in a temporary folder, stopped and removed at the end.

PostgreSQL refuses to run as root: as root, the server's commands run as the ``postgres`` user
(created by the package) through ``runuser``, in a folder that user owns; as anyone else they
run as that user. Also usable by hand::

    .venv/bin/python tests/scale_out_harness.py     # prints a URL, stops on Ctrl-C
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"  # the system user Debian's package creates
SUPERUSER = "mesh"  # the database superuser initdb creates (trust auth on loopback only)
START_TIMEOUT_S = 60


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that holds a ``postgres`` binary."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: run `make postgres` "
            "(installs Debian's postgresql package)"
        )
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """A running throwaway server: ``url(database)`` for clients on loopback."""

    port: int
    folder: Path
    bindir: Path
    as_user: list[str]

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (what Dagster's ``postgres_url`` takes): psycopg2 is the driver
        dagster-postgres installs (SQLAlchemy 2.1 would pick psycopg 3 for ``postgresql://``)."""
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """The same database as a libpq connection string (e.g. for DuckDB's postgres
        extension)."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        return self.url(name)

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        command = [*self.as_user, str(self.bindir / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{tail}"
            )
        return result


def _server_user() -> tuple[list[str], int, int] | None:
    """(command prefix, uid, gid) to run the server's commands as the ``postgres`` user when
    we are root; None when we are not (they run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise RuntimeError(
            f"running as root, and there is no {SERVER_USER!r} user to run PostgreSQL as "
            "(Debian's postgresql package creates it: `make postgres`)"
        ) from exc
    return ["runuser", "-u", SERVER_USER, "--"], user.pw_uid, user.pw_gid


@contextmanager
def postgres_server(database: str | None = "dagster") -> Iterator[PostgresServer]:
    """Start a server (initdb into a temporary folder, pg_ctl start on a free loopback port,
    its socket in that folder), create ``database`` if given, stop and remove it at the end."""
    bindir = postgres_bindir()
    folder = Path(tempfile.mkdtemp(prefix="mesh-postgres-"))
    as_user: list[str] = []
    server_user = _server_user()
    if server_user is not None:
        as_user, uid, gid = server_user
        os.chown(folder, uid, gid)  # the server writes here; /tmp itself is open to it
    server = PostgresServer(0, folder, bindir, as_user)
    started = False
    try:
        server._run(
            "initdb",
            "-D",
            str(folder / "data"),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            server.port = free_port()
            options = (
                f"-p {server.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={folder} -c fsync=off -c full_page_writes=off "
                "-c synchronous_commit=off -c max_connections=200"
            )
            try:
                server._run(
                    "pg_ctl",
                    "-D",
                    str(folder / "data"),
                    "-l",
                    str(folder / "server.log"),
                    "-o",
                    options,
                    "-t",
                    str(START_TIMEOUT_S),
                    "-w",
                    "start",
                )
                started = True
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                time.sleep(0.5)
        if database:
            server.create_database(database)
        yield server
    finally:
        if started:
            subprocess.run(
                [*as_user, str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast"]
                + ["-w", "stop"],
                capture_output=True,
                cwd=folder,
            )
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover - by hand
    with postgres_server() as pg:
        print(pg.url("dagster"), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
