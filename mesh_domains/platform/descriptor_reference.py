"""The descriptor reference (``docs/descriptor.md``), generated from the schema the platform
validates with.

The fields of each part of a descriptor are the platform's own (``descriptor._KNOWN_KEYS``), the
allowed values its own constants; only the words about each field live here, as data beside the
schema. A unit test fails when a field is added to the schema without its documentation (or the
other way round) and when ``docs/descriptor.md`` is not what :func:`render` writes, so the
reference cannot drift from what ``load_domain`` accepts.

Regenerate: ``uv run python -m mesh_domains.platform.descriptor_reference``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .descriptor import (
    _KNOWN_KEYS,
    COLUMN_TYPES,
    LIFECYCLE_PHASES,
    MANAGEMENT_CONTENT,
    ON_DRIFT,
    PARAMETER_TYPES,
    REFERENCE,
    RULE_OPS,
    TOOLCHAINS,
)
from .partitions import CADENCES, UNPARTITIONED_CADENCES, WEEKDAYS
from .settings import ENVIRONMENTS, PROJECT_ROOT


@dataclass(frozen=True)
class Field:
    type: str
    doc: str
    default: str = ""  # "" = required
    allowed: tuple = ()
    example: str = ""


REQUIRED = ""

# where each part of a descriptor sits, and what it is
PARTS: dict[str, tuple[str, str]] = {
    "domain": ("`domain.yaml` (top level)", "The domain: who owns it, what it is for, its ports."),
    "sla": ("`sla:`", "What the domain promises about freshness."),
    "input_ports": (
        "`input_ports:`",
        "What the domain reads: landing sources and other domains' output ports.",
    ),
    "output port": (
        "`output_ports: {<port>: ...}`",
        "A published, contract-checked table, asset `[<domain>, <port>]`. Its contract is its "
        "`columns`, `primary_key`, `rules` and `min_rows`, checked before every publish.",
    ),
    "column": (
        "`columns: {<column>: ...}` (of an output port or a landing source)",
        "One column of a contract. A bare type is short for `{type: <type>}`.",
    ),
    "row rule": (
        "`rules: [...]` (of an output port or a landing source)",
        "A rule every row must satisfy, comparing two declared columns.",
    ),
    "partition": (
        "`partition:` (of an output port)",
        "How a port is cut in time: publishing a period replaces exactly its rows.",
    ),
    "warn rule": (
        "`warn: [...]` (of an output port)",
        "A warn-level expectation on a figure the build reports: a breach publishes anyway, "
        "with a warning check result.",
    ),
    "parameter": (
        "`parameters: {<name>: ...}`",
        "A typed run parameter, shown in the launchpad, set by `mesh build --set name=value`.",
    ),
    "variation": (
        "`variations: {<environment>: ...}`",
        "What an environment (`MESH_ENV`) changes for this domain.",
    ),
    "management port": (
        "`management_ports: [...]`",
        "An access point of the domain query service for managing the domain.",
    ),
    "source": (
        "`mesh_domains/landing.yaml`: `sources: {<source>: ...}`",
        "A landing source, declared once for every domain (not in `domain.yaml`; a domain "
        "names it under `input_ports.sources`). Its `csv:` and `partition:` blocks hold the "
        "delivery rules (delimiter, quote, encoding; folder format, week end, dated column).",
    ),
}

CONTRACT = {
    "columns": Field(
        "mapping column -> column spec",
        "The table's columns in order, each with its type and value rules (see Column).",
        example="columns: {ndc: {type: string, nullable: false}}",
    ),
    "primary_key": Field(
        "list of column names",
        "Columns whose values together identify a row: unique over the table.",
        "[] (no key)",
        example="primary_key: [ndc]",
    ),
    "rules": Field(
        "list of row rules", "Row rules (see Row rule).", "[]", example="rules: [{...}]"
    ),
    "min_rows": Field(
        "integer", "The fewest rows the table may have.", "1", example="min_rows: 1095"
    ),
}

FIELDS: dict[str, dict[str, Field]] = {
    "domain": {
        "name": Field("string", "The domain's name; must equal its folder.", example="name: shop"),
        "title": Field("string", "A readable name.", "the name in title case"),
        "team": Field("string", "The owning team.", example="team: Data Engineering"),
        "owner": Field(
            "string",
            "The Dagster owner of every port: `team:<name>` or an e-mail address.",
            example="owner: team:data_engineering",
        ),
        "description": Field("string", "What the domain is for (shown in the UI)."),
        "lifecycle_phase": Field(
            "string", "Where the product is in its life.", "all", LIFECYCLE_PHASES
        ),
        "toolchain": Field(
            "string",
            "How the ports are built: Python builders, or the dbt project "
            "`dbt_projects/<name>/` (its profile name is the one its `dbt_project.yml` asks "
            "for; the platform writes it).",
            allowed=TOOLCHAINS,
        ),
        "sla": Field("mapping (see Sla)", "Freshness promise.", "none"),
        "input_ports": Field("mapping (see Input ports)", "What the domain reads.", "nothing"),
        "output_ports": Field(
            "mapping port -> output port",
            "The published tables (at least one); see Output port.",
        ),
        "glossary": Field(
            "mapping term -> text", "The domain's words, shown with its ports.", "{}"
        ),
        "management_ports": Field("list (see Management port)", "Management access points.", "[]"),
        "parameters": Field("mapping (see Parameter)", "Run parameters.", "{}"),
        "variations": Field("mapping (see Variation)", "Per-environment settings.", "{}"),
        "on_drift": Field(
            "string",
            "When two input ports derive from different versions of a shared upstream port: "
            "refuse to build, or read the newest set of versions that agree.",
            "refuse",
            ON_DRIFT,
        ),
    },
    "sla": {
        "freshness_hours": Field(
            "number", "How old the served ports may get before the domain is late.", "none"
        ),
    },
    "input_ports": {
        "sources": Field(
            "list of landing source names",
            "Landing sources (declared in `mesh_domains/landing.yaml`) the domain ingests.",
            "[]",
            example="sources: [product_master]",
        ),
        "ports": Field(
            "list of `<domain>/<port>`",
            "Other domains' output ports; each producer must list this domain in the port's "
            "`grants`. dbt reads them with `source('<domain>', '<port>')`.",
            "[]",
            example="ports: [reference/calendar]",
        ),
    },
    "output port": {
        "description": Field("string", "What a row is and what the port is for."),
        "grants": Field(
            "list of domain names",
            "The domains allowed to read the port (may be empty).",
            "[]",
            example="grants: [physician_dw]",
        ),
        "warn": Field("list (see Warn rule)", "Warn-level expectations.", "[]"),
        "partition": Field("mapping (see Partition)", "Time partitioning.", "unpartitioned"),
        "version": Field("integer", "The contract's version (raise it on a breaking change).", "1"),
        **CONTRACT,
    },
    "column": {
        "type": Field("string", "The column's type.", "string", COLUMN_TYPES),
        "description": Field("string", "What the column holds (shown in the UI).", '""'),
        "nullable": Field("boolean", "Whether nulls are allowed.", "true"),
        "unique": Field("boolean", "Whether values must be unique.", "false"),
        "isin": Field("list", "The allowed values.", "any", example="isin: [paid, rejected]"),
        "ge": Field("number or date", "Values must be >= this.", "none", example="ge: 0"),
        "le": Field("number or date", "Values must be <= this.", "none"),
        "gt": Field("number or date", "Values must be > this.", "none"),
        "lt": Field("number or date", "Values must be < this.", "none"),
        "str_length": Field(
            "integer or [min, max]", "The string's length.", "any", example="str_length: [3, 5]"
        ),
        "matches": Field(
            "regular expression", "Values must match it.", "any", example="matches: '^[0-9]{3}$'"
        ),
        "npi": Field("boolean", "Values must be valid NPIs (Luhn check digit).", "false"),
    },
    "row rule": {
        "name": Field("string", "The rule's name, shown on failures."),
        "left": Field("column name", "The left-hand column."),
        "op": Field("string", "The comparison.", allowed=RULE_OPS),
        "right": Field("column name", "The right-hand column."),
    },
    "partition": {
        "cadence": Field("string", "The period of one partition.", allowed=CADENCES),
        "column": Field("column name", "The declared date or timestamp column naming the period."),
        "week_ends_on": Field("weekday", "Weekly only: the week's last day.", "saturday", WEEKDAYS),
    },
    "warn rule": {
        "name": Field("string", "The rule's name (a check of the port)."),
        "metric": Field("string", "A figure the build reports for the port."),
        "op": Field(
            "string", "With `value`: the comparison the metric must pass.", "none", RULE_OPS
        ),
        "value": Field("number", "With `op`: the bound.", "none"),
        "max_drop": Field(
            "number", "Instead of `op`/`value`: the largest fall from the previous version.", "none"
        ),
    },
    "parameter": {
        "type": Field("string", "The value's type.", "string", PARAMETER_TYPES),
        "default": Field("as its type", "The value when none is given.", "none"),
        "description": Field("string", "Shown in the launchpad.", '""'),
    },
    "variation": {
        "params": Field(
            "mapping parameter -> value", "Parameters this environment sets (declared ones).", "{}"
        ),
        "on_drift": Field("string", "This environment's drift policy.", "the domain's", ON_DRIFT),
    },
    "management port": {
        "name": Field("string", "The access point's name."),
        "content": Field("string", "What it serves.", allowed=MANAGEMENT_CONTENT),
        "url": Field("path", "Its path on the domain query service, starting with `/`."),
        "type": Field("string", "How it is served.", "rest", ("rest", "topic")),
        "description": Field("string", "What it is for.", '""'),
    },
    "source": {
        "description": Field("string", "What a delivery is.", '""'),
        "cadence": Field(
            "string", "How often it is delivered.", allowed=CADENCES + UNPARTITIONED_CADENCES
        ),
        "file": Field("file name", "The delivery's file in its partition folder.", "<source>.csv"),
        "csv": Field("mapping", "delimiter, quote, encoding of the file.", '`,` `"` utf-8'),
        "partition": Field(
            "mapping",
            "format (folder name, strftime), week_ends_on, column, match of the deliveries.",
            "none",
        ),
        "unique_across_deliveries": Field(
            "boolean", "The primary key must not repeat across deliveries.", "false"
        ),
        **CONTRACT,
    },
}

EXAMPLE = """\
name: shop
title: Shop
team: Shop team
owner: team:shop
lifecycle_phase: launch
toolchain: python
description: The shop's products and their prices.
sla: {freshness_hours: 168}
parameters:
  as_of: {type: date, description: Build as of this day.}
