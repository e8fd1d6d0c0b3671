"""Write–audit–publish of output ports, shared by every toolchain.

A domain's build step writes its ports into the domain's private staging database, the
platform audits each staged port against its contract, and only if every port passes publishes
them all as new port versions in one lake commit. A failed audit publishes nothing: the previous
versions stay served and the staged tables stay in staging for diagnosis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
import duckdb

from . import lake
from .contracts import ContractReport, ContractViolation, Failure, validate_table
from .descriptor import Domain, OutputPort, discover_domains
from .errors import MeshError, MissingInputError
from .faults import crash_point
from .lineage import DriftError, Pin, conflicts, consistent_pins, drift_message, merged_lineage
from .partitions import Cadence, window
from .settings import mesh_env, mesh_paths
from .sources import Delivery, load_source
from .versioning import folder_hash, git_sha

CONTRACT_CHECK = "contract"
AS_OF = "as_of"  # a date parameter the platform understands: build as of that day


@contextmanager
def user_errors(domain: Domain, ports: list[OutputPort]) -> Iterator[None]:
    """Turn the platform's user-facing errors into a Dagster failure that names the domain and
    the ports whose build stopped, followed by the error's own explanation."""
    try:
        yield
    except MeshError as exc:
        names = ", ".join(p.name for p in ports)
        report = getattr(exc, "report", None)  # a broken contract: its failures, structured
        raise dg.Failure(
            description=f"{domain.name}: building port(s) {names} stopped.\n{exc}",
            metadata={"contract": dg.MetadataValue.json(_failed_contract(report))}
            if report is not None
            else None,
        ) from exc


def _failed_contract(report: ContractReport) -> dict:
    """A failed contract as the domain query shows it: which table, file and rule, with samples."""
    where = {"domain": report.domain, report.kind: report.port, "file": report.file}
    return where | report.as_metadata()


@dataclass(frozen=True)
class PartitionScope:
    """The partitions a build publishes: consecutive periods of one cadence."""

    cadence: Cadence
    keys: tuple[str, ...]

    @property
    def first_day(self) -> date:
        return window(self.cadence, self.keys[0])[0]

    @property
    def last_day(self) -> date:
        return window(self.cadence, self.keys[-1])[1]

    def describe(self) -> str:
        span = self.keys[0] if len(self.keys) == 1 else f"{self.keys[0]}..{self.keys[-1]}"
        return f"{self.cadence.cadence} partition(s) {span} ({self.first_day}..{self.last_day})"


def given_parameters(context) -> dict[str, Any]:
    """The run parameters this step was given (its op config), unset ones left out."""
    config = context.op_execution_context.op_config or {}
    return {k: v for k, v in config.items() if v is not None}


def partition_scope(context, ports: list[OutputPort]) -> PartitionScope | None:
    """The partitions this run publishes of ``ports`` (None for unpartitioned ports)."""
    cadences = {p.partition.cadence for p in ports if p.partition}
    if not cadences:
        return None
    (cadence,) = cadences
    return PartitionScope(cadence, tuple(context.partition_keys))


