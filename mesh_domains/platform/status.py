"""The state of the mesh as the Dagster instance knows it: one row per output port.

This is the table ``mesh status`` and ``mesh build`` print, and the "When" and "Is your data
good?" of the domain query: last publish, port version, rows, check results, last run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import dagster as dg
from dagster._core.events import DagsterEventType

from .descriptor import Domain, domain_levels


@dataclass
class PortStatus:
    domain: str
    port: str
    rows: int | None = None
    version: int | None = None
    checks_passed: int = 0
    checks_total: int = 0
    duration_s: float | None = None
    published_at: str | None = None
    run_id: str | None = None
    input_versions: dict | None = None
    state: str = "never built"

    @property
    def checks(self) -> str:
        return f"{self.checks_passed}/{self.checks_total}" if self.checks_total else "-"

    def as_dict(self) -> dict:
        return {**asdict(self), "checks": self.checks}


def _check_counts(instance: dg.DagsterInstance, run_id: str, key: dg.AssetKey) -> tuple[int, int]:
    passed = total = 0
    records = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    for record in records:
        evaluation = record.dagster_event.event_specific_data
        if evaluation.asset_key == key:
            total += 1
            passed += bool(evaluation.passed)
    return passed, total


def port_status(instance: dg.DagsterInstance, domain: Domain, port: str) -> PortStatus:
    status = PortStatus(domain.name, port)
    key = dg.AssetKey([domain.name, port])
    event = instance.get_latest_materialization_event(key)
    if event is None:
        return status
    meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    status.rows = meta.get("dagster/row_count")
    status.version = meta.get("port_version")
    status.duration_s = meta.get("duration_s")
    status.input_versions = meta.get("input_port_versions")
    status.run_id = event.run_id
    status.published_at = datetime.fromtimestamp(event.timestamp, UTC).isoformat(timespec="seconds")
    status.checks_passed, status.checks_total = _check_counts(instance, event.run_id, key)
    status.state = "published"
    return status


def mesh_status(instance: dg.DagsterInstance, domains: dict[str, Domain]) -> list[PortStatus]:
    """Every port of ``domains``, in build order (upstream domains first)."""
    order = [n for level in domain_levels(domains) for n in level]
    return [
        port_status(instance, domains[n], p.name) for n in order for p in domains[n].output_ports
    ]
