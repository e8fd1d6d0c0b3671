"""Deployment values for the mesh beyond one machine: Dagster's official Helm chart.

``mesh deploy render`` turns the domain descriptors into what a Kubernetes deployment needs:

- ``values.yaml`` for the chart ``dagster/dagster`` (the chart version is the locked dagster's):
  one user-code deployment per domain, serving its code location the way ``workspace.yaml``
  loads it; its credentials only as references to the domain's own Kubernetes secret; the
  instance on PostgreSQL, runs in Kubernetes jobs, and the settings of the mesh's instance
  (``instance/dagster.yaml``: the writer pool per domain lake, one queued run per domain at a
  time, run monitoring and retries) carried over;
- ``workspace.yaml``: the same code locations as gRPC servers (host = the deployment's service);
- ``Dockerfile``: the project's image, copied from ``deploy/Dockerfile`` (installs ``uv.lock``).

Nothing is applied: there is one command to run (:func:`helm_command`).
"""

from __future__ import annotations

import copy
import re
import shutil
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from . import instance_config
from .descriptor import Domain, discover_domains, read_yaml
from .query.security import token_variable
from .settings import PROJECT_ROOT

WORKSPACE = PROJECT_ROOT / "workspace.yaml"
INSTANCE_CONFIG = instance_config.TEMPLATE
TEMPLATES = PROJECT_ROOT / "deploy"
CHART = "dagster/dagster"
RELEASE = "mesh"
BASE_PORT = 3030  # the first domain's gRPC port; also what the image exposes
DOMAIN_TAG = instance_config.DOMAIN_TAG  # every run of a domain's jobs carries it
DATA_DIR = "/var/lib/mesh"  # MESH_DATA_DIR in the pods: the shared volume of the lakes
DATA_CLAIM = "mesh-data"  # its PersistentVolumeClaim (ReadWriteMany: consumers read producers)
POSTGRES_SECRET = "mesh-postgresql"  # key postgresql-password, as the chart expects
ENV = "prod"
IMAGE_UID = 10001  # the image's user (deploy/Dockerfile)

# ``workspace.yaml`` entry kind → the ``dagster api grpc`` option and the entry's field it takes
GRPC_TARGETS = {
    "python_module": ("--module-name", "module_name"),
    "python_file": ("--python-file", "relative_path"),
    "python_package": ("--package-name", "package_name"),
}
# a code server is light; its runs (Kubernetes jobs) get the same resources, and dbt is heavier
RESOURCES = {
    "python": {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    },
    "dbt": {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    },
}
# where the chart takes the mesh instance's settings (the run limit per domain is in
# ``concurrency.runs``); any other key goes verbatim into ``additionalInstanceConfig``
INSTANCE_IN_CHART = {
    "run_monitoring": ("dagsterDaemon", "runMonitoring"),
    "run_retries": ("dagsterDaemon", "runRetries"),
    "concurrency": ("concurrency",),
    "telemetry": ("telemetry",),
}
# what the chart sets itself: its run launcher (Kubernetes jobs), its queued run coordinator,
# its PostgreSQL storage
CHART_OWNS = {"run_launcher", "run_coordinator", "storage"}


class DeployError(ValueError):
    """A domain the deployment cannot serve (e.g. missing from ``workspace.yaml``)."""


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class Rendered:
    out: Path
    deployments: list[dict[str, Any]]
    image: Image
    files: list[Path]


def project_image(name: str | None = None, registry: str | None = None) -> Image:
    """``NAME[:TAG]`` under ``registry``; by default the project's name and version."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    repository, tag = project["name"], project["version"]
    if name:
        base, sep, given = name.rpartition(":")
        repository, tag = (base, given) if sep and "/" not in given else (name, tag)
    if registry:
        repository = f"{registry.rstrip('/')}/{repository}"
    return Image(repository, tag)


def dns_name(name: str) -> str:
    """A Kubernetes name (RFC 1123 label): ``physician_dw`` → ``physician-dw``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]


