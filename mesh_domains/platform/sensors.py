"""Sensors that start a domain: arrivals in the landing zone, and process linkage.

Two of the three kinds of edge that start a domain's runs are sensors (the third, port → port
inside a domain, is declarative automation: see :func:`.definitions.port_automation`):

- **arrival** (``<domain>_arrivals``): for the landing sources a domain ingests first (no
  upstream domain ingests them), a new or replaced delivery is recorded as a materialization of
  its landing partition, with the file's SHA-256 as data version, and exactly the partitions it
  feeds are requested. The run key is made of the deliveries' hashes, so a re-scan requests
  nothing new and a corrected re-delivery of an old week requests that week again. On its
  first tick the sensor takes the landing zone as it finds it as the baseline when the domain
  has been built before (``mesh build``), and requests a first build when it has not — unless
  the domain reads other domains: its process linkage starts that first build.
- **process linkage** (``<domain>_linkage``): "I am done, you start, here are the parameters".
  When an upstream domain publishes (a materialization that carries a port version), the
  domain is started exactly once per upstream run, once that run has ended (run key = its run
  id) — or once for all the ended upstream runs the sensor finds in one look that share their
  parameters (tag ``mesh/upstream_runs``: a domain reading two warehouses that both followed
  one master builds once) — with the partitions the upstream publishes changed mapped onto its
  own partitioned ports, the upstream run's variation and parameters on the run's tags and
  config. Only what the publish changed is rebuilt: an unpartitioned port follows when
  something it reads has new content — a port version with exactly the rows of the one before
  (``mesh/unchanged``, e.g. a master rebuilt for a new week of Rx that brought no new
  prescriber) starts nothing by itself — or when a parameter handed over differs from the
  domain's own default (it may change every row). A domain never
  built is built whole instead (as ``mesh build`` builds it), once for the publishes it waited
  for.

Both wait while an input port of another domain has never been published (say its producer's
code server is down before its first build): a run started then could only fail. The arrival
sensor leaves the deliveries unseen meanwhile, the linkage sensor leaves the publishes it has
not handled; both pick them up once every input is there.

Both run in the domain's own code location, default RUNNING, every few seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from .descriptor import Domain, OutputPort, SourcePort, discover_domains
from .instance_config import DOMAIN_TAG  # the instance queues one run per domain at a time
from .jobs import job_name, port_jobs
from .partitions import Cadence, key_for_folder, map_keys, partitions_def
from .sources import (
    content_hash,
    deliveries,
    delivery_rules,
    partition_date,
    passed_before,
    stat_key,
)

SENSOR_INTERVAL_S = 5
PARAM_TAG = "mesh/param/"


def entry_sources(domain: Domain) -> list[SourcePort]:
    """The sources ``domain`` ingests that no domain upstream of it ingests: their arrivals
    start this domain; the others reach it through its upstream's publish."""
    domains = discover_domains()
    upstream, frontier = set(), set(domain.upstream_domains)
    while frontier:
        upstream |= frontier
        frontier = {u for d in frontier for u in domains[d].upstream_domains} - upstream
    taken = {s.name for d in upstream for s in domains[d].sources}
    return [s for s in domain.sources if s.name not in taken]


def landing_partition(source: SourcePort, folder: str) -> str | None:
    """The partition key of a delivery folder (None: unpartitioned source or bad folder)."""
    cadence = source.partitioning
    day = partition_date(delivery_rules(source), folder) if cadence else None
    if day is None:
        return None
    key = key_for_folder(cadence, day)
    return key if partitions_def(cadence).has_partition_key(key) else None


