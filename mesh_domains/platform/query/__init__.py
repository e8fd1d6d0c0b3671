"""The domain query: what the mesh tells its domains and the outside world about itself.

This sub-package owns every read-only answer the mesh gives in its own terms, all computed from
the Dagster instance and the domains' lakes (no second bookkeeping that could disagree):

- :mod:`.answers` — the four W's and an H (What, Where, When, proof, With, How) of a domain, a
  port and a port version, and which consumers read which version of a port;
- :mod:`.status` — the status table of ``mesh status`` and ``mesh build`` (same records);
- :mod:`.events` — domain events derived from Dagster's event log, with stable ids;
- :mod:`.lineage` — those events as OpenLineage run events; :mod:`.odcs` — contracts as Open
  Data Contract Standard documents;
- :mod:`.api` — ``mesh serve``, the FastAPI service over all of it, with :mod:`.security`
  (identities, grants, tokens) and :mod:`.runs` (asking a domain to build).

Below it: :mod:`.records` (reading the instance), :mod:`.lakes` (reading the lakes) and
:mod:`.code` (the code behind a port). Nothing here writes to the instance or a lake.
"""

from .answers import MeshQuery, NotFound
from .status import PortStatus, mesh_status, port_status

__all__ = ["MeshQuery", "NotFound", "PortStatus", "mesh_status", "port_status"]