@dataclass
class BuildContext:
    """What a domain's build function gets: a staging connection and the domain's inputs.

    Input ports are pinned (after the grant check) to the version served when the build
    started, as views ``<producer>.<port>``, so one build reads one consistent state of each.
    A partitioned build (``scope``) loads only the deliveries of its periods.
    """

    domain: Domain
    con: duckdb.DuckDBPyConnection
    log: Any
    input_versions: dict[str, int | None] = field(default_factory=dict)
    deliveries: dict[str, list[Delivery]] = field(default_factory=dict)
    delivery_versions: dict[str, dict[str, str]] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    scope: PartitionScope | None = None
    params: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    kept: dict[str, int] = field(default_factory=dict)
    extended: dict[str, int] = field(default_factory=dict)
    # the domain's own ports this build read as published (port -> version)
    own_input_versions: dict[str, int] = field(default_factory=dict)

    def source(self, name: str, *, latest_only: bool = False) -> str:
        """Check and load a raw source's deliveries; returns the staging table holding them."""
        within = None if self.scope is None else (self.scope.first_day, self.scope.last_day)
        as_of = self.params.get(AS_OF)
        if as_of:  # an as-of build: deliveries of later periods are not read
            cut = date.fromisoformat(str(as_of))
            within = (within[0] if within else date.min, min(within[1], cut) if within else cut)
        table, chosen, versions = load_source(
            self.con,
            self.domain.name,
            self.domain.source(name),
            latest_only=latest_only,
            log=self.log,
            within=within,
        )
        self.deliveries[name] = chosen
        self.delivery_versions[name] = versions
        self.log.info(
            f"{self.domain.name}: source {name}: {len(chosen)} delivery(ies) passed their contract"
        )
        return table

    def port(self, ref: str) -> str:
        """The view of an input port at its pinned version, e.g. for ``from {ctx.port(...)}``."""
        if ref not in self.input_versions:
            declared = ", ".join(self.input_versions) or "none"
            raise KeyError(
                f"{self.domain.name}: {ref!r} is not a declared input port (declared: {declared})"
            )
        producer, port = ref.split("/")
        return f"{producer}.{port}"

    def served(self, port: str) -> str:
        """The domain's own port as served now (its latest version), e.g. to reuse part of it."""
        self.domain.output_port(port)
        return f"{lake.lake_alias(self.domain.name)}.main.{port}"

    def unchanged_since_served(self, port: str, *sources: str) -> int | None:
        """The served version of ``port`` if it was built by this code, in this variation, from
        exactly the deliveries of ``sources`` loaded now (call after :meth:`source`) and the
        same versions of the input ports among them (``producer/port``): what it derived from
        those inputs alone can be reused instead of computed again. None if not (or if there is
        no served version, or no lake: a plain connection has nothing served)."""
        latest = self._served_version(port)
        if latest is None or self.scope is not None:
            return None
        info = latest.info
        variation = info.get("variation") or {}
        same = (
            info.get("code_version") == self.code_version
            and variation.get("env") == mesh_env()
            and (variation.get("params") or {}) == self.params
            and all(
                (info.get("delivery_versions") or {}).get(s) == self.delivery_versions.get(s)
                for s in sources
                if "/" not in s
            )
            and all(
                (info.get("input_versions") or {}).get(ref, -1) == self.input_versions.get(ref)
                for ref in sources
                if "/" in ref
            )
        )
        return latest.version if same else None

    def served_metrics(self, port: str) -> dict[str, Any]:
        """The figures the build of ``port``'s served version reported (its metadata); none
        without a served version."""
        latest = self._served_version(port)
        return {} if latest is None else (latest.info.get("metrics") or {}).get(port, {})

    def served_delivery_versions(self, port: str, source: str) -> dict[str, str]:
        """The deliveries of ``source`` (partition -> content hash) the served version of
        ``port`` was built from; none without a served version."""
        latest = self._served_version(port)
        if latest is None:
            return {}
        return (latest.info.get("delivery_versions") or {}).get(source, {})

    def _served_version(self, port: str):
        """``port``'s latest version in the domain's lake, or None (also on a plain connection,
        e.g. the benchmark's floor: nothing is served there)."""
        alias = lake.lake_alias(self.domain.name)
        attached = self.con.execute(
            "select count(*) from duckdb_databases() where database_name = ?", [alias]
        ).fetchone()[0]
        if not attached:
            return None
        return lake.latest_versions(self.con, self.domain.name, [port]).get(port)

    def keep_served(self, *ports: str) -> int | None:
        """Publish ``ports`` with exactly the rows of their served version, without staging,
        checking or writing them again: for a builder that has proven this build would give
        those very rows (e.g. :meth:`unchanged_since_served` for what they derive from, and the
        rest of its input unchanged). The new version records this build's inputs and
        deliveries, changes no data file and starts no consumer (``mesh/unchanged``); its
        contract verdict is the served version's, checked by this same code. Returns that
        version, or None (nothing kept: stage the ports as usual) if the ports were not served
        together by this code in this variation, or the build is partition-scoped."""
        version = self._served_together(list(ports))
        if version is None:
            return None
        for port in ports:
            self.domain.output_port(port)
            self.kept[port] = version
        return version

    def _served_together(self, ports: list[str]) -> int | None:
        """The version that last published all of ``ports`` together, if this code built it
        in this variation (and the build is not partition-scoped); else None."""
        version = self.unchanged_since_served(ports[0])
        if version is None:
            return None
        latest = lake.latest_versions(self.con, self.domain.name, ports)
        if any(latest.get(p) is None or latest[p].version != version for p in ports):
            return None
        return version

    def extend_served(self, additions: dict[str, str]) -> int | None:
        """Stage the rows of each query in ``additions`` (port -> SQL) as an addition to that
        port's served rows: the new version is the served rows plus these, and only these are
        written (one insert in the publish commit). For a builder that has proven every served
        row stays as it is and only rows are added (say, golden records for prescribers seen
        for the first time). The contract checks the whole new content, served rows and
        additions together. The additions are staged in the order given (a later query may
        read an earlier one's ``main.<port>``). Returns the served version, or None (nothing
        staged: stage the ports whole) if they were not served together by this code in this
        variation, or the build is partition-scoped."""
        version = self._served_together(list(additions))
        if version is None:
            return None
        for port, sql in additions.items():
            self.stage(port, sql)
            self.extended[port] = version
        return version

    def stage(self, port: str, sql: str) -> None:
        """Write ``sql``'s result as the staged table of output port ``port``."""
        self.domain.output_port(port)
        self.con.execute(f"create or replace table main.{port} as {sql}")


