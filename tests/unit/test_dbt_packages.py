"""dbt packages install offline from what a project vendors: installed packages are used as
they are, `local:` packages are installed from the project's folders, anything else stops with
what to do."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mesh_domains.platform.dbt import install_vendored_packages

DOMAIN = SimpleNamespace(name="shop")
UTILS = {"packages": [{"package": "dbt-labs/dbt_utils", "version": "1.3.0"}]}


def _project(tmp_path: Path, packages: dict) -> Path:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "dbt_project.yml").write_text(
        yaml.safe_dump({"name": "shop", "version": "1.0.0", "config-version": 2, "profile": "shop"})
    )
    (project / "packages.yml").write_text(yaml.safe_dump(packages))
    return project


def test_a_package_not_vendored_stops_with_what_to_do(tmp_path):
    project = _project(tmp_path, UTILS)
    with pytest.raises(RuntimeError, match="not vendored") as err:
        install_vendored_packages(DOMAIN, project, tmp_path)
    assert "dbt-labs/dbt_utils" in str(err.value) and "dbt deps" in str(err.value)


def test_a_vendored_package_is_used_as_it_is(tmp_path):
    project = _project(tmp_path, UTILS)
    (project / "dbt_packages" / "dbt_utils").mkdir(parents=True)
    install_vendored_packages(DOMAIN, project, tmp_path)  # no download, no error


@pytest.mark.slow
def test_a_local_package_is_installed_from_the_project(tmp_path):
    project = _project(tmp_path, {"packages": [{"local": "packages/helpers"}]})
    helpers = project / "packages" / "helpers"
    helpers.mkdir(parents=True)
    (helpers / "dbt_project.yml").write_text(
        yaml.safe_dump({"name": "helpers", "version": "1.0.0", "config-version": 2})
    )
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    output = {"type": "duckdb", "path": str(tmp_path / "staging.duckdb"), "threads": 1}
    (profiles / "profiles.yml").write_text(
        yaml.safe_dump({"shop": {"target": "mesh", "outputs": {"mesh": output}}})
    )
    install_vendored_packages(DOMAIN, project, profiles)
    assert (project / "dbt_packages" / "helpers" / "dbt_project.yml").exists()
