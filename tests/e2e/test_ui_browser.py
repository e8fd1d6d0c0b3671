"""The Dagster UI as a person sees it, in a real browser (playwright driving Debian's chromium).

One webserver serves the whole workspace (all seven code locations loaded) over a tiny mesh in
which physician_master and physician_dw are built. The tests read the rendered pages: every
domain's code location and asset group, a cross-domain edge, a port's owners, column schema
(with the dbt project's column descriptions), storage (the published lake table), row count
and contract check result. GraphQL is used only to wait for the locations to load.

On failure a screenshot of the page is saved under ``test-artifacts/ui/`` (ignored by git; CI
keeps it) and its path is in the failure message. Chromium comes from ``make browser`` (part of
``make test``); a browser that cannot start fails the tests, it never skips them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from mesh_harness import built_copy
from test_dagster_dev import _free_port

from mesh_domains.platform import lake
from mesh_domains.platform.cli import INSTANCE_TEMPLATE
from mesh_domains.platform.descriptor import load_domain
from mesh_domains.platform.settings import PROJECT_ROOT, mesh_paths

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui"
LOAD_DEADLINE_S = 240
TIMEOUT_MS = 30_000
PORT = ("physician_dw", "dim_physician")  # a dbt port reading physician_master's port
LOCATIONS = [
    e["python_module"]["location_name"]
    for e in yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
]
LOCATIONS_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""


@dataclass
class UI:
    url: str
    browser: object
    log: Path

    def page(self, path: str):
        page = self.browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        # the UI's one-time "Join the Dagster community" prompt covers the page: dismissed
        page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
        page.goto(self.url + path)
        return page


def _locations(url: str) -> dict[str, tuple[str, str, str]]:
    """Each code location's load status and what it loaded (or its error)."""
    data = httpx.post(url + "/graphql", json={"query": LOCATIONS_QUERY}, timeout=30).json()
    entries = data["data"]["workspaceOrError"]["locationEntries"]
    return {
        e["name"]: (
            e["loadStatus"],
            (e["locationOrLoadError"] or {}).get("__typename", ""),
            (e["locationOrLoadError"] or {}).get("message", ""),
        )
        for e in entries
    }


