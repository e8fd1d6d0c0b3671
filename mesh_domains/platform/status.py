"""The mesh status table (``mesh status``), now part of the domain query layer.

Kept as a module so that existing imports keep working; the code lives in
:mod:`mesh_domains.platform.query.status`.
"""

from __future__ import annotations

from .query.status import PortStatus, mesh_status, port_status

__all__ = ["PortStatus", "mesh_status", "port_status"]