def grpc_args(path: Path = WORKSPACE) -> dict[str, list[str]]:
    """Per location name, the ``dagster api grpc`` arguments that load it as the workspace file
    ``path`` does. Paths stay relative: the image's working directory is the project root, where the
    workspace file lies."""
    targets = {}
    for entry in (read_yaml(path) or {}).get("load_from") or []:
        ((kind, spec),) = entry.items()
        if kind not in GRPC_TARGETS:
            continue
        option, field = GRPC_TARGETS[kind]
        args = [option, spec[field]]
        if spec.get("attribute"):
            args += ["--attribute", spec["attribute"]]
        args += ["--working-directory", spec.get("working_directory", ".")]
        targets[spec.get("location_name", spec[field])] = args
    return targets


def domain_env(domain: Domain) -> list[dict[str, Any]]:
    """The domain's environment: who it is, its variation, its data root, and its credentials
    by name from its own secret ``mesh-<domain>`` (the values never leave the cluster)."""
    secret = f"{RELEASE}-{dns_name(domain.name)}"
    return [
        {"name": "MESH_DOMAIN", "value": domain.name},
        {"name": "MESH_ENV", "value": ENV},
        {"name": "MESH_DATA_DIR", "value": DATA_DIR},
        *(
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for key in domain_credentials(domain)
        ),
    ]


def domain_credentials(domain: Domain) -> list[str]:
    """The environment variables holding the domain's secrets."""
    return [token_variable(domain.name)]


def user_deployment(domain: Domain, args: list[str], port: int, image: Image) -> dict:
    """The chart's ``dagster-user-deployments.deployments`` entry of one domain."""
    return {
        "name": dns_name(domain.name),
        "image": {
            "repository": image.repository,
            "tag": image.tag,
            "pullPolicy": "Always" if image.tag == "latest" else "IfNotPresent",
        },
        "dagsterApiGrpcArgs": args,
        "port": port,
        "includeConfigInLaunchedRuns": {"enabled": True},  # runs get env, volume, resources
        "env": domain_env(domain),
        "resources": copy.deepcopy(RESOURCES[domain.toolchain]),
        "podSecurityContext": {"runAsNonRoot": True, "fsGroup": IMAGE_UID},  # writes the volume
        "labels": {DOMAIN_TAG: domain.name, "mesh/team": dns_name(domain.team)},
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}}],
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}],
    }


def user_deployments(domains: dict[str, Domain], image: Image) -> list[dict]:
    """One deployment per domain, in ``workspace.yaml`` order (new domains are appended there,
    so a domain keeps its port as the mesh grows)."""
    targets = grpc_args()
    missing = sorted(set(domains) - set(targets))
    if missing:
        raise DeployError(
            f"domain(s) {', '.join(missing)} have no code location in {WORKSPACE.name}: add a "
            "python_module entry with location_name <domain> (mesh new-domain writes it)"
        )
    ordered = [name for name in targets if name in domains]
    return [
        user_deployment(domains[name], targets[name], BASE_PORT + i, image)
        for i, name in enumerate(ordered)
    ]


def _camel(value: Any) -> Any:
    """``start_timeout_seconds`` → ``startTimeoutSeconds``, recursively (the chart's spelling)."""
    if not isinstance(value, dict):
        return value
    return {re.sub(r"_(\w)", lambda m: m[1].upper(), k): _camel(v) for k, v in value.items()}


def instance_values(config: dict) -> dict:
    """The mesh instance's settings where the chart takes them."""
    values: dict[str, Any] = {}
    for key, setting in config.items():
        if key in CHART_OWNS:
            continue
        if key not in INSTANCE_IN_CHART:
            values.setdefault("additionalInstanceConfig", {})[key] = setting
            continue
        *parents, leaf = INSTANCE_IN_CHART[key]
        target = values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = _camel(setting)
    if "concurrency" in values:
        values["concurrency"] = {"enabled": True, **values["concurrency"]}
    return values