variations:
  canary: {on_drift: pin_consistent}
input_ports:
  sources: [product_master]
  ports: []
output_ports:
  product_prices:
    description: One row per NDC of the newest product master release.
    grants: []
    primary_key: [ndc]
    columns:
      ndc: {type: string, nullable: false, matches: '^[0-9]{5}-[0-9]{4}-[0-9]{2}$'}
      product: {type: string, nullable: false, isin: [ZENVIRA, CARDIOLEX, HARTEX, VASOPRIN]}
      list_price: {type: float64, nullable: false, gt: 0}
      unit_price: {type: float64, nullable: false, gt: 0}
    rules:
      - {name: list_covers_unit, left: list_price, op: ">=", right: unit_price}
"""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The Markdown reference, from :data:`FIELDS` and the platform's schema."""
    out = [
        "# Domain descriptor reference",
        "",
        "<!-- generated by `python -m mesh_domains.platform.descriptor_reference` from the "
        "schema in mesh_domains/platform/descriptor.py; do not edit -->",
        "",
        "A domain is a folder `mesh_domains/<domain>/` whose `domain.yaml` is its product "
        "descriptor. `mesh new-domain NAME --toolchain python|dbt` writes a commented one; "
        "`mesh new-domain NAME --from-dbt PATH` writes one from a dbt project. The platform "
        "validates every descriptor when it loads and refuses unknown fields; each error "
        "names the file, the field and the section of this page.",
        "",
        "A field without a default is required. Environments: "
        + ", ".join(f"`{e}`" for e in ENVIRONMENTS)
        + ".",
        "",
        "## Example",
        "",
        "```yaml",
        EXAMPLE.rstrip(),
        "```",
        "",
    ]
    for kind, fields in FIELDS.items():
        where, what = PARTS[kind]
        out += [f"## {kind.replace('_', ' ').capitalize()}", "", f"{where}. {what}", ""]
        out += ["| field | type | default | allowed values | meaning | example |"]
        out += ["| --- | --- | --- | --- | --- | --- |"]
        for name in sorted(fields, key=list(fields).index):
            f = fields[name]
            allowed = ", ".join(f"`{v}`" for v in f.allowed)
            default = "**required**" if f.default == REQUIRED else _cell(f.default)
            example = f"`{f.example}`" if f.example else ""
            out.append(
                f"| `{name}` | {_cell(f.type)} | {default} | {allowed} | {_cell(f.doc)} "
                f"| {_cell(example)} |"
            )
        out.append("")
    return "\n".join(out)


def undocumented() -> dict[str, set[str]]:
    """Fields the platform accepts without documentation here, and documented fields it
    does not accept, per part: both empty when the reference matches the schema."""
    drift = {}
    for kind in set(_KNOWN_KEYS) | set(FIELDS):
        known, documented = _KNOWN_KEYS.get(kind, set()), set(FIELDS.get(kind, {}))
        if known != documented:
            drift[kind] = known ^ documented
    return drift


def main() -> None:  # pragma: no cover - regenerates the file
    path = PROJECT_ROOT / REFERENCE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render())
    print(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    main()
