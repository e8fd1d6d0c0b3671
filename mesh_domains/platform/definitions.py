"""Build a domain's Dagster ``Definitions`` from its descriptor and its build functions.

Every domain gets the same shape: output ports as assets ``[domain, port]`` (group = domain,
owner = team, kinds, column schema, cadence partitions), each port's contract as a blocking
asset check, other domains' ports and the landing sources as external assets carrying their
owners' partitions (so the global asset graph links code locations), and a named job
``build_<domain>`` for the plain ``dagster`` CLI (one per partitioning when the ports have
several: :mod:`.jobs`). Automation, one mechanism per edge:

- landing source → domain: the domain's arrival sensor (:mod:`.sensors`);
- another domain's port → domain: the domain's process-linkage sensor, which hands the
  upstream run's partitions and parameters over;
- port → port inside the domain: declarative automation (eager, after upstream blocking checks
  pass, for every partition, not only the latest), evaluated by the domain's automation sensor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg

from .descriptor import Domain, OutputPort, discover_domains, load_domain, load_landing
from .instance_config import DOMAIN_TAG
from .jobs import domain_jobs
from .lake import lake_alias
from .partitions import Cadence, partitions_def
from .ports import (
    CONTRACT_CHECK,
    BuildContext,
    attach_inputs,
    audit_and_publish,
    code_version,
    given_parameters,
    partition_scope,
    user_errors,
)
from .ports import staging_connection as _staging
from .sensors import domain_sensors
from .settings import mesh_paths

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


def port_automation(external: Sequence[list[str]] = ()) -> dg.AutomationCondition:
    """Eager on the domain's own upstream ports, for any partition (a late or corrected week
    propagates, not only the newest), never on top of an upstream whose blocking check failed.
    ``external`` deps (landing sources, other domains' ports) are left to the sensors."""
    # not limited to the latest time window; periods never delivered are no reason to wait
    eager = (
        dg.AutomationCondition.eager()
        .without(dg.AutomationCondition.in_latest_time_window())
        .without(~dg.AutomationCondition.any_deps_missing())
    )
    if external:
        eager = eager.ignore(dg.AssetSelection.assets(*[dg.AssetKey(k) for k in external]))
    return (eager & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label(
        "eager after upstream contracts pass"
    )


def partitioning_of(domain: Domain, key: Sequence[str]) -> Cadence | None:
    """The cadence partitions of any asset a port may depend on, from descriptors only."""
    if key[0] == "landing":
        return load_landing()[key[1]].partitioning
    owner = domain if key[0] == domain.name else discover_domains()[key[0]]
    partition = owner.output_port(key[1]).partition
    return partition.cadence if partition else None


def port_partitions(port: OutputPort) -> dg.PartitionsDefinition | None:
    return partitions_def(port.partition.cadence) if port.partition else None


def port_deps(domain: Domain, port: OutputPort, deps: Sequence[list[str]]) -> list[dg.AssetDep]:
    """Dependencies with their partition mappings: between two cadences by time overlap (a
    week that straddles two months feeds both), everything for an unpartitioned port."""
    out = []
    for key in deps:
        upstream = partitioning_of(domain, key)
        mapping = None
        if upstream is not None and port.partition is not None:
            mapping = dg.TimeWindowPartitionMapping()
        elif upstream is not None:
            mapping = dg.AllPartitionMapping()
        out.append(dg.AssetDep(dg.AssetKey(list(key)), partition_mapping=mapping))
    return out


def column_schema(
    port: OutputPort, descriptions: Mapping[str, str] | None = None
) -> dg.TableSchema:
    """The contract's columns; a column the descriptor does not describe takes the toolchain's
    description (``descriptions``: a dbt model's column descriptions)."""
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                c.type,
                description=c.description or descriptions.get(c.name) or None,
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
    domain: Domain,
    port: OutputPort,
    toolchain_kind: str,
    version: str,
    deps: Sequence[list[str]],
    column_descriptions: Mapping[str, str] | None = None,
) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=port.key,
        description=port.description,
        group_name=domain.name,
        owners=[domain.owner],
        kinds={toolchain_kind, "duckdb", "ducklake"},
        deps=port_deps(domain, port, deps),
        partitions_def=port_partitions(port),
        code_version=version,
        automation_condition=port_automation([k for k in deps if k[0] != domain.name]),
        freshness_policy=port_freshness(domain),
        tags={"mesh/domain": domain.name, "mesh/lifecycle_phase": domain.lifecycle_phase},
        metadata={
            "dagster/column_schema": column_schema(port, column_descriptions),
            # the UI's "Storage": the published lake table consumers read, never staging
            "dagster/table_name": f"{lake_alias(domain.name)}.main.{port.name}",
            "dagster/uri": mesh_paths().catalog_uri(domain.name),
            "domain": domain.name,
            "team": domain.team,
            "grants": ", ".join(port.grants) or "(owner only)",
            "primary_key": ", ".join(port.contract.primary_key),
            **(
                {"partitioned_by": f"{port.partition.column}, {port.partition.cadence.describe()}"}
                if port.partition
                else {}
            ),
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
    if len({p.partition.cadence if p.partition else None for p in ports}) > 1:
        raise ValueError(
            f"domain {domain.name}: builder {builder.name} stages ports of different "
            "partitionings; give each partitioning its own builder"
        )
    version = code_version(domain)
    deps = [ref.key for ref in domain.input_ports] + [landing_key(s.name) for s in domain.sources]
    partitioned = ports[0].partition is not None

    @dg.multi_asset(
        name=f"{domain.name}__{builder.name}",
        specs=[port_spec(domain, p, "python", version, deps) for p in ports],
        check_specs=[spec for p in ports for spec in port_check_specs(p)],
        pool=f"{domain.name}_lake",
        description=builder.description or None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        config_schema=parameter_schema(domain),
    )
    def _build(context):
        started = time.monotonic()
        with user_errors(domain, ports), _staging(domain) as con:
            build = BuildContext(domain, con, context.log, scope=partition_scope(context, ports))
            build.params = given_parameters(context)
            build.code_version = version
            build.input_versions = attach_inputs(con, domain)
            extra = builder.fn(build) or {}
            for port, meta in extra.items():
                build.metadata.setdefault(port, {}).update(meta)
            yield from audit_and_publish(context, build, ports, version, started)

    return _build


def parameter_schema(domain: Domain) -> dict[str, dg.Field]:
    """The domain's declared parameters as run config (the launchpad shows them; ``mesh build
    --set key=value`` and the ``dagster`` CLI set them); every run records what it used."""
    types = {"string": str, "int64": int, "float64": float, "boolean": bool, "date": str}
    return {
        p.name: dg.Field(
            types[p.type],
            is_required=False,
            default_value=p.default,
            description=p.description or None,
        )
        if p.default is not None
        else dg.Field(dg.Noneable(types[p.type]), is_required=False, description=p.description)
        for p in domain.parameters
    }


def landing_key(source: str) -> list[str]:
    return ["landing", source]


def external_input_specs(domain: Domain) -> list[dg.AssetSpec]:
    """The domain's input ports as external assets: other domains' ports, named by key only
    (never by their code), and the raw landing sources it ingests."""
    producers = discover_domains()
    ports = [
        dg.AssetSpec(
            key=ref.key,
            partitions_def=port_partitions(producers[ref.domain].output_port(ref.port)),
        )
        for ref in domain.input_ports
        if ref.domain != domain.name
    ]
    sources = [
        dg.AssetSpec(
            key=landing_key(s.name),
            description=s.description,
            group_name="landing",
            kinds={"csv"},
            partitions_def=partitions_def(s.partitioning) if s.partitioning else None,
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
    jobs = domain_jobs(domain, own)
    job_defs = [
        dg.define_asset_job(
            name,
            selection=dg.AssetSelection.assets(*steps),
            description=f"Build and publish every output port of {domain.name}."
            if len(jobs) == 1
            else f"Build and publish {', '.join(k.path[-1] for a in steps for k in a.keys)} "
            f"of {domain.name} (a job has one partitioning).",
            tags={DOMAIN_TAG: domain.name},
        )
        for name, steps in jobs.items()
    ]
    return dg.Definitions(
        assets=[*own, *external_input_specs(domain)],
        jobs=job_defs,
        sensors=[
            dg.AutomationConditionSensorDefinition(
                f"{domain.name}_automation",
                target=selection,
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=AUTOMATION_INTERVAL_S,
                run_tags={DOMAIN_TAG: domain.name},  # one queued run per domain at a time
                description=f"Propagates changes between {domain.name}'s own ports (any "
                "partition), once their upstream contracts pass.",
            ),
            *domain_sensors(domain, own, job_defs),
        ],
        resources=resources or {},
        # a domain's steps share one process: a step of its own would pay the imports again
        executor=dg.in_process_executor,
    )
