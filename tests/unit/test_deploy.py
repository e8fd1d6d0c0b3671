"""`mesh deploy render`: Helm values, workspace and image for the mesh beyond one machine,
rendered from the real domain descriptors, and a code server started from the rendered values."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster._grpc.client import DagsterGrpcClient

from mesh_domains.platform import deploy
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.query.security import token_variable

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE_ENTRIES = {
    spec["location_name"]: spec
    for entry in yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    for spec in entry.values()
}
SENTINEL = "Zq8rT2vLk9Wm4Xp7Nc3Yb6Hd1Jf5Gs0"  # a token value that must never be rendered

# The official chart's value keys (helm/dagster/schema/schema/charts in dagster-io/dagster, the
# models its values.schema.json is generated from), for the parts the mesh sets.
CHART_KEYS = {
    "": {
        "dagsterWebserver", "dagster-user-deployments", "postgresql", "concurrency",
        "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis",
        "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher",
        "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount",
        "global", "retention", "additionalInstanceConfig",
    },
    "global": {
        "postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName",
    },
    "postgresql": {
        "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
        "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service",
    },
    "dagsterWebserver": {
        "replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env",
        "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity",
        "tolerations", "podSecurityContext", "securityContext", "resources", "readinessProbe",
        "livenessProbe", "startupProbe", "annotations", "enableReadOnly", "dbStatementTimeout",
        "dbPoolRecycle", "logLevel", "schedulerName", "volumeMounts", "volumes",
    },
    "dagsterWebserver.workspace": {"enabled", "servers", "externalConfigmap"},
    "dagsterWebserver.workspace.servers": {"host", "port", "name", "ssl"},
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "dagster-user-deployments.deployments": {
        "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
        "port", "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity",
        "tolerations", "podSecurityContext", "securityContext", "resources", "livenessProbe",
        "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName",
    },
    "dagster-user-deployments.deployments.image": {"repository", "tag", "pullPolicy"},
    "runLauncher": {"type", "config"},
    "runLauncher.config": {"celeryK8sRunLauncher", "k8sRunLauncher", "customRunLauncher"},
    "runLauncher.config.k8sRunLauncher": {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
        "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
        "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
    },
    "dagsterDaemon": {
        "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps",
        "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations",
        "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
        "startupProbe", "annotations", "runMonitoring", "runRetries", "sensors", "schedules",
        "schedulerName", "volumeMounts", "volumes",
    },
    "dagsterDaemon.runCoordinator": {"enabled", "type", "config"},
    "dagsterDaemon.runCoordinator.config": {"queuedRunCoordinator", "customRunCoordinator"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": {
        "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds",
        "dequeueNumWorkers", "dequeueUseThreads", "blockOpConcurrencyLimitedRuns",
    },
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits": {
        "key", "value", "limit",
    },
    "dagsterDaemon.runMonitoring": {
        "enabled", "startTimeoutSeconds", "cancelTimeoutSeconds", "maxResumeRunAttempts",
        "pollIntervalSeconds", "freeSlotsAfterRunEndSeconds",
    },
    "dagsterDaemon.runRetries": {"enabled", "maxRetries", "retryOnAssetOrOpFailure"},
    "concurrency": {"enabled", "pools", "runs"},
    "concurrency.pools": {"defaultLimit", "granularity", "opGranularityRunBuffer"},
    "concurrency.runs": {"maxConcurrentRuns", "tagConcurrencyLimits"},
    "concurrency.runs.tagConcurrencyLimits": {"key", "value", "limit"},
    "telemetry": {"enabled"},
}  # fmt: skip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Rendered once, with a token in the environment that must not leak into any file."""
    with pytest.MonkeyPatch.context() as env:
        for name in discover_domains():
            env.setenv(token_variable(name), SENTINEL)
        result = deploy.render(tmp_path_factory.mktemp("deploy"))
    files = {p.name: p.read_text() for p in result.files}
    return result, yaml.safe_load(files["values.yaml"]), files


def _deployments(values) -> list[dict]:
    return values["dagster-user-deployments"]["deployments"]


