"""The state of the mesh as the Dagster instance knows it: one row per output port.

This is the table ``mesh status`` and ``mesh build`` print, and the short form of the domain
query's "When" and "Is your data good?": last publish, port version, rows, check results, run.
It reads the instance through :mod:`.records`, as the domain query service does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import dagster as dg

from ..descriptor import Domain, domain_levels
from . import records


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
    metrics: dict | None = None  # what the domain's build reported (e.g. match rates)
    state: str = "never built"

    @property
    def checks(self) -> str:
        return f"{self.checks_passed}/{self.checks_total}" if self.checks_total else "-"

    def as_dict(self) -> dict:
        return {**asdict(self), "checks": self.checks}


def port_status(instance: dg.DagsterInstance, domain: Domain, port: str) -> PortStatus:
    status = PortStatus(domain.name, port)
    key = dg.AssetKey([domain.name, port])
    publish = records.latest_publish(instance, key)
    if publish is None:
        return status
    meta = publish.metadata
    status.rows = meta.get("port_rows", meta.get("dagster/row_count"))  # the whole port
    status.version = publish.version
    status.duration_s = meta.get("duration_s")
    status.input_versions = meta.get("input_port_versions")
    status.metrics = meta.get("mesh/metrics") or None
    status.run_id = publish.run_id
    status.published_at = publish.published_at
    checks = records.check_results(instance, publish.run_id).get(key.to_user_string(), [])
    status.checks_total = len(checks)
    status.checks_passed = sum(c.passed for c in checks)
    status.state = "published"
    return status


def mesh_status(instance: dg.DagsterInstance, domains: dict[str, Domain]) -> list[PortStatus]:
    """Every port of ``domains``, in build order (upstream domains first)."""
    order = [n for level in domain_levels(domains) for n in level]
    return [
        port_status(instance, domains[n], p.name) for n in order for p in domains[n].output_ports
    ]
