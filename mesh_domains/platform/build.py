"""``mesh build``, the main job: every domain, in the order of the domain graph.

Each domain's ``build_<domain>`` job runs against the project's Dagster instance, so its runs,
materializations and check results appear in the Dagster UI afterwards. A domain starts as soon
as every domain it reads from has built; domains that do not depend on each other build side by
side, each as its own run in its own worker process (at most ``MESH_BUILD_PARALLEL`` at once,
default: the machine's cores). Workers are forked from a server that has already imported
Dagster, dbt and pandera, so a domain pays for its own work, not for imports. A domain whose
build fails stops everything downstream of it (their previous port versions stay served);
domains that do not depend on it still build.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import dagster as dg

from . import lake
from .descriptor import Domain, discover_domains, domain_levels
from .jobs import build_runs, step_cadence
from .partitions import CADENCES, Cadence, key_for_day, key_for_folder, map_keys
from .partitions import window as period
from .recovery import recover_dead_runs, run_tags
from .settings import mesh_env, mesh_paths
from .sources import deliveries, delivery_rules, partition_date
from .workers import WORKER_PRELOAD, build_parallelism, worker_context


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


def domain_job(domain: str, job: str | None = None) -> dg.JobDefinition:
    """The domain's named job (default ``build_<domain>``), from its code location module
    (the domain's own code)."""
    module = importlib.import_module(f"mesh_domains.{domain}.definitions")
    return module.defs.resolve_job_def(job or f"build_{domain}")


def domain_runs(domain: Domain) -> list[tuple[str, list[dg.AssetsDefinition]]]:
    """The runs of a full build of ``domain``: one, unless its ports have several
    partitionings (then one per job, in dependency order: :func:`.jobs.build_runs`)."""
    module = importlib.import_module(f"mesh_domains.{domain.name}.definitions")
    own = [
        a
        for a in module.defs.assets or ()
        if isinstance(a, dg.AssetsDefinition) and a.is_executable
    ]
    return build_runs(domain, own)


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
    parallel: int | None = None,
    options: BuildOptions | None = None,
) -> BuildReport:
    """Build ``only`` the named domains (default: all) in the order of the domain graph.

    A domain starts once all its upstream domains (among those built) succeeded; independent
    domains build side by side, up to ``parallel`` (default :func:`build_parallelism`), each
    in a worker process; a build of one domain (or ``parallel`` 1) runs in this process, which
    then loads what the workers preload before its first domain when dbt is among them.
    ``on_event(domain, phase, result)`` reports progress: phase is ``start`` or ``end``.
    """
    domains = discover_domains()
    wanted = set(only or domains)
    unknown = wanted - set(domains)
    if unknown:
        raise KeyError(
            f"unknown domain(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(domains))})"
        )
    report = BuildReport()
    report.recovered = recover_dead_runs(instance)
    levels = {n: i for i, level in enumerate(domain_levels(domains)) for n in level}
    # of the domains ready to start, those more domains wait for go first, then the deeper
    order = sorted(
        (n for n in levels if n in wanted),
        key=lambda n: (-len(downstream_of(n, domains) & wanted), -levels[n], n),
    )
    parallel = parallel or build_parallelism()
    ref = _instance_ref(instance)
    if parallel == 1 or ref is None or len(order) == 1:  # one at a time: no worker pool
        if len(order) > 1 and any(domains[n].toolchain == "dbt" for n in order):
            # load once, before the first domain, what workers load before they fork: each
            # domain's time is then its own work (the first dbt domain does not pay for dbt)
            importlib.import_module(WORKER_PRELOAD[0])
        run = lambda name: _build_domain(instance, name, options)  # noqa: E731
        _schedule(order, domains, report, on_event, run, None, 1)
        return report
    with ProcessPoolExecutor(
        max_workers=parallel, mp_context=worker_context(), max_tasks_per_child=1
    ) as pool:
        env = dict(os.environ, MESH_BUILD_PID=str(os.getpid()))
        submit = lambda name: pool.submit(_build_in_worker, name, ref, env, options)  # noqa: E731
        _schedule(order, domains, report, on_event, None, submit, parallel)
    return report


