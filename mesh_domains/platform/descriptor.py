"""The domain descriptor (``domain.yaml``): a domain's product spec, read once, used everywhere.

A descriptor names the domain, its owner team, purpose and lifecycle phase, its input ports (raw
landing sources and other domains' output ports), its output ports with their contracts and
access grants, and its SLA. The platform builds the domain's Dagster definitions, contracts,
storage grants and domain query answers from it, so a domain folder reads like its spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .partitions import UNPARTITIONED_CADENCES, Cadence, parse_cadence

LIFECYCLE_PHASES = ("launch", "growth", "mature", "all")
TOOLCHAINS = ("python", "dbt")
COLUMN_TYPES = ("string", "int64", "float64", "date", "timestamp", "boolean")
RULE_OPS = (">=", ">", "<=", "<", "=", "!=")
MANAGEMENT_CONTENT = ("discoverability", "observability", "control")


REFERENCE = "docs/descriptor.md"  # every field, generated from the schema below


class DescriptorError(ValueError):
    """A ``domain.yaml`` that does not describe a valid domain; the message names file and field
    and points to the field's section of the descriptor reference."""

    def __init__(self, message: str, section: str = "") -> None:
        anchor = "#" + section.replace(" ", "-").replace("_", "-") if section else ""
        super().__init__(f"{message}\n  (descriptor reference: {REFERENCE}{anchor})")


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract: type, nullability, and value rules."""

    name: str
    type: str
    description: str = ""
    nullable: bool = True
    unique: bool = False
    checks: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RowRule:
    """A cross-column rule every row must satisfy, e.g. ``trx >= nrx``."""

    name: str
    left: str
    op: str
    right: str


@dataclass(frozen=True)
class Contract:
    """What a table promises: columns, keys and row rules. Checked before every publish."""

    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...] = ()
    rules: tuple[RowRule, ...] = ()
    min_rows: int = 1

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class WarnRule:
    """A warn-level expectation on a port's build metric (e.g. a falling match rate): a breach
    publishes anyway, with a warning check result and a warning in the run log."""

    name: str
    metric: str
    op: str | None = None
    value: float | None = None
    max_drop: float | None = None


@dataclass(frozen=True)
class PortPartition:
    """How a port is cut in time: its cadence, and the date column that says which period
    (partition) a row belongs to. Publishing a partition replaces exactly its rows."""

    cadence: Cadence
    column: str


@dataclass(frozen=True)
class OutputPort:
    """A published, contract-checked table of the domain: asset key ``[domain, name]``."""

    domain: str
    name: str
    description: str
    contract: Contract
    grants: tuple[str, ...] = ()
    warn_rules: tuple[WarnRule, ...] = ()
    partition: PortPartition | None = None
    version: int = 1  # the contract's version: raised for a change that breaks consumers

    @property
    def key(self) -> list[str]:
        return [self.domain, self.name]

    @property
    def ref(self) -> str:
        return f"{self.domain}/{self.name}"


@dataclass(frozen=True)
class SourcePort:
    """A raw landing source the domain ingests: ``data/landing/<name>/<partition>/<file>``."""

    name: str
    description: str
    cadence: str
    file: str
    contract: Contract
    week_ends_on: str | None = None

    @property
    def partitioning(self) -> Cadence | None:
        """The source's cadence partitions: one partition per delivery period (none for a
        source delivered ``rarely``, e.g. a reference file replaced now and then)."""
        if self.cadence in UNPARTITIONED_CADENCES:
            return None
        return parse_cadence(self.cadence, self.week_ends_on)


@dataclass(frozen=True)
class PortRef:
    """An input port on another domain's output port, named by its key, never by its code."""

    domain: str
    port: str

    @property
    def key(self) -> list[str]:
        return [self.domain, self.port]

    @property
    def ref(self) -> str:
        return f"{self.domain}/{self.port}"


@dataclass(frozen=True)
class ManagementPort:
    """An access point for managing the domain (the Open Data Product Standard's
    ``managementPorts``): a URL of the domain query service, relative to where it runs."""

    name: str
    content: str
    url: str
    type: str = "rest"
    description: str = ""


