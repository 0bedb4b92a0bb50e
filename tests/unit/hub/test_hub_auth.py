"""Bearer tokens: the issuer and verifier agree, and every bad token is an InvalidToken.

PyJWT checks ``exp``/``iat``/``nbf`` against its own wall clock and takes no clock argument,
so tokens here are issued at fixed offsets from the real time, with margins of many seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import AgencyKind
from hub.auth import Caller, InvalidToken, TokenIssuer, TokenVerifier
from hub.domain.roles import Role
from hub.registry import Agency, AgencyRegistry

pytestmark = pytest.mark.unit

ISSUER = "hub-local"
AUDIENCE = "safeguarding-hub"
LEEWAY = 30
TTL = timedelta(hours=8)
CS = Agency(
    "northshire-cs", AgencyKind.childrens_services, "Northshire Council Children's Services"
)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def issuer(key: Ed25519PrivateKey) -> TokenIssuer:
    return TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture(scope="module")
def verifier(key: Ed25519PrivateKey) -> TokenVerifier:
    return TokenVerifier(
        key.public_key(),
        AgencyRegistry.load(),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_seconds=LEEWAY,
    )


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for a social worker at Northshire children's services, issued now."""
    issued = now()
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "sw-0001",
        "agency": "northshire-cs",
        "role": "social_worker",
        "iat": issued,
        "nbf": issued,
        "exp": issued + TTL,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def rejection(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    return str(caught.value)


class TestRoundTrip:
    """A token the issuer signs is accepted by the verifier and names the caller."""

    def test_issued_token_verifies(self, issuer: TokenIssuer, verifier: TokenVerifier) -> None:
        """sub, agency (resolved from the registry), role and team come back."""
        token = issuer.issue(
            sub="sw-0001", agency="northshire-cs", role=Role.social_worker, team="team-2"
        )
        assert verifier.verify(token) == Caller(
            sub="sw-0001", agency=CS, role=Role.social_worker, team="team-2"
        )

    def test_no_team(self, issuer: TokenIssuer, verifier: TokenVerifier) -> None:
        """Without a team the caller's team is None."""
        token = issuer.issue(sub="sys-police", agency="northshire-police", role=Role.agency_system)
        caller = verifier.verify(token)
        assert (caller.sub, caller.agency.id, caller.role, caller.team) == (
            "sys-police",
            "northshire-police",
            Role.agency_system,
            None,
        )

    def test_issued_claims(self, issuer: TokenIssuer, key: Ed25519PrivateKey) -> None:
        """The token carries exactly the documented claims, signed with EdDSA."""
        issued = now()
        token = issuer.issue(
            sub="sw-0001", agency="northshire-cs", role=Role.team_manager, now=issued, ttl=TTL
        )
        assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "typ": "JWT"}
        decoded = jwt.decode(
            token, key.public_key(), algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER
        )
        stamp = int(issued.timestamp())
        assert decoded == {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "sw-0001",
            "agency": "northshire-cs",
            "role": "team_manager",
            "iat": stamp,
            "nbf": stamp,
            "exp": stamp + int(TTL.total_seconds()),
        }


class TestExpiry:
    """Expiry is enforced with the configured leeway for clock skew."""

    def test_expired_beyond_leeway(self, issuer: TokenIssuer, verifier: TokenVerifier) -> None:
        """A token that expired an hour ago is refused as expired."""
        token = issuer.issue(
            sub="sw-0001",
            agency="northshire-cs",
            role=Role.social_worker,
            now=now() - TTL - timedelta(hours=1),
        )
        assert rejection(verifier, token) == "token has expired"

    def test_expired_within_leeway(self, issuer: TokenIssuer, verifier: TokenVerifier) -> None:
        """A token that expired 10 s ago, inside the 30 s leeway, is still accepted."""
        token = issuer.issue(
            sub="sw-0001",
            agency="northshire-cs",
            role=Role.social_worker,
            now=now() - TTL - timedelta(seconds=10),
        )
        assert verifier.verify(token).sub == "sw-0001"

    def test_not_yet_valid(self, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
        """A token whose nbf is an hour ahead is refused."""
        token = jwt.encode(claims(nbf=now() + timedelta(hours=1)), key, algorithm="EdDSA")
        assert rejection(verifier, token) == (
            "token is not valid: The token is not yet valid (nbf)"
        )


class TestForgedOrWrong:
    """Tokens with the wrong key, audience, issuer, role, agency or claims are refused."""

    def test_wrong_key(self, verifier: TokenVerifier) -> None:
        """A token signed by another Ed25519 key has an invalid signature."""
        token = jwt.encode(claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA")
        assert rejection(verifier, token) == "token signature is not valid"

    def test_wrong_audience(self, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
        """A token for another audience is refused."""
        token = jwt.encode(claims(aud="another-service"), key, algorithm="EdDSA")
        assert rejection(verifier, token) == "token is not valid: Audience doesn't match"

    def test_wrong_issuer(self, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
        """A token from another issuer is refused."""
        token = jwt.encode(claims(iss="someone-else"), key, algorithm="EdDSA")
        assert rejection(verifier, token) == "token is not valid: Invalid issuer"

    def test_unknown_role(self, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
        """A role the hub does not define is refused."""
        token = jwt.encode(claims(role="head_teacher"), key, algorithm="EdDSA")
        assert rejection(verifier, token) == "token names an unknown role"

    def test_missing_role(self, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
        """A token with no role claim is refused as naming an unknown role."""
        token = jwt.encode(claims(role=None), key, algorithm="EdDSA")
        assert rejection(verifier, token) == "token names an unknown role"

    def test_unregistered_agency(self, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
        """An agency missing from the registry is refused."""
        token = jwt.encode(claims(agency="acme-police"), key, algorithm="EdDSA")
        assert rejection(verifier, token) == "token names an agency that is not registered"

    def test_missing_sub(self, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
        """A token without a subject is refused."""
        token = jwt.encode(claims(sub=None), key, algorithm="EdDSA")
        assert rejection(verifier, token) == 'token is not valid: Token is missing the "sub" claim'

    def test_missing_exp(self, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
        """A token that never expires is refused."""
        token = jwt.encode(claims(exp=None), key, algorithm="EdDSA")
        assert rejection(verifier, token) == 'token is not valid: Token is missing the "exp" claim'

    def test_symmetric_algorithm_refused(self, verifier: TokenVerifier) -> None:
        """An HS256 token (shared-secret) is refused: the algorithm is not allowed."""
        token = jwt.encode(claims(), "a-shared-secret-of-at-least-32-bytes!!", algorithm="HS256")
        assert rejection(verifier, token) == (
            "token is not valid: The specified alg value is not allowed"
        )

    def test_not_a_jwt(self, verifier: TokenVerifier) -> None:
        """Garbage is refused, not crashed on."""
        assert rejection(verifier, "garbage") == "token is not valid: Not enough segments"

    @pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
    def test_other_allowed_algorithm_with_wrong_key_type(
        self, verifier: TokenVerifier, algorithm: str
    ) -> None:
        """A token in an allowed algorithm that does not fit the verifying key is InvalidToken."""
        signing_key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if algorithm == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        token = jwt.encode(claims(), signing_key, algorithm=algorithm)
        assert rejection(verifier, token).startswith("token is not valid: ")

    def test_team_must_be_text(self, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
        """A team claim that is not a string is refused."""
        token = jwt.encode(claims(team=["team-1", "team-2"]), key, algorithm="EdDSA")
        rejection(verifier, token)
