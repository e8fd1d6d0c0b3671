"""A domain's named jobs, and the order of runs that builds a domain whose ports have several
partitionings.

A Dagster job, and each of its runs, has one partitioning. A domain whose ports share one
partitioning (or have none) has one job, ``build_<domain>``, and one run builds it. A domain
whose ports have several (say a weekly fact and a daily one) gets ``build_<domain>`` for its
unpartitioned ports and those of the first partitioning its descriptor declares, and one job
``build_<domain>__<cadence>`` per other partitioning; a full build runs these jobs one after
the other, in the order of the dependencies between their steps (:func:`build_runs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from .descriptor import Domain
from .partitions import WEEKDAYS, Cadence


def job_name(domain: Domain) -> str:
    return f"build_{domain.name}"


def step_cadence(domain: Domain, assets: dg.AssetsDefinition) -> Cadence | None:
    """The partitioning of a build step (every port of a step has the same one)."""
    partition = domain.output_port(next(iter(assets.keys)).path[-1]).partition
    return partition.cadence if partition else None


def _partitionings(domain: Domain, own: Sequence[dg.AssetsDefinition]) -> list[Cadence]:
    """The partitionings of the ports ``own`` builds, in the order the descriptor declares."""
    built = {key.path[-1] for assets in own for key in assets.keys}
    found: list[Cadence] = []
    for port in domain.output_ports:
        if port.name in built and port.partition and port.partition.cadence not in found:
            found.append(port.partition.cadence)
    return found


def _job_suffix(cadence: Cadence, others: list[Cadence]) -> str:
    same = [c for c in others if c.cadence == cadence.cadence]
    if len(same) > 1:  # two weekly partitionings: tell them apart by the weekday weeks end on
        return f"{cadence.cadence}_{WEEKDAYS[cadence.week_ends_on]}"
    return cadence.cadence


def domain_jobs(
    domain: Domain, own: Sequence[dg.AssetsDefinition]
) -> dict[str, list[dg.AssetsDefinition]]:
    """Each named job of the domain and the build steps it runs, ``build_<domain>`` first."""
    partitionings = _partitionings(domain, own)
    main = partitionings[0] if partitionings else None
    jobs: dict[str, list[dg.AssetsDefinition]] = {job_name(domain): []}
    for cadence in partitionings[1:]:
        jobs[f"{job_name(domain)}__{_job_suffix(cadence, partitionings)}"] = []
    for assets in own:
        cadence = step_cadence(domain, assets)
        if cadence is None or cadence == main:
            jobs[job_name(domain)].append(assets)
        else:
            jobs[f"{job_name(domain)}__{_job_suffix(cadence, partitionings)}"].append(assets)
    return jobs


def port_jobs(domain: Domain, own: Sequence[dg.AssetsDefinition]) -> dict[str, str]:
    """The job that builds each port."""
    return {
        key.path[-1]: name
        for name, steps in domain_jobs(domain, own).items()
        for assets in steps
        for key in assets.keys
    }


def build_runs(
    domain: Domain, own: Sequence[dg.AssetsDefinition]
) -> list[tuple[str, list[dg.AssetsDefinition]]]:
    """The runs of a full build: (job, steps) in an order where every step runs after the
    steps of other runs it reads. Steps of one job that can run together do; a job that a
    run can finish goes first, so that a domain of two partitionings usually takes two runs."""
    jobs = domain_jobs(domain, own)
    if len(jobs) == 1:
        return [(name, steps) for name, steps in jobs.items()]
    job_of = {assets.op.name: name for name, steps in jobs.items() for assets in steps}
    step_of = {key: assets.op.name for assets in own for key in assets.keys}
    needs = {
        assets.op.name: {
            step_of[dep.asset_key]
            for spec in assets.specs
            for dep in spec.deps
            if dep.asset_key in step_of
        }
        - {assets.op.name}
        for assets in own
    }
    by_name = {assets.op.name: assets for assets in own}
    remaining, done, runs = [a.op.name for a in own], set(), []
    while remaining:
        batches: dict[str, list[str]] = {}
        for name in jobs:
            batch: list[str] = []
            grew = True
            while grew:
                ready = [
                    s
                    for s in remaining
                    if job_of[s] == name and s not in batch and needs[s] <= done | set(batch)
                ]
                batch += ready
                grew = bool(ready)
            if batch:
                batches[name] = batch
        if not batches:
            raise RuntimeError(f"domain {domain.name}: build steps depend on each other in a cycle")
        left = {n: sum(1 for s in remaining if job_of[s] == n) - len(b) for n, b in batches.items()}
        chosen = min(batches, key=lambda n: (left[n] > 0, list(jobs).index(n)))
        runs.append((chosen, [by_name[s] for s in batches[chosen]]))
        done |= set(batches[chosen])
        remaining = [s for s in remaining if s not in done]
    return runs
