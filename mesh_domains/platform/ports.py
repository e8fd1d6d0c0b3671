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
from typing import Any

import dagster as dg
import duckdb

from . import lake
from .contracts import ContractReport, ContractViolation, validate_table
from .descriptor import Domain, OutputPort, discover_domains
from .errors import MeshError, MissingInputError
from .faults import crash_point
from .settings import mesh_env, mesh_paths
from .sources import Delivery, load_source
from .versioning import folder_hash, git_sha

CONTRACT_CHECK = "contract"


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


@dataclass
class BuildContext:
    """What a domain's build function gets: a staging connection and the domain's inputs.

    Input ports are pinned (after the grant check) to the version served when the build
    started, as views ``<producer>.<port>``, so one build reads one consistent state of each.
    """

    domain: Domain
    con: duckdb.DuckDBPyConnection
    log: Any
    input_versions: dict[str, int | None] = field(default_factory=dict)
    deliveries: dict[str, list[Delivery]] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)

    def source(self, name: str, *, latest_only: bool = False) -> str:
        """Check and load a raw source's deliveries; returns the staging table holding them."""
        table, chosen = load_source(
            self.con,
            self.domain.name,
            self.domain.source(name),
            latest_only=latest_only,
            log=self.log,
        )
        self.deliveries[name] = chosen
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

    def stage(self, port: str, sql: str) -> None:
        """Write ``sql``'s result as the staged table of output port ``port``."""
        self.domain.output_port(port)
        self.con.execute(f"create or replace table main.{port} as {sql}")


def attach_inputs(con: duckdb.DuckDBPyConnection, domain: Domain) -> dict[str, int | None]:
    """Pin every input port of ``domain`` for this build; returns the pinned versions.

    Each port becomes the view ``<producer>.<port>`` in the domain's staging database, over the
    immutable files of the version current now (grants checked on the way). The producers'
    lakes are detached afterwards: the build reads one consistent state and never touches a
    producer's catalog while that producer publishes.
    """
    producers = discover_domains()
    versions: dict[str, int | None] = {}
    pointers: dict[str, dict] = {}
    for ref in domain.input_ports:
        if ref.domain not in producers:
            raise MissingInputError(f"{domain.name}: input port on unknown domain {ref.domain!r}")
        if ref.domain not in pointers:  # one pointer read per producer: its ports pin together
            pointers[ref.domain] = lake.served_ports(ref.domain)
        _, versions[ref.ref] = lake.open_port(
            con, domain.name, producers[ref.domain], ref.port, served=pointers[ref.domain]
        )
    for producer in {ref.domain for ref in domain.input_ports}:
        con.execute(f"detach database if exists {lake.lake_alias(producer)}")
    return versions


@contextmanager
def staging_connection(domain: Domain) -> Iterator[duckdb.DuckDBPyConnection]:
    """The domain's private staging database, with its own lake attached read-write."""
    path = mesh_paths().staging_db(domain.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = lake.connect(str(path))
    try:
        lake.attach_own_lake(con, domain.name)
        lake.refresh_pointer(con, domain)
        yield con
    finally:
        con.close()


def code_version(domain: Domain, *extra_folders) -> str:
    return folder_hash(domain.folder, *extra_folders)


def audit(con, domain: Domain, ports: list[OutputPort]) -> list[ContractReport]:
    return [
        validate_table(con, f"main.{p.name}", p.contract, domain=domain.name, port=p.name)
        for p in ports
    ]


def check_results(reports: list[ContractReport]) -> Iterator[dg.AssetCheckResult]:
    for r in reports:
        yield dg.AssetCheckResult(
            asset_key=[r.domain, r.port],
            check_name=CONTRACT_CHECK,
            passed=r.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=r.message(),
            metadata={
                "rows_checked": r.rows,
                "failures": dg.MetadataValue.json(r.as_metadata()["failures"]),
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
    """Audit every staged port; publish all of them in one commit only if all pass."""
    domain = build.domain
    crash_point("build.after_stage")
    reports = audit(build.con, domain, ports)
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
    info = {
        "ports": {r.port: {"rows": r.rows} for r in reports},
        "run_id": context.run.run_id,
        "code_version": version,
        "git_sha": git_sha(),
        "variation": {"env": mesh_env()},
        "input_versions": build.input_versions,
        "deliveries": {s: [d.partition for d in ds] for s, ds in build.deliveries.items()},
    }
    snapshot = lake.publish(build.con, domain.name, {p.name: f"main.{p.name}" for p in ports}, info)
    context.log.info(
        f"{domain.name}: published {', '.join(p.name for p in ports)} as version {snapshot}"
    )
    # judged against the previous version's metrics, so evaluated before the new one is recorded
    warnings = list(warn_results(context, build, ports, {r.port: r.rows for r in reports}))
    for r in reports:
        yield dg.MaterializeResult(
            asset_key=[domain.name, r.port],
            metadata={
                "dagster/row_count": r.rows,
                "port_version": snapshot,
                "input_port_versions": dg.MetadataValue.json(build.input_versions),
                "code_version": version,
                "git_sha": git_sha() or "",
                "variation": mesh_env(),
                "lake": dg.MetadataValue.path(str(mesh_paths().lake_dir(domain.name))),
                "duration_s": round(time.monotonic() - started, 3),
                **build.metadata.get(r.port, {}),
            },
        )
    yield from warnings
