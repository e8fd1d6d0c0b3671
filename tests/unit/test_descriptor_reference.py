"""The descriptor reference (docs/descriptor.md) is generated from the schema the platform
validates with: it documents every field the platform accepts and nothing else, the file is
what the generator writes, its example loads, and descriptor errors point to it."""

from __future__ import annotations

import pytest
import yaml

from mesh_domains.platform.descriptor import _KNOWN_KEYS, DescriptorError, load_domain
from mesh_domains.platform.descriptor_reference import EXAMPLE, FIELDS, render, undocumented
from mesh_domains.platform.settings import PROJECT_ROOT


def test_every_accepted_field_is_documented_and_nothing_else():
    assert undocumented() == {}
    assert set(FIELDS) == set(_KNOWN_KEYS)


def test_the_reference_file_is_generated():
    """Regenerate with `python -m mesh_domains.platform.descriptor_reference`."""
    assert (PROJECT_ROOT / "docs" / "descriptor.md").read_text() == render()


def test_the_example_is_a_valid_descriptor(tmp_path):
    folder = tmp_path / yaml.safe_load(EXAMPLE)["name"]
    folder.mkdir()
    (folder / "domain.yaml").write_text(EXAMPLE)
    domain = load_domain(folder)
    assert domain.output_port("product_prices").contract.primary_key == ("ndc",)


def test_errors_point_to_the_section_of_the_reference(tmp_path):
    body = yaml.safe_load(EXAMPLE)
    body["output_ports"]["product_prices"]["grant"] = ["x"]  # a typo of grants
    folder = tmp_path / body["name"]
    folder.mkdir()
    (folder / "domain.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(DescriptorError) as err:
        load_domain(folder)
    assert "unknown output port field(s) grant" in str(err.value)
    assert "docs/descriptor.md#output-port" in str(err.value)
    assert "## Output port" in render()
