"""Code location of the brand analytics domain."""

from pathlib import Path

from mesh_domains.platform import domain_definitions

from .kpi_weekly import build_kpi_weekly
from .physician_segments import build_segments

defs = domain_definitions(
    Path(__file__).parent / "domain.yaml", builders=[build_segments, build_kpi_weekly]
)
