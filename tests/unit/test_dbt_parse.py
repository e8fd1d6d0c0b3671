"""A dbt project that changed is parsed once per build: in the build's worker (dbt loaded),
in-process, and the runner reuses that parse instead of parsing again."""

from __future__ import annotations

import shutil

import pytest

from mesh_domains.platform import dbt as mesh_dbt
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.versioning import folder_hash


@pytest.mark.slow
def test_a_changed_project_is_parsed_once_in_process(tmp_path, monkeypatch):
    pytest.importorskip("dbt.cli.main")  # loaded, as in a build's worker
    domain = discover_domains()["payer_master"]
    monkeypatch.setenv(mesh_dbt.STAGING_VAR, "")  # the profile sets it; restored afterwards
    # a copy beside the platform's macros, where its relative macro path finds them
    project = tmp_path / "dbt_projects" / "payer_master"
    shutil.copytree(
        mesh_dbt.DBT_PROJECTS / "payer_master",
        project,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"),
    )
    (tmp_path / "mesh_domains" / "platform").mkdir(parents=True)
    (tmp_path / "mesh_domains" / "platform" / "dbt_macros").symlink_to(mesh_dbt.DBT_MACROS)

    parses = []
    parse = mesh_dbt._parse_in_process
    monkeypatch.setattr(
        mesh_dbt, "_parse_in_process", lambda *args: parses.append(args) or parse(*args)
    )

    run = mesh_dbt.subprocess.run

    def no_dbt_process(command, *args, **kwargs):
        assert command[0] != mesh_dbt.dbt_executable(), f"a dbt process was started: {command}"
        return run(command, *args, **kwargs)

    monkeypatch.setattr(mesh_dbt.subprocess, "run", no_dbt_process)

    manifest_json = mesh_dbt.ensure_manifest(domain, project)
    first = mesh_dbt.load_manifest(domain, project)
    second = mesh_dbt.load_manifest(domain, project)

    assert len(parses) == 1
    assert manifest_json.exists() and (project / "target" / mesh_dbt.PICKLE).exists()
    plans = [uid for uid in first.nodes if uid.endswith(".plans")]
    assert plans, sorted(first.nodes)
    # each caller gets its own objects: dbt mutates the manifest it runs
    assert second is not first and second.nodes[plans[0]] is not first.nodes[plans[0]]
    assert set(second.nodes) == set(first.nodes)
    # a changed project is parsed again, once, by the next build (a new process)
    (project / "models" / "marts" / "plans.sql").write_text(
        (project / "models" / "marts" / "plans.sql").read_text() + "\n-- changed\n"
    )
    folder_hash.cache_clear()
    mesh_dbt.ensure_manifest(domain, project)
    mesh_dbt.load_manifest(domain, project)
    assert len(parses) == 2
    # processes whose settings give another profile (lakes on object storage) parse it once,
    # and the two profiles then take turns without parsing again
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "parse-test")  # named by the profile, not used
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parse-test")
    monkeypatch.setenv("MESH_LAKE_DATA_URL", "s3://mesh-lakes/parse-test")
    mesh_dbt.ensure_manifest(domain, project)
    assert len(parses) == 3
    for url in (None, "s3://mesh-lakes/parse-test", None):
        if url is None:
            monkeypatch.delenv("MESH_LAKE_DATA_URL")
        else:
            monkeypatch.setenv("MESH_LAKE_DATA_URL", url)
        stamp = mesh_dbt.ensure_manifest(domain, project).with_name("mesh_parse.hash")
        assert stamp.read_text().endswith(
            mesh_dbt.hashlib.sha256(mesh_dbt.profile_text(domain).encode()).hexdigest()[:12]
        )
        assert mesh_dbt.load_manifest(domain, project).nodes.keys() == first.nodes.keys()
    assert len(parses) == 3