def _schedule(order, domains, report, on_event, run, submit, slots: int) -> None:
    """Start each domain when its upstream domains are done, at most ``slots`` at once, in
    the order given among those ready: inline (``run``) or in workers (``submit``); a failure
    skips everything downstream of it."""
    pending, blocked = list(order), set()
    running: dict[Future, str] = {}
    finished: set[str] = set()

    def finish(name: str, result: DomainResult) -> None:
        report.results.append(result)
        finished.add(name)
        on_event(name, "end", result)
        if result.state != "built":
            blocked.update(downstream_of(name, domains))

    while pending or running:
        for name in list(pending):
            if name in blocked:
                pending.remove(name)
                finish(name, DomainResult(name, "skipped", error="an upstream domain failed"))
                continue
            ups = {u for u in domains[name].upstream_domains if u in order}
            if not ups <= finished or len(running) >= slots:
                continue
            pending.remove(name)
            on_event(name, "start", None)
            if submit is None:
                finish(name, run(name))
            else:
                running[submit(name)] = name
        if not running:
            continue
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in done:
            name = running.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 — a worker that died is a failed domain
                result = DomainResult(name, "failed", error=f"the build's worker died: {exc!r}")
            finish(name, result)


def _instance_ref(instance: dg.DagsterInstance):
    try:
        return instance.get_ref()
    except Exception:  # noqa: BLE001 — an ephemeral instance cannot be shared: build inline
        return None


def _build_in_worker(name: str, ref, env: dict[str, str], options) -> DomainResult:
    """One domain's build in a worker process, on the same instance as the caller."""
    os.environ.clear()
    os.environ.update(env)
    with dg.DagsterInstance.from_ref(ref) as instance:
        return _build_domain(instance, name, options)


def build_log(name: str) -> Path:
    """Where the tool output (dbt's log lines, warnings) of a domain's last build goes."""
    path = mesh_paths().data / "logs" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class BuildOptions:
    """What varies between builds of the same code: the periods (a backfill's date window;
    default: every period the landing zone holds) and the domains' run parameters."""

    window: tuple[date, date] | None = None
    params: dict = field(default_factory=dict)


def partition_keys(
    domain: Domain,
    window: tuple[date, date] | None = None,
    cadence: Cadence | None = None,
    feeds: set[str] | None = None,
) -> list[str]:
    """The partitions of the domain's partitioned ports that the landing zone holds data for
    (within ``window``), mapped from each partitioned source onto the ports' cadence, and
    those of the periods its partitioned input ports hold (:func:`input_port_keys`).

    A domain whose ports have several partitionings names the ``cadence`` of the ports being
    built and the inputs that ``feeds`` them (``landing/<source>``, ``<producer>/<port>``)."""
    cadences = {p.partition.cadence for p in domain.output_ports if p.partition}
    if cadence is not None:
        cadences = {cadence}
    if not cadences:
        return []
    if len(cadences) > 1:
        raise ValueError(
            f"domain {domain.name}: ports of several cadences ({', '.join(map(str, cadences))}) "
            "cannot be built in one run; build them one cadence at a time"
        )
    (cadence,) = cadences
    keys: set[str] = set()
    fed_by = [
        s
        for s in domain.sources
        if s.partitioning is not None and (feeds is None or f"landing/{s.name}" in feeds)
    ]
    # periods come from the sources cut at least as finely as the ports: a coarser one (the
    # quarterly rebates next to weekly claims) applies to those periods but adds none
    rank = {c: i for i, c in enumerate(CADENCES)}
    fine = [s for s in fed_by if rank[s.partitioning.cadence] <= rank[cadence.cadence]]
    for source in fine or fed_by:
        rules = delivery_rules(source)
        for delivery in deliveries(source):
            day = partition_date(rules, delivery.partition)
            if day is None:
                continue
            key = key_for_folder(source.partitioning, day)
            keys.update(map_keys(source.partitioning, cadence, [key]))
    keys.update(input_port_keys(domain, cadence, feeds))
    if window is not None:
        first, last = window
        keys = {k for k in keys if first <= period(cadence, k)[1] and period(cadence, k)[0] <= last}
    return sorted(keys)


def input_port_keys(domain: Domain, cadence: Cadence, feeds: set[str] | None = None) -> set[str]:
    """The partitions (of ``cadence``) of the periods that the domain's partitioned input
    ports hold as served now: a domain fed by other domains' ports, not by the landing zone,
    builds the periods its producers published."""
    producers = discover_domains()
    partitioned = [
        (producers[ref.domain], port)
        for ref in domain.input_ports
        if ref.domain in producers and (feeds is None or ref.ref in feeds)
        for port in producers[ref.domain].output_ports
        if port.name == ref.port and port.partition is not None
    ]
    if not partitioned:
        return set()
    keys: set[str] = set()
    con = lake.connect()
    try:
        for producer, port in partitioned:
            served = lake.served_ports(producer.name)
            if not served.get(port.name) or not served[port.name].files:
                continue  # nothing published yet (the build says what is missing)
            view, _ = lake.open_port(con, domain.name, producer, port.name, served=served)
            column = port.partition.column
            days = con.execute(
                f'select distinct cast("{column}" as date) from {view} where "{column}" is not null'
            ).fetchall()
            keys.update(key_for_day(cadence, day) for (day,) in days)
    finally:
        con.close()
    return keys