class DomainGraph:
    """What a domain's sensors need to know about its own assets: which ports each port's
    step publishes with it (a step is not split), what each port depends on, and which job
    builds it (a domain whose ports have several partitionings has a job per partitioning)."""

    def __init__(self, domain: Domain, own: Sequence[dg.AssetsDefinition]):
        self.domain = domain
        self.steps: dict[str, list[str]] = {}
        self.deps: dict[str, list[str]] = {}
        self.op_of: dict[str, str] = {}
        self.job_of: dict[str, str] = port_jobs(domain, own)
        for assets in own:
            names = [k.path[-1] for k in assets.keys]
            for spec in assets.specs:
                name = spec.key.path[-1]
                self.steps[name] = names
                self.op_of[name] = assets.op.name
                self.deps[name] = [d.asset_key.to_user_string() for d in spec.deps]

    def port(self, name: str) -> OutputPort:
        return self.domain.output_port(name)

    def with_steps(self, names) -> list[dg.AssetKey]:
        full = {n for name in names for n in self.steps[name]}
        return [dg.AssetKey([self.domain.name, n]) for n in sorted(full)]

    def partitioned(self) -> list[str]:
        return [n for n in self.steps if self.port(n).partition]

    def unpartitioned(self) -> list[str]:
        return [n for n in self.steps if not self.port(n).partition]

    @property
    def several_jobs(self) -> bool:
        return len(set(self.job_of.values())) > 1

    def job_name(self, names) -> str | None:
        """The job of a request for ``names`` (all of one job), when the domain has several."""
        return self.job_of[next(iter(names))] if self.several_jobs else None

    def jobs_of(self, names) -> dict[str, list[str]]:
        """``names`` split by the job that builds them."""
        out: dict[str, list[str]] = {}
        for name in names:
            out.setdefault(self.job_of[name], []).append(name)
        return out

    def effective(self, params: dict) -> dict:
        """The handed-over parameters that can change this domain's rows: those it declares,
        set to something other than its own default."""
        defaults = {p.name: p.default for p in self.domain.parameters}
        return {
            k: v
            for k, v in params.items()
            if k in defaults and (defaults[k] is None or str(v) != str(defaults[k]))
        }

    def run_config(self, params: dict, names) -> dict:
        """Hand parameters over to the selected steps (every step takes the declared ones)."""
        declared = {p.name for p in self.domain.parameters}
        given = {k: v for k, v in params.items() if k in declared}
        if not given:
            return {}
        return {"ops": {self.op_of[n]: {"config": given} for n in names}}


def _cadence_of(key: str) -> Cadence | None:
    domain, name = key.split("/", 1)
    if domain == "landing":
        from .descriptor import load_landing

        source = load_landing().get(name)
        return source.partitioning if source else None
    owner = discover_domains().get(domain)
    partition = owner.output_port(name).partition if owner else None
    return partition.cadence if partition else None


def partitions_to_build(graph: DomainGraph, changed: dict[str, list[str]]) -> dict[str, list[str]]:
    """For each partitioned port, the keys that ``changed`` (asset -> keys) reaches."""
    out: dict[str, list[str]] = {}
    for name in graph.partitioned():
        cadence = graph.port(name).partition.cadence
        keys: set[str] = set()
        for dep in graph.deps[name]:
            source_cadence = _cadence_of(dep)
            if dep in changed and source_cadence is not None:
                keys.update(map_keys(source_cadence, cadence, changed[dep]))
        if keys:
            out[name] = sorted(keys)
    return out


def unpartitioned_to_build(
    graph: DomainGraph, changed: dict[str, list[str]], targets: dict[str, list[str]]
) -> set[str]:
    """The unpartitioned ports to rebuild for ``changed``: those that read something it
    changed (an input port's new content, a landing source's new deliveries), or a port of
    their own domain being rebuilt (``targets``' partitions, or one of these)."""
    reached = set(changed) | {f"{graph.domain.name}/{n}" for n in targets}
    out: set[str] = set()
    grown = True
    while grown:
        grown = False
        for name in graph.unpartitioned():
            if name not in out and reached.intersection(graph.deps[name]):
                out.add(name)
                reached.add(f"{graph.domain.name}/{name}")
                grown = True
    return out


def unpublished_inputs(instance: dg.DagsterInstance, domain: Domain) -> list[str]:
    """The domain's input ports of other domains that have never been published."""
    return [
        ref.ref
        for ref in domain.input_ports
        if ref.domain != domain.name
        and instance.get_latest_materialization_event(dg.AssetKey(ref.key)) is None
    ]


