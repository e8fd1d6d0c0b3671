"""Event linkage: the mesh's domain events, derived from Dagster's event log.

Run started / succeeded / failed, check passed / warned / failed, port published / not
published, freshness breached / restored: each is one entry of the instance's event log, read
in the log's own order. An event's id is the entry's storage id in the log, so ids are stable
and increasing: reading the log again (a replay, a reconnecting subscriber) yields the same
events with the same ids, never duplicates, and ``since=<id>`` resumes exactly after one.
Nothing is stored beside the log.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType

from . import records

E = DagsterEventType
SOURCES = (
    E.RUN_START,
    E.RUN_SUCCESS,
    E.RUN_FAILURE,
    E.RUN_CANCELED,
    E.ASSET_CHECK_EVALUATION,
    E.ASSET_MATERIALIZATION,
    E.ASSET_FAILED_TO_MATERIALIZE,
    E.FRESHNESS_STATE_CHANGE,
)
RUN_TYPES = {
    E.RUN_START: "run.started",
    E.RUN_SUCCESS: "run.succeeded",
    E.RUN_FAILURE: "run.failed",
    E.RUN_CANCELED: "run.canceled",
}
EVENT_TYPES = (
    *RUN_TYPES.values(),
    "check.passed",
    "check.warned",
    "check.failed",
    "port.published",
    "port.not_published",
    "freshness.breached",
    "freshness.warned",
    "freshness.restored",
)
MAX_LIMIT = 1000


@dataclass(frozen=True)
class DomainEvent:
    """One domain event: ``id`` is its place in the Dagster event log."""

    id: int
    type: str
    domain: str | None
    port: str | None
    run_id: str | None
    at: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunDomains:
    """Which domain a run belongs to (a run never changes domain, so answers are kept)."""

    def __init__(self, instance: dg.DagsterInstance, domains: set[str]):
        self.instance = instance
        self.domains = domains
        self._known: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def __call__(self, run_id: str) -> str | None:
        if run_id in self._known:
            return self._known[run_id]
        run = self.instance.get_run_by_id(run_id)
        domain = None
        if run is not None:
            candidates = [run.tags.get("mesh/domain"), run.job_name.removeprefix("build_")]
            candidates += [k.path[0] for k in run.asset_selection or ()]
            domain = next((c for c in candidates if c in self.domains), None)
        with self._lock:
            self._known[run_id] = domain
        return domain


def _event(storage_id: int, entry, run_domain: RunDomains, failures: dict) -> DomainEvent | None:
    event = entry.dagster_event
    kind = event.event_type
    at = records.iso(entry.timestamp) or ""
    run_id = entry.run_id or None
    if kind in RUN_TYPES:
        domain = run_domain(entry.run_id)
        if domain is None:
            return None  # a run outside the mesh (e.g. an ad-hoc job) is no domain event
        data: dict[str, Any] = {}
        if kind == E.RUN_FAILURE:
            if entry.run_id not in failures:
                failures[entry.run_id] = records.run_failure(run_domain.instance, entry.run_id)
            data = {"failure": failures[entry.run_id]}
        return DomainEvent(storage_id, RUN_TYPES[kind], domain, None, run_id, at, data)
    if kind == E.ASSET_CHECK_EVALUATION:
        evaluation = event.event_specific_data
        key = evaluation.asset_key
        severity = getattr(evaluation.severity, "value", str(evaluation.severity))
        verdict = "passed" if evaluation.passed else ("warned" if severity == "WARN" else "failed")
        data = {
            "check": evaluation.check_name,
            "severity": severity,
            "description": evaluation.description,
            **{k: records.plain(v) for k, v in (evaluation.metadata or {}).items()},
        }
        return DomainEvent(
            storage_id, f"check.{verdict}", key.path[0], key.path[-1], run_id, at, data
        )
    key = event.asset_key
    if key is None or len(key.path) != 2:
        return None
    if kind == E.ASSET_MATERIALIZATION:
        meta = {k: records.plain(v) for k, v in entry.asset_materialization.metadata.items()}
        data = {
            "version": meta.get("port_version"),
            "rows": meta.get("dagster/row_count"),
            "input_versions": meta.get("input_port_versions"),
            "code_version": meta.get("code_version"),
            "variation": meta.get("variation"),
        }
        if event.partition:
            data["partition"] = event.partition
        return DomainEvent(storage_id, "port.published", key.path[0], key.path[1], run_id, at, data)
    if kind == E.ASSET_FAILED_TO_MATERIALIZE:
        return DomainEvent(storage_id, "port.not_published", key.path[0], key.path[1], run_id, at)
    if kind == E.FRESHNESS_STATE_CHANGE:
        change = event.event_specific_data
        new = getattr(change.new_state, "value", str(change.new_state))
        old = getattr(change.previous_state, "value", str(change.previous_state))
        verdict = {"FAIL": "breached", "WARN": "warned", "PASS": "restored"}.get(new)
        if verdict is None or (verdict == "restored" and old not in ("FAIL", "WARN")):
            return None
        data = {"state": new, "previous_state": old}
        return DomainEvent(
            storage_id, f"freshness.{verdict}", key.path[0], key.path[1], None, at, data
        )
    return None


def parse_since(value: str | None) -> tuple[int, float | None]:
    """``since`` as an event id (resume after it) or an ISO-8601 time (events from then on).

    Raises ValueError with a message fit for the caller."""
    if value is None or value == "":
        return -1, None
    text = value.strip()
    if text.lstrip("-").isdigit():
        number = int(text)
        if number < -1 or number > 2**62:
            raise ValueError(f"since={value!r}: an event id must be between -1 and 2^62")
        return number, None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"since={value!r} is neither an event id (e.g. 42) nor an ISO-8601 time "
            "(e.g. 2026-10-31T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"since={value!r}: give the time zone (e.g. a trailing Z for UTC)")
    return -1, moment.timestamp()


def latest_id(instance: dg.DagsterInstance) -> int:
    return instance.event_log_storage.get_maximum_record_id() or -1


def read_events(
    instance: dg.DagsterInstance,
    run_domain: RunDomains,
    *,
    after: int = -1,
    not_before: float | None = None,
    domain: str | None = None,
    types: set[str] | None = None,
    limit: int = 100,
) -> tuple[list[DomainEvent], int]:
    """Domain events after event id ``after``, in log order; returns them and the id to resume
    after (the last entry read, even one filtered out, so paging never re-reads)."""
    limit = max(1, min(limit, MAX_LIMIT))
    storage = instance.event_log_storage
    out: list[DomainEvent] = []
    cursor = after
    failures: dict[str, Any] = {}
    while len(out) < limit:
        page: dict[int, Any] = {}
        for kind in SOURCES:  # one query per type: the storage's supported form
            page.update(
                storage.get_logs_for_all_runs_by_log_id(
                    after_cursor=cursor, dagster_event_type=kind, limit=limit
                )
            )
        if not page:
            break
        # only the first `limit` ids are complete across types: keep those, resume after them
        ids = sorted(page)[:limit]
        for storage_id in ids:
            entry = page[storage_id]
            cursor = storage_id
            if not_before is not None and entry.timestamp < not_before:
                continue
            event = _event(storage_id, entry, run_domain, failures)
            if event is None or (domain and event.domain != domain):
                continue
            if types and event.type not in types:
                continue
            out.append(event)
            if len(out) == limit:
                break
        if len(page) < limit:
            break
    return out, cursor
