"""The checked-in instance configuration: run monitoring, run retries, one writer per domain
lake (concurrency pools), and recovery of runs whose process was killed."""

from __future__ import annotations

import subprocess

import dagster as dg
import pytest
import yaml

from mesh_domains.platform.build import domain_job
from mesh_domains.platform.cli import INSTANCE_TEMPLATE
from mesh_domains.platform.recovery import HOST_TAG, PID_TAG, recover_dead_runs, run_tags


@pytest.fixture
def instance(tmp_path):
    """A real instance configured by the checked-in template."""
    overrides = yaml.safe_load(INSTANCE_TEMPLATE.read_text())
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as inst:
        yield inst


def test_template_enables_monitoring_retries_and_one_writer_pools(instance):
    """Production settings are on: dead runs are detected, automation runs retried once, and
    every pool (one per domain lake) admits a single step at a time."""
    assert instance.run_monitoring_enabled
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 1


def test_every_domain_build_step_writes_through_its_lake_pool():
    """Each domain's build step declares the pool '<domain>_lake'."""
    for domain in ("physician_master", "physician_dw"):
        job = domain_job(domain)
        pools = {node.definition.pool for node in job.graph.node_dict.values()}
        assert pools == {f"{domain}_lake"}


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_killed_run_is_recovered_and_frees_the_lake_slot(instance):
    """A run whose process died while holding physician_master's writer slot is marked failed
    and its slot freed, so the next build can write; live runs are left alone."""
    job = domain_job("physician_master")
    tags = {**run_tags(), PID_TAG: str(_dead_pid())}
    dead = instance.create_run_for_job(job_def=job, tags=tags)
    instance.handle_run_event(
        dead.run_id,
        dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=job.name),
    )
    live = instance.create_run_for_job(job_def=job, tags=run_tags())
    instance.handle_run_event(
        live.run_id,
        dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=job.name),
    )
    pool = "physician_master_lake"
    instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
    assert instance.event_log_storage.claim_concurrency_slot(pool, dead.run_id, "step").is_claimed
    assert not instance.event_log_storage.claim_concurrency_slot(pool, "other", "s").is_claimed

    assert recover_dead_runs(instance) == [dead.run_id]
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(live.run_id).tags[HOST_TAG]
    # the writer that was waiting gets the slot now
    assert instance.event_log_storage.claim_concurrency_slot(pool, "other", "s").is_claimed