def _waiting(missing: list[str]) -> str:
    return f"waiting for input port(s) never published yet: {', '.join(missing)}"


def _built(instance: dg.DagsterInstance, domain: Domain) -> bool:
    return any(
        instance.get_latest_materialization_event(dg.AssetKey(p.key)) is not None
        for p in domain.output_ports
    )


def _digest(items) -> str:
    return hashlib.sha256(json.dumps(sorted(items)).encode()).hexdigest()[:20]


def _targets(graph: DomainGraph, jobs: Sequence | None) -> dict:
    """The sensor's target: the domain's ports, or its jobs when it has several (a target
    is one job, and one job has one partitioning)."""
    if graph.several_jobs and jobs:
        return {"jobs": list(jobs)}
    return {"target": dg.AssetSelection.assets(*graph.with_steps(graph.steps))}


def arrival_sensor(graph: DomainGraph, jobs: Sequence | None = None) -> dg.SensorDefinition | None:
    domain = graph.domain
    sources = entry_sources(domain)
    if not sources:
        return None

    @dg.sensor(
        name=f"{domain.name}_arrivals",
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        **_targets(graph, jobs),
        description=f"Records new or replaced deliveries of {', '.join(s.name for s in sources)} "
        f"(data version = the file's SHA-256) and starts exactly the {domain.name} partitions "
        "they feed.",
    )
    def _arrivals(context: dg.SensorEvaluationContext):
        missing = unpublished_inputs(context.instance, domain)
        if missing:  # the deliveries stay unseen: a run now could only fail
            return dg.SkipReason(_waiting(missing))
        first_tick = not context.cursor
        built = _built(context.instance, domain)
        seen = json.loads(context.cursor) if context.cursor else {}
        events, changed = [], []
        for source in sources:
            for delivery in deliveries(source):
                ident = f"{source.name}/{delivery.partition}"
                stat = stat_key(delivery.path)
                old = seen.get(ident)
                if first_tick and built:
                    # the landing zone as found is what the mesh was built from: the baseline
                    seen[ident] = [
                        stat,
                        passed_before(source, delivery) or content_hash(delivery.path),
                    ]
                    continue
                if old and old[0] == stat:
                    continue
                sha = content_hash(delivery.path)
                seen[ident] = [stat, sha]
                if old and old[1] == sha:
                    continue
                key = landing_partition(source, delivery.partition)
                events.append(
                    dg.AssetMaterialization(
                        asset_key=["landing", source.name],
                        partition=key,
                        tags={DATA_VERSION_TAG: sha},
                        description=f"delivery {delivery.display} arrived",
                        metadata={"file": delivery.display, "sha256": sha},
                    )
                )
                changed.append((source.name, delivery.partition, key, sha))
        first_build = first_tick and not built
        if first_build and linkage_of(domain):  # process linkage starts it, once, with all
            requests = []
        else:
            requests = _arrival_requests(graph, changed, first_build=first_build)
        context.log.info(f"{len(changed)} new or replaced deliveries; {len(requests)} run(s)")
        return dg.SensorResult(run_requests=requests, asset_events=events, cursor=json.dumps(seen))

    return _arrivals


def first_build_targets(graph: DomainGraph) -> dict[str, list[str]]:
    """For each partitioned port, the partitions a first build of the domain covers: those
    ``mesh build`` builds from the same landing zone and inputs (:func:`.build.partition_keys`,
    per job: the periods of the sources and input ports feeding it)."""
    from .build import partition_keys

    out: dict[str, list[str]] = {}
    for names in graph.jobs_of(graph.partitioned()).values():
        for cadence in {graph.port(n).partition.cadence for n in names}:
            same = [n for n in names if graph.port(n).partition.cadence == cadence]
            feeds = {dep for n in same for dep in graph.deps[n]}
            keys = partition_keys(graph.domain, None, cadence, feeds)
            out.update({n: keys for n in same if keys})
    return out


