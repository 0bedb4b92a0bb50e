"""Bearer tokens: issuing local development tokens and verifying callers' JWTs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from hub.domain.roles import Role
from hub.registry import Agency, AgencyRegistry, UnknownAgency

__all__ = ["Caller", "InvalidToken", "TokenIssuer", "TokenVerifier"]


def _algorithms_for(key: Any) -> list[str]:
    """Only the algorithms that fit the verifying key's type (no algorithm confusion)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return ["EdDSA"]
    if isinstance(key, rsa.RSAPublicKey):
        return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ["ES256", "ES384", "ES512"]
    raise TypeError(f"unsupported token verification key type {type(key).__name__}")


class InvalidToken(Exception):
    """A bearer token that is missing, malformed, forged, expired or names an unknown agency."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the subject, their agency (with its kind) and role, from a verified token."""

    sub: str
    agency: Agency
    role: Role
    team: str | None = None
    email: str | None = None


class TokenIssuer:
    """Signs development tokens with the hub's local key (`hub token`)."""

    def __init__(self, private_key: Any, *, issuer: str, audience: str) -> None:
        self._key = private_key
        self._issuer = issuer
        self._audience = audience

    def issue(
        self,
        *,
        sub: str,
        agency: str,
        role: Role,
        team: str | None = None,
        email: str | None = None,
        ttl: timedelta = timedelta(hours=8),
        now: datetime | None = None,
    ) -> str:
        """A signed JWT carrying ``sub``, ``agency``, ``role`` and optionally ``team``."""
        issued = now or datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": sub,
            "agency": agency,
            "role": role.value,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
        }
        if team:
            claims["team"] = team
        if email:
            claims["email"] = email
        return jwt.encode(claims, self._key, algorithm="EdDSA")


class TokenVerifier:
    """Verifies a bearer token's signature, issuer, audience and times, and resolves the caller."""

    def __init__(
        self,
        public_key: Any,
        registry: AgencyRegistry,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 30,
    ) -> None:
        self._key = public_key
        self._algorithms = _algorithms_for(public_key)
        self._registry = registry
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds

    def verify(self, token: str) -> Caller:
        """The caller a valid token names; ``InvalidToken`` with the reason otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token has expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("token signature is not valid") from exc
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise InvalidToken(f"token is not valid: {exc}") from exc
        try:
            role = Role(str(claims.get("role")))
        except ValueError as exc:
            raise InvalidToken("token names an unknown role") from exc
        try:
            agency = self._registry.get(str(claims.get("agency")))
        except UnknownAgency as exc:
            raise InvalidToken("token names an agency that is not registered") from exc
        team = claims.get("team")
        if team is not None and (not isinstance(team, str) or len(team) > 128):
            raise InvalidToken("token team claim must be text")
        email = claims.get("email")
        if email is not None and (not isinstance(email, str) or len(email) > 254):
            raise InvalidToken("token email claim must be text")
        return Caller(
            sub=str(claims["sub"]), agency=agency, role=role, team=team or None, email=email or None
        )
