"""Shared harness of the crash-safety and concurrency tests and benchmarks.

Everything here is real: ``mesh build`` runs as a subprocess against a real DuckLake and a real
Dagster instance in a data root of its own, a fault is a real ``SIGKILL`` (either at a named crash
point through ``MESH_CRASH_AT``, or sent by this harness after a seeded random delay), and the
lakes are inspected afterwards by a READ-ONLY reader (a DuckDB connection that attaches the
domain's lake with ``READ_ONLY``), the way a consumer sees them.

The ports of a domain are those its descriptor declares (:func:`ports`). A domain's build may
publish them in several commits: one per build step, and a domain whose ports have several
partitionings builds in several runs (physician_dw: its daily ``fact_calls`` in one run, the
weekly and unpartitioned ports in the next). A state of the domain is the lake after one commit:
the ports that commit published at that version, every other port as an earlier commit left it.

The checks (:func:`audit_lake`):

- **no torn version**: every snapshot whose commit records ports (``commit_extra_info.ports``) has
  every one of those ports readable at that version with exactly the recorded row count, and the
  snapshot's own changes touch no other table (so every other port holds what its last commit
  published); a snapshot that writes a port table without recording it in its commit is torn too;
- **no torn served state**: the lake's served-version pointer (``current.json``) serves one state
  of the domain: every port that state holds, each at the version of the commit that published
  it there (ports published together are served together), with exactly that version's files,
  which read back with the recorded row count and the version's content;
- **content**: a digest of every port at every committed version (md5 over the sorted md5 of each
  row, so independent of row order), to compare with a reference build: the landing data is
  deterministic by seed, so every good version of a port has the reference's content.

After a kill (:func:`kill_problems`) the served state may lag the catalog by the one commit the
run made just before it died (a kill between a commit and its pointer), never more, and never
be older than the state served before the run; after a fault-free run (:func:`recovery_problems`)
the pointer serves the current state of every port.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mesh_domains.platform import lake
from mesh_domains.platform.faults import CRASH_POINTS
from mesh_domains.platform.settings import MeshPaths
from pharma_example import generate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MESH = str(Path(sys.executable).parent / "mesh")
TINY = {"scale": 0.02, "seed": 7, "months": 2, "days": 3, "weeks": 3}
# the domains the harness builds, kills and reads: a Python domain of one commit per build and a
# dbt domain of several commits in two runs (its ports: :func:`ports`)
DOMAINS = ("physician_master", "physician_dw")
# printed by `mesh build` once its imports and the Dagster instance are ready: the random-delay
# clock starts here, so that kills land in the build rather than in Python's imports
BUILD_STARTED = "building the mesh"
RANDOM = "random_delay"
FAULTS = (*CRASH_POINTS, RANDOM)


# --- a mesh in a data root of its own ------------------------------------------------------------


@dataclass(frozen=True)
class MeshRoot:
    """One mesh on disk: a data root (landing, staging, lakes) and a Dagster home."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def paths(self) -> MeshPaths:
        return MeshPaths(self.data)

    def environ(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "MESH_CRASH_AT"}
        env.update(
            MESH_DATA_DIR=str(self.data),
            DAGSTER_HOME=str(self.home),
            MESH_ENV="ci",
            PYTHONUNBUFFERED="1",
            **extra,
        )
        return env

    def generate(self, **args) -> None:
        generate(self.data / "landing", **{**TINY, **args})

    def reset_domain(self, domain: str) -> None:
        """Delete the domain's lake and staging database: the next build starts from scratch."""
        shutil.rmtree(self.paths.lake_dir(domain), ignore_errors=True)
        staging = self.paths.staging_db(domain)
        for path in (staging, staging.with_name(staging.name + ".wal")):
            path.unlink(missing_ok=True)


def new_mesh_root(root: Path, **generate_args) -> MeshRoot:
    mesh = MeshRoot(Path(root))
    mesh.home.mkdir(parents=True, exist_ok=True)
    mesh.generate(**generate_args)
    return mesh


