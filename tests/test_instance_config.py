"""The checked-in instance configuration: run monitoring, run retries, one writer per domain
lake (concurrency pools), and recovery of runs whose process was killed."""

from __future__ import annotations

import subprocess

import dagster as dg
import pytest
import yaml

from mesh_domains.platform import instance_config
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


# --- the rendered instance: SQLite by default, PostgreSQL from the environment ---------------


def test_default_render_is_the_template_on_sqlite():
    """Without MESH_INSTANCE_POSTGRES_URL and a home the rendered file is the template itself:
    no storage section (the storage names the home: see below), runs queued one per domain."""
    text = instance_config.render({})
    assert text == INSTANCE_TEMPLATE.read_text()
    config = yaml.safe_load(text)
    assert "storage" not in config
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance_config.domain_run_limits() == [
        {"key": "mesh/domain", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]


def test_postgres_url_selects_postgres_storage_by_variable_never_by_value():
    """With the variable set, storage is PostgreSQL, named by the variable: the URL (and its
    password) is not in the file; everything else stays as the template has it."""
    url = "postgresql+psycopg2://mesh:s3cret-pw@db.example:5432/dagster"
    text = instance_config.render({instance_config.POSTGRES_URL_VAR: url})
    assert "s3cret-pw" not in text and "db.example" not in text
    config = yaml.safe_load(text)
    assert config["storage"] == {
        "postgres": {"postgres_url": {"env": instance_config.POSTGRES_URL_VAR}}
    }
    assert {k: v for k, v in config.items() if k != "storage"} == instance_config.config({})
    assert instance_config.url_problem({instance_config.POSTGRES_URL_VAR: url}) is None
    plain = {instance_config.POSTGRES_URL_VAR: "postgresql://mesh@db/dagster"}
    assert "postgresql+psycopg2://" in instance_config.url_problem(plain)


def test_write_renders_into_the_home_and_keeps_a_hand_made_file(tmp_path):
    """`mesh instance` writes dagster.yaml, rewrites it when the environment changes the
    storage, and leaves a dagster.yaml that was not written from the template alone."""
    var = instance_config.POSTGRES_URL_VAR
    assert instance_config.write(tmp_path, {})
    assert not instance_config.write(tmp_path, {})  # unchanged
    assert instance_config.write(tmp_path, {var: "postgresql+psycopg2://x@h/d"})
    assert "postgres" in yaml.safe_load((tmp_path / "dagster.yaml").read_text())["storage"]
    assert instance_config.write(tmp_path, {})  # back to SQLite
    storage = yaml.safe_load((tmp_path / "dagster.yaml").read_text())["storage"]
    assert storage["custom"]["class"] == "MeshSqliteStorage"
    assert storage["custom"]["config"] == {"base_dir": str(tmp_path.resolve())}
    own = tmp_path / "own"
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert not instance_config.write(own, {var: "postgresql+psycopg2://x@h/d"})
    assert (own / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_the_sqlite_instance_keeps_connections_and_other_processes_read_its_writes(tmp_path):
    """The embedded storage: Dagster's SQLite files in the home, opened with kept connections;
    a run stored by one process (its events, its asset materialization) is read back by
    another process from the same files, and a moved home gets its new path written."""
    import shutil
    import subprocess
    import sys

    from mesh_domains.platform import instance_storage

    home = tmp_path / "home"
    assert instance_config.write(home, {})

    @dg.asset
    def kept() -> int:
        return 1

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, instance_storage.KeptRunStorage)
        assert isinstance(instance.event_log_storage, instance_storage.KeptEventLogStorage)
        assert isinstance(instance.schedule_storage, instance_storage.KeptScheduleStorage)
        for _ in range(2):
            assert dg.materialize([kept], instance=instance).success
        run_id = instance.get_runs(limit=1)[0].run_id
        events = len(instance.all_logs(run_id))
    assert (home / "history" / "runs.db").exists() and (home / "history" / "runs").is_dir()
    read = (
        "import dagster as dg, sys\n"
        "i = dg.DagsterInstance.from_config(sys.argv[1])\n"
        "run = i.get_runs(limit=1)[0]\n"
        "m = i.get_latest_materialization_event(dg.AssetKey('kept'))\n"
        "print(len(i.get_runs()), run.run_id, len(i.all_logs(run.run_id)), m.run_id)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", read, str(home)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["2", run_id, str(events), run_id]
    copied = tmp_path / "copied"
    shutil.copytree(home, copied)
    with pytest.raises(Exception, match=r"names its SQLite storage in .*home.*mesh instance"):
        dg.DagsterInstance.from_config(str(copied))  # never writes into the original
    moved = tmp_path / "moved"
    shutil.move(home, moved)
    assert instance_config.write(moved, {})  # the new path
    with dg.DagsterInstance.from_config(str(moved)) as instance:
        assert len(instance.get_runs()) == 2
    assert not home.exists()


def test_mesh_instance_command_writes_postgres_storage(tmp_path, monkeypatch):
    """The CLI: `mesh instance` with the variable set writes the PostgreSQL storage section."""
    from typer.testing import CliRunner

    from mesh_domains.platform.cli import app

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(instance_config.POSTGRES_URL_VAR, "postgresql+psycopg2://x@h/d")
    result = CliRunner().invoke(app, ["instance"])
    assert result.exit_code == 0, result.output
    assert "PostgreSQL" in result.output
    written = yaml.safe_load((tmp_path / "home" / "dagster.yaml").read_text())
    url = written["storage"]["postgres"]["postgres_url"]
    assert url == {"env": instance_config.POSTGRES_URL_VAR}


def test_the_helm_values_take_the_same_run_limit():
    """One source: the chart's values carry the template's limit per domain, under the
    chart's spelling, and no run coordinator limits of their own (Dagster refuses both)."""
    from mesh_domains.platform import deploy

    values = deploy.helm_values([], "pg")
    assert values["concurrency"]["runs"]["tagConcurrencyLimits"] == (
        instance_config.domain_run_limits()
    )
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator == {"enabled": True, "type": "QueuedRunCoordinator"}
    assert "run_launcher" not in values.get("additionalInstanceConfig", {})


def test_dagster_opens_the_rendered_instance_on_a_real_postgres(tmp_path, monkeypatch):
    """A throwaway PostgreSQL server: the rendered dagster.yaml opens as a DagsterInstance
    whose run, event-log and schedule storage are PostgreSQL, with the queued coordinator, the
    per-domain limit and the mesh's launcher; a run written there is read back by a second
    instance loaded from the same home."""
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )
    from scale_out_harness import postgres_server

    from mesh_domains.platform.launcher import CodeServerRunLauncher

    with postgres_server() as pg:
        monkeypatch.setenv(instance_config.POSTGRES_URL_VAR, pg.url("dagster"))
        home = tmp_path / "home"
        assert instance_config.write(home)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            assert isinstance(instance.run_launcher, CodeServerRunLauncher)
            limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
            assert limits == instance_config.domain_run_limits()
            run = instance.create_run_for_job(
                job_def=domain_job("physician_master"), tags={"mesh/domain": "physician_master"}
            )
        assert not list(home.glob("*.db")) and not (home / "history").exists()  # no SQLite
        with dg.DagsterInstance.from_config(str(home)) as again:
            assert again.get_run_by_id(run.run_id).tags["mesh/domain"] == "physician_master"


def test_kitchens_and_the_canary_keep_their_own_sqlite_instance(tmp_path, monkeypatch):
    """With the PostgreSQL URL set, a kitchen's and the canary's instances still stay in their
    own folders: their runs never mix with production's."""
    from mesh_domains.platform.cli import prepare_instance_home

    monkeypatch.setenv(instance_config.POSTGRES_URL_VAR, "postgresql+psycopg2://x@h/d")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MESH_KITCHEN", str(tmp_path / "kitchen"))
    kitchen = prepare_instance_home()
    assert kitchen == (tmp_path / "kitchen" / "dagster").resolve()

    def sqlite_in(home):
        storage = yaml.safe_load((home / "dagster.yaml").read_text())["storage"]
        return storage["custom"]["config"]["base_dir"] == str(home)

    assert sqlite_in(kitchen)
    monkeypatch.delenv("MESH_KITCHEN")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))  # prepare_instance_home sets it
    monkeypatch.setenv("MESH_ENV", "canary")
    canary = prepare_instance_home()
    assert canary == (tmp_path / "home" / "canary").resolve()
    assert sqlite_in(canary)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MESH_ENV", "ci")
    production = prepare_instance_home()
    assert "postgres" in yaml.safe_load((production / "dagster.yaml").read_text())["storage"]
