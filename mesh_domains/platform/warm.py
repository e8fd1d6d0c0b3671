"""What a build's worker needs loaded, loaded once by the server the workers fork from.

``mesh build`` forks each domain's worker from a server that imported this module, so a
domain pays for its own work, not for imports: Dagster, DuckDB, the platform, and (when
installed) dbt with its DuckDB adapter, pandera's ibis backend and polars (which code locations
import only when a build runs). dbt also builds a JSON schema of each of its config and node
classes the first time a process validates one (about 2 s, ``dbtClassMixin.json_schema`` is
cached per class); building them here once spares every dbt domain's worker that cost. And dbt
names the module behind each behaviour flag of its adapter by walking the stack
(``inspect.stack()``), whose first call in a process maps every loaded module's file (about
0.25 s); mapping them here spares that to every dbt run. The lake extensions' files are checked
against their wheels here too (:func:`.lake.extension_file`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys

import dagster  # noqa: F401
import duckdb  # noqa: F401

from . import dbt as _platform_dbt  # noqa: F401
from . import lake as _lake
from . import ports as _ports  # noqa: F401

OPTIONAL = ("dbt.cli.main", "dbt.adapters.duckdb", "pandera.ibis", "polars")

# the classes dbt validates while it parses a project and runs a build
DBT_SCHEMAS = (
    "dbt.contracts.project.ProjectFlags",
    "dbt.contracts.project.ProfileConfig",
    "dbt.contracts.project.Project",
    "dbt.contracts.project.PackageConfig",
    "dbt.contracts.project.Configuration",
    "dbt.contracts.selection.SelectorFile",
    "dbt.adapters.duckdb.credentials.DuckDBCredentials",
    "dbt.artifacts.resources.v1.model.ModelConfig",
    "dbt.artifacts.resources.v1.components.Contract",
    "dbt.artifacts.resources.v1.config.TestConfig",
    "dbt.artifacts.resources.v1.source_definition.SourceConfig",
    "dbt.artifacts.resources.v1.unit_test_definition.UnitTestConfig",
    "dbt.contracts.graph.nodes.ModelNode",
    "dbt.contracts.graph.nodes.SingularTestNode",
    "dbt.contracts.graph.nodes.GenericTestNode",
    "dbt.contracts.graph.unparsed.UnparsedSourceDefinition",
    "dbt.contracts.graph.unparsed.UnparsedModelUpdate",
    "dbt.contracts.graph.unparsed.UnparsedUnitTest",
    "dbt.contracts.graph.unparsed.UnparsedSingularTestUpdate",
)


def _load() -> None:
    for name in OPTIONAL:
        if importlib.util.find_spec(name.split(".")[0]) is not None:
            importlib.import_module(name)
    if importlib.util.find_spec("dbt") is None:
        return
    for path in DBT_SCHEMAS:
        module, _, cls = path.rpartition(".")
        try:
            getattr(importlib.import_module(module), cls).json_schema()
        except (ImportError, AttributeError):  # another dbt version: it builds them itself
            continue
    inspect.getmodule(sys._getframe())  # fills inspect's file -> module map, once
    for name in _lake.EXTENSIONS[:2]:
        _lake.extension_file(name)  # each lake extension's file checked here, not per worker


_load()
