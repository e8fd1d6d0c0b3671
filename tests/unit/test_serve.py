"""`mesh serve-locations`: one gRPC code server per domain, at ports that follow workspace.yaml,
and the workspace file that names them; `mesh status --workspace` on a server that is down.
(The servers running for real: tests/e2e/test_scale_out.py.)"""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from scale_out_harness import free_port
from typer.testing import CliRunner

from mesh_domains.platform import deploy, serve
from mesh_domains.platform.cli import app


def test_every_domain_gets_the_code_location_args_of_workspace_yaml_at_its_own_port():
    """Ports follow workspace.yaml from the base port; each server runs `dagster api grpc` with
    the arguments deploy renders for the domain's user-code deployment."""
    servers = serve.code_servers("127.0.0.1", 5000)
    args = deploy.grpc_args()
    assert [s.domain for s in servers] == list(args)
    assert [s.port for s in servers] == list(range(5000, 5000 + len(args)))
    for server in servers:
        command = server.command()
        assert command[:5] == [sys.executable, "-m", "dagster", "api", "grpc"]
        assert command[-len(args[server.domain]) :] == args[server.domain]
        assert ["--port", str(server.port)] == command[7:9]
        assert command[command.index("--location-name") + 1] == server.domain


def test_only_one_domain_keeps_its_port_and_unknown_ones_are_refused():
    every = {s.domain: s.port for s in serve.code_servers(base_port=6000)}
    (alone,) = serve.code_servers(base_port=6000, only=["payer_dw"])
    assert alone.port == every["payer_dw"]
    with pytest.raises(KeyError, match="no code location nope"):
        serve.code_servers(only=["nope"])


def test_the_workspace_names_each_server_by_host_port_and_domain(tmp_path):
    """The written workspace is the grpc workspace deploy renders, for these addresses."""
    servers = serve.code_servers("127.0.0.1", 7000)
    path = serve.write_workspace(servers, tmp_path / "ws" / "workspace.yaml")
    entries = [e["grpc_server"] for e in yaml.safe_load(path.read_text())["load_from"]]
    assert entries == [
        {"host": "127.0.0.1", "port": s.port, "location_name": s.domain} for s in servers
    ]


def test_status_names_a_code_location_whose_server_does_not_answer(tmp_path, monkeypatch):
    """`mesh status --workspace` pings each grpc server: one nobody serves is unreachable."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MESH_INSTANCE_POSTGRES_URL", raising=False)
    port = free_port()  # closed again: nothing listens there
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {"grpc_server": {"host": "127.0.0.1", "port": port, "location_name": "npp"}}
                ]
            }
        )
    )
    states = serve.location_states(workspace)
    assert not states["npp"].serving and states["npp"].error
    result = CliRunner().invoke(app, ["status", "--workspace", str(workspace), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["code_location"] for r in rows if r["domain"] == "npp"} == {"unreachable"}
    assert {r["code_location"] for r in rows if r["domain"] != "npp"} == {None}
    table = CliRunner().invoke(app, ["status", "--workspace", str(workspace)])
    assert "npp: code location unreachable" in table.output
