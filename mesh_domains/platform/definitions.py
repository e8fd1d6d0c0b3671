"""Build a domain's Dagster ``Definitions`` from its descriptor and its build functions.

Every domain gets the same shape: output ports as assets ``[domain, port]`` (group = domain,
owner = team, kinds, column schema), each port's contract as a blocking asset check, other
domains' ports as external assets (so the global asset graph links code locations), eager
automation that waits for upstream blocking checks, an automation sensor that runs by default,
and a named job ``build_<domain>`` for the plain ``dagster`` CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg

from .descriptor import Domain, OutputPort, load_domain
from .ports import (
    CONTRACT_CHECK,
    BuildContext,
    attach_inputs,
    audit_and_publish,
    code_version,
    user_errors,
)
from .ports import staging_connection as _staging

AUTOMATION_INTERVAL_S = 5


@dataclass(frozen=True)
class PortBuilder:
    """A domain function that stages one or more output ports from its inputs."""

    fn: Callable[[BuildContext], dict | None]
    ports: tuple[str, ...]
    name: str
    description: str


def port_builder(*ports: str) -> Callable[[Callable], PortBuilder]:
    """Declare that the decorated function stages ``ports`` (published together, atomically)."""

    def wrap(fn: Callable[[BuildContext], dict | None]) -> PortBuilder:
        return PortBuilder(fn, tuple(ports), fn.__name__, (fn.__doc__ or "").strip())

    return wrap


def port_automation() -> dg.AutomationCondition:
    """Eager, but never on top of an upstream whose blocking check failed."""
    return (
        dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("eager after upstream contracts pass")


def column_schema(port: OutputPort) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                c.type,
                description=c.description or None,
                constraints=dg.TableColumnConstraints(
                    nullable=c.nullable,
                    unique=c.unique or [c.name] == list(port.contract.primary_key),
                    other=[f"{k}: {v}" for k, v in c.checks.items()],
                ),
            )
            for c in port.contract.columns
        ],
        constraints=dg.TableConstraints(
            other=[f"primary key ({', '.join(port.contract.primary_key)})"]
            + [f"{r.name}: {r.left} {r.op} {r.right}" for r in port.contract.rules]
        ),
    )


def port_spec(
    domain: Domain, port: OutputPort, toolchain_kind: str, version: str, deps: Sequence[list[str]]
) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=port.key,
        description=port.description,
        group_name=domain.name,
        owners=[domain.owner],
        kinds={toolchain_kind, "duckdb", "ducklake"},
        deps=[dg.AssetKey(k) for k in deps],
        code_version=version,
        automation_condition=port_automation(),
        freshness_policy=port_freshness(domain),
        tags={"mesh/domain": domain.name, "mesh/lifecycle_phase": domain.lifecycle_phase},
        metadata={
            "dagster/column_schema": column_schema(port),
            "domain": domain.name,
            "team": domain.team,
            "grants": ", ".join(port.grants) or "(owner only)",
            "primary_key": ", ".join(port.contract.primary_key),
        },
    )


def port_freshness(domain: Domain) -> dg.FreshnessPolicy | None:
    """The descriptor's SLA as Dagster's freshness policy: a port not published within
    ``sla.freshness_hours`` is overdue (shown in the UI; evaluated by the daemon)."""
    hours = domain.sla_freshness_hours
    return None if hours is None else dg.FreshnessPolicy.time_window(timedelta(hours=hours))


def port_check_specs(port: OutputPort) -> list[dg.AssetCheckSpec]:
    """The port's blocking contract check, and one non-blocking check per warn rule."""
    contract = dg.AssetCheckSpec(
        CONTRACT_CHECK,
        asset=port.key,
        blocking=True,
        description=f"Contract of {port.ref} (pandera, run in DuckDB before publish): columns, "
        "types, nullability, keys, ranges, allowed values, row rules.",
    )
    warns = [
        dg.AssetCheckSpec(
            r.name,
            asset=port.key,
            blocking=False,
            description=f"Warn-level rule on metric {r.metric!r}: "
            + (
                f"may drop by at most {r.max_drop} from the previous version"
                if r.max_drop is not None
                else f"expected {r.op} {r.value}"
            )
            + "; a breach publishes with a warning.",
        )
        for r in port.warn_rules
    ]
    return [contract, *warns]


def python_assets(domain: Domain, builder: PortBuilder) -> dg.AssetsDefinition:
    """Wrap a Python build function in write–audit–publish."""
    ports = [domain.output_port(p) for p in builder.ports]
    version = code_version(domain)
    deps = [ref.key for ref in domain.input_ports] + [landing_key(s.name) for s in domain.sources]

    @dg.multi_asset(
        name=f"{domain.name}__{builder.name}",
        specs=[port_spec(domain, p, "python", version, deps) for p in ports],
        check_specs=[spec for p in ports for spec in port_check_specs(p)],
        pool=f"{domain.name}_lake",
        description=builder.description or None,
    )
    def _build(context):
        started = time.monotonic()
        with user_errors(domain, ports), _staging(domain) as con:
            build = BuildContext(domain, con, context.log)
            build.input_versions = attach_inputs(con, domain)
            extra = builder.fn(build) or {}
            for port, meta in extra.items():
                build.metadata.setdefault(port, {}).update(meta)
            yield from audit_and_publish(context, build, ports, version, started)

    return _build


def landing_key(source: str) -> list[str]:
    return ["landing", source]


def external_input_specs(domain: Domain) -> list[dg.AssetSpec]:
    """The domain's input ports as external assets: other domains' ports, named by key only
    (never by their code), and the raw landing sources it ingests."""
    ports = [dg.AssetSpec(key=ref.key) for ref in domain.input_ports if ref.domain != domain.name]
    sources = [
        dg.AssetSpec(
            key=landing_key(s.name),
            description=s.description,
            group_name="landing",
            kinds={"csv"},
            metadata={"cadence": s.cadence, "file": f"data/landing/{s.name}/<partition>/{s.file}"},
        )
        for s in domain.sources
    ]
    return ports + sources


def domain_definitions(
    descriptor: Path | str,
    builders: Sequence[PortBuilder] = (),
    assets: Sequence[dg.AssetsDefinition] = (),
    resources: dict | None = None,
) -> dg.Definitions:
    """The code location of one domain."""
    domain = load_domain(Path(descriptor))
    own = [python_assets(domain, b) for b in builders] + list(assets)
    selection = dg.AssetSelection.assets(*own)
    return dg.Definitions(
        assets=[*own, *external_input_specs(domain)],
        jobs=[
            dg.define_asset_job(
                f"build_{domain.name}",
                selection=selection,
                description=f"Build and publish every output port of {domain.name}.",
                tags={"mesh/domain": domain.name},
            )
        ],
        sensors=[
            dg.AutomationConditionSensorDefinition(
                f"{domain.name}_automation",
                target=selection,
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=AUTOMATION_INTERVAL_S,
                description=f"Starts {domain.name} when its input ports publish a passing version.",
            )
        ],
        resources=resources or {},
    )