def _wait_until_loaded(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + LOAD_DEADLINE_S
    seen: dict = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the webserver exited:\n{log.read_text()[-3000:]}"
        try:
            seen = _locations(url)
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            seen = {}
        if set(seen) == set(LOCATIONS) and all(s[0] == "LOADED" for s in seen.values()):
            errors = {n: s[2] for n, s in seen.items() if s[1] != "RepositoryLocation"}
            assert not errors, f"code locations failed to load: {errors}"
            return
        time.sleep(1)
    raise AssertionError(f"code locations not loaded in {LOAD_DEADLINE_S}s: {seen}")


def _launch(playwright):
    try:
        return playwright.chromium.launch(executable_path=CHROMIUM)
    except Exception as exc:  # the browser is the test's instrument: never skip without it
        pytest.fail(
            f"chromium could not start from {CHROMIUM} ({type(exc).__name__}: {exc}). "
            "Install Debian's chromium with `make browser` (part of `make test`).",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[UI]:
    """The workspace served over a tiny built mesh (a copy of the session's build)."""
    from playwright.sync_api import sync_playwright

    for mesh in built_copy(tmp_path_factory, "ui"):
        root = mesh.paths.data.parent
        home = Path(os.environ["DAGSTER_HOME"])  # the instance the mesh is built in
        shutil.copy(INSTANCE_TEMPLATE, home / "dagster.yaml")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = root / "webserver.log"
        webserver = str(Path(sys.executable).parent / "dagster-webserver")
        proc = subprocess.Popen(
            [webserver, "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            start_new_session=True,
        )
        try:
            _wait_until_loaded(proc, url, log)
            with sync_playwright() as playwright:
                browser = _launch(playwright)
                try:
                    yield UI(url, browser, log)
                finally:
                    browser.close()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            with suppress(ProcessLookupError):  # the code servers are in the same group
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def looking_at(page, what: str) -> Iterator[None]:
    """Assertions on ``page``: on failure, a screenshot kept as a test artifact."""
    try:
        yield
    except Exception as exc:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / (re.sub(r"[^a-z0-9]+", "_", what.lower()).strip("_") + ".png")
        page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(f"{what}: {exc}\nscreenshot: {shot}\npage: {page.url}") from exc


def _expect():
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    return expect


def _rows_published(domain: str, port: str) -> int:
    con = lake.connect()
    try:
        lake.attach_port_reader(
            con, domain, load_domain(PROJECT_ROOT / "mesh_domains" / domain), [port]
        )
        return lake.port_row_counts(con, domain, [port])[port]
    finally:
        con.close()


def test_every_domain_is_a_loaded_code_location_and_an_asset_group(ui):
    expect = _expect()
    page = ui.page("/locations")
    with looking_at(page, "code locations"):
        expect(page.get_by_text(f"{len(LOCATIONS)} code locations")).to_be_visible()
        for name in LOCATIONS:
            link = page.locator(f'a[href="/locations/{name}/"]')
            expect(link).to_be_visible()
            expect(link).to_contain_text(name)
        expect(page.get_by_text("Loaded", exact=True)).to_have_count(len(LOCATIONS))
    page = ui.page("/asset-groups")
    with looking_at(page, "global asset lineage groups"):
        expect(page.get_by_text("Global asset lineage")).to_be_visible()
        for name in LOCATIONS:  # each domain's group: in the sidebar and a node of the graph
            group = page.get_by_text(name, exact=True)
            expect(group.first).to_be_visible()
            assert group.count() >= 2, f"group {name} is not both listed and drawn"


def test_a_port_page_shows_its_cross_domain_edges_owner_schema_storage_and_rows(ui):
    expect = _expect()
    domain, port = PORT
    rows = _rows_published(domain, port)
    assert rows > 0
    page = ui.page(f"/assets/{domain}/{port}")
    with looking_at(page, f"{domain}/{port} overview"):
        body = page.locator("body")
        expect(page.get_by_text("Upstream assets")).to_be_visible()
        # the edge from another domain's port, and to the consuming domain's
        expect(page.get_by_role("link", name="physician_master / physicians")).to_be_visible()
        expect(page.get_by_role("link", name="brand_analytics / targeting_list")).to_be_visible()
        expect(body).to_contain_text(re.compile(r"Owners\s*sales_operations"))
        expect(body).to_contain_text(re.compile(rf"Row count\s*{rows:,}(?!\d)"))
        # column schema: the contract's columns with the dbt project's descriptions
        for column in ("physician_id", "npi", "physician_name", "is_in_ama_file"):
            expect(page.get_by_role("cell", name=column, exact=True).first).to_be_visible()
        expect(
            page.get_by_text("Mesh id of the golden record (physician_master/physicians.mesh_id).")
        ).to_be_visible()
        # storage: the published lake table, never the staging database
        catalog = mesh_paths().lake_catalog(domain)
        expect(body).to_contain_text(re.compile(rf"Storage\s*{domain}_lake\.main\.{port}"))
        expect(page.get_by_text(f"ducklake:sqlite:{catalog}")).to_be_visible()
        assert str(mesh_paths().staging_db(domain)) not in page.inner_text("body")
    page = ui.page(f"/assets/{domain}/{port}?view=lineage&lineageScope=upstream")
    with looking_at(page, f"{domain}/{port} upstream lineage"):
        # the asset graph draws the edge from physician_master's port, in its domain's group
        expect(page.get_by_text("Graph depth")).to_be_visible()
        for group, asset in (("physician_master", "physicians"), (domain, port)):
            expect(page.get_by_text(group, exact=True).last).to_be_visible()
            expect(page.get_by_text(asset, exact=True).last).to_be_visible()


def test_a_port_shows_its_contract_check_result(ui):
    expect = _expect()
    domain, port = PORT
    rows = _rows_published(domain, port)
    page = ui.page(f"/assets/{domain}/{port}?view=checks&checkDetail=contract")
    with looking_at(page, f"{domain}/{port} checks"):
        expect(page.get_by_text("contract", exact=True).first).to_be_visible()
        expect(page.get_by_text("This is a blocking asset check.")).to_be_visible()
        expect(
            page.get_by_text(f"contract passed: domain '{domain}', port '{port}' ({rows} rows)")
        ).to_be_visible()
        expect(page.locator("body")).to_contain_text(re.compile(r"Evaluation result\s*Passed"))
