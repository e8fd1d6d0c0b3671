"""The embedded instance storage: Dagster's SQLite storage, with its connections kept.

Dagster's SQLite storages create a new SQLAlchemy engine for every connection they open, and
close the connection after one statement or transaction: a run stores about 70 events for a
small domain, each costing an engine, a connection, SQLite's first-connect pragmas and a WAL
checkpoint when the file's last connection closes. :class:`MeshSqliteStorage` is the same
storage, on the same files (``history/runs.db``, ``history/runs/<run>.db`` with the
``index`` shard, ``schedules/schedules.db``), with two changes:

- the run storage, the schedule storage and the event log's index shard keep a pool of open
  connections (per process): they have no file watcher, so nothing waits on their main file;
- a run's own event shard keeps its engine but still closes its connection after each write,
  so SQLite checkpoints the write into ``<run>.db``: the webserver follows a running run's log
  by watching that file change.

Engines belong to the process that made them: a forked child makes its own (and never
closes its parent's, which SQLite forbids). ``mesh instance`` writes this storage into
``dagster.yaml`` with the home's path; moving the home means running ``mesh instance`` (any
``mesh`` command does) to write the new path, and an instance whose folder is not that path
is refused with that advice (a copied home never writes into the one it was copied from).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

from .errors import MeshError

RUN_SHARD_ENGINES = 64  # engines of run shards kept per process (a daemon sees many runs)

_lock = threading.Lock()
_pid = os.getpid()
_engines: OrderedDict[tuple[str, bool], Engine] = OrderedDict()
_inherited: list[Engine] = []  # a parent's engines: kept referenced, so never closed here


def engine(url: str, *, pooled: bool, timeout: float | None = None) -> Engine:
    """This process's engine for ``url``: pooled (connections stay open) or not."""
    global _pid
    with _lock:
        if _pid != os.getpid():  # forked: the parent's connections are not ours to use
            _inherited.extend(_engines.values())
            _engines.clear()
            _pid = os.getpid()
        key = (url, pooled)
        found = _engines.get(key)
        if found is None:
            args = {} if timeout is None else {"connect_args": {"timeout": timeout}}
            found = create_engine(url, poolclass=QueuePool if pooled else NullPool, **args)
            _engines[key] = found
            unpooled = [k for k in _engines if not k[1]]
            for old in unpooled[: max(0, len(unpooled) - RUN_SHARD_ENGINES)]:
                _engines.pop(old).dispose()
        else:
            _engines.move_to_end(key)
        return found


def forget(urls: list[str]) -> None:
    """Close and drop this process's engines of ``urls`` (their files are being deleted)."""
    with _lock:
        for key in [k for k in _engines if k[0] in urls]:
            _engines.pop(key).dispose()


class _OfOneHome:
    """A storage that refuses an instance whose folder is not the one it writes to: a
    ``dagster.yaml`` copied or moved with its home still names the old folder."""

    home: str | None = None

    def register_instance(self, instance) -> None:
        root = instance.root_directory
        if self.home and os.path.realpath(root) != os.path.realpath(self.home):
            raise MeshError(
                f"the Dagster instance in {root} names its SQLite storage in {self.home} (its "
                f"dagster.yaml was copied or moved): run `mesh instance` with DAGSTER_HOME={root} "
                "to write this folder's path"
            )
        super().register_instance(instance)


@contextmanager
def _transaction(found: Engine) -> Iterator[Connection]:
    with found.connect() as conn, conn.begin():
        yield conn


class KeptRunStorage(_OfOneHome, SqliteRunStorage):
    """:class:`SqliteRunStorage` on a pool of open connections."""

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with _transaction(engine(self._conn_string, pooled=True)) as conn:
            yield conn


class KeptScheduleStorage(_OfOneHome, SqliteScheduleStorage):
    """:class:`SqliteScheduleStorage` on a pool of open connections."""

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with _transaction(engine(self._conn_string, pooled=True)) as conn:
            yield conn


class KeptEventLogStorage(_OfOneHome, SqliteEventLogStorage):
    """:class:`SqliteEventLogStorage` whose index shard stays connected and whose run shards
    keep their engines (each write still closes, so the file watcher sees it)."""

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            found = engine(
                self.conn_string_for_shard(shard),
                pooled=shard == INDEX_SHARD_NAME,
                timeout=SQLITE_BUSY_TIMEOUT_SECONDS,
            )
            if shard not in self._initialized_dbs:
                self._initdb(found)
                self._initialized_dbs.add(shard)
            with _transaction(found) as conn:
                yield conn

    def wipe(self) -> None:
        forget([self.conn_string_for_shard(s) for s in self.get_all_run_ids()])
        super().wipe()


class MeshSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (same files, same schema) with its connections kept; see the
    module's docstring. In ``dagster.yaml``::

        storage:
          custom:
            module: mesh_domains.platform.instance_storage
            class: MeshSqliteStorage
            config: {base_dir: /path/to/dagster_home}
    """

    def __init__(self, base_dir: str, inst_data=None):
        # DagsterSqliteStorage.__init__ would open its own storages first: set its fields here
        self.base_dir = base_dir
        self._run_storage = KeptRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = KeptEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = KeptScheduleStorage.from_local(_schedule_directory(base_dir))
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage.home = base_dir
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> MeshSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
