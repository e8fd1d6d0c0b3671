"""`mesh new-domain`: a scaffolded Python domain and a scaffolded dbt domain each build green
with their own test, and a dbt project with seeds and table-materialized staging models
(tests/fixtures/jaffle_shop) is adopted with `--from-dbt` and built without any edit.

Everything happens in a temporary copy of the project (its domains, dbt projects, workspace and
test harness), run with the copy first on PYTHONPATH: the new domain folders and workspace
entries never touch the checkout that other tests discover.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mesh_domains.platform.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "jaffle_shop"
SKIP = shutil.ignore_patterns(
    "target", "logs", "__pycache__", "*.duckdb", "*.wal", ".pytest_cache", ".ruff_cache"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """A copy of the project to scaffold into, with a data root and Dagster home of its own."""
    root = tmp_path_factory.mktemp("new_domain")
    copy = root / "project"
    copy.mkdir()
    for name in ("mesh_domains", "dbt_projects", "pharma_example"):
        shutil.copytree(PROJECT_ROOT / name, copy / name, ignore=SKIP)
    for parsed in (PROJECT_ROOT / "dbt_projects").glob("*/target/mesh_parse.hash"):
        # the other domains' parsed manifests (still valid: the hash is of the sources), so
        # that validating the workspace does not parse every dbt project again
        target = copy / parsed.relative_to(PROJECT_ROOT).parent
        target.mkdir(parents=True, exist_ok=True)
        for name in ("manifest.json", "mesh_parse.hash"):
            shutil.copy(parsed.parent / name, target / name)
    for name in ("workspace.yaml", "pyproject.toml"):
        shutil.copy(PROJECT_ROOT / name, copy / name)
    (copy / "tests" / "domains").mkdir(parents=True)
    for name in ("conftest.py", "mesh_harness.py"):
        shutil.copy(PROJECT_ROOT / "tests" / name, copy / "tests" / name)
    env = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "MESH_DATA_DIR": str(root / "data"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "COLUMNS": "200",
    }
    return {"root": copy, "env": env}


def run(project: dict, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args),
        cwd=project["root"],
        env=project["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def mesh(project: dict, *args: str) -> subprocess.CompletedProcess:
    return run(project, str(BIN / "mesh"), *args)


@pytest.fixture(scope="module")
def scaffolded(project) -> dict:
    """`mesh new-domain` three ways: Python, dbt, and adopting the fixture project."""
    out = {}
    for name, toolchain in (("pyx", "python"), ("dbx", "dbt")):
        result = mesh(project, "new-domain", name, "--toolchain", toolchain)
        assert result.returncode == 0, result.stdout + result.stderr
        out[name] = result
    started = time.monotonic()
    adopted = mesh(project, "new-domain", "shop", "--from-dbt", str(FIXTURE))
    out["adopt_seconds"] = time.monotonic() - started
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    out["shop"] = adopted
    return out


def test_scaffolds_write_a_whole_domain(project, scaffolded):
    root = project["root"]
    for name in ("pyx", "dbx"):
        folder = root / "mesh_domains" / name
        for part in ("domain.yaml", "definitions.py", "README.md", "__init__.py"):
            assert (folder / part).exists(), part
        assert (root / "tests" / "domains" / f"test_{name}.py").exists()
        assert f"mesh_domains.{name}.definitions" in (root / "workspace.yaml").read_text()
        assert "docs/descriptor.md" in (folder / "domain.yaml").read_text()  # commented
    assert (root / "mesh_domains" / "pyx" / "builder.py").exists()
    assert (root / "dbt_projects" / "dbx" / "models" / "marts" / "product_prices.sql").exists()
    # the scaffolds pass the project's lint as written
    lint = run(
        project,
        str(BIN / "ruff"),
        "check",
        "mesh_domains/pyx",
        "mesh_domains/dbx",
        "tests/domains/test_pyx.py",
        "tests/domains/test_dbx.py",
    )
    assert lint.returncode == 0, lint.stdout
    again = mesh(project, "new-domain", "pyx", "--toolchain", "python")
    assert again.returncode == 1 and "exists already" in again.stdout


def test_scaffolded_domains_build_green_with_their_own_tests(project, scaffolded):
    result = run(
        project,
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/domains/test_pyx.py",
        "tests/domains/test_dbx.py",
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout


def test_adoption_reports_what_it_mapped_and_what_it_could_not(project, scaffolded):
    report = scaffolded["shop"].stdout
    assert "ports customers, orders, products" in report
    assert "landing sources: product_master" in report
    assert "source legacy_erp.exchange_rates: not mapped" in report
    assert "relationships_orders_customer_id" in report  # kept as a dbt-test check
    descriptor = yaml.safe_load((project["root"] / "mesh_domains/shop/domain.yaml").read_text())
    assert descriptor["input_ports"] == {"sources": ["product_master"], "ports": []}
    customers = descriptor["output_ports"]["customers"]["columns"]
    assert customers["customer_id"] == {
        "type": "int64",
        "unique": True,
        "nullable": False,
        "description": "The customer.",
    }
    assert customers["first_order"]["type"] == "date"
    assert customers["customer_lifetime_value"]["type"] == "float64"
    orders = descriptor["output_ports"]["orders"]["columns"]
    assert orders["status"]["isin"] == [
        "placed",
        "shipped",
        "completed",
        "return_pending",
        "returned",
    ]
    assert orders["amount"] == {"type": "float64", "nullable": False}
    assert orders["status_versions"] == {"type": "int64"}  # read from the project's snapshot
    print(f"adopting the fixture project took {scaffolded['adopt_seconds']:.1f}s")


def _same_tree(a: Path, b: Path) -> None:
    compared = filecmp.dircmp(a, b, ignore=["target", "logs"])
    assert not compared.left_only and not compared.right_only, (a, b)
    match, mismatch, errors = filecmp.cmpfiles(a, b, compared.common_files, shallow=False)
    assert not mismatch and not errors, mismatch
    for sub in compared.common_dirs:
        _same_tree(a / sub, b / sub)


def test_adopted_project_builds_unchanged(project, scaffolded):
    """Seeds, a snapshot, table-materialized staging models and their tests are built in
    staging; the three marts are published; the project's files are exactly the fixture's."""
    adopted = project["root"] / "dbt_projects" / "shop"
    _same_tree(FIXTURE, adopted)
    generated = mesh(project, "generate", "--scale", "0.02", "--seed", "3")
    assert generated.returncode == 0, generated.stderr
    built = mesh(project, "build", "--domain", "shop")
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]
    status = mesh(project, "status", "--json")
    rows = {(r["domain"], r["port"]): r for r in json.loads(status.stdout)}
    for port, count in (("customers", 12), ("orders", 30)):
        assert rows[("shop", port)]["state"] == "published"
        assert rows[("shop", port)]["rows"] == count
    assert rows[("shop", "products")]["rows"] > 0
    _same_tree(FIXTURE, adopted)  # building touched nothing but dbt's own output
    dbt_log = (Path(project["env"]["MESH_DATA_DIR"]) / "logs/dbt/shop/dbt.log").read_text()
    for staged in (
        "seed file main.raw_orders",
        "table model main.stg_payments",
        "snapshotted main.orders_status_history",
    ):
        assert staged in dbt_log
    assert "PASS unique_stg_orders_order_id" in dbt_log  # staging is tested, not published


def test_workspace_with_new_domains_validates(project, scaffolded):
    result = run(project, str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for name in ("pyx", "dbx", "shop"):
        assert name in result.stdout + result.stderr
