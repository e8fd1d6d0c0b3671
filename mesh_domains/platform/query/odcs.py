"""Contracts out: every output port's contract as an Open Data Contract Standard v3 document.

The descriptor is the source; this module only translates it, with the standard's own model
classes (``open_data_contract_standard``): columns become schema properties (logical and
physical type, required, unique, primary key position, value options), keys and row rules
become quality rules, the SLA becomes an SLA property, the lake a DuckDB server.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from open_data_contract_standard.model import (
    CustomProperty,
    DataQuality,
    Description,
    EnumValue,
    OpenDataContractStandard,
    SchemaObject,
    SchemaProperty,
    Server,
    ServiceLevelAgreementProperty,
    Support,
    Team,
)

from ..contracts import DUCKDB_TYPES
from ..descriptor import ColumnSpec, Domain, OutputPort
from ..settings import mesh_env, mesh_paths

API_VERSION = "v3.2.0"
LOGICAL_TYPES = {
    "string": "string",
    "int64": "integer",
    "float64": "number",
    "date": "date",
    "timestamp": "timestamp",
    "boolean": "boolean",
}
_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}
_SQL_OPS = {">=": ">=", ">": ">", "<=": "<=", "<": "<", "=": "=", "!=": "<>"}


def contract_version(port: OutputPort) -> str:
    """A version that changes exactly when the port's declared contract changes."""
    digest = hashlib.sha256(json.dumps(asdict(port.contract), sort_keys=True).encode())
    return f"1.0.0+{digest.hexdigest()[:12]}"


def _options(column: ColumnSpec) -> dict | None:
    checks = column.checks
    options: dict = {}
    for bound, name in _BOUNDS.items():
        if bound in checks:
            value = checks[bound]
            options[name] = str(value) if column.type in ("date", "timestamp") else value
    if column.type == "string":
        if "str_length" in checks:
            length = checks["str_length"]
            lo, hi = (length, length) if isinstance(length, int) else (length[0], length[1])
            options["minLength"], options["maxLength"] = lo, hi
        if "matches" in checks:
            options["pattern"] = checks["matches"]
    if column.type == "int64":
        options["format"] = "i64"
    if column.type == "float64":
        options["format"] = "f64"
    return options or None


def _column_quality(column: ColumnSpec) -> list[DataQuality] | None:
    rules = []
    if "isin" in column.checks:
        rules.append(
            DataQuality(
                type="library",
                metric="invalidValues",
                arguments={"validValues": list(column.checks["isin"])},
                mustBe=0,
                dimension="conformity",
                severity="error",
            )
        )
    if column.checks.get("npi"):
        rules.append(
            DataQuality(
                type="text",
                name="npi_check_digit",
                description="A valid NPI: 10 digits whose Luhn check digit (over the 80840 "
                "prefix) is right.",
                dimension="conformity",
                severity="error",
            )
        )
    return rules or None


def _property(port: OutputPort, column: ColumnSpec) -> SchemaProperty:
    key = list(port.contract.primary_key)
    return SchemaProperty(
        name=column.name,
        physicalName=column.name,
        logicalType=LOGICAL_TYPES[column.type],
        physicalType=DUCKDB_TYPES[column.type],
        description=column.description or None,
        required=not column.nullable,
        unique=column.unique or key == [column.name] or None,
        primaryKey=(column.name in key) or None,
        primaryKeyPosition=key.index(column.name) + 1 if column.name in key else None,
        logicalTypeOptions=_options(column),
        enum=[EnumValue(value=v) for v in column.checks["isin"]]
        if "isin" in column.checks
        else None,
        quality=_column_quality(column),
    )


def _table_quality(port: OutputPort) -> list[DataQuality]:
    contract = port.contract
    rules = [
        DataQuality(
            type="library",
            metric="rowCount",
            mustBeGreaterOrEqualTo=contract.min_rows,
            dimension="completeness",
            severity="error",
        )
    ]
    if len(contract.primary_key) > 1:
        rules.append(
            DataQuality(
                type="library",
                metric="duplicateValues",
                arguments={"properties": list(contract.primary_key)},
                mustBe=0,
                dimension="uniqueness",
                severity="error",
            )
        )
    for rule in contract.rules:
        rules.append(
            DataQuality(
                type="sql",
                name=rule.name,
                description=f"Every row: {rule.left} {rule.op} {rule.right}.",
                query=f"select count(*) from {port.name} "
                f"where not ({rule.left} {_SQL_OPS[rule.op]} {rule.right})",
                mustBe=0,
                dimension="consistency",
                severity="error",
            )
        )
    for warn in port.warn_rules:
        expectation = (
            f"may drop by at most {warn.max_drop} from the previous version"
            if warn.max_drop is not None
            else f"{warn.op} {warn.value}"
        )
        rules.append(
            DataQuality(
                type="text",
                name=warn.name,
                description=f"Build metric {warn.metric} {expectation}; a breach publishes "
                "with a warning.",
                severity="warning",
            )
        )
    return rules


def contract_document(domain: Domain, port: OutputPort) -> OpenDataContractStandard:
    """The port's contract as an ODCS v3 document (the standard's own model)."""
    sla = (
        [
            ServiceLevelAgreementProperty(
                property="latency",
                value=domain.sla_freshness_hours,
                unit="h",
                description="A new version is published at most this long after the last one "
                "(the port's freshness policy).",
            )
        ]
        if domain.sla_freshness_hours is not None
        else None
    )
    return OpenDataContractStandard(
        apiVersion=API_VERSION,
        kind="DataContract",
        id=f"urn:mesh:{domain.name}:{port.name}",
        name=f"{domain.name}/{port.name}",
        version=contract_version(port),
        status="active",
        domain=domain.name,
        dataProduct=domain.name,
        tags=[domain.lifecycle_phase, domain.toolchain],
        description=Description(purpose=port.description, usage=domain.description),
        schema=[
            SchemaObject(
                name=port.name,
                physicalName=port.name,
                physicalType="table",
                logicalType="object",
                description=port.description,
                properties=[_property(port, c) for c in port.contract.columns],
                quality=_table_quality(port),
            )
        ],
        servers=[
            Server(
                server="lake",
                type="duckdb",
                environment=mesh_env(),
                description="The domain's DuckLake (SQLite catalog + Parquet files); read the "
                "served version through the domain query's Where (a grant is needed).",
                database=mesh_paths().catalog_uri(domain.name),
                schema="main",
            )
        ],
        team=Team(name=domain.team, description=f"owner {domain.owner}"),
        support=[
            Support(
                channel="domain query",
                url=f"/domains/{domain.name}/ports/{port.name}",
                description="The four W's and an H of this port (mesh serve).",
            )
        ],
        slaProperties=sla,
        customProperties=[
            CustomProperty(property="grants", value=list(port.grants)),
            CustomProperty(property="owner", value=domain.owner),
        ],
    )


def contract_yaml(domain: Domain, port: OutputPort) -> str:
    return contract_document(domain, port).to_yaml()


def export_contracts(domains: dict[str, Domain], out: Path) -> list[Path]:
    """Write ``<out>/<domain>/<port>.odcs.yaml`` for every output port; returns the files."""
    written = []
    for domain in domains.values():
        for port in domain.output_ports:
            path = out / domain.name / f"{port.name}.odcs.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(contract_yaml(domain, port))
            written.append(path)
    return written
