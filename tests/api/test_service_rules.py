"""The domain query service's rules, on a real app over a real (empty) Dagster instance:
who may ask what (open reads on loopback, Where only with a domain identity and a grant, POST
only with the owning team's token), clear 4xx answers for malformed requests (never a 500),
the OpenAPI document, and every output port's contract as a valid ODCS v3 document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib.resources import files

import dagster as dg
import jsonschema
import pytest
import yaml
from fastapi.testclient import TestClient
from mesh_harness import environment
from open_data_contract_standard.model import OpenDataContractStandard
from typer.testing import CliRunner

from mesh_domains.platform.cli import app as mesh_cli
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.query import security
from mesh_domains.platform.query.api import create_app

LOOPBACK = ("127.0.0.1", 50000)
TOKENS = {
    "physician_master": "token-of-data-engineering",
    "physician_dw": "token-of-sales-operations",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    """The app over an empty instance and data root: the rules hold before anything is built."""
    root = tmp_path_factory.mktemp("service_rules")
    tokens = {security.token_variable(d): t for d, t in TOKENS.items()}
    (root / "home").mkdir()
    with (
        environment(MESH_DATA_DIR=str(root / "data"), **tokens),
        dg.instance_for_test(temp_dir=str(root / "home")) as instance,
    ):
        app = create_app(instance, compile_dbt=False)
        with TestClient(app, client=LOOPBACK, raise_server_exceptions=False) as c:
            yield c


def identity(domain: str, token: str | None = None) -> dict[str, str]:
    return {"X-Mesh-Domain": domain, "Authorization": f"Bearer {token or TOKENS[domain]}"}


def test_reads_are_open_on_loopback_and_need_an_identity_elsewhere(client):
    """What/When/proof need no identity on loopback; from another address they do."""
    assert client.get("/domains/physician_master").status_code == 200
    elsewhere = TestClient(client.app, client=("192.0.2.7", 40000))
    refused = elsewhere.get("/domains/physician_master")
    assert refused.status_code == 401 and "X-Mesh-Domain" in refused.json()["error"]
    assert elsewhere.get("/health").status_code == 200
    allowed = elsewhere.get("/domains/physician_master", headers=identity("physician_dw"))
    assert allowed.status_code == 200


def test_unauthenticated_post_is_refused_with_401(client):
    """Asking a domain to build needs the owning team's bearer token: none, a wrong one, or
    another team's token is a 401, and no build starts."""
    url = "/domains/physician_master/runs"
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKENS['physician_master']}"},
        {"Authorization": f"Bearer {TOKENS['physician_dw']}"},  # not the owning team
    ):
        response = client.post(url, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert (
            "MESH_TOKEN_PHYSICIAN_MASTER" in response.json()["error"]
            or "Bearer" in (response.json()["error"])
        )
    assert client.get(url).json()["requested_build"] is None


def test_where_needs_an_identity_and_a_grant(client):
    """Where without identity → 401; a real identity without a grant → 403 naming the
    descriptor and the team to ask; a bad token → 401."""
    url = "/domains/physician_dw/ports/dim_physician/where"
    assert client.get(url).status_code == 401
    ungranted = client.get(url, headers=identity("physician_master"))
    assert ungranted.status_code == 403
    message = ungranted.json()["error"]
    assert "physician_master" in message and "Sales Operations" in message
    assert "domain.yaml" in message
    forged = client.get(url, headers=identity("physician_master", "guess"))
    assert forged.status_code == 401
    granted = client.get(
        "/domains/physician_master/ports/physicians/where", headers=identity("physician_dw")
    )
    assert granted.status_code == 404  # granted, but nothing is published yet
    assert "no published version" in granted.json()["error"]


def test_tokens_compare_in_constant_time_and_need_a_declaration(monkeypatch):
    """A domain without MESH_TOKEN_<DOMAIN> cannot authenticate; tokens use hmac."""
    monkeypatch.delenv("MESH_TOKEN_NOBODY", raising=False)
    assert not security.token_holds("nobody", "")
    monkeypatch.setenv("MESH_TOKEN_NOBODY", "s3cret")
    calls = []
    real = security.hmac.compare_digest
    monkeypatch.setattr(security.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert security.token_holds("nobody", "s3cret") and not security.token_holds("nobody", "x")
    assert len(calls) == 2


MALFORMED = [
    ("GET", "/domains/Physician-Master", None, None),
    ("GET", "/domains/no_such_domain", None, None),
    ("GET", "/domains/physician_master/ports/no_such_port", None, None),
    ("GET", "/domains/physician_master/ports/physicians/versions/abc", None, None),
    ("GET", "/domains/physician_master/ports/physicians/versions/0", None, None),
    ("GET", "/domains/physician_master/ports/physicians/versions/-3", None, None),
    ("GET", "/domains/physician_master/ports/physicians/versions/1.5", None, None),
    ("GET", "/domains/physician_master/ports/physicians/versions/" + "9" * 30, None, None),
    ("GET", "/domains/physician_master/ports/physicians/versions/7", None, None),
    ("GET", "/domains/%00/ports/x", None, None),
    ("GET", "/events?since=yesterday", None, None),
    ("GET", "/events?since=2026-10-31T12:00:00", None, None),
    ("GET", "/events?since=" + "1" * 65, None, None),
    ("GET", "/events?limit=0", None, None),
    ("GET", "/events?limit=1000000", None, None),
    ("GET", "/events?domain=Not-A-Name", None, None),
    ("GET", "/events?domain=no_such_domain", None, None),
    ("GET", "/events?type=run.exploded", None, None),
    ("GET", "/events/stream?poll_s=0", None, None),
    ("GET", "/events/stream?max_seconds=-1", None, None),
    ("GET", "/lineage?limit=many", None, None),
    ("GET", "/domains/physician_master/runs?limit=0", None, None),
    ("GET", "/nowhere", None, None),
    ("DELETE", "/domains/physician_master", None, None),
    ("POST", "/domains/no_such_domain/runs", None, None),
    ("POST", "/domains/physician_master/runs", "owner", "{not json"),
    ("POST", "/domains/physician_master/runs", "owner", '{"parameters": {"as_of": "2026-W40"}}'),
    ("POST", "/domains/physician_master/runs", "owner", '{"partition": "2026-10"}'),
    ("POST", "/domains/physician_master/runs", "owner", '["a", "list"]'),
    ("GET", "/domains/physician_master/ports/physicians/where", "no-token", None),
    ("GET", "/domains/physician_master/ports/physicians/where", "bad-domain", None),
]


@pytest.mark.parametrize(
    "method,url,who,body", MALFORMED, ids=[f"{m} {u}" for m, u, *_ in MALFORMED]
)
def test_malformed_requests_get_a_4xx_with_a_clear_message(client, method, url, who, body):
    """Each malformed request (30 kinds) is refused with a 4xx and a message, never a 500."""
    headers = {
        None: {},
        "owner": {"Authorization": f"Bearer {TOKENS['physician_master']}"},
        "no-token": {"X-Mesh-Domain": "physician_dw"},
        "bad-domain": {"X-Mesh-Domain": "nobody_here", "Authorization": "Bearer x"},
    }[who]
    if body is not None:
        headers["Content-Type"] = "application/json"
    response = client.request(method, url, headers=headers, content=body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    error = response.json()["error"]
    assert isinstance(error, str) and len(error) > 10, error


def test_openapi_document_lists_every_endpoint(client):
    """The service describes itself: OpenAPI with every path of the domain query."""
    spec = client.get("/openapi.json").json()
    for path in (
        "/domains",
        "/domains/{domain}",
        "/domains/{domain}/ports/{port}",
        "/domains/{domain}/ports/{port}/where",
        "/domains/{domain}/ports/{port}/versions",
        "/domains/{domain}/ports/{port}/versions/{version}",
        "/domains/{domain}/ports/{port}/consumers",
        "/domains/{domain}/ports/{port}/contract",
        "/domains/{domain}/runs",
        "/events",
        "/events/stream",
        "/lineage",
        "/health",
        "/ready",
    ):
        assert path in spec["paths"], path
    assert "post" in spec["paths"]["/domains/{domain}/runs"]


@cache
def _odcs_schema() -> jsonschema.Draft201909Validator:
    """The JSON schema the ODCS package ships, checked once."""
    schema = json.loads(files("open_data_contract_standard").joinpath("schema.json").read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def _valid_odcs(text: str) -> OpenDataContractStandard:
    """Parsed by the standard's model and valid against its JSON schema."""
    document = OpenDataContractStandard.from_string(text)
    _odcs_schema().validate(yaml.safe_load(text))
    return document


def test_contract_endpoint_serves_a_valid_odcs_document_per_port(client):
    """GET .../contract: ODCS v3 YAML that the standard's model and JSON schema accept, with
    every declared column, key and rule of the descriptor."""
    for domain in discover_domains().values():
        for port in domain.output_ports:
            response = client.get(f"/domains/{domain.name}/ports/{port.name}/contract")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/yaml")
            document = _valid_odcs(response.text)
            assert document.apiVersion.startswith("v3") and document.kind == "DataContract"
            (table,) = document.schema_
            assert [p.name for p in table.properties] == port.contract.column_names
            keys = [p.name for p in table.properties if p.primaryKey]
            assert keys == list(port.contract.primary_key)
            rules = {q.name for q in table.quality or [] if q.type == "sql"}
            assert rules == {r.name for r in port.contract.rules}
            assert document.slaProperties[0].value == domain.sla_freshness_hours


def test_mesh_contract_export_writes_valid_odcs_files(tmp_path):
    """`mesh contract export` writes one validated ODCS document per output port."""
    result = CliRunner().invoke(mesh_cli, ["contract", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(tmp_path.glob("*/*.odcs.yaml"))
    expected = {
        f"{d.name}/{p.name}.odcs.yaml" for d in discover_domains().values() for p in d.output_ports
    }
    assert {f"{p.parent.name}/{p.name}" for p in written} == expected
    for path in written:
        assert _valid_odcs(path.read_text()).id == f"urn:mesh:{path.parent.name}:{path.name[:-10]}"