def first_build_requests(graph: DomainGraph, tags: dict, run_key: str) -> list[dg.RunRequest]:
    """A domain's first build as ``mesh build`` runs it: one run per job, in the order of the
    dependencies between their ports, each over the range of :func:`first_build_targets`."""
    targets = first_build_targets(graph)
    requests = []
    for job, names in _in_build_order(graph, graph.jobs_of(graph.steps)):
        keys = sorted({k for n in names for k in targets.get(n, [])})
        if not keys:  # no period to build: its unpartitioned ports only
            names = [n for n in names if not graph.port(n).partition]
        if not names:
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"{run_key}:{job}",
                job_name=graph.job_name(names),
                asset_selection=graph.with_steps(names),
                tags={**tags, **(_range_tags(keys) if keys else {})},
            )
        )
    return requests


def _in_build_order(graph: DomainGraph, jobs: dict[str, list[str]]) -> list[tuple[str, list]]:
    """Jobs ordered so that a job comes after those whose ports its ports read (a run queue
    serves a domain's runs in order)."""
    own = {f"{graph.domain.name}/{n}": job for n, job in graph.job_of.items()}
    needs = {
        job: {
            own[d] for n in graph.steps if graph.job_of[n] == job for d in graph.deps[n] if d in own
        }
        - {job}
        for job in jobs
    }
    ordered: list[str] = []
    while len(ordered) < len(jobs):
        ready = [
            j for j in jobs if j not in ordered and not (needs[j] & (set(jobs) - set(ordered)))
        ]
        ordered += ready or [j for j in jobs if j not in ordered]  # a cycle: keep the given order
    return [(job, jobs[job]) for job in ordered]


def _arrival_requests(
    graph: DomainGraph, changed: list[tuple], first_build: bool = False
) -> list[dg.RunRequest]:
    """One run of the unpartitioned ports the changed sources feed, and one run per partition
    of the partitioned ports they feed; a domain's first build takes one run per job over the
    range of its partitions instead (as ``mesh build`` does)."""
    if not changed:
        return []
    if first_build:
        tags = {
            DOMAIN_TAG: graph.domain.name,
            "mesh/trigger": "arrival",
            "mesh/deliveries": ",".join(f"{s}/{p}" for s, p, _, _ in changed)[:1000],
        }
        return first_build_requests(
            graph, tags, f"arrival:first:{_digest([c[3] for c in changed])}"
        )
    requests = []
    landing = {f"landing/{s}" for s, *_ in changed}
    fed = [n for n in graph.unpartitioned() if set(graph.deps[n]) & landing]
    if fed:
        requests.append(
            dg.RunRequest(
                run_key=f"arrival:{_digest([c[3] for c in changed])}",
                job_name=graph.job_name(fed),
                asset_selection=graph.with_steps(fed),
                tags={
                    DOMAIN_TAG: graph.domain.name,
                    "mesh/trigger": "arrival",
                    "mesh/deliveries": ",".join(f"{s}/{p}" for s, p, _, _ in changed)[:1000],
                },
            )
        )
    by_key: dict[str, list[str]] = {}
    for s, _, key, _ in changed:
        if key is not None:
            by_key.setdefault(f"landing/{s}", []).append(key)
    shas = [c[3] for c in changed if c[2] is not None]
    targets = partitions_to_build(graph, by_key)
    for name, keys in targets.items():
        for key in keys:
            requests.append(
                dg.RunRequest(
                    run_key=f"arrival:{name}:{key}:{_digest(shas)}",
                    job_name=graph.job_name([name]),
                    partition_key=key,
                    asset_selection=graph.with_steps([name]),
                    tags={DOMAIN_TAG: graph.domain.name, "mesh/trigger": "arrival"},
                )
            )
    return requests


def _range_tags(keys: list[str]) -> dict[str, str]:
    """Tags of one run over the partitions ``keys`` (sorted): first to last."""
    return {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
        "mesh/partitions": ",".join(keys)[:1000],
    }


