"""``mesh build``, the main job: every domain, in the order of the domain graph.

Each domain's ``build_<domain>`` job runs against the project's Dagster instance, so its runs,
materializations and check results appear in the Dagster UI afterwards. A domain whose build
fails stops everything downstream of it (their previous port versions stay served); domains that
do not depend on it still build.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from .descriptor import Domain, discover_domains, domain_levels
from .recovery import recover_dead_runs, run_tags
from .settings import mesh_env, mesh_paths


@dataclass
class DomainResult:
    domain: str
    state: str  # built | failed | skipped
    seconds: float = 0.0
    run_id: str | None = None
    error: str | None = None


@dataclass
class BuildReport:
    results: list[DomainResult] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.state == "built" for r in self.results)


def domain_job(domain: str) -> dg.JobDefinition:
    """The domain's named job, from its code location module (the domain's own code)."""
    module = importlib.import_module(f"mesh_domains.{domain}.definitions")
    return module.defs.resolve_job_def(f"build_{domain}")


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    messages = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            # unwrap Dagster's "error occurred while executing op" to the user's cause
            while (
                error is not None
                and error.cause is not None
                and ("DagsterExecutionStepExecutionError" in error.message)
            ):
                error = error.cause
            if error is not None:
                text = error.message.strip()
                # a dg.Failure's description is the user-facing text; drop the class prefix
                messages.append(text.split(": ", 1)[1] if text.startswith("dagster.") else text)
    return "\n".join(messages) or "the run failed (see the Dagster UI for its logs)"


def downstream_of(failed: str, domains: dict[str, Domain]) -> set[str]:
    hit, frontier = set(), {failed}
    while frontier:
        frontier = {n for n, d in domains.items() if set(d.upstream_domains) & frontier} - hit
        hit |= frontier
    return hit


def build_mesh(
    instance: dg.DagsterInstance,
    only: Iterable[str] | None = None,
    on_event: Callable[[str, str, DomainResult | None], None] = lambda *a: None,
) -> BuildReport:
    """Build ``only`` the named domains (default: all) level by level in the domain graph.

    ``on_event(domain, phase, result)`` reports progress: phase is ``start`` or ``end``.
    """
    domains = discover_domains()
    wanted = set(only or domains)
    unknown = wanted - set(domains)
    if unknown:
        raise KeyError(
            f"unknown domain(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(domains))})"
        )
    report, blocked = BuildReport(), set()
    report.recovered = recover_dead_runs(instance)
    for level in domain_levels(domains):
        for name in (n for n in level if n in wanted):
            if name in blocked:
                result = DomainResult(name, "skipped", error="an upstream domain failed")
                report.results.append(result)
                on_event(name, "end", result)
                continue
            on_event(name, "start", None)
            result = _build_domain(instance, name)
            report.results.append(result)
            on_event(name, "end", result)
            if result.state == "failed":
                blocked |= downstream_of(name, domains)
    return report


def build_log(name: str) -> Path:
    """Where the tool output (dbt's log lines, warnings) of a domain's last build goes."""
    path = mesh_paths().data / "logs" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _build_domain(instance: dg.DagsterInstance, name: str) -> DomainResult:
    started = time.monotonic()
    log = build_log(name)
    with log.open("w") as out, redirect_stdout(out), redirect_stderr(out):
        try:
            job = domain_job(name)
            result = job.execute_in_process(
                instance=instance,
                raise_on_error=False,
                tags={
                    "mesh/domain": name,
                    "mesh/env": mesh_env(),
                    "mesh/trigger": "mesh build",
                    **run_tags(),
                },
                run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            )
        except Exception as exc:  # noqa: BLE001 — a domain that cannot load is reported
            return DomainResult(
                name, "failed", time.monotonic() - started, error=f"{exc}\n(full log: {log})"
            )
    elapsed = time.monotonic() - started
    if result.success:
        return DomainResult(name, "built", elapsed, result.run_id)
    return DomainResult(
        name, "failed", elapsed, result.run_id, f"{_failure_message(result)}\n(full log: {log})"
    )