def test_one_deployment_per_domain_serving_its_workspace_code_location(rendered):
    """Every discovered domain has exactly one user-code deployment with a DNS-safe name, whose
    gRPC arguments load the module workspace.yaml loads for that domain."""
    _, values, _ = rendered
    domains = discover_domains()
    deployments = _deployments(values)
    assert sorted(d["labels"]["mesh/domain"] for d in deployments) == sorted(domains)
    for d in deployments:
        domain = d["labels"]["mesh/domain"]
        args = d["dagsterApiGrpcArgs"]
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", d["name"]), d["name"]
        assert args[args.index("--module-name") + 1] == WORKSPACE_ENTRIES[domain]["module_name"]
        assert args[args.index("--working-directory") + 1] == "."  # the image's project root
        assert d["labels"]["mesh/team"] == deploy.dns_name(domains[domain].team)
        assert {"MESH_DOMAIN": domain, "MESH_ENV": "prod"}.items() <= {
            e["name"]: e.get("value") for e in d["env"]
        }.items()


def test_ports_are_distinct_and_dbt_domains_get_more_resources(rendered):
    """Ports differ per deployment; a dbt domain (toolchain dbt: dbt_projects/<domain>) gets the
    larger requests and limits."""
    _, values, _ = rendered
    deployments = _deployments(values)
    ports = [d["port"] for d in deployments]
    assert len(set(ports)) == len(ports) and min(ports) == deploy.BASE_PORT
    domains = discover_domains()
    for d in deployments:
        domain = domains[d["labels"]["mesh/domain"]]
        assert (ROOT / "dbt_projects" / domain.name).is_dir() == (domain.toolchain == "dbt")
        assert d["resources"] == deploy.RESOURCES[domain.toolchain]


def test_secrets_only_by_reference(rendered):
    """Credentials reach the pods only as references to the domain's own secret; no password or
    token is written as a value in any rendered file, not even the one in the environment."""
    _, values, files = rendered
    for name, text in files.items():
        assert SENTINEL not in text, name
    for name in ("values.yaml", "workspace.yaml"):
        assert not list(_literal_secrets(yaml.safe_load(files[name]))), name
    assert not re.search(r"(?im)^(ENV|ARG)\b.*(PASSWORD|TOKEN|SECRET)", files["Dockerfile"])
    assert values["generatePostgresqlPasswordSecret"] is False
    for d in _deployments(values):
        credentials = [e for e in d["env"] if CREDENTIAL.search(e["name"])]
        assert [e["name"] for e in credentials] == [token_variable(d["labels"]["mesh/domain"])]
        for env in credentials:
            assert env["valueFrom"]["secretKeyRef"] == {
                "name": f"mesh-{d['name']}",
                "key": env["name"],
            }


CREDENTIAL = re.compile(r"(?i)password|token|secret")


