"""Domain descriptors: parsed, validated, and ordered into build levels."""

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from mesh_domains.platform.descriptor import (
    DescriptorError,
    PortRef,
    discover_domains,
    domain_levels,
    load_domain,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_domain_folder_has_a_valid_descriptor_and_a_workspace_entry():
    """A domain is a folder plus a workspace entry: both must exist for every domain."""
    domains = discover_domains()
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    entries = {e["python_module"]["location_name"] for e in workspace["load_from"]}
    assert set(domains) == entries
    for name, domain in domains.items():
        assert domain.name == name
        assert domain.output_ports, name
        if domain.toolchain == "dbt":
            assert (ROOT / "dbt_projects" / name / "dbt_project.yml").exists()


def test_domain_levels_put_producers_before_consumers():
    """physician_dw reads physician_master's port, so it builds in a later level."""
    levels = domain_levels(discover_domains())
    flat = [n for level in levels for n in level]
    assert flat.index("physician_master") < flat.index("physician_dw")


def test_cycles_and_unknown_upstreams_are_reported():
    """A domain graph with a cycle cannot be ordered; the error names the domains."""
    domains = discover_domains()
    a, b = domains["physician_master"], domains["physician_dw"]
    looped = {
        "physician_master": replace(a, input_ports=(PortRef("physician_dw", "dim_physician"),)),
        "physician_dw": b,
        "reference": domains["reference"],  # physician_dw reads its territory_alignment
    }
    with pytest.raises(DescriptorError, match="cycle"):
        domain_levels(looped)


BASE = {
    "name": "demo",
    "team": "T",
    "owner": "team:t",
    "description": "d",
    "toolchain": "python",
    "output_ports": {"p": {"description": "p", "columns": {"id": {"type": "string"}}}},
}


def _descriptor(tmp_path: Path, body: dict) -> Path:
    folder = tmp_path / body.get("name", "demo")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "domain.yaml").write_text(yaml.safe_dump(body))
    return folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"team": None}, "missing required field 'team'"),
        ({"lifecycle_phase": "teenage"}, "'teenage' is not one of"),
        ({"toolchain": "excel"}, "'excel' is not one of"),
        ({"name": "other"}, "must equal its folder"),
        (
            {
                "output_ports": {
                    "p": {"description": "p", "primary_key": ["nope"], "columns": {"id": "string"}}
                }
            },
            "primary_key column 'nope' is not a declared column",
        ),
        (
            {"output_ports": {"p": {"description": "p", "columns": {"id": {"type": "uuid"}}}}},
            "'uuid' is not one of",
        ),
        ({"input_ports": {"sources": ["no_such_source"]}}, "not declared in"),
        ({"input_ports": {"ports": ["just_a_domain"]}}, "must look like '<domain>/<port>'"),
        ({"ownr": "typo"}, "unknown domain field"),
        (
            {
                "output_ports": {
                    "p": {"description": "p", "grant": ["x"], "columns": {"id": "string"}}
                }
            },
            "unknown output port field",
        ),
    ],
)
def test_descriptor_errors_name_the_file_and_the_field(tmp_path, change, message):
    """A broken descriptor is refused with the file and the offending field in the message."""
    body = {**BASE, **change}
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "domain.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(DescriptorError, match=message) as err:
        load_domain(folder)
    assert str(folder / "domain.yaml") in str(err.value)


def test_a_minimal_descriptor_loads(tmp_path):
    """The smallest valid domain: a team, a purpose, one port with one column."""
    domain = load_domain(_descriptor(tmp_path, BASE))
    assert domain.output_port("p").key == ["demo", "p"]
    assert domain.lifecycle_phase == "all"
