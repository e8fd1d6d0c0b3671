"""The mesh platform: the superstructure every domain plugs into.

Domains import from here and never from each other.
"""

from .definitions import domain_definitions, port_builder
from .descriptor import Domain, discover_domains, load_domain
from .ports import BuildContext

__all__ = [
    "BuildContext",
    "Domain",
    "discover_domains",
    "domain_definitions",
    "load_domain",
    "port_builder",
]
