"""The mesh's Dagster instance configuration: ``instance/dagster.yaml``, rendered into
``DAGSTER_HOME`` by ``mesh instance``.

The template holds everything that does not depend on where the mesh runs: run monitoring and
retries, the queued run coordinator with one run per domain at a time, the launcher, the writer
pool per domain lake. ``mesh deploy render`` carries the same settings into the Helm values
(:mod:`.deploy`), so the limit per domain has one source: the template.

The storage is chosen by the environment: SQLite files in ``DAGSTER_HOME`` (the embedded
default: Dagster's SQLite storage with its connections kept open,
:mod:`.instance_storage`, named with the home's path), or PostgreSQL for runs, event log and
schedules when
``MESH_INSTANCE_POSTGRES_URL`` is set. The URL itself is never written: the file names the
variable, and Dagster reads it when it loads the instance (so a password stays in the
environment).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import yaml

TEMPLATE = Path(__file__).parent / "instance" / "dagster.yaml"
POSTGRES_URL_VAR = "MESH_INSTANCE_POSTGRES_URL"
DOMAIN_TAG = "mesh/domain"  # every run of a domain's jobs carries it (the per-domain limit)

POSTGRES_STORAGE = f"""
# PostgreSQL instance storage (runs, event log, schedules): {POSTGRES_URL_VAR} was set when
# `mesh instance` wrote this file; Dagster reads the URL from that variable whenever it loads
storage:
  postgres:
    postgres_url:
      env: {POSTGRES_URL_VAR}
"""


SQLITE_STORAGE = """
# SQLite files in this folder (runs, event log, schedules): Dagster's SQLite storage with its
# connections kept open (mesh_domains/platform/instance_storage.py). The path is this folder's:
# after moving it, `mesh instance` (or any mesh command) writes the new one
storage:
  custom:
    module: mesh_domains.platform.instance_storage
    class: MeshSqliteStorage
    config:
      base_dir: {home}
"""


def render(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str:
    """The instance's ``dagster.yaml``: the template, plus PostgreSQL storage when
    ``MESH_INSTANCE_POSTGRES_URL`` is set in ``environ`` (default: this process's), or else
    the mesh's SQLite storage in ``home`` when given (Dagster's own SQLite storage without)."""
    environ = os.environ if environ is None else environ
    text = TEMPLATE.read_text()
    if environ.get(POSTGRES_URL_VAR):
        text = text.rstrip("\n") + "\n" + POSTGRES_STORAGE
    elif home is not None:
        path = json.dumps(str(Path(home).resolve()))  # a YAML double-quoted string
        text = text.rstrip("\n") + "\n" + SQLITE_STORAGE.format(home=path)
    return text


def config(environ: Mapping[str, str] | None = None) -> dict:
    """:func:`render` as a dictionary."""
    return yaml.safe_load(render(environ))


def url_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the PostgreSQL URL in the environment will not open, if that can be seen from it:
    SQLAlchemy 2.1 reads ``postgresql://`` with psycopg 3, and dagster-postgres installs
    psycopg2 (``postgresql+psycopg2://`` names it)."""
    environ = os.environ if environ is None else environ
    url = environ.get(POSTGRES_URL_VAR) or ""
    scheme = url.partition("://")[0]
    if url and scheme in ("postgres", "postgresql"):
        return (
            f"{POSTGRES_URL_VAR} starts with {scheme}://, which SQLAlchemy opens with psycopg 3 "
            "(not installed): write postgresql+psycopg2://user:password@host:port/database"
        )
    return None


def domain_run_limits() -> list[dict]:
    """The template's run limits per tag (one run per domain at a time)."""
    return config({})["concurrency"]["runs"]["tag_concurrency_limits"]


def write(home: Path, environ: Mapping[str, str] | None = None) -> bool:
    """Write ``home/dagster.yaml`` from the template; True if it was new or changed.

    An existing file is rewritten only if it was written from the template (its first line is
    the template's): a hand-made ``dagster.yaml`` is left as it is."""
    path = home / "dagster.yaml"
    wanted = render(environ, home)
    if path.exists():
        current = path.read_text()
        if current == wanted or not _from_template(current):
            return False
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(wanted)
    return True


def _from_template(text: str) -> bool:
    marks = (TEMPLATE.read_text().splitlines()[0], "# The mesh's Dagster instance")
    return any(text.startswith(mark) for mark in marks)
