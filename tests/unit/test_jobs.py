"""A domain whose ports have several partitionings: one job per partitioning, and a full
build as runs in dependency order (a Dagster job and each run have one partitioning)."""

from pathlib import Path

import dagster as dg
import yaml

from mesh_domains.platform.descriptor import load_domain
from mesh_domains.platform.jobs import build_runs, domain_jobs, port_jobs
from mesh_domains.platform.partitions import parse_cadence, partitions_def

DAY = {"day": {"type": "date", "nullable": False}}


def _domain(tmp_path: Path):
    """A descriptor with a dimension, a weekly and a daily fact, and a mart over all three."""
    ports = {
        "dim": {"description": "d", "columns": {"id": {"type": "string"}}},
        "fact_w": {
            "description": "w",
            "columns": DAY,
            "partition": {"cadence": "weekly", "column": "day", "week_ends_on": "saturday"},
        },
        "fact_d": {
            "description": "d",
            "columns": DAY,
            "partition": {"cadence": "daily", "column": "day"},
        },
        "mart": {"description": "m", "columns": {"id": {"type": "string"}}},
    }
    raw = {
        "name": "mix",
        "team": "T",
        "owner": "team:t",
        "description": "d",
        "toolchain": "dbt",
        "output_ports": ports,
    }
    folder = tmp_path / "mix"
    folder.mkdir()
    (folder / "domain.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_domain(folder)


def _step(domain, port: str, deps: list[str]) -> dg.AssetsDefinition:
    """A build step of one port that reads ``deps`` (other ports of the domain)."""
    partition = domain.output_port(port).partition

    @dg.multi_asset(
        name=f"mix__{port}",
        specs=[
            dg.AssetSpec(
                ["mix", port],
                deps=[["mix", d] for d in deps],
                partitions_def=partitions_def(partition.cadence) if partition else None,
            )
        ],
    )
    def _build():
        return None

    return _build


def test_one_job_per_partitioning_and_the_unpartitioned_ports_with_the_first(tmp_path):
    """build_mix holds the unpartitioned ports and the weekly fact (declared first); the daily
    fact has a job of its own; each job's ports share one partitioning."""
    domain = _domain(tmp_path)
    own = [
        _step(domain, "dim", []),
        _step(domain, "fact_w", ["dim"]),
        _step(domain, "fact_d", []),
        _step(domain, "mart", ["dim", "fact_w", "fact_d"]),
    ]
    assert port_jobs(domain, own) == {
        "dim": "build_mix",
        "fact_w": "build_mix",
        "mart": "build_mix",
        "fact_d": "build_mix__daily",
    }
    assert list(domain_jobs(domain, own)) == ["build_mix", "build_mix__daily"]
    weekly = parse_cadence("weekly", "saturday")
    assert domain.output_port("fact_w").partition.cadence == weekly


def test_a_full_build_runs_each_job_after_what_it_reads(tmp_path):
    """The daily fact reads nothing of the domain: it runs first, and one more run builds the
    rest (the mart reads it as published). Were it to read the dimension, the build would
    take three runs, never reading a port before it is built."""
    domain = _domain(tmp_path)
    dim, fact_w, mart = (
        _step(domain, "dim", []),
        _step(domain, "fact_w", ["dim"]),
        _step(domain, "mart", ["dim", "fact_w", "fact_d"]),
    )
    runs = build_runs(domain, [dim, fact_w, _step(domain, "fact_d", []), mart])
    assert [(job, [a.op.name for a in steps]) for job, steps in runs] == [
        ("build_mix__daily", ["mix__fact_d"]),
        ("build_mix", ["mix__dim", "mix__fact_w", "mix__mart"]),
    ]
    runs = build_runs(domain, [dim, fact_w, _step(domain, "fact_d", ["dim"]), mart])
    assert [(job, [a.op.name for a in steps]) for job, steps in runs] == [
        ("build_mix", ["mix__dim", "mix__fact_w"]),
        ("build_mix__daily", ["mix__fact_d"]),
        ("build_mix", ["mix__mart"]),
    ]


def test_a_domain_of_one_partitioning_has_one_job_and_one_run(tmp_path):
    """Without a second partitioning nothing changes: build_<domain> builds every port."""
    domain = _domain(tmp_path)
    own = [_step(domain, "dim", []), _step(domain, "fact_w", ["dim"])]
    assert list(domain_jobs(domain, own)) == ["build_mix"]
    assert [job for job, _ in build_runs(domain, own)] == ["build_mix"]
