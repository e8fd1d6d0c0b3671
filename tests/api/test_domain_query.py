"""The domain query service against a real, built tiny mesh (one build for the module).

Proves, through the HTTP app over the real Dagster instance and lakes: every domain and port
answers the four W's and an H, with real check results as proof and navigable input versions;
the answers agree with ``mesh status``; events of a whole build come in order, once each, also
when read again or resumed; the OpenLineage export is accepted by openlineage-python's model;
a domain asked to build (with its team's token) builds; and a failed contract shows its failure
samples while the served version stays what it was. The tests run in file order: the last two
change the mesh (a new version, then a failed build).
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from fastapi.testclient import TestClient
from mesh_harness import environment
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    dataset_version_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    ownership_job,
    schema_dataset,
)
from openlineage.client.serde import Serde

from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.query import MeshQuery, mesh_status, security
from mesh_domains.platform.query.api import create_app
from mesh_domains.platform.query.code import DbtCompiler
from mesh_domains.platform.versioning import git_sha

pytestmark = pytest.mark.slow

SECTIONS = ("what", "where", "when", "proof", "with", "how")
TOKENS = {name: f"dq-token-{name}" for name in discover_domains()}  # one per team
SETTLE_S = 1.0  # the service looks at the event log's high-water mark every 0.25 s


@pytest.fixture(scope="module")
def query(built_mesh) -> MeshQuery:
    compiler = DbtCompiler(built_mesh.paths.data / "cache" / "dbt_compiled")
    return MeshQuery(built_mesh.instance, compiler=compiler)


@pytest.fixture(scope="module")
def client(built_mesh, query) -> Iterator[TestClient]:
    tokens = {security.token_variable(d): t for d, t in TOKENS.items()}
    with environment(**tokens):
        app = create_app(query=query)
        with TestClient(app, client=("127.0.0.1", 50000), raise_server_exceptions=False) as c:
            yield c


def identity(domain: str) -> dict[str, str]:
    return {"X-Mesh-Domain": domain, "Authorization": f"Bearer {TOKENS[domain]}"}


def get(client: TestClient, url: str, **kwargs) -> dict:
    response = client.get(url, **kwargs)
    assert response.status_code == 200, (url, response.status_code, response.text[:500])
    return response.json()


def test_every_domain_and_port_answers_the_four_ws_and_an_h(client, built_mesh):
    """/domains, /domains/{d}, /domains/{d}/ports/{p}, .../versions and .../versions/{v} all
    answer What, Where, When, proof, With and How, from what the build really recorded."""
    domains = discover_domains()
    listed = get(client, "/domains")["domains"]
    assert [d["domain"] for d in listed] == sorted(domains)
    for d in listed:
        assert all(d[s] for s in SECTIONS), d["domain"]
    for name, domain in domains.items():
        answer = get(client, f"/domains/{name}")
        assert all(answer[s] for s in SECTIONS)
        assert answer["what"]["owner"]["team"] == domain.team
        assert answer["what"]["glossary"] == domain.glossary and domain.glossary
        assert answer["when"]["last_run"]["status"] == "SUCCESS"
        assert answer["how"]["job"] == f"build_{name}"
        for port in domain.output_ports:
            _check_port(client, domain, port, domains)


def _check_port(client, domain, port, domains):
    url = f"/domains/{domain.name}/ports/{port.name}"
    answer = get(client, url)
    assert all(answer[s] for s in SECTIONS), url
    served = answer["served_version"]
    assert isinstance(served, int)
    # What: the descriptor's contract
    what = answer["what"]
    assert [c["name"] for c in what["schema"]] == port.contract.column_names
    assert what["description"] == port.description and what["lifecycle_phase"]
    # When: the publish of the served version, a successful run, fresh against the SLA
    when = answer["when"]
    assert when["last_publish"]["version"] == served
    assert when["last_run"]["status"] == "SUCCESS" and when["last_run"]["duration_s"] > 0
    assert when["freshness"]["sla_hours"] == domain.sla_freshness_hours
    assert when["freshness"]["state"] == "fresh" and when["freshness"]["age_hours"] >= 0
    # proof: the real check results of the run that published it
    proof = answer["proof"]
    assert proof["version"] == served and proof["passed"] and proof["last_attempt"] is None
    contract = next(c for c in proof["checks"] if c["name"] == "contract")
    assert contract["passed"] and contract["rows_checked"] == when["last_publish"]["rows"] > 0
    assert contract["failures"] == []
    # With: every input port's version, each a link to that version's own answer
    inputs = {i["port"]: i for i in answer["with"]["input_ports"]}
    assert set(inputs) == {r.ref for r in domain.input_ports}
    for ref, entry in inputs.items():
        upstream = get(client, entry["url"])
        assert upstream["version"] == entry["version"] and upstream["port"] == ref
        assert all(upstream[s] for s in SECTIONS)
    assert set(answer["with"]["sources"]) == {s.name for s in domain.sources}
    # How: code location, versions, the code itself
    how = answer["how"]
    assert how["code_location"] == domain.name and how["code_version"]
    assert how["code_version"] == how["current_code_version"]
    assert how["git_sha"] == git_sha()  # None outside a git checkout
    assert how["variation"]["env"] == "ci" and how["parameters"]["tags"]["mesh/env"] == "ci"
    declared = {p.name: p.default for p in domain.parameters if p.default is not None}
    assert how["variation"].get("params", {}) == declared  # defaults recorded as used
    code = how["code"].get("python") or how["code"].get("dbt")
    sql = code.get("sql", "") if code else ""  # a dbt model: SQL, or a platform macro call
    assert code and ("def " in code.get("source", "") or "select" in sql or "{{" in sql)
    # Where: only for a granted caller; its files read back as the published rows
    assert answer["where"]["granted"] is False
    caller = next((g for g in port.grants if g in domains), domain.name)
    where = get(client, url, headers=identity(caller))["where"]
    assert where["granted"] and where["version"] == served
    assert all(os.path.exists(f) for f in where["files"])
    rows = duckdb.sql(where["duckdb"]["files"].rstrip(";")).fetchall()
    assert len(rows) == when["last_publish"]["rows"]
    # versions: every one answers, immutable
    versions = get(client, f"{url}/versions")["versions"]
    assert served in [v["version"] for v in versions]
    for v in versions:
        one = get(client, v["url"])
        assert all(one[s] for s in SECTIONS) and one["version"] == v["version"]
        assert one["proof"]["checks"]


def test_management_ports_of_the_descriptors_are_served(client):
    """The URLs each descriptor lists as management ports are in its answer and answer GET."""
    for name, domain in discover_domains().items():
        listed = get(client, f"/domains/{name}")["management_ports"]
        assert [m["url"] for m in listed] == [m.url for m in domain.management_ports]
        assert {m["content"] for m in listed} == {"discoverability", "observability", "control"}
        for port in listed:
            url = port["url"]
            if port["type"] == "topic":  # the event stream: read two events and stop
                url += "&max_events=2"
            assert client.get(url).status_code == 200, url


def test_mesh_status_and_the_service_agree(client, built_mesh):
    """`mesh status` and the service share one query layer: same versions, rows, checks."""
    for row in mesh_status(built_mesh.instance, discover_domains()):
        answer = get(client, f"/domains/{row.domain}/ports/{row.port}")
        assert row.version == answer["served_version"]
        assert row.rows == answer["when"]["last_publish"]["rows"]
        assert (row.checks_passed, row.checks_total) == (
            answer["proof"]["checks_passed"],
            answer["proof"]["checks_total"],
        )


def test_consumers_show_which_version_each_domain_reads(client):
    """Data linkage: physician_dw and payer_dw read the served version of the physician
    master; brand_analytics, granted, is listed as not consuming."""
    answer = get(client, "/domains/physician_master/ports/physicians/consumers")
    consumers = {c["domain"]: c for c in answer["consumers"]}
    assert set(consumers) == {"physician_dw", "payer_dw"}
    for consumer in consumers.values():
        assert consumer["granted"] and consumer["current"]
        assert consumer["reads_versions"] == [answer["served_version"]]
    assert answer["consumers_disagree"] is False
    assert set(answer["granted_not_consuming"]) == {"brand_analytics"}


def test_dbt_ports_show_their_sql_and_compiled_sql(client, query):
    """How of a dbt port: the model's SQL and the SQL dbt compiled from it."""
    domain = discover_domains()["physician_dw"]
    assert query.compiler.wait(domain, timeout_s=240)["status"] == "ready"
    time.sleep(SETTLE_S)
    dbt = get(client, "/domains/physician_dw/ports/dim_physician")["how"]["code"]["dbt"]
    assert "{{ ref('stg_physicians') }}" in dbt["sql"]
    assert dbt["compiled_sql_status"] == "ready"
    assert '"physician_dw"."physician_master"."physicians"' in dbt["compiled_sql"]