def helm_values(deployments: list[dict], postgres_host: str) -> dict:
    """``values.yaml`` for the chart: key names as the chart spells them."""
    instance = instance_values(read_yaml(INSTANCE_CONFIG) or {})
    daemon = instance.pop("dagsterDaemon", {})
    return {
        "global": {"postgresqlSecretName": POSTGRES_SECRET},
        "generatePostgresqlPasswordSecret": False,
        "postgresql": {
            "enabled": False,
            "postgresqlHost": postgres_host,
            "postgresqlUsername": "dagster",
            "postgresqlDatabase": "dagster",
            # dagster-postgres installs psycopg2; SQLAlchemy 2.1 would take psycopg 3 for plain
            # postgresql://
            "postgresqlScheme": "postgresql+psycopg2",
            "service": {"port": 5432},
        },
        "dagsterWebserver": {
            "replicaCount": 1,
            "service": {"type": "ClusterIP", "port": 80},
            # location names stay the domains' names (the chart would take the DNS names)
            "workspace": {"enabled": True, "servers": workspace_servers(deployments)},
            "resources": {
                "requests": {"cpu": "250m", "memory": "512Mi"},
                "limits": {"memory": "1Gi"},
            },
        },
        "dagster-user-deployments": {
            "enabled": True,
            "enableSubchart": True,
            "deployments": deployments,
        },
        "runLauncher": {
            "type": "K8sRunLauncher",
            "config": {"k8sRunLauncher": {"loadInclusterConfig": True}},
        },
        "dagsterDaemon": {
            "enabled": True,
            # queued; its limits are the instance's (``concurrency.runs``: one run per domain)
            "runCoordinator": {"enabled": True, "type": "QueuedRunCoordinator"},
            **daemon,
        },
        **instance,
    }


def workspace_servers(deployments: list[dict]) -> list[dict]:
    """Each deployment's gRPC server, named by its domain."""
    return [
        {"host": d["name"], "port": d["port"], "name": d["labels"][DOMAIN_TAG]} for d in deployments
    ]


def workspace(deployments: list[dict]) -> dict:
    """``workspace.yaml`` of the scaled-out mesh: one gRPC server per domain."""
    return grpc_workspace((s["name"], s["host"], s["port"]) for s in workspace_servers(deployments))


def grpc_workspace(servers: Iterable[tuple[str, str, int]]) -> dict:
    """A workspace of gRPC code servers, each ``(location name, host, port)``."""
    return {
        "load_from": [
            {"grpc_server": {"host": host, "port": port, "location_name": name}}
            for name, host, port in servers
        ]
    }


def render(
    out: Path,
    image: Image | None = None,
    postgres_host: str = "postgresql",
    domains: dict[str, Domain] | None = None,
) -> Rendered:
    """Write ``values.yaml``, ``workspace.yaml`` and the image's ``Dockerfile`` into ``out``."""
    image = image or project_image()
    deployments = user_deployments(domains or discover_domains(), image)
    out.mkdir(parents=True, exist_ok=True)
    header = (
        "# rendered by `mesh deploy render` from the domain descriptors: edit those, not this\n"
    )
    files = []
    for name, content in (
        ("values.yaml", helm_values(deployments, postgres_host)),
        ("workspace.yaml", workspace(deployments)),
    ):
        path = out / name
        path.write_text(header + yaml.safe_dump(content, sort_keys=False))
        files.append(path)
    for template in sorted(TEMPLATES.glob("Dockerfile*")):
        files.append(Path(shutil.copy(template, out / template.name)))
    return Rendered(out, deployments, image, files)


def helm_command(values: Path) -> str:
    """The command that applies the values (the chart's version is the locked dagster's; the
    chart's repository once: ``helm repo add dagster https://dagster-io.github.io/helm``)."""
    return f"helm upgrade --install {RELEASE} {CHART} --version {version('dagster')} -f {values}"


def secrets(deployments: list[dict]) -> dict[str, list[str]]:
    """The Kubernetes secrets to create before applying, with the keys each must hold."""
    keys = {POSTGRES_SECRET: ["postgresql-password"]}
    for d in deployments:
        for var in d["env"]:
            if "valueFrom" in var:
                ref = var["valueFrom"]["secretKeyRef"]
                keys.setdefault(ref["name"], []).append(ref["key"])
    return keys