@dataclass(frozen=True)
class Parameter:
    """A typed run parameter of the domain (a variation knob: an as-of week, a brand, a subset
    of territories), shown in the Dagster launchpad and recorded on every port version."""

    name: str
    type: str
    default: Any = None
    description: str = ""


PARAMETER_TYPES = ("string", "int64", "float64", "boolean", "date")
# what a consumer does when two of its input ports derive from different versions of a shared
# upstream port (decision 6): refuse to build, or read the newest set of versions that agree
ON_DRIFT = ("refuse", "pin_consistent")


@dataclass(frozen=True)
class Domain:
    """A parsed ``domain.yaml``."""

    name: str
    title: str
    team: str
    owner: str
    description: str
    lifecycle_phase: str
    toolchain: str
    sla_freshness_hours: float | None
    sources: tuple[SourcePort, ...]
    input_ports: tuple[PortRef, ...]
    output_ports: tuple[OutputPort, ...]
    path: Path
    glossary: dict[str, str] = field(default_factory=dict)
    management_ports: tuple[ManagementPort, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    variations: dict[str, dict[str, Any]] = field(default_factory=dict)
    on_drift: str = "refuse"
    variation_on_drift: dict[str, str] = field(default_factory=dict)

    def variation_params(self, env: str) -> dict[str, Any]:
        """The parameters an environment variation sets (e.g. canary's declared subset)."""
        return dict(self.variations.get(env, {}))

    def drift_policy(self, env: str) -> str:
        """``on_drift`` in environment ``env``: the variation's choice, else the domain's."""
        return self.variation_on_drift.get(env, self.on_drift)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def output_port(self, name: str) -> OutputPort:
        for port in self.output_ports:
            if port.name == name:
                return port
        known = ", ".join(p.name for p in self.output_ports)
        raise KeyError(f"domain {self.name} has no output port {name!r} (ports: {known})")

    def source(self, name: str) -> SourcePort:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources)
        raise KeyError(f"domain {self.name} has no source input port {name!r} (sources: {known})")

    @property
    def upstream_domains(self) -> list[str]:
        return sorted({p.domain for p in self.input_ports if p.domain != self.name})


