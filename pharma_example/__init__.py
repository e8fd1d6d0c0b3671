"""The worked example's data: a synthetic US commercial-pharma landing zone.

Ten third-party sources on their own cadences (DESIGN §3), deterministic by seed and sized by a
scale factor: :func:`generate` writes them under ``data/landing/<source>/<partition>/``. This
package is the example's data, not the factory: the platform (``mesh_domains.platform``) never
imports it; ``mesh generate`` and the tests do. See README.md beside this file.
"""

from .generate import Generated, generate, generate_landing
from .sources import SOURCES

__all__ = ["SOURCES", "Generated", "generate", "generate_landing"]