def built_mesh_root(factory) -> MeshRoot:
    """A mesh with every domain built: a copy of the test session's one tiny build
    (``mesh_harness.built_template``, made from the same :data:`TINY` landing data) in a data
    root of its own, with a Dagster home of its own. Lakes are relocatable, so the copy serves
    every version from its own files and ``mesh build`` publishes the next ones."""
    import mesh_harness

    assert mesh_harness.TINY == TINY, "the session's build must have this harness's data"
    template = mesh_harness.built_template(factory)
    mesh = MeshRoot(factory.mktemp("mesh"))
    shutil.copytree(template / "data", mesh.data, copy_function=shutil.copyfile)
    init_instance(mesh.home)
    return mesh


def init_instance(home: Path) -> None:
    """Create the Dagster instance in ``home`` as ``mesh`` does (its dagster.yaml) with its
    storage: ``mesh build`` processes started side by side on an empty home would race to
    create the same storage."""
    import dagster as dg

    from mesh_domains.platform import instance_config

    home.mkdir(parents=True, exist_ok=True)
    instance_config.write(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)  # the run, event log and schedule storage, created on access
        assert instance.event_log_storage is not None and instance.schedule_storage is not None


# --- running (and killing) `mesh build` ----------------------------------------------------------


@dataclass
class BuildRun:
    """One ``mesh build`` subprocess and what became of it."""

    domains: tuple[str, ...]
    fault: str | None
    returncode: int | None = None
    seconds: float = 0.0
    build_seconds: float | None = None  # from BUILD_STARTED to exit
    delay: float | None = None
    killed_by_harness: bool = False
    output: list[str] = field(default_factory=list)

    @property
    def died_of_sigkill(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def built(self, domain: str) -> bool:
        """Whether ``mesh build`` reported ``domain`` built (its ``✔ <domain> built`` line).

        Judged from the report rather than the exit code alone: the exit code also covers the
        status table printed after the build.
        """
        return any(f"✔ {domain} built" in line for line in self.output)

    def tail(self, lines: int = 40) -> str:
        return "".join(self.output[-lines:])


class BuildProcess:
    """``mesh build [--domain D ...]`` started in its own session (process group), so that a
    kill takes the whole run down, dbt's subprocess included, as a lost container would."""

    def __init__(
        self,
        mesh: MeshRoot,
        domains: tuple[str, ...] = (),
        crash_at: str | None = None,
        kill_group: bool = True,
    ) -> None:
        self.kill_group = kill_group
        args = [MESH, "build", *(a for d in domains for a in ("--domain", d))]
        extra = {"MESH_CRASH_AT": crash_at} if crash_at else {}
        self.run = BuildRun(tuple(domains), crash_at)
        self.started = threading.Event()
        self._t0 = time.monotonic()
        self._t_build: float | None = None
        self.proc = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env=mesh.environ(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.run.output.append(line)
            if BUILD_STARTED in line and not self.started.is_set():
                self._t_build = time.monotonic()
                self.started.set()

    def kill(self, group: bool = True) -> bool:
        """SIGKILL the run's whole process group (or only the ``mesh`` process, as a plain
        ``kill -9 <pid>`` would); True if the run was still alive."""
        alive = self.proc.poll() is None
        try:
            if group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return alive

    def kill_after(self, delay: float, start_timeout: float = 120.0) -> None:
        """Kill ``delay`` seconds after the build started (after imports), if still running."""
        self.run.delay = delay
        deadline = time.monotonic() + start_timeout
        while not self.started.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
        try:
            self.proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            self.run.killed_by_harness = self.kill(group=self.kill_group)

    def wait(self, timeout: float = 900.0) -> BuildRun:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
            self.run.output.append(f"[harness] timed out after {timeout}s and was killed\n")
        end = time.monotonic()
        self._reader.join(timeout=10)
        if self.kill_group:  # a crash point kills only the mesh process: reap what it left
            self.kill()
        self.run.returncode = self.proc.returncode
        self.run.seconds = end - self._t0
        if self._t_build is not None:
            self.run.build_seconds = end - self._t_build
        return self.run


def run_build(
    mesh: MeshRoot,
    *domains: str,
    crash_at: str | None = None,
    kill_after: float | None = None,
    kill_group: bool = True,
    timeout: float = 900.0,
) -> BuildRun:
    """Run ``mesh build`` to its end, or kill it at ``crash_at`` / after ``kill_after`` s."""
    proc = BuildProcess(mesh, tuple(domains), crash_at, kill_group)
    if kill_after is not None:
        proc.kill_after(kill_after)
    return proc.wait(timeout)


# --- the read-only auditor -----------------------------------------------------------------------


@dataclass
class Version:
    """The domain's state after one commit. A commit publishes the ports of one build step;
    the other ports carry over from earlier commits (``made_by``: port -> the commit that
    published what the port holds at this version)."""

    version: int
    rows: dict[str, int]  # as recorded by the commits that made this state
    digests: dict[str, str] = field(default_factory=dict)  # as read back at that version
    made_by: dict[str, int] = field(default_factory=dict)


@dataclass
class LakeAudit:
    """What a read-only consumer finds in one domain's lake: the committed versions (from the
    catalog), the served version of each port (from the lake's pointer), and anything torn."""

    domain: str
    versions: list[Version] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=dict)  # port -> version named by the pointer
    served_digests: dict[str, str] = field(default_factory=dict)
    torn: list[str] = field(default_factory=list)
    unreadable: str | None = None

    @property
    def current(self) -> Version | None:
        return self.versions[-1] if self.versions else None

    @property
    def current_version(self) -> int | None:
        return self.current.version if self.current else None

    @property
    def served_version(self) -> int | None:
        """The domain state the pointer serves: the newest version it names, when it serves
        every port that state holds, each as that state holds it (None if nothing is served,
        or no one state)."""
        if not self.served:
            return None
        newest = max(self.served.values())
        state = self.state(newest)
        if state is None or state.made_by != self.served:
            return None
        return newest

    def state(self, version: int | None) -> Version | None:
        return next((v for v in self.versions if v.version == version), None)

    def commits_behind(self) -> int | None:
        """How many commits the served state lags the current one (None: no one state served)."""
        served = self.served_version
        if served is None:
            return None
        return sum(1 for v in self.versions if v.version > served)

    def pointer_lag(self) -> list[str]:
        """Ports the pointer does not serve at their current version (or not at all)."""
        current = self.current.made_by if self.current else {}
        return sorted(
            p for p in current.keys() | self.served.keys() if current.get(p) != self.served.get(p)
        )

    def current_digests(self) -> dict[str, str] | None:
        return self.current.digests if self.current else None

    def digests_at(self, version: int | None) -> dict[str, str] | None:
        return next((v.digests for v in self.versions if v.version == version), None)

    def differing_ports(self, reference: dict[str, str]) -> list[str]:
        """Ports whose current content is not the reference's."""
        current = self.current_digests() or {}
        return sorted(p for p in reference if current.get(p) != reference[p])


def uninitialized(before: LakeAudit, after: LakeAudit) -> bool:
    """A run killed while creating a brand-new lake left a catalog file that is no DuckLake yet
    (nothing was ever published in it; the next build initializes it)."""
    return before.current is None and after.unreadable is not None


def kill_problems(before: LakeAudit, after: LakeAudit) -> list[str]:
    """What a consumer could find wrong after a killed run, besides torn versions: an unreadable
    lake (other than a brand-new one left uninitialized, see :func:`uninitialized`), an earlier
    version gone or changed, a current version older than the last good one, a served state
    that is no one committed state, is older than the one served before the run, or lags the
    current state by more than the one commit the run made just before it died.

    A run may have committed some of its steps (each commit complete: checked as torn), even
    all the steps of one of a domain's runs: then those ports are served at their new versions
    and the others at their old ones, which is one state of the domain."""
    problems = []
    if after.unreadable and not uninitialized(before, after):
        problems.append(f"lake unreadable: {after.unreadable}")
    earlier = {v.version: v.digests for v in before.versions}
    now = {v.version: v.digests for v in after.versions}
    for version, digests in earlier.items():
        if version not in now:
            problems.append(f"version {version} disappeared")
        elif now[version] != digests:
            problems.append(f"version {version} changed content")
    # a killed run may have committed some of its steps, each complete (checked as torn)
    if (after.current_version or 0) < (before.current_version or 0):
        problems.append(
            f"current version went from {before.current_version} to {after.current_version}"
        )
    if before.served:
        served, behind = after.served_version, after.commits_behind()
        if served is None:
            problems.append(f"the pointer serves no one state: {after.served}")
        elif served < (before.served_version or 0):
            problems.append(f"served state went back from {before.served_version} to {served}")
        elif behind is not None and behind > 1:
            problems.append(
                f"the pointer serves state {served}, {behind} commits behind the current "
                f"state {after.current_version}"
            )
    return problems


def recovery_problems(audit: LakeAudit) -> list[str]:
    """What is wrong with a lake after a fault-free run: the pointer must serve its current
    state, every port at the version that published it there (a commit left without its
    pointer by a killed run is caught up by the next build)."""
    problems = []
    if audit.current is None:
        problems.append("nothing committed")
    elif audit.served_version != audit.current_version:
        problems.append(
            f"the pointer serves {audit.served} (state {audit.served_version}), not the current "
            f"state {audit.current_version} ({audit.current.made_by})"
        )
    if lagging := audit.pointer_lag():
        problems.append(f"the pointer lags the catalog for {lagging}")
    return problems


def read_only_connection(paths: MeshPaths, *domains: str):
    con = lake.connect()
    lake.load_extensions(con)  # those the lakes' catalogs need
    for domain in domains:
        con.execute(lake.lake_attach_sql(domain, read_only=True, paths=paths))
    return con


def digest_sql(table: str) -> str:
    """Row count and an order-independent content digest of ``table`` (a FROM-clause item)."""
    return (
        "select count(*), coalesce(md5(string_agg(h, ',' order by h)), '') "
        f"from (select md5(t::varchar) as h from (select * from {table}) as t)"
    )


def parquet_sql(files: list[str]) -> str:
    return "read_parquet([" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "])"


def pointer_file(paths: MeshPaths, domain: str) -> Path:
    """The lake's served-version pointer (``lake.pointer_path`` for another data root)."""
    return paths.lake_dir(domain) / "current.json"


def audit_lake(paths: MeshPaths, domain: str) -> LakeAudit:
    """Inspect ``domain``'s lake READ-ONLY: committed versions, served versions, torn versions
    and content digests."""
    audit = LakeAudit(domain)
    if not paths.lake_catalog(domain).exists():
        return audit
    alias = lake.lake_alias(domain)
    try:
        con = read_only_connection(paths, domain)
    except Exception as exc:  # noqa: BLE001 — an unreadable lake is a finding, not a crash
        audit.unreadable = f"{type(exc).__name__}: {exc}"
        return audit
    try:
        _audit_versions(con, alias, audit)
        _audit_pointer(con, alias, audit, pointer_file(paths, domain))
    finally:
        con.close()
    return audit


def _changed_tables(changes: dict | None, names: dict[int, str]) -> set[str]:
    """The tables a snapshot changed in any way (created, inserted into, deleted from,
    altered, dropped...): the snapshot's ``changes`` name created tables, and give the others
    by table id."""
    changed = set()
    for kind, tables in (changes or {}).items():
        if kind.startswith("tables_"):
            for table in tables:
                name = names.get(int(table), f"table {table}") if table.isdigit() else table
                changed.add(name.removeprefix("main."))
    return changed


def _audit_versions(con, alias: str, audit: LakeAudit) -> None:
    """Every commit's ports read back at its version with the recorded rows; every snapshot
    changes only the ports its commit records. So a port holds at every later state what its
    last commit published, and its digest there is that commit's."""
    domain = audit.domain
    snapshots = con.execute(
        f"select snapshot_id, changes, commit_extra_info from {alias}.snapshots() "
        "order by snapshot_id"
    ).fetchall()
    names = dict(
        con.execute(
            f"select table_id, table_name from __ducklake_metadata_{alias}.ducklake_table"
        ).fetchall()
    )
    rows: dict[str, int] = {}
    made_by: dict[str, int] = {}
    digests: dict[str, str] = {}
    for snapshot_id, changes, extra in snapshots:
        changed = _changed_tables(changes, names)
        recorded = (json.loads(extra) if extra else {}).get("ports", {})
        if not recorded:
            if changed:
                audit.torn.append(
                    f"{domain} snapshot {snapshot_id} wrote {sorted(changed)} without "
                    "recording them as a port version"
                )
            continue
        if changed - set(recorded):
            audit.torn.append(
                f"{domain} version {snapshot_id}: commit records {sorted(recorded)} but "
                f"changed {sorted(changed)}"
            )
        for port, entry in recorded.items():
            rows[port], made_by[port] = entry["rows"], snapshot_id
            digests.pop(port, None)
            try:
                count, digest = con.execute(
                    digest_sql(f"{alias}.main.{port} at (version => {snapshot_id})")
                ).fetchall()[0]
            except Exception as exc:  # noqa: BLE001
                audit.torn.append(f"{domain} version {snapshot_id}: port {port} unreadable: {exc}")
                continue
            digests[port] = digest
            if count != entry["rows"]:
                audit.torn.append(
                    f"{domain} version {snapshot_id}: port {port} has {count} rows, "
                    f"the commit recorded {entry['rows']}"
                )
        audit.versions.append(Version(snapshot_id, dict(rows), dict(digests), dict(made_by)))


def _audit_pointer(con, alias: str, audit: LakeAudit, path: Path) -> None:
    """The served state must be one committed version of each port, all ports at the same
    version, naming exactly that version's files, with the recorded rows."""
    if not path.exists():
        return
    domain = audit.domain
    try:
        entries = lake.read_pointer(path)
    except Exception as exc:  # noqa: BLE001
        audit.torn.append(f"{domain} pointer {path} unreadable: {exc}")
        return
    versions = {v.version: v for v in audit.versions}
    for port, entry in entries.items():
        number, files = entry.version, entry.files
        audit.served[port] = number
        version = versions.get(number)
        if version is None or version.made_by.get(port) != number:
            audit.torn.append(
                f"{domain} pointer serves {port} v{number}: no such committed version"
            )
            continue
        listed = {
            f
            for (f,) in con.execute(
                "select data_file from ducklake_list_files(?, ?, snapshot_version => ?)",
                [alias, port, number],
            ).fetchall()
        }
        if set(files) != listed:
            audit.torn.append(f"{domain} pointer serves {port} v{number} with other files")
            continue
        try:
            count, digest = con.execute(digest_sql(parquet_sql(files))).fetchone()
        except Exception as exc:  # noqa: BLE001
            audit.torn.append(f"{domain} pointer serves {port} v{number}: unreadable: {exc}")
            continue
        audit.served_digests[port] = digest
        if count != version.rows[port] or digest != version.digests.get(port):
            audit.torn.append(
                f"{domain} pointer serves {port} v{number}: {count} rows, recorded "
                f"{version.rows[port]}, content "
                + ("equal" if digest == version.digests.get(port) else "different")
            )
    if audit.served and audit.served_version is None:
        audit.torn.append(
            f"{domain} pointer serves its ports at versions that are no one state of the "
            f"domain (ports published together must be served together): {audit.served}"
        )


def audit_mesh(paths: MeshPaths, domains=DOMAINS) -> dict[str, LakeAudit]:
    return {d: audit_lake(paths, d) for d in domains}


CONSUMER = {"physician_master": "physician_dw", "physician_dw": "brand_analytics"}


@functools.cache
def producers():
    from mesh_domains.platform.descriptor import discover_domains

    return discover_domains()


@functools.cache
def ports(domain: str) -> tuple[str, ...]:
    """The domain's output ports, as its descriptor declares them."""
    return tuple(p.name for p in producers()[domain].output_ports)


@functools.cache
def key_column(domain: str, port: str) -> str:
    """A non-nullable key column of the port: counting it reads the data files, not only the
    catalog's statistics."""
    return producers()[domain].output_port(port).contract.primary_key[0]


def served_to_consumer(paths: MeshPaths, producer: str) -> dict[str, tuple[int, str]]:
    """What a consumer reads right now through the platform's port reader, as a consumer build
    pins its inputs (one pointer read, then ``lake.open_port`` per port: grant check, served
    version pinned as a view): port -> (pinned version, content digest)."""
    previous = os.environ.get("MESH_DATA_DIR")
    os.environ["MESH_DATA_DIR"] = str(paths.data)
    try:
        con = lake.connect()
        try:
            pointer, served = lake.served_ports(producer), {}
            for port in ports(producer):
                if port not in pointer:
                    continue  # not published yet
                view, pinned = lake.open_port(
                    con, CONSUMER[producer], producers()[producer], port, served=pointer
                )
                served[port] = (pinned, con.execute(digest_sql(view)).fetchall()[0][1])
            return served
        finally:
            con.close()
    finally:
        if previous is None:
            os.environ.pop("MESH_DATA_DIR", None)
        else:
            os.environ["MESH_DATA_DIR"] = previous


# --- concurrent readers --------------------------------------------------------------------------

SERVED, CATALOG = "served", "catalog"


@dataclass
class ReaderStats:
    """What the readers did: reads, errors (by exact message, per kind of reader), and what
    they saw."""

    reads: dict[str, int] = field(default_factory=lambda: {SERVED: 0, CATALOG: 0})
    time_travel_reads: int = 0
    seconds: float = 0.0
    errors: dict[str, dict[str, int]] = field(default_factory=lambda: {SERVED: {}, CATALOG: {}})
    bad_reads: list[str] = field(default_factory=list)
    # reads of all ports of a domain by open_port that pinned different versions of them
    mixed_pins: int = 0
    # domain -> version -> reads that saw that version
    seen: dict[str, dict[int, int]] = field(default_factory=dict)
    reads_per_reader: list[int] = field(default_factory=list)

    @property
    def total_reads(self) -> int:
        return sum(self.reads.values())

    @property
    def error_count(self) -> int:
        return sum(sum(e.values()) for e in self.errors.values())

    @property
    def reads_per_second(self) -> float:
        return self.total_reads / self.seconds if self.seconds else 0.0


def committed_counts(con, domain: str) -> dict[int, tuple[int, ...]]:
    """Every state of ``domain``'s lake that holds all its ports -> the row counts the commits
    that made it recorded (a commit publishes one build step's ports; the others carry over)."""
    rows = con.execute(
        f"select snapshot_id, commit_extra_info from {lake.lake_alias(domain)}.snapshots() "
        "where commit_extra_info is not null order by snapshot_id"
    ).fetchall()
    counts, state = {}, {}
    for snapshot_id, extra in rows:
        recorded = json.loads(extra).get("ports", {})
        state.update({p: r["rows"] for p, r in recorded.items()})
        if recorded and all(p in state for p in ports(domain)):
            counts[snapshot_id] = tuple(state[p] for p in ports(domain))
    return counts


def made_by(con, domain: str) -> dict[int, dict[str, int]]:
    """State version -> port -> the commit that published what the port holds then."""
    rows = con.execute(
        f"select snapshot_id, commit_extra_info from {lake.lake_alias(domain)}.snapshots() "
        "where commit_extra_info is not null order by snapshot_id"
    ).fetchall()
    out, state = {}, {}
    for snapshot_id, extra in rows:
        recorded = json.loads(extra).get("ports", {})
        state.update(dict.fromkeys(recorded, snapshot_id))
        if recorded:
            out[snapshot_id] = dict(state)
    return out


@functools.cache
def counts_sql(domain: str, version: int | None = None) -> str:
    """One statement (so one snapshot) counting every port of ``domain`` in its attached lake."""
    alias = lake.lake_alias(domain)
    at = f" at (version => {version})" if version is not None else ""
    parts = [
        f"(select count({key_column(domain, p)}) from {alias}.main.{p}{at})" for p in ports(domain)
    ]
    return "select " + ", ".join(parts)


class ReaderPool:
    """``n`` consumer threads, each with its own connection (``lake.connect()``), reading every
    port of a domain again and again until stopped. Two kinds, alternating by thread:

    - ``served`` readers read like a consumer build does: the lake's pointer once, then
      ``lake.open_port`` per port (grant check, the served version pinned as a view over its
      files), then count the view;
    - ``catalog`` readers attach both lakes through ``lake.attach_port_reader`` (grant-checked,
      READ_ONLY) and query the live catalog: all ports in one statement (one snapshot), the
      committed versions' recorded counts, and every ``time_travel_every``-th read the first
      version that held every port (``at (version => n)``). Each read runs under
      ``lake.retrying`` and fetches all its results, as a catalog reader must: the process's
      catalog reads take turns, so a commit waiting for the catalog gets it.

    Every read must equal the row counts one committed version recorded (served reads are
    checked against the catalog when the pool stops). Errors are counted by their exact text,
    never retried. ``MESH_DATA_DIR`` must point at the mesh under test.
    """

    def __init__(
        self, n: int, pause: float = 0.0, time_travel_every: int = 5, kinds=(SERVED, CATALOG)
    ) -> None:
        self.n, self.pause, self.time_travel_every, self.kinds = n, pause, time_travel_every, kinds
        self.stats = ReaderStats(seen={d: {} for d in DOMAINS}, reads_per_reader=[0] * n)
        self._served_reads: dict[tuple[str, tuple[int, ...], tuple[int, ...], bool], int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(n)
        ]
        self._t0 = 0.0
        for domain in DOMAINS:  # warm the caches outside the threads
            counts_sql(domain)
        from mesh_domains.platform.settings import mesh_paths

        con = read_only_connection(mesh_paths(), *DOMAINS)
        try:  # the first version holding every port: what time-travel reads pin
            self.first_full = {d: min(committed_counts(con, d)) for d in DOMAINS}
        finally:
            con.close()

    def kind(self, index: int) -> str:
        return self.kinds[index % len(self.kinds)]

    def __enter__(self) -> ReaderPool:
        self._t0 = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        self.stats.seconds = time.monotonic() - self._t0
        self._check_served_reads()

    def _error(self, kind: str, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        with self._lock:
            errors = self.stats.errors[kind]
            errors[text] = errors.get(text, 0) + 1

    def _catalog_connection(self):
        con = lake.connect()
        con.execute("set threads = 1")  # many small readers on few cores
        for domain in DOMAINS:
            lake.attach_port_reader(con, CONSUMER[domain], producers()[domain], ports(domain))
        return con

    def _read(self, index: int) -> None:
        kind, con, i = self.kind(index), None, 0
        while not self._stop.is_set():
            domain = DOMAINS[(index // len(self.kinds) + i) % len(DOMAINS)]
            i += 1
            travel = bool(self.time_travel_every) and i % self.time_travel_every == 0
            try:
                if con is None:
                    con = lake.connect() if kind == SERVED else self._catalog_connection()
                    if kind == SERVED:
                        con.execute("set threads = 1")
                if kind == SERVED:
                    self._served_read(con, domain, travel)
                else:  # through the platform's retry on catalog locks, taking turns with
                    # this process's other catalog reads; anything else counts
                    lake.retrying(lambda c=con, d=domain, t=travel: self._catalog_read(c, d, t))
            except Exception as exc:  # noqa: BLE001 — every error is counted, none hidden
                self._error(kind, exc)
                if con is not None:
                    con.close()
                con = None
                continue
            with self._lock:
                self.stats.reads[kind] += 1
                self.stats.time_travel_reads += travel
                self.stats.reads_per_reader[index] += 1
            if self.pause:
                self._stop.wait(self.pause)
        if con is not None:
            con.close()

    def _served_read(self, con, domain: str, travel: bool) -> None:
        pins, counts = [], []
        version = self.first_full[domain] if travel else None
        pointer = None if travel else lake.served_ports(domain)  # one pointer: one state
        for port in ports(domain):
            view, pinned = lake.open_port(
                con, CONSUMER[domain], producers()[domain], port, version, served=pointer
            )
            pins.append(pinned)
            (count,) = con.execute(
                f"select count({key_column(domain, port)}) from {view}"
            ).fetchall()
            counts.append(count[0])
        key = (domain, tuple(pins), tuple(counts), travel)
        with self._lock:
            self._served_reads[key] = self._served_reads.get(key, 0) + 1

    def _catalog_read(self, con, domain: str, travel: bool) -> None:
        # every result fetched to its end: an unfetched one keeps the read transaction (and
        # the catalog's read lock) open until the connection's next statement
        counts = tuple(con.execute(counts_sql(domain)).fetchall()[0])
        committed = committed_counts(con, domain)  # read after: a superset of what was seen
        matching = [v for v, c in committed.items() if c == counts]
        if travel and committed:
            first = min(committed)
            old = tuple(con.execute(counts_sql(domain, first)).fetchall()[0])
            if old != committed[first]:
                with self._lock:
                    self.stats.bad_reads.append(
                        f"catalog read of {domain} at version {first}: {old}, "
                        f"recorded {committed[first]}"
                    )
        with self._lock:
            if not matching:
                self.stats.bad_reads.append(
                    f"catalog read of {domain}: row counts {counts}, committed versions "
                    f"recorded {committed}"
                )
            for v in matching:
                seen = self.stats.seen[domain]
                seen[v] = seen.get(v, 0) + 1

    def _check_served_reads(self) -> None:
        """Check every served read against the counts its pinned versions' commits recorded."""
        if not self._served_reads:
            return
        from mesh_domains.platform.settings import mesh_paths

        con = read_only_connection(mesh_paths(), *DOMAINS)
        try:
            committed = {d: committed_counts(con, d) for d in DOMAINS}
            sources = {d: made_by(con, d) for d in DOMAINS}
        finally:
            con.close()
        for (domain, pins, counts, travel), n in self._served_reads.items():
            state = max(pins)
            makers = sources[domain].get(state, {})
            pinned_together = travel or all(
                makers.get(p) == v for p, v in zip(ports(domain), pins, strict=True)
            )
            if not pinned_together:
                self.stats.mixed_pins += n  # not one state of the domain
            for i, (pinned, count) in enumerate(zip(pins, counts, strict=True)):
                recorded = committed[domain].get(state)
                if recorded is None or recorded[i] != count:
                    self.stats.bad_reads.append(
                        f"served read of {domain}/{ports(domain)[i]} pinned v{pinned}: {count} "
                        f"rows, recorded {None if recorded is None else recorded[i]} ({n} reads)"
                    )
            if not travel:
                seen = self.stats.seen[domain]
                seen[state] = seen.get(state, 0) + n