def _events(client, **params) -> list[dict]:
    return get(client, "/events", params={"limit": 1000, **params})["events"]


def test_events_of_a_build_in_order_and_once_after_replays(client):
    """A whole build's events, in order: per domain run started → checks → ports published →
    run succeeded, the master before the warehouse; reading them again page by page, from a
    time, or resuming a server-sent stream with Last-Event-ID gives the same ids, once each."""
    events = _events(client)
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids))
    runs: dict[str, list[dict]] = {}
    for e in events:
        runs.setdefault(e["domain"], []).append(e)
    assert set(runs) == set(discover_domains())
    for name, domain in discover_domains().items():
        kinds = [e["type"] for e in runs[name]]
        assert kinds[0] == "run.started" and kinds[-1] == "run.succeeded"
        published = {
            e["port"]: e["data"]["version"] for e in runs[name] if e["type"] == "port.published"
        }
        assert set(published) == {p.name for p in domain.output_ports}
        checks = [i for i, k in enumerate(kinds) if k.startswith("check.")]
        assert checks and "check.failed" not in kinds
        assert kinds.index("port.published") > min(checks)
    for producer, consumer in (
        ("physician_master", "physician_dw"),
        ("physician_master", "payer_dw"),
        ("physician_dw", "brand_analytics"),
        ("payer_dw", "brand_analytics"),
    ):  # a consumer's events follow its producers'
        assert runs[producer][-1]["id"] < runs[consumer][0]["id"]

    paged, since = [], -1
    while True:
        page = get(client, "/events", params={"since": since, "limit": 3})
        paged += page["events"]
        if not page["events"]:
            break
        since = page["next_since"]
    assert paged == events
    assert _events(client, since=events[0]["at"].replace("+00:00", "Z")) == events
    assert [e["id"] for e in _events(client, domain="physician_dw")] == [
        e["id"] for e in runs["physician_dw"]
    ]

    first = _stream(client, "/events/stream?max_events=3&poll_s=0.1")
    rest = _stream(
        client,
        f"/events/stream?max_events={len(events) - 3}&poll_s=0.1",
        {"Last-Event-ID": str(first[-1]["id"])},
    )
    assert [e["id"] for e in first + rest] == ids