def linkage_of(domain: Domain) -> list:
    """The input ports of other domains: what the domain's linkage sensor follows."""
    return [ref for ref in domain.input_ports if ref.domain != domain.name]


def linkage_sensor(graph: DomainGraph, jobs: Sequence | None = None) -> dg.SensorDefinition | None:
    domain = graph.domain
    upstream = linkage_of(domain)
    if not upstream:
        return None

    @dg.sensor(
        name=f"{domain.name}_linkage",
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        **_targets(graph, jobs),
        description=f"Process linkage: starts {domain.name} once per upstream publish of "
        f"{', '.join(r.ref for r in upstream)}, with the partitions it changed and its parameters.",
    )
    def _linkage(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        missing = unpublished_inputs(context.instance, domain)
        if missing:  # later publishes stay unhandled until every input is there
            for ref in upstream:
                _new_publishes(context.instance, ref.key, cursor, start_only=True)
            return dg.SensorResult(skip_reason=_waiting(missing), cursor=json.dumps(cursor))
        if not cursor and not _built(context.instance, domain):
            # inputs there before the sensor's first look, the domain never built: build it
            for ref in upstream:
                _new_publishes(context.instance, ref.key, cursor)
            tags = {DOMAIN_TAG: domain.name, "mesh/trigger": "process linkage"}
            requests = first_build_requests(graph, tags, "linkage:first")
            return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))
        publishes: dict[str, dict] = {}
        finished: dict[str, bool] = {}
        for ref in upstream:
            records = _new_publishes(context.instance, ref.key, cursor)
            for record in records:
                if not _run_finished(context.instance, record.run_id, finished):
                    break  # "I am done": its run's later publishes are handed over together
                cursor[ref.ref] = record.storage_id
                meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
                if "port_version" not in meta or record.run_id in ("", None):
                    continue  # not a published port version
                run = publishes.setdefault(
                    record.run_id, {"domain": ref.domain, "versions": {}, "changed": {}}
                )
                run["last"] = max(run.get("last", 0), record.storage_id)
                run["versions"][ref.ref] = meta["port_version"]
                if not meta.get("mesh/unchanged") and _cadence_of(ref.ref) is None:
                    run["changed"].setdefault(ref.ref, [])  # new content, published whole
                for key, keys in (meta.get("mesh/changed") or {}).items():
                    run["changed"][key] = sorted(set(run["changed"].get(key, [])) | set(keys))
                variation = meta.get("variation_detail") or {}
                run["params"] = variation.get("params") or {}
        if publishes and not _built(context.instance, domain):
            publishes = _first_build(publishes)  # one build, not one per upstream publish
        elif len(publishes) > 1:
            publishes = _together(graph, publishes)
        requests = [
            r for run_id, run in publishes.items() for r in _linkage_requests(graph, run_id, run)
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return _linkage


def _new_publishes(
    instance: dg.DagsterInstance, key: list[str], cursor: dict, start_only: bool = False
):
    """Materializations of ``key`` after the cursor; on the first evaluation the history is
    taken as already handled (the mesh was built before the sensor started)."""
    ref = "/".join(key)
    if ref not in cursor:
        latest = instance.fetch_materializations(dg.AssetKey(key), limit=1, ascending=False)
        cursor[ref] = latest.records[0].storage_id if latest.records else 0
        return []
    if start_only:
        return []
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), after_storage_id=cursor[ref]),
        limit=100,
        ascending=True,
    )
    return result.records


def _merged(items: list[tuple[str, dict]]) -> dict:
    """Several upstream runs' publishes as one hand-over: every domain, version and changed
    partition of them, the parameters of the latest (given last) over the earlier ones'."""
    changed: dict[str, set] = {}
    for _, run in items:
        for key, keys in run["changed"].items():
            changed.setdefault(key, set()).update(keys)
    return {
        "domain": ",".join(sorted({run["domain"] for _, run in items})),
        "versions": {k: v for _, run in items for k, v in run["versions"].items()},
        "params": {k: v for _, run in items for k, v in (run.get("params") or {}).items()},
        "changed": {key: sorted(keys) for key, keys in changed.items()},
        "runs": [run_id for run_id, _ in items],
        "last": max((run.get("last", 0) for _, run in items), default=0),
    }


