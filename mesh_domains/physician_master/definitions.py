"""Code location of the physician master domain."""

from pathlib import Path

from mesh_domains.platform import domain_definitions

from .assets import master_physicians

defs = domain_definitions(Path(__file__).parent / "domain.yaml", builders=[master_physicians])