def read_yaml(path: Path) -> Any:
    """A YAML file's content, parsed with libyaml when available (10x faster than pure Python)
    and cached until the file changes: descriptors are read by every build step and sensor."""
    stat = path.stat()
    return _read_yaml(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _read_yaml(path: Path, mtime_ns: int, size: int) -> Any:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_domain(path: Path | str) -> Domain:
    """Read and validate a ``domain.yaml`` (or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "domain.yaml"
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise DescriptorError(f"{path}: no domain descriptor here") from exc
    landing = LANDING_DESCRIPTOR.stat()
    return _load_domain(path, stat.st_mtime_ns, stat.st_size, landing.st_mtime_ns, landing.st_size)


@lru_cache(maxsize=128)
def _load_domain(path: Path, *stamps: int) -> Domain:
    """Parsed once per version of the descriptor and of the landing zone's (``stamps``)."""
    return _parse_domain(read_yaml(path) or {}, path)


_CONTRACT_KEYS = {"columns", "primary_key", "rules", "min_rows"}
_COLUMN_CHECKS = {"isin", "ge", "le", "gt", "lt", "str_length", "matches", "npi"}
_KNOWN_KEYS = {
    "domain": {
        "name",
        "on_drift",
        "title",
        "team",
        "owner",
        "description",
        "lifecycle_phase",
        "toolchain",
        "sla",
        "input_ports",
        "output_ports",
        "glossary",
        "management_ports",
        "parameters",
        "variations",
    },
    "source": {"description", "cadence", "file", "csv", "partition", "unique_across_deliveries"}
    | _CONTRACT_KEYS,
    "output port": {"description", "grants", "warn", "partition", "version"} | _CONTRACT_KEYS,
    "sla": {"freshness_hours"},
    "input_ports": {"sources", "ports"},
    "column": {"type", "description", "nullable", "unique"} | _COLUMN_CHECKS,
    "row rule": {"name", "left", "op", "right"},
    "partition": {"cadence", "column", "week_ends_on"},
    "warn rule": {"name", "metric", "op", "value", "max_drop"},
    "parameter": {"type", "default", "description"},
    "variation": {"params", "on_drift"},
    "management port": {"name", "content", "url", "type", "description"},
}


def _known(raw: dict, kind: str, where: str) -> dict:
    """Refuse unknown fields: a typo must not silently drop a rule."""
    unknown = set(raw) - _KNOWN_KEYS[kind]
    if unknown:
        raise DescriptorError(
            f"{where}: unknown {kind} field(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(_KNOWN_KEYS[kind]))})",
            kind,
        )
    return raw


def _require(raw: dict, key: str, where: str) -> Any:
    if key not in raw or raw[key] in (None, ""):
        raise DescriptorError(f"{where}: missing required field {key!r}")
    return raw[key]


def _one_of(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise DescriptorError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _parse_domain(raw: dict, path: Path) -> Domain:
    where = str(path)
    _known(raw, "domain", where)
    name = _require(raw, "name", where)
    if path.parent.name != name:
        raise DescriptorError(f"{where}: name {name!r} must equal its folder {path.parent.name!r}")
    inputs = raw.get("input_ports") or {}
    sla = raw.get("sla") or {}
    return Domain(
        name=name,
        title=raw.get("title", name.replace("_", " ").title()),
        team=_require(raw, "team", where),
        owner=_require(raw, "owner", where),
        description=_require(raw, "description", where).strip(),
        lifecycle_phase=_one_of(raw.get("lifecycle_phase", "all"), LIFECYCLE_PHASES, where),
        toolchain=_one_of(_require(raw, "toolchain", where), TOOLCHAINS, where),
        sla_freshness_hours=sla.get("freshness_hours"),
        sources=tuple(_landing_source(n, where) for n in inputs.get("sources") or ()),
        input_ports=tuple(_parse_port_ref(r, where) for r in inputs.get("ports") or []),
        output_ports=tuple(
            _parse_output_port(name, n, p or {}, f"{where}: output port {n}")
            for n, p in _require(raw, "output_ports", where).items()
        ),
        path=path,
        glossary={str(k): str(v).strip() for k, v in (raw.get("glossary") or {}).items()},
        management_ports=tuple(
            _parse_management_port(m or {}, f"{where}: management port")
            for m in raw.get("management_ports") or ()
        ),
        parameters=tuple(
            _parse_parameter(n, p or {}, f"{where}: parameter {n}")
            for n, p in (raw.get("parameters") or {}).items()
        ),
        variations=_parse_variations(raw, where),
        on_drift=_one_of(raw.get("on_drift", "refuse"), ON_DRIFT, f"{where}: on_drift"),
        variation_on_drift={
            env: _one_of(spec["on_drift"], ON_DRIFT, f"{where}: variation {env}: on_drift")
            for env, spec in (raw.get("variations") or {}).items()
            if "on_drift" in (spec or {})
        },
    )


def _parse_variations(raw: dict, where: str) -> dict[str, dict[str, Any]]:
    """``variations: {canary: {params: {states: "MA,NY"}, on_drift: ...}}``: what each
    environment sets (its parameters here; its drift policy in :meth:`Domain.drift_policy`)."""
    from .settings import ENVIRONMENTS

    declared = {n for n in (raw.get("parameters") or {})}
    out = {}
    for env, spec in (raw.get("variations") or {}).items():
        _one_of(env, ENVIRONMENTS, f"{where}: variation")
        params = (spec or {}).get("params") or {}
        unknown = set(spec or {}) - _KNOWN_KEYS["variation"] | (set(params) - declared)
        if unknown:
            raise DescriptorError(
                f"{where}: variation {env}: unknown field(s) or undeclared parameter(s) "
                f"{', '.join(sorted(unknown))} (parameters: {', '.join(sorted(declared))})",
                "variation",
            )
        out[env] = dict(params)
    return out


def _parse_parameter(name: str, raw: dict, where: str) -> Parameter:
    unknown = set(raw) - _KNOWN_KEYS["parameter"]
    if unknown:
        raise DescriptorError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}", "parameter"
        )
    return Parameter(
        name=name,
        type=_one_of(raw.get("type", "string"), PARAMETER_TYPES, where),
        default=raw.get("default"),
        description=str(raw.get("description", "")).strip(),
    )