def _run_request(
    domain: Domain,
    job: dg.JobDefinition,
    options: BuildOptions,
    steps: list[dg.AssetsDefinition] | None = None,
) -> dict | None:
    """Tags, run config and asset selection of one domain's build run (of ``steps`` only,
    when the domain's build takes several runs; None when they have nothing to build)."""
    params = {**domain.variation_params(mesh_env()), **options.params}
    window = options.window
    as_of = params.get("as_of")
    if as_of:  # an as-of build publishes no period after that day
        cut = date.fromisoformat(str(as_of))
        window = (window[0] if window else date.min, min(window[1], cut) if window else cut)
    if steps is not None:
        return _steps_request(domain, job, steps, window, params)
    keys = partition_keys(domain, window)
    tags = {}
    selection = None
    if keys:
        tags = {
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
            "mesh/partitions": ",".join(keys)[:1000],
        }
    elif any(p.partition for p in domain.output_ports):
        selection = [dg.AssetKey(p.key) for p in domain.output_ports if not p.partition]
    module = importlib.import_module(f"mesh_domains.{domain.name}.definitions")
    executable = [
        a
        for a in module.defs.assets or ()
        if isinstance(a, dg.AssetsDefinition) and a.is_executable
    ]
    return _with_parameters(domain, params, executable, tags, selection)


def _with_parameters(domain: Domain, params: dict, steps, tags: dict, selection) -> dict:
    """The request with the declared parameters as tags and as the steps' op config."""
    declared = {p.name for p in domain.parameters}
    given = {k: v for k, v in params.items() if k in declared}
    ops = {}
    if given:
        ops = {assets.op.name: {"config": given} for assets in steps}
        tags.update({f"mesh/param/{k}": str(v) for k, v in given.items()})
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if ops:
        run_config["ops"] = ops
    return {"tags": tags, "run_config": run_config, "asset_selection": selection}


def _steps_request(
    domain: Domain, job, steps: list[dg.AssetsDefinition], window, params: dict
) -> dict | None:
    """One of several runs of a domain's build: its partitioned steps over the periods their
    own inputs hold, its unpartitioned steps once; None when nothing is left to build."""
    partitioned = [a for a in steps if step_cadence(domain, a) is not None]
    keys: list[str] = []
    if partitioned:
        feeds = {d.asset_key.to_user_string() for a in partitioned for s in a.specs for d in s.deps}
        keys = partition_keys(domain, window, step_cadence(domain, partitioned[0]), feeds)
    chosen = [a for a in steps if keys or step_cadence(domain, a) is None]
    if not chosen:
        return None
    tags = {}
    if keys:
        tags = {
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
            "mesh/partitions": ",".join(keys)[:1000],
        }
    selection = [key for a in chosen for key in a.keys]
    return _with_parameters(domain, params, chosen, tags, selection)


def execute_domain(
    instance: dg.DagsterInstance,
    name: str,
    options: BuildOptions | None = None,
    trigger: str = "mesh build",
) -> dg.ExecuteInProcessResult:
    """Run the domain's ``build_<domain>`` job in this process: every partition the landing
    zone holds (or the options' window) as one range run, with the options' parameters.

    A domain whose ports have several partitionings takes one run per job, one after the
    other in dependency order; the result is the last run's, or the first failed run's (a
    failed run stops the build: later runs would read what it did not publish)."""
    domain = discover_domains()[name]
    if domain.toolchain == "dbt":
        # the run's dbt runs in this process: load it before the code location, so a project
        # that changed is parsed here once (not by a dbt process, then again for the runner)
        importlib.import_module("dbt.cli.main")
    runs = domain_runs(domain)
    result = None
    for job_name, steps in runs:
        job = domain_job(name, job_name)
        request = _run_request(
            domain, job, options or BuildOptions(), steps if len(runs) > 1 else None
        )
        if request is None:
            continue
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={
                "mesh/domain": name,
                "mesh/env": mesh_env(),
                "mesh/trigger": trigger,
                **request["tags"],
                **run_tags(),
            },
            run_config=request["run_config"],
            asset_selection=request["asset_selection"],
        )
        if not result.success:
            return result
    if result is None:
        raise ValueError(
            f"domain {name}: nothing to build - no partitioned source of its ports has a "
            "delivery in the periods asked for"
        )
    return result


def _build_domain(
    instance: dg.DagsterInstance, name: str, options: BuildOptions | None = None
) -> DomainResult:
    started = time.monotonic()
    log = build_log(name)
    with log.open("w") as out, redirect_stdout(out), redirect_stderr(out):
        try:
            result = execute_domain(instance, name, options)
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
