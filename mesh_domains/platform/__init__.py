"""The mesh platform: the superstructure every domain plugs into.

Domains import from here and never from each other. The names below load on first use, so
that ``mesh`` commands which need no Dagster (``--help``, ``generate``) start without it and
``mesh build`` starts its worker server before importing it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .definitions import domain_definitions, port_builder
    from .descriptor import Domain, discover_domains, load_domain
    from .ports import BuildContext

_EXPORTS = {
    "BuildContext": ".ports",
    "Domain": ".descriptor",
    "discover_domains": ".descriptor",
    "domain_definitions": ".definitions",
    "load_domain": ".descriptor",
    "port_builder": ".definitions",
}

__all__ = [
    "BuildContext",
    "Domain",
    "discover_domains",
    "domain_definitions",
    "load_domain",
    "port_builder",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
