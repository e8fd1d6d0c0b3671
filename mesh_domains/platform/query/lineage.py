"""Event linkage out: domain runs as OpenLineage run events (``openlineage-python``'s model).

Each domain run gives a START event and a COMPLETE or FAIL event. Inputs are the input port
versions the run read (with the checks that proved each version, as data-quality assertions)
and the landing sources; outputs are the port versions it published, with their schema, row
count and the run's check results as data-quality assertions. Namespaces are the lakes' and the
landing zone's locations, so the same dataset has the same name in every producer's and
consumer's events.
"""

from __future__ import annotations

from typing import Any

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    dataset_version_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    ownership_job,
    schema_dataset,
)
from openlineage.client.serde import Serde

from ..contracts import DUCKDB_TYPES
from ..descriptor import Domain
from ..settings import mesh_paths
from . import records
from .answers import MeshQuery
from .events import DomainEvent

PRODUCER = "urn:data-mesh-factory:domain-query"  # a URI naming this exporter
JOB_NAMESPACE = "data-mesh-factory"
STATES = {
    "run.started": RunState.START,
    "run.succeeded": RunState.COMPLETE,
    "run.failed": RunState.FAIL,
    "run.canceled": RunState.ABORT,
}


def port_namespace(domain: str) -> str:
    return f"file://{mesh_paths().lake_dir(domain)}"


def _assertions(checks: list[records.CheckResult]):
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=[
            data_quality_assertions_dataset.Assertion(
                assertion=c.name,
                success=c.passed,
                severity=c.severity.lower(),
                description=c.description,
            )
            for c in checks
        ],
        producer=PRODUCER,
    )


def _schema(domain: Domain, port: str):
    columns = domain.output_port(port).contract.columns
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=c.name,
                type=DUCKDB_TYPES[c.type],
                description=c.description or None,
                ordinal_position=i + 1,
            )
            for i, c in enumerate(columns)
        ],
        producer=PRODUCER,
    )


def _version(version: int | None) -> dict:
    if version is None:
        return {}
    return {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=str(version), producer=PRODUCER
        )
    }


def _inputs(query: MeshQuery, domain: Domain, versions: dict[str, int | None]):
    inputs = []
    for ref in domain.input_ports:
        version = versions.get(ref.ref)
        facets: dict[str, Any] = {}
        producer = query.domains.get(ref.domain)
        if producer is not None and version is not None:
            info = query.lakes.version(producer, ref.port, version)
            if info is not None:
                proof = query.checks(info.run_id, ref.domain, ref.port)
                facets = {"dataQualityAssertions": _assertions(proof)}
        inputs.append(
            InputDataset(
                namespace=port_namespace(ref.domain),
                name=ref.port,
                facets=_version(version),
                inputFacets=facets,
            )
        )
    landing = f"file://{mesh_paths().landing}"
    inputs += [InputDataset(namespace=landing, name=s.name) for s in domain.sources]
    return inputs


def _outputs(query: MeshQuery, domain: Domain, run_id: str):
    outputs = []
    for publish in records.publishes_in_run(query.instance, run_id):
        if publish.domain != domain.name:
            continue
        checks = query.checks(run_id, domain.name, publish.port)
        rows = publish.metadata.get("dagster/row_count")
        outputs.append(
            OutputDataset(
                namespace=port_namespace(domain.name),
                name=publish.port,
                facets=_version(publish.version)
                | {
                    "schema": _schema(domain, publish.port),
                    "dataQualityAssertions": _assertions(checks),
                },
                outputFacets={
                    "outputStatistics": _output_statistics(rows),
                },
            )
        )
    return outputs


def _output_statistics(rows: int | None):
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

    return stats.OutputStatisticsOutputDatasetFacet(rowCount=rows, producer=PRODUCER)


def _job(domain: Domain) -> Job:
    return Job(
        namespace=JOB_NAMESPACE,
        name=f"{domain.name}.build_{domain.name}",
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH",
                integration="DAGSTER",
                jobType="JOB",
                producer=PRODUCER,
            ),
            "documentation": documentation_job.DocumentationJobFacet(
                description=domain.description, producer=PRODUCER
            ),
            "ownership": ownership_job.OwnershipJobFacet(
                owners=[ownership_job.Owner(name=domain.owner, type="team")], producer=PRODUCER
            ),
        },
    )


def run_event(query: MeshQuery, event: DomainEvent) -> RunEvent | None:
    """The OpenLineage run event of a domain run event (None for other domain events)."""
    state = STATES.get(event.type)
    if state is None or event.domain is None or event.run_id is None:
        return None
    domain = query.domains[event.domain]
    outputs = _outputs(query, domain, event.run_id) if state == RunState.COMPLETE else []
    versions: dict[str, int | None] = {}
    for publish in records.publishes_in_run(query.instance, event.run_id):
        versions = publish.metadata.get("input_port_versions") or versions
    run_facets: dict[str, Any] = {}
    failure = (event.data or {}).get("failure")
    if state == RunState.FAIL and failure:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=failure.get("message") or "the run failed",
            programmingLanguage="python",
            producer=PRODUCER,
        )
    return RunEvent(
        eventType=state,
        eventTime=event.at,
        run=Run(runId=event.run_id, facets=run_facets),
        job=_job(domain),
        inputs=_inputs(query, domain, versions),
        outputs=outputs,
        producer=PRODUCER,
    )


def lineage(query: MeshQuery, events: list[DomainEvent]) -> list[dict[str, Any]]:
    """The OpenLineage run events of ``events``, as JSON-ready dicts."""
    out = []
    for event in events:
        run_event_ = run_event(query, event)
        if run_event_ is not None:
            out.append(Serde.to_dict(run_event_))
    return out
