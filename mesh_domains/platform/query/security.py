"""Who is asking: domain identities for the domain query service.

Reads of What, When, proof, With and How are open to callers on loopback. "Where" needs the
caller's domain identity (``X-Mesh-Domain: <domain>`` and ``Authorization: Bearer <token>``),
and then a grant in the producer's descriptor. Asking a domain to build (``POST``) needs the
bearer token of the team that owns it. Each domain's token is declared outside the repository,
in the environment of the service: ``MESH_TOKEN_<DOMAIN>`` (e.g. ``MESH_TOKEN_PHYSICIAN_DW``).
Tokens are compared in constant time; a domain without a token cannot authenticate at all.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from functools import lru_cache

DOMAIN_HEADER = "X-Mesh-Domain"
TOKEN_PREFIX = "MESH_TOKEN_"


class Unauthenticated(PermissionError):
    """No identity, or one that does not hold (HTTP 401)."""


def token_variable(domain: str) -> str:
    return TOKEN_PREFIX + domain.upper()


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_holds(domain: str, token: str | None) -> bool:
    """Whether ``token`` is ``domain``'s token (constant-time; False when none is declared)."""
    expected = os.environ.get(token_variable(domain), "")
    if not expected or token is None:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def caller_domain(domain: str | None, authorization: str | None, known: set[str]) -> str | None:
    """The authenticated caller domain, None when no identity was offered at all.

    Raises :class:`Unauthenticated` for an identity that was offered but does not hold."""
    token = bearer(authorization)
    if domain is None and token is None:
        return None
    if not domain:
        raise Unauthenticated(f"a bearer token needs the {DOMAIN_HEADER} header naming your domain")
    if domain not in known:
        raise Unauthenticated(f"{DOMAIN_HEADER}: {domain!r} is not a domain of this mesh")
    if token is None:
        raise Unauthenticated(f"{DOMAIN_HEADER}: {domain} needs Authorization: Bearer <token>")
    if not token_holds(domain, token):
        raise Unauthenticated(
            f"the bearer token is not domain {domain!r}'s token (declared to this service as "
            f"{token_variable(domain)})"
        )
    return domain


def require_owner(domain: str, authorization: str | None) -> None:
    """Only the team owning ``domain`` (holding its token) may ask it to build."""
    token = bearer(authorization)
    if token is None:
        raise Unauthenticated(
            f"asking {domain} to build needs Authorization: Bearer <the token of the team that "
            f"owns {domain}>"
        )
    if not token_holds(domain, token):
        raise Unauthenticated(
            f"the bearer token is not the token of the team that owns {domain} "
            f"(declared to this service as {token_variable(domain)})"
        )


@lru_cache(maxsize=1024)
def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