class PinnedInputs(dict):
    """Pinned input versions (``producer/port`` -> version), plus what they derive from
    (``lineage``) and the inputs re-pinned to older versions to avoid drift (``repinned``:
    ref -> (served, pinned))."""

    lineage: dict[str, int]
    repinned: dict[str, tuple[int | None, int | None]]


def attach_inputs(con: duckdb.DuckDBPyConnection, domain: Domain) -> PinnedInputs:
    """Pin every input port of ``domain`` for this build; returns the pinned versions.

    Each port becomes the view ``<producer>.<port>`` in the domain's staging database, over the
    immutable files of the version current now (grants checked on the way). The producers'
    lakes are detached afterwards: the build reads one consistent state and never touches a
    producer's catalog while that producer publishes. Inputs that derive from different
    versions of a shared upstream port are refused, or re-pinned to the newest versions that
    agree when the descriptor says ``on_drift: pin_consistent`` (:mod:`.lineage`).
    """
    producers = discover_domains()
    pins: dict[str, Pin] = {}
    pointers: dict[str, dict] = {}
    for ref in domain.input_ports:
        if ref.domain not in producers:
            raise MissingInputError(f"{domain.name}: input port on unknown domain {ref.domain!r}")
        if ref.domain not in pointers:  # one pointer read per producer: its ports pin together
            pointers[ref.domain] = lake.served_ports(ref.domain)
        _, version = lake.open_port(
            con, domain.name, producers[ref.domain], ref.port, served=pointers[ref.domain]
        )
        served = pointers[ref.domain].get(ref.port)
        partitioned = producers[ref.domain].output_port(ref.port).partition is not None
        lineage = dict(served.lineage) if served else {}
        content = served.content_version if served and served.version == version else None
        pins[ref.ref] = Pin(ref.ref, version, lineage, compared=not partitioned, content=content)
    repinned: dict[str, tuple[int | None, int | None]] = {}
    found = conflicts(pins)
    if found:
        if domain.drift_policy(mesh_env()) != "pin_consistent":
            raise DriftError(drift_message(domain, pins, found))

        def history(ref: str):
            producer, port = ref.split("/")
            return lake.port_history(con, domain.name, producers[producer], port)

        agreed = consistent_pins(pins, history)
        if agreed is None:
            raise DriftError(
                drift_message(domain, pins, found)
                + "\n(on_drift: pin_consistent found no published set of versions that agree)"
            )
        for ref, pin in agreed.items():
            if pin.version != pins[ref].version:
                producer, port = ref.split("/")
                lake.open_port(con, domain.name, producers[producer], port, version=pin.version)
                repinned[ref] = (pins[ref].version, pin.version)
        pins = agreed
    for producer in {ref.domain for ref in domain.input_ports}:
        con.execute(f"detach database if exists {lake.lake_alias(producer)}")
    versions = PinnedInputs({ref: pin.version for ref, pin in pins.items()})
    versions.lineage = merged_lineage(pins)
    versions.repinned = repinned
    return versions