def _stream(client, url, headers=None) -> list[dict]:
    out = []
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "data" in fields:
                    event = json.loads(fields["data"])
                    assert str(event["id"]) == fields["id"] and event["type"] == fields["event"]
                    out.append(event)
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
    return out


# --- OpenLineage: rebuild each exported event with openlineage-python's classes -----------------

FACETS = {
    "version": dataset_version_dataset.DatasetVersionDatasetFacet,
    "schema": schema_dataset.SchemaDatasetFacet,
    "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet,
    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
    "jobType": job_type_job.JobTypeJobFacet,
    "documentation": documentation_job.DocumentationJobFacet,
    "ownership": ownership_job.OwnershipJobFacet,
    "errorMessage": error_message_run.ErrorMessageRunFacet,
}
NESTED = {
    "fields": schema_dataset.SchemaDatasetFacetFields,
    "assertions": data_quality_assertions_dataset.Assertion,
    "owners": ownership_job.Owner,
}


def _facet(name: str, data: dict):
    fields = {k: v for k, v in data.items() if not k.startswith("_")}
    for key, cls in NESTED.items():
        if key in fields:
            fields[key] = [cls(**item) for item in fields[key]]
    return FACETS[name](**fields, producer=data["_producer"])


def _facets(data: dict | None) -> dict:
    return {name: _facet(name, value) for name, value in (data or {}).items()}