def _parse_management_port(raw: dict, where: str) -> ManagementPort:
    port = ManagementPort(
        name=_require(raw, "name", where),
        content=_one_of(_require(raw, "content", where), MANAGEMENT_CONTENT, where),
        url=_require(raw, "url", where),
        type=_one_of(raw.get("type", "rest"), ("rest", "topic"), where),
        description=str(raw.get("description", "")).strip(),
    )
    if not port.url.startswith("/"):
        raise DescriptorError(
            f"{where} {port.name}: url {port.url!r} must be a path like /domains/.."
        )
    return port


LANDING_DESCRIPTOR = Path(__file__).resolve().parents[1] / "landing.yaml"


def load_landing(path: Path = LANDING_DESCRIPTOR) -> dict[str, SourcePort]:
    """The landing zone's sources and their contracts, declared once for every domain."""
    stat = path.stat()
    return dict(_load_landing(path, stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _load_landing(path: Path, mtime_ns: int, size: int) -> dict[str, SourcePort]:
    raw = read_yaml(path) or {}
    return {
        name: _parse_source(name, spec or {}, f"{path}: source {name}")
        for name, spec in (raw.get("sources") or {}).items()
    }


def _landing_source(name: str, where: str) -> SourcePort:
    sources = load_landing()
    if name not in sources:
        raise DescriptorError(
            f"{where}: input source {name!r} is not declared in {LANDING_DESCRIPTOR} "
            f"(known: {', '.join(sorted(sources))})"
        )
    return sources[name]


def _parse_port_ref(ref: str, where: str) -> PortRef:
    parts = str(ref).split("/")
    if len(parts) != 2 or not all(parts):
        raise DescriptorError(f"{where}: input port {ref!r} must look like '<domain>/<port>'")
    return PortRef(*parts)


def _parse_source(name: str, raw: dict, where: str) -> SourcePort:
    _known(raw, "source", where)
    source = SourcePort(
        name=name,
        description=raw.get("description", "").strip(),
        cadence=_require(raw, "cadence", where),
        file=raw.get("file", f"{name}.csv"),
        contract=_parse_contract(raw, where),
        week_ends_on=(raw.get("partition") or {}).get("week_ends_on"),
    )
    try:
        source.partitioning  # noqa: B018 — validates cadence and weekday
    except ValueError as exc:
        raise DescriptorError(f"{where}: {exc}") from exc
    return source


def _parse_partition(raw: dict | None, contract: Contract, where: str) -> PortPartition | None:
    """``partition: {cadence: weekly, column: week_ending, week_ends_on: saturday}``."""
    if not raw:
        return None
    unknown = set(raw) - _KNOWN_KEYS["partition"]
    if unknown:
        raise DescriptorError(
            f"{where}: unknown partition field(s) {', '.join(sorted(unknown))}", "partition"
        )
    try:
        cadence = parse_cadence(_require(raw, "cadence", where), raw.get("week_ends_on"))
    except ValueError as exc:
        raise DescriptorError(f"{where}: partition {exc}") from exc
    column = _require(raw, "column", f"{where}: partition")
    types = {c.name: c.type for c in contract.columns}
    if types.get(column) not in ("date", "timestamp"):
        raise DescriptorError(
            f"{where}: partition column {column!r} must be a declared date or timestamp column"
        )
    return PortPartition(cadence, column)


def _parse_output_port(domain: str, name: str, raw: dict, where: str) -> OutputPort:
    _known(raw, "output port", where)
    contract = _parse_contract(raw, where)
    return OutputPort(
        domain=domain,
        name=name,
        description=_require(raw, "description", where).strip(),
        contract=contract,
        grants=tuple(raw.get("grants") or ()),
        warn_rules=tuple(_parse_warn_rule(r, f"{where}: warn rule") for r in raw.get("warn") or ()),
        partition=_parse_partition(raw.get("partition"), contract, where),
        version=int(raw.get("version", 1)),
    )


def _parse_warn_rule(raw: dict, where: str) -> WarnRule:
    rule = WarnRule(
        name=_require(raw, "name", where),
        metric=_require(raw, "metric", where),
        op=raw.get("op"),
        value=raw.get("value"),
        max_drop=raw.get("max_drop"),
    )
    if rule.op is not None:
        _one_of(rule.op, RULE_OPS, f"{where} {rule.name}")
    if (rule.op is None) == (rule.max_drop is None):
        raise DescriptorError(f"{where} {rule.name}: give either op and value, or max_drop")
    return rule


def _parse_contract(raw: dict, where: str) -> Contract:
    columns = tuple(
        _parse_column(n, c or {}, f"{where}: column {n}")
        for n, c in _require(raw, "columns", where).items()
    )
    names = {c.name for c in columns}
    key = tuple(raw.get("primary_key") or ())
    for col in key:
        if col not in names:
            raise DescriptorError(f"{where}: primary_key column {col!r} is not a declared column")
    rules = tuple(_parse_rule(r, names, where) for r in raw.get("rules") or ())
    return Contract(columns, key, rules, int(raw.get("min_rows", 1)))


def _parse_column(name: str, raw: dict | str, where: str) -> ColumnSpec:
    if isinstance(raw, str):
        raw = {"type": raw}
    checks = {
        k: v for k, v in raw.items() if k not in {"type", "description", "nullable", "unique"}
    }
    unknown = set(checks) - _COLUMN_CHECKS
    if unknown:
        raise DescriptorError(f"{where}: unknown check(s) {', '.join(sorted(unknown))}", "column")
    return ColumnSpec(
        name=name,
        type=_one_of(raw.get("type", "string"), COLUMN_TYPES, where),
        description=str(raw.get("description", "")).strip(),
        nullable=bool(raw.get("nullable", True)),
        unique=bool(raw.get("unique", False)),
        checks=checks,
    )


def _parse_rule(raw: dict, names: set[str], where: str) -> RowRule:
    rule = RowRule(
        name=_require(raw, "name", where),
        left=_require(raw, "left", where),
        op=_one_of(_require(raw, "op", where), RULE_OPS, f"{where}: rule {raw.get('name')}"),
        right=_require(raw, "right", where),
    )
    for col in (rule.left, rule.right):
        if col not in names:
            raise DescriptorError(f"{where}: rule {rule.name} uses undeclared column {col!r}")
    return rule


def discover_domains(root: Path | None = None) -> dict[str, Domain]:
    """Every domain folder (one holding a ``domain.yaml``) under ``mesh_domains/``."""
    root = root or Path(__file__).resolve().parents[1]
    return {d.name: d for d in (load_domain(p) for p in sorted(root.glob("*/domain.yaml")))}


def domain_levels(domains: dict[str, Domain]) -> list[list[str]]:
    """Domains grouped into build levels: each level depends only on earlier ones."""
    remaining = {name: set(d.upstream_domains) for name, d in domains.items()}
    for name, ups in remaining.items():
        missing = ups - set(domains)
        if missing:
            raise DescriptorError(f"domain {name} has input ports on unknown domains: {missing}")
    levels: list[list[str]] = []
    done: set[str] = set()
    while remaining:
        ready = sorted(n for n, ups in remaining.items() if ups <= done)
        if not ready:
            raise DescriptorError(f"cycle in the domain graph among: {sorted(remaining)}")
        levels.append(ready)
        done.update(ready)
        for n in ready:
            del remaining[n]
    return levels