def _literal_secrets(value, key: str = ""):
    """(name, value) of every password, token or secret given as a literal string."""
    if isinstance(value, dict):
        if "value" in value and CREDENTIAL.search(str(value.get("name", ""))):
            yield value["name"], value["value"]  # an environment variable with a value
        for k, v in value.items():
            yield from _literal_secrets(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from _literal_secrets(item, key)
    elif isinstance(value, str) and CREDENTIAL.search(key) and not key.endswith("SecretName"):
        yield key, value


def test_workspace_grpc_servers_match_the_deployments(rendered):
    """The scaled-out workspace.yaml and the webserver's servers name each deployment's service
    and port, under the domain's own location name."""
    _, values, files = rendered
    servers = [e["grpc_server"] for e in yaml.safe_load(files["workspace.yaml"])["load_from"]]
    expected = [
        {"host": d["name"], "port": d["port"], "location_name": d["labels"]["mesh/domain"]}
        for d in _deployments(values)
    ]
    assert servers == expected
    chart_servers = values["dagsterWebserver"]["workspace"]["servers"]
    assert [
        {"host": s["host"], "port": s["port"], "location_name": s["name"]} for s in chart_servers
    ] == expected


def test_runs_queue_one_per_domain_under_the_tag_their_jobs_carry(rendered):
    """The run coordinator is queued and admits one run per domain at a time, keyed by the tag
    every domain job sets (the instance template's limit, per unique value of the tag); the
    instance keeps the mesh's writer pool per domain lake."""
    _, values, _ = rendered
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    assert "config" not in coordinator  # Dagster refuses limits both here and under concurrency
    assert values["concurrency"] == {
        "enabled": True,
        "pools": {"granularity": "op", "defaultLimit": 1},
        "runs": {
            "tagConcurrencyLimits": [
                {"key": deploy.DOMAIN_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
            ]
        },
    }
    assert "additionalInstanceConfig" not in values or not (
        {"run_launcher", "run_coordinator", "storage"} & set(values["additionalInstanceConfig"])
    )  # the chart's own launcher (Kubernetes jobs), coordinator and PostgreSQL storage
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    name = _python_domain()
    defs = importlib.import_module(WORKSPACE_ENTRIES[name]["module_name"]).defs
    job = defs.resolve_job_def(f"build_{name}")
    assert job.tags[deploy.DOMAIN_TAG] == name


def test_values_use_the_official_chart_keys(rendered):
    """Every key the mesh sets is one the chart's values schema knows, at the same place."""
    _, values, _ = rendered
    unknown = sorted(_unknown_keys(values, ""))
    assert not unknown, unknown
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlHost"]
    # the driver the lock installs (SQLAlchemy 2.1 reads plain postgresql:// with psycopg 3)
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    scheme = values["postgresql"]["postgresqlScheme"].partition("+")[2]
    assert importlib.util.find_spec(scheme) is not None


def _unknown_keys(value, path: str):
    if isinstance(value, list):
        for item in value:
            yield from _unknown_keys(item, path)
    elif isinstance(value, dict) and path in CHART_KEYS:
        for key, item in value.items():
            if key not in CHART_KEYS[path]:
                yield f"{path}.{key}".lstrip(".")
            yield from _unknown_keys(item, f"{path}.{key}".lstrip("."))


def test_dockerfile_installs_the_lock_file(rendered):
    """The image is built from uv.lock alone (--frozen, no dev tools), runs as a non-root user,
    exposes the first gRPC port, serves `dagster api grpc`, and copies no machine state."""
    _, _, files = rendered
    dockerfile = files["Dockerfile"]
    assert dockerfile == (ROOT / "deploy" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "COPY pyproject.toml uv.lock ./" in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile
    assert re.search(r"^USER (?!root|0\b)\S+", dockerfile, re.M)
    assert f"EXPOSE {deploy.BASE_PORT}" in dockerfile
    assert re.search(r"^CMD .*dagster api grpc", dockerfile, re.M)
    assert not re.search(r"^COPY (\S+ )*\.\s", dockerfile, re.M)  # never the whole tree
    make_uv = re.search(r"^UV_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)[1]
    assert f"ARG UV_VERSION={make_uv}" in dockerfile
    assert ".venv/" in files["Dockerfile.dockerignore"]


def test_image_names_and_a_domain_missing_from_the_workspace():
    """--image and --registry compose the image; a domain without a workspace entry is refused
    with what to do."""
    assert deploy.project_image("mesh:1.2", "ghcr.io/acme/").ref == "ghcr.io/acme/mesh:1.2"
    assert deploy.project_image("localhost:5000/mesh").repository == "localhost:5000/mesh"
    domains = discover_domains()
    extra = dataclasses.replace(next(iter(domains.values())), name="not_in_workspace")
    with pytest.raises(deploy.DeployError, match="not_in_workspace.*location_name"):
        deploy.user_deployments({**domains, extra.name: extra}, deploy.project_image())


def _python_domain() -> str:
    return next(n for n, d in discover_domains().items() if d.toolchain == "python")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_code_server_started_with_the_rendered_args_serves(rendered, tmp_path):
    """`dagster api grpc` with exactly one domain's rendered arguments, from the project root
    (the image's working directory), answers the chart's health check and serves the domain."""
    _, values, _ = rendered
    name = _python_domain()
    args = next(d for d in _deployments(values) if d["labels"]["mesh/domain"] == name)[
        "dagsterApiGrpcArgs"
    ]
    port = _free_port()
    env = {**os.environ, "MESH_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    dagster = [sys.executable, "-m", "dagster", "api"]
    server = subprocess.Popen(
        [*dagster, "grpc", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            check = subprocess.run(
                [*dagster, "grpc-health-check", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                capture_output=True,
                text=True,
            )
            if check.returncode == 0:
                break
            assert server.poll() is None, server.communicate()[0][-3000:]
            assert time.monotonic() < deadline, check.stdout + check.stderr
            time.sleep(1)
        served = DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories()
        assert WORKSPACE_ENTRIES[name]["module_name"] in served
    finally:
        server.kill()
        server.wait(timeout=30)