def _rebuild(event: dict) -> RunEvent:
    return RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"], facets=_facets(event["run"].get("facets"))),
        job=Job(
            namespace=event["job"]["namespace"],
            name=event["job"]["name"],
            facets=_facets(event["job"].get("facets")),
        ),
        inputs=[
            InputDataset(
                namespace=i["namespace"],
                name=i["name"],
                facets=_facets(i.get("facets")),
                inputFacets=_facets(i.get("inputFacets")),
            )
            for i in event.get("inputs", [])
        ],
        outputs=[
            OutputDataset(
                namespace=o["namespace"],
                name=o["name"],
                facets=_facets(o.get("facets")),
                outputFacets=_facets(o.get("outputFacets")),
            )
            for o in event.get("outputs", [])
        ],
        producer=event["producer"],
    )


def test_openlineage_export_is_accepted_by_openlineage_python(client):
    """Each domain run exports START and COMPLETE run events that openlineage-python's classes
    rebuild exactly; outputs carry the published versions and the run's checks as data-quality
    assertions; the warehouse's input carries the master version it read, with its proof."""
    exported = get(client, "/lineage")["events"]
    for name in discover_domains():  # each run: START then COMPLETE (some domains run twice)
        kinds = [e["eventType"] for e in exported if e["job"]["name"] == f"{name}.build_{name}"]
        assert kinds and kinds == ["START", "COMPLETE"] * (len(kinds) // 2), (name, kinds)
    for event in exported:
        assert Serde.to_dict(_rebuild(event)) == event

    def completed(name: str) -> dict:
        return next(
            e
            for e in exported
            if e["job"]["name"] == f"{name}.build_{name}" and e["eventType"] == "COMPLETE"
        )

    master_done, dw_done = completed("physician_master"), completed("physician_dw")
    served = get(client, "/domains/physician_master/ports/physicians")["served_version"]
    outputs = {o["name"]: o for o in master_done["outputs"]}
    assert set(outputs) == {"physicians", "physician_xref"}
    assert outputs["physicians"]["facets"]["version"]["datasetVersion"] == str(served)
    assertions = outputs["physicians"]["facets"]["dataQualityAssertions"]["assertions"]
    assert {"assertion": "contract", "success": True, "severity": "error"}.items() <= next(
        a for a in assertions if a["assertion"] == "contract"
    ).items()
    (master_input,) = [i for i in dw_done["inputs"] if i["name"] == "physicians"]
    assert master_input["facets"]["version"]["datasetVersion"] == str(served)
    proof = master_input["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert any(a["assertion"] == "contract" and a["success"] for a in proof)


def test_every_port_has_the_sla_as_freshness_policy_and_breaches_are_events(client, built_mesh):
    """The descriptor's SLA is each port's Dagster freshness policy; a breach the freshness
    daemon records becomes a freshness.breached domain event, pushed live to a subscriber of
    the event stream."""
    for name, domain in discover_domains().items():
        graph = importlib.import_module(f"mesh_domains.{name}.definitions").defs
        graph = graph.resolve_asset_graph()
        for port in domain.output_ports:
            policy = graph.get(dg.AssetKey(port.key)).freshness_policy
            assert policy.fail_window.to_timedelta() == timedelta(hours=domain.sla_freshness_hours)

    def breach_later():
        time.sleep(0.5)  # the subscriber below is connected and waiting by then
        built_mesh.instance.report_runless_asset_event(  # what the freshness daemon records
            FreshnessStateChange(
                key=dg.AssetKey(["physician_dw", "dim_physician"]),
                new_state=FreshnessState.FAIL,
                previous_state=FreshnessState.PASS,
                state_change_timestamp=time.time(),
            )
        )

    since = _events(client)[-1]["id"]
    reporter = threading.Thread(target=breach_later)
    reporter.start()
    (live,) = _stream(
        client,
        f"/events/stream?since={since}&type=freshness.breached&max_events=1&max_seconds=30"
        "&poll_s=0.1",
    )
    reporter.join()
    (breach,) = _events(client, type="freshness.breached")
    assert live == breach
    assert (breach["domain"], breach["port"]) == ("physician_dw", "dim_physician")
    assert breach["data"] == {"state": "FAIL", "previous_state": "PASS"}


def test_a_domain_asked_to_build_with_its_token_builds(client):
    """POST /domains/{d}/runs with the owning team's token: 202, then the build runs (as
    `mesh build --domain`), its events follow, and the port serves a new version."""
    before = get(client, "/domains/physician_master/ports/physicians")["served_version"]
    response = client.post("/domains/physician_master/runs", headers=identity("physician_master"))
    assert response.status_code == 202, response.text
    accepted = response.json()
    again = client.post("/domains/physician_master/runs", headers=identity("physician_master"))
    assert again.status_code == 409
    deadline = time.monotonic() + 240
    while (state := get(client, "/domains/physician_master/runs"))["requested_build"][
        "state"
    ] == "running":
        assert time.monotonic() < deadline, "the requested build did not finish"
        time.sleep(0.5)
    assert state["requested_build"]["state"] == "built", Path(accepted["log"]).read_text()[-3000:]
    time.sleep(SETTLE_S)
    followed = get(client, accepted["follow"])["events"]
    kinds = [e["type"] for e in followed]
    assert kinds[0] == "run.started" and kinds[-1] == "run.succeeded"
    assert kinds.count("port.published") == 2
    after = get(client, "/domains/physician_master/ports/physicians")
    assert after["served_version"] > before
    assert after["when"]["last_run"]["trigger"] == "mesh build"


def _duplicate_an_npi(path) -> str:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    npi = rows[0].index("npi")
    rows[2][npi] = rows[1][npi]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue())
    return rows[1][npi]


def test_a_failed_contract_shows_its_samples_and_keeps_the_served_version(client, built_mesh):
    """A corrupt delivery (an NPI delivered twice) fails physician_master's contract: the
    answer keeps serving the last good version with its passing proof, and shows the failed
    attempt with the failing rule and sample rows; events carry the same failure."""
    url = "/domains/physician_master/ports/physicians"
    before = get(client, url)
    landing = built_mesh.landing_file("ama_physician")
    kept = landing.with_suffix(".kept")
    shutil.copy(landing, kept)
    try:
        duplicated = _duplicate_an_npi(landing)
        report = built_mesh.build("physician_master")
        assert not report.ok
    finally:
        shutil.move(kept, landing)
    time.sleep(SETTLE_S)
    after = get(client, url)
    assert after["served_version"] == before["served_version"]
    assert after["proof"]["version"] == before["proof"]["version"] and after["proof"]["passed"]
    attempt = after["proof"]["last_attempt"]
    assert attempt["run"]["status"] == "FAILURE" and attempt["published"] is False
    contract = attempt["failure"]["contract"]
    assert contract["source"] == "ama_physician" and contract["file"].endswith(".csv")
    failure = next(f for f in contract["failures"] if f["column"] == "npi")
    assert failure["rule"] == "unique" and duplicated in failure["examples"]
    assert after["when"]["last_run"]["status"] == "FAILURE"
    assert get(client, "/domains/physician_master")["proof"]["physicians"]["last_attempt_failed"]
    failed = _events(client, domain="physician_master", type="run.failed")
    assert failed[-1]["data"]["failure"]["contract"]["failures"] == contract["failures"]
    lineage = get(client, "/lineage", params={"domain": "physician_master"})["events"]
    assert lineage[-1]["eventType"] == "FAIL"
    assert "unique" in lineage[-1]["run"]["facets"]["errorMessage"]["message"]
