"""What the Dagster instance recorded about ports: publishes, runs, check results, failures.

Each published port version is a materialization of the asset ``[domain, port]`` whose metadata
holds the port version (written by ``ports.audit_and_publish``); the run that produced it holds
the check results and, when a build stopped, the failure with its structured contract report.
Nothing here writes: the instance is the record, this module only reads it in the mesh's terms.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType

from ..ports import CONTRACT_CHECK

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# run tags that describe the host process, not how the port version was made
_PROCESS_TAGS = {"mesh/pid", "mesh/host"}


def iso(ts: float | None) -> str | None:
    """A Unix timestamp as ISO-8601 UTC, to the second."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def plain(value: Any) -> Any:
    """A metadata value as JSON-ready data (tables, paths and schemas become text)."""
    value = getattr(value, "value", value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


@dataclass(frozen=True)
class Publish:
    """One published port version as Dagster recorded it (a materialization)."""

    domain: str
    port: str
    version: int | None
    run_id: str
    storage_id: int | None
    timestamp: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def published_at(self) -> str | None:
        return iso(self.timestamp)


def _publish(key: dg.AssetKey, entry, storage_id: int | None) -> Publish:
    meta = {k: plain(v) for k, v in entry.asset_materialization.metadata.items()}
    version = meta.get("port_version")
    return Publish(
        domain=key.path[0],
        port=key.path[-1],
        version=int(version) if isinstance(version, int | str) and str(version).isdigit() else None,
        run_id=entry.run_id,
        storage_id=storage_id,
        timestamp=entry.timestamp,
        metadata=meta,
    )


def latest_publish(instance: dg.DagsterInstance, key: dg.AssetKey) -> Publish | None:
    """The port's last materialization: the version the platform last published."""
    records = instance.fetch_materializations(key, limit=1).records
    if not records:
        return None
    return _publish(key, records[0].event_log_entry, records[0].storage_id)


def publishes_in_run(instance: dg.DagsterInstance, run_id: str) -> list[Publish]:
    """Every port version a run published, in the order it published them."""
    out = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        key = entry.dagster_event.asset_key
        out.append(_publish(key, entry, None))
    return out


@dataclass(frozen=True)
class CheckResult:
    """One check evaluation on a port: the contract, a dbt test or a warn-level rule."""

    name: str
    kind: str
    passed: bool
    severity: str
    description: str | None
    metadata: dict[str, Any]
    timestamp: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "severity": self.severity,
            "description": self.description,
            "evaluated_at": iso(self.timestamp),
            **{k: v for k, v in self.metadata.items() if not k.startswith("dagster")},
        }


def _check_kind(name: str, severity: str) -> str:
    if name == CONTRACT_CHECK:
        return "contract"
    return "warn rule" if severity == "WARN" else "dbt test"


def check_results(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[CheckResult]]:
    """The check evaluations of a run, by port key (``domain/port``)."""
    out: dict[str, list[CheckResult]] = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        severity = getattr(evaluation.severity, "value", str(evaluation.severity))
        out.setdefault(evaluation.asset_key.to_user_string(), []).append(
            CheckResult(
                name=evaluation.check_name,
                kind=_check_kind(evaluation.check_name, severity),
                passed=bool(evaluation.passed),
                severity=severity,
                description=evaluation.description,
                metadata={k: plain(v) for k, v in (evaluation.metadata or {}).items()},
                timestamp=entry.timestamp,
            )
        )
    return out


@dataclass(frozen=True)
class RunSummary:
    """A run as the domain query shows it: status, timing, trigger and parameters."""

    run_id: str
    status: str
    job: str
    started_at: float | None
    ended_at: float | None
    tags: dict[str, str]
    run_config: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return round(self.ended_at - self.started_at, 3)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "job": self.job,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration_s": self.duration_s,
            "trigger": self.tags.get("mesh/trigger") or _trigger(self.tags),
        }

    @property
    def parameters(self) -> dict[str, Any]:
        """The run's mesh tags (variation, trigger, partition …) and its config, as handed over."""
        tags = {
            k: v
            for k, v in self.tags.items()
            if k not in _PROCESS_TAGS and (k.startswith("mesh/") or k.startswith("dagster/part"))
        }
        config = {k: v for k, v in self.run_config.items() if k != "loggers"}
        return {"tags": tags, "config": config}


def _trigger(tags: dict[str, str]) -> str:
    if "dagster/sensor_name" in tags or "dagster/from_automation_condition" in tags:
        return "automation"
    if "dagster/schedule_name" in tags:
        return "schedule"
    return "manual"


def run_summary(instance: dg.DagsterInstance, run_id: str) -> RunSummary | None:
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        return None
    run = record.dagster_run
    return RunSummary(
        run_id=run.run_id,
        status=run.status.value,
        job=run.job_name,
        started_at=record.start_time,
        ended_at=record.end_time,
        tags=dict(run.tags),
        run_config=plain(dict(run.run_config or {})),
    )


def last_run_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The last run that set out to build the port (published it or not)."""
    records = instance.get_asset_records([key])
    return records[0].asset_entry.last_run_id if records else None


def run_failure(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any] | None:
    """Why a run stopped: the step's message and, for a broken contract, its failures."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = entry.dagster_event.step_failure_data
        user = data.user_failure_data
        error = data.error
        while error is not None and error.cause is not None and "ExecutionError" in error.message:
            error = error.cause
        message = (user.description if user and user.description else None) or (
            error.message.strip() if error is not None else "the step failed"
        )
        contract = plain(user.metadata.get("contract")) if user and user.metadata else None
        return {"step": entry.step_key, "message": message, "contract": contract}
    return None


def warnings_of(checks: list[CheckResult]) -> list[dict[str, Any]]:
    """Warn-level rules that did not pass: published anyway, with a warning."""
    return [
        {"check": c.name, "description": c.description}
        for c in checks
        if not c.passed and c.severity == "WARN"
    ]