@contextmanager
def staging_connection(domain: Domain) -> Iterator[duckdb.DuckDBPyConnection]:
    """The domain's private staging database, with its own lake attached read-write."""
    path = mesh_paths().staging_db(domain.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = lake.connect(str(path), staging=True)
    try:
        lake.attach_own_lake(con, domain.name)
        lake.refresh_pointer(con, domain)
        yield con
    finally:
        con.close()


def code_version(domain: Domain, *extra_folders) -> str:
    return folder_hash(domain.folder, *extra_folders)


def audit(
    con,
    domain: Domain,
    ports: list[OutputPort],
    scope: PartitionScope | None = None,
    tables: dict[str, str] | None = None,
) -> list[ContractReport]:
    """Each staged port (or the table ``tables`` names for it) against its contract; a
    partitioned port's staged rows must also all fall inside the partitions being published
    (only they are replaced)."""
    reports = []
    for p in ports:
        table = (tables or {}).get(p.name, f"main.{p.name}")
        report = validate_table(con, table, p.contract, domain=domain.name, port=p.name)
        if p.partition and scope is not None:
            report.failures += _outside_scope(con, p, scope)
        reports.append(report)
    return reports


def _outside_scope(con, port: OutputPort, scope: PartitionScope) -> list[Failure]:
    column = port.partition.column
    bad = (
        f"cast({column} as date) not between date '{scope.first_day}' and date '{scope.last_day}'"
        f" or {column} is null"
    )
    count = con.execute(f"select count(*) from main.{port.name} where {bad}").fetchone()[0]
    if not count:
        return []
    sample = con.execute(f"select distinct {column} from main.{port.name} where {bad} limit 3")
    rule = f"within the published {scope.describe()}"
    return [Failure(column, rule, count, tuple(str(v) for (v,) in sample.fetchall()))]


def check_results(reports: list[ContractReport]) -> Iterator[dg.AssetCheckResult]:
    for r in reports:
        yield dg.AssetCheckResult(
            asset_key=[r.domain, r.port],
            check_name=CONTRACT_CHECK,
            passed=r.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=r.message(),
            metadata={
                "rows_checked": 0 if r.same_as is not None else r.rows,
                "failures": dg.MetadataValue.json(r.as_metadata()["failures"]),
                **({"rows_of_version": r.same_as} if r.same_as is not None else {}),
            },
        )


def warn_results(
    context, build: BuildContext, ports: list[OutputPort], rows: dict[str, int]
) -> Iterator[dg.AssetCheckResult]:
    """Warn-level rules: evaluated on the published version's metrics, never blocking."""
    for port in ports:
        metrics = {"rows": rows[port.name], **build.metadata.get(port.name, {})}
        previous = context.instance.get_latest_materialization_event(dg.AssetKey(port.key))
        before = (
            {}
            if previous is None
            else {k: v.value for k, v in previous.asset_materialization.metadata.items()}
        )
        before.setdefault("rows", before.get("dagster/row_count"))
        for rule in port.warn_rules:
            passed, detail = _evaluate_warn_rule(rule, metrics, before)
            if not passed:
                context.log.warning(f"{port.ref}: warn rule {rule.name}: {detail}")
            yield dg.AssetCheckResult(
                asset_key=port.key,
                check_name=rule.name,
                passed=passed,
                severity=dg.AssetCheckSeverity.WARN,
                description=detail,
                metadata={"metric": rule.metric, "value": metrics.get(rule.metric)},
            )


def _evaluate_warn_rule(rule, metrics: dict, before: dict) -> tuple[bool, str]:
    value = metrics.get(rule.metric)
    if value is None:
        return False, f"metric {rule.metric!r} was not reported by the build"
    if rule.max_drop is not None:
        old = before.get(rule.metric)
        if old is None:
            return True, f"{rule.metric} = {value} (no previous version to compare)"
        drop = old - value
        verdict = "within" if drop <= rule.max_drop else "beyond"
        return drop <= rule.max_drop, (
            f"{rule.metric} went from {old} to {value}: a drop of {round(drop, 6)}, {verdict} "
            f"the allowed {rule.max_drop}"
        )
    ok = _COMPARE[rule.op](value, rule.value)
    return ok, f"{rule.metric} = {value}; expected {rule.op} {rule.value}"


_COMPARE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def audit_and_publish(
    context: dg.AssetExecutionContext,
    build: BuildContext,
    ports: list[OutputPort],
    version: str,
    started: float,
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """Audit every staged port; publish all of them in one commit only if all pass.

    An unpartitioned port is replaced whole; a partitioned port has exactly the partitions of
    ``build.scope`` replaced (delete + insert in the same commit), every other partition stays
    as it was. The version records the partitions it changed and the deliveries it read.
    """
    domain = build.domain
    crash_point("build.after_stage")
    previous = lake.latest_versions(build.con, domain.name, [p.name for p in ports])
    whole = _whole_contents(build)
    checked = audit(
        build.con, domain, [p for p in ports if p.name not in build.kept], build.scope, whole
    )
    reports = [
        kept_report(domain, p, previous[p.name]) if p.name in build.kept else checked.pop(0)
        for p in ports
    ]
    crash_point("build.after_audit")
    yield from check_results(reports)
    failed = [r for r in reports if not r.passed]
    if failed:
        raise ContractViolation(
            failed[0],
            hint="\n".join(r.message() for r in failed[1:])
            + f"\nNothing was published: the previous versions of {domain.name} stay served; "
            f"the staged tables are kept in {mesh_paths().staging_db(domain.name)} for diagnosis.",
        )
    changed = changed_inputs(build, ports, previous)
    partitions = {p.name: list(build.scope.keys) for p in ports if p.partition and build.scope}
    variation = {"env": mesh_env(), **({"params": build.params} if build.params else {})}
    identity = content_identity(build.con, ports, build.scope, previous, build.kept, whole)
    info = {
        "ports": {r.port: {"rows": r.rows, **identity.get(r.port, {})} for r in reports},
        "run_id": context.run.run_id,
        "code_version": version,
        "git_sha": git_sha(),
        "variation": variation,
        "input_versions": build.input_versions,
        **({"own_input_versions": build.own_input_versions} if build.own_input_versions else {}),
        "lineage": getattr(build.input_versions, "lineage", {}),
        **(
            {"repinned_for_consistency": build.input_versions.repinned}
            if getattr(build.input_versions, "repinned", None)
            else {}
        ),
        "deliveries": {s: [d.partition for d in ds] for s, ds in build.deliveries.items()},
        "delivery_versions": build.delivery_versions,
        "partitions": partitions,
        "changed": changed,
        "metrics": build.metadata,
    }
    replace = {
        p.name: (p.partition.column, build.scope.first_day, build.scope.last_day)
        for p in ports
        if p.partition and build.scope
    }
    staged = {p.name: f"main.{p.name}" for p in ports if p.name not in build.kept}
    snapshot = lake.publish(
        build.con,
        domain.name,
        staged,
        info,
        replace=replace,
        kept=list(build.kept),
        append=list(build.extended),
    )
    scoped = f" ({build.scope.describe()})" if replace else ""
    kept = (
        f" (rows of version {', '.join(map(str, sorted(set(build.kept.values()))))} kept: "
        f"{', '.join(build.kept)})"
        if build.kept
        else ""
    ) + (
        f" (rows added to version {', '.join(map(str, sorted(set(build.extended.values()))))}: "
        f"{', '.join(build.extended)})"
        if build.extended
        else ""
    )
    context.log.info(
        f"{domain.name}: published {', '.join(p.name for p in ports)} as version {snapshot}"
        f"{scoped}{kept}"
    )
    totals = lake.port_row_counts(build.con, domain.name, [p.name for p in ports])
    # judged against the previous version's metrics, so evaluated before the new one is recorded
    warnings = list(warn_results(context, build, ports, {r.port: r.rows for r in reports}))
    for r in reports:
        yield dg.MaterializeResult(
            asset_key=[domain.name, r.port],
            metadata={
                "dagster/row_count": r.rows,
                "port_rows": totals.get(r.port, r.rows),
                "port_version": snapshot,
                "input_port_versions": dg.MetadataValue.json(build.input_versions),
                "code_version": version,
                "git_sha": git_sha() or "",
                "variation": mesh_env(),
                "variation_detail": dg.MetadataValue.json(variation),
                "partitions": dg.MetadataValue.json(partitions.get(r.port, [])),
                "mesh/changed": dg.MetadataValue.json(changed),
                **(
                    {"mesh/unchanged": True, "content_version": identity[r.port]["same_as"]}
                    if "same_as" in identity.get(r.port, {})
                    else {}
                ),
                "lake": dg.MetadataValue.path(str(mesh_paths().lake_dir(domain.name))),
                "duration_s": round(time.monotonic() - started, 3),
                **build.metadata.get(r.port, {}),
                # the build's own figures, apart, for `mesh status` and the domain query
                **(
                    {"mesh/metrics": dg.MetadataValue.json(build.metadata[r.port])}
                    if build.metadata.get(r.port)
                    else {}
                ),
            },
        )
    yield from warnings


def _whole_contents(build: BuildContext) -> dict[str, str]:
    """For each port extended (:meth:`BuildContext.extend_served`), a view of what its new
    version will hold: the served rows and the staged additions."""
    views = {}
    for port in build.extended:
        view = f"__mesh_whole_{port}"
        build.con.execute(
            f"create or replace temp view {view} as "
            f"select * from {build.served(port)} union all select * from main.{port}"
        )
        views[port] = view
    return views


def kept_report(domain: Domain, port: OutputPort, served) -> ContractReport:
    """The contract verdict of a port kept as served (:meth:`BuildContext.keep_served`)."""
    rows = ((served.info.get("ports") or {}).get(port.name) or {}).get("rows", 0)
    return ContractReport(domain.name, port.name, rows, same_as=served.version)


def content_identity(
    con,
    ports: list[OutputPort],
    scope: PartitionScope | None,
    previous: dict,
    kept: dict[str, int] | None = None,
    tables: dict[str, str] | None = None,
) -> dict[str, dict]:
    """For each port published whole: its content's fingerprint, and ``same_as`` (the content
    version of the served version) when the staged rows are exactly the served ones (or the
    port is kept as served). Such a version changes nothing for consumers: their lineage still
    holds (no drift) and process linkage starts nobody for it (:mod:`.lineage`,
    :mod:`.sensors`)."""
    out: dict[str, dict] = {}
    for p in ports:
        if p.partition and scope is not None:  # partitions replaced: the keys say what changed
            continue
        before = previous.get(p.name)
        if kept and p.name in kept:
            old = (before.info.get("ports") or {}).get(p.name) or {}
            out[p.name] = {"fingerprint": old.get("fingerprint"), "same_as": before.content_version}
            continue
        table = (tables or {}).get(p.name, f"main.{p.name}")
        entry = {"fingerprint": lake.fingerprint(con, table)}
        if before is not None:
            old = (before.info.get("ports") or {}).get(p.name) or {}
            if old.get("fingerprint") == entry["fingerprint"]:
                entry["same_as"] = before.content_version
        out[p.name] = entry
    return out


def changed_inputs(
    build: BuildContext, ports: list[OutputPort], previous: dict | None = None
) -> dict[str, list[str]]:
    """What this publish changes for consumers, as partition keys per asset: the partitions
    of partitioned ports it replaces, and the landing partitions whose deliveries are new or
    different since the previous version (a consumer that ingests the same source rebuilds
    exactly those partitions)."""
    changed: dict[str, list[str]] = {}
    if build.scope is not None:
        for p in ports:
            if p.partition:
                changed[p.ref] = list(build.scope.keys)
    before: dict[str, dict[str, str]] = {}
    if previous is None:
        previous = lake.latest_versions(build.con, build.domain.name, [ports[0].name])
    latest = previous.get(ports[0].name)
    if latest is not None:
        before = latest.info.get("delivery_versions") or {}
    for source, versions in build.delivery_versions.items():
        cadence = build.domain.source(source).partitioning
        new = sorted(
            part for part, sha in versions.items() if before.get(source, {}).get(part) != sha
        )
        if new:
            keys = (
                new if cadence is None else [_key_of(build.domain.source(source), k) for k in new]
            )
            changed[f"landing/{source}"] = sorted(set(keys))
    return changed


def _key_of(source, folder: str) -> str:
    from .partitions import key_for_folder
    from .sources import delivery_rules, partition_date

    day = partition_date(delivery_rules(source), folder)
    return folder if day is None else key_for_folder(source.partitioning, day)