def _in_order(publishes: dict[str, dict]) -> list[tuple[str, dict]]:
    """Upstream runs in the order their (last) publishes were stored."""
    return sorted(publishes.items(), key=lambda item: item[1].get("last", 0))


def _first_build(publishes: dict[str, dict]) -> dict[str, dict]:
    """Upstream publishes before the domain was ever built (it waited for its inputs): handed
    over as one first build, under the latest upstream run."""
    items = _in_order(publishes)
    return {items[-1][0]: {**_merged(items), "first_build": True}}  # as mesh build builds it


_DONE = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}


def _run_finished(instance: dg.DagsterInstance, run_id: str | None, seen: dict) -> bool:
    """Whether the run that published has ended (a runless event has no run to wait for)."""
    if not run_id:
        return True
    if run_id not in seen:
        run = instance.get_run_by_id(run_id)
        seen[run_id] = run is None or run.status in _DONE
    return seen[run_id]


def _together(graph: DomainGraph, publishes: dict[str, dict]) -> dict[str, dict]:
    """Upstream publishes found in one look, handed over as one run per set of parameters
    that matter to this domain (under the latest upstream run): a domain that reads two
    domains which both published since its last look builds once, with everything both
    changed."""
    groups: dict[str, list[tuple[str, dict]]] = {}
    for run_id, run in _in_order(publishes):
        key = json.dumps(graph.effective(run.get("params") or {}), sort_keys=True)
        groups.setdefault(key, []).append((run_id, run))
    return {
        items[-1][0]: items[0][1] if len(items) == 1 else _merged(items)
        for items in groups.values()
    }


def _linkage_requests(graph: DomainGraph, run_id: str, run: dict) -> list[dg.RunRequest]:
    """One run per upstream publish that changed something this domain reads; per job when
    the domain has several (one partitioning each): the partitions the publish changed, and the
    unpartitioned ports that read what it changed (all of them when it hands over a parameter
    set to other than this domain's default)."""
    tags = {
        DOMAIN_TAG: graph.domain.name,
        "mesh/trigger": "process linkage",
        "mesh/upstream_domain": run["domain"],
        "mesh/upstream_run": run_id,
        **({"mesh/upstream_runs": ",".join(run["runs"])[:1000]} if run.get("runs") else {}),
        "mesh/upstream_versions": json.dumps(run["versions"], sort_keys=True),
        **{f"{PARAM_TAG}{k}": str(v) for k, v in (run.get("params") or {}).items()},
    }
    if run.get("first_build"):
        return first_build_requests(graph, tags, f"linkage:{run_id}")
    targets = partitions_to_build(graph, run["changed"])
    # parameters that change this domain's rows (not its defaults) rebuild it whole
    whole = set(graph.unpartitioned()) if graph.effective(run.get("params") or {}) else set()
    rebuilt = whole | unpartitioned_to_build(graph, run["changed"], targets)
    requests = []
    for job, names in graph.jobs_of(graph.steps).items():
        keys = sorted({k for n, ks in targets.items() if n in names for k in ks})
        job_tags = {**tags, **_range_tags(keys)} if keys else tags
        names = [n for n in names if n in rebuilt or (keys and n in targets)]
        if not names:
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"linkage:{run_id}"
                if job == job_name(graph.domain)
                else f"linkage:{run_id}:{job}",
                job_name=graph.job_name(names),
                asset_selection=graph.with_steps(names),
                tags=job_tags,
                run_config=graph.run_config(run.get("params") or {}, names),
            )
        )
    return requests


def domain_sensors(
    domain: Domain, own: Sequence[dg.AssetsDefinition], jobs: Sequence | None = None
) -> list:
    graph = DomainGraph(domain, own)
    sensors = (arrival_sensor(graph, jobs), linkage_sensor(graph, jobs))
    return [s for s in sensors if s is not None]
