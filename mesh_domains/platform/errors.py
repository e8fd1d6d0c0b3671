"""Errors that speak to the user: each says what failed, where, why, and what to do next.

A build step turns any :class:`MeshError` into a Dagster failure whose description is this
message (see :func:`mesh_domains.platform.ports.user_errors`), so the UI, the run log and
``mesh build`` show the same text.
"""


class MeshError(Exception):
    """Base class of the platform's user-facing errors."""


class MissingInputError(MeshError, FileNotFoundError):
    """An input port or source has nothing published or delivered yet."""
