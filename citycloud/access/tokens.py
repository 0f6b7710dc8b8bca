"""Bearer tokens of the organisation's provider, checked for the API (spec: access.md, Serving).

A JWT is checked against the provider's keys (its JWKS: signature, issuer, expiry, and audience
when `oidc.api_audience` is set) with PyJWT; any other (opaque) token is checked with the
provider's userinfo endpoint, its answer cached for at most USERINFO_CACHE_SECONDS. A token is
never logged, stored on disk or echoed in an error: the cache is keyed by its SHA-256.
"""
from __future__ import annotations

import hashlib
import threading
import time

import httpx
import jwt

from citycloud.access.config import Oidc

USERINFO_CACHE_SECONDS = 60
METADATA_SECONDS = 300  # the provider's discovery document is read again after this long
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class InvalidToken(Exception):
    """The token is missing, malformed, expired, not the provider's, or refused by it (the message
    says which in general terms, never the token)."""


def _looks_like_jwt(token: str) -> bool:
    if token.count(".") != 2:
        return False
    try:
        jwt.get_unverified_header(token)
        return True
    except jwt.PyJWTError:
        return False


class TokenVerifier:
    def __init__(self, oidc: Oidc, timeout: float = 10.0):
        self.oidc = oidc
        self.timeout = timeout
        self._lock = threading.Lock()
        self._metadata: tuple[float, dict] | None = None
        self._jwks: jwt.PyJWKClient | None = None
        self._userinfo: dict[str, tuple[float, dict | None]] = {}

    def metadata(self) -> dict:
        with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata[0] > METADATA_SECONDS:
                try:
                    resp = httpx.get(self.oidc.server_metadata_url, timeout=self.timeout)
                    resp.raise_for_status()
                    meta = resp.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise InvalidToken(f"the identity provider cannot be reached ({type(exc).__name__})") from None
                self._metadata = (time.monotonic(), meta)
                self._jwks = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=True, lifespan=METADATA_SECONDS)
            return self._metadata[1]

    def claims(self, token: str) -> dict:
        """The claims the token carries (JWT) or the provider says it stands for (userinfo)."""
        token = (token or "").strip()
        if not token:
            raise InvalidToken("no bearer token")
        if _looks_like_jwt(token):
            claims = self._jwt_claims(token)
            if self.oidc.identity_claim in claims:
                return claims
        return self._userinfo_claims(token)

    def _jwt_claims(self, token: str) -> dict:
        meta = self.metadata()
        try:
            key = self._signing_key(token)
            audience = self.oidc.api_audience
            return jwt.decode(token, key.key, algorithms=ALGORITHMS, issuer=meta["issuer"], audience=audience,
                              options={"verify_aud": audience is not None, "require": ["exp", "iss"]}, leeway=30)
        except jwt.PyJWKClientError:
            raise InvalidToken("JWT signed with a key the provider does not publish") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid JWT ({type(exc).__name__})") from None

    def _signing_key(self, token: str) -> jwt.PyJWK:
        """The provider's key named by the token's `kid`; a token without one (allowed when the
        provider publishes a single signing key) is checked with that key."""
        if jwt.get_unverified_header(token).get("kid") is None:
            keys = self._jwks.get_signing_keys()
            if len(keys) != 1:
                raise jwt.PyJWKClientError("JWT without kid and the provider publishes several keys")
            return keys[0]
        return self._jwks.get_signing_key_from_jwt(token)

    def _userinfo_claims(self, token: str) -> dict:
        key = hashlib.sha256(token.encode("utf-8")).hexdigest()
        now = time.monotonic()
        with self._lock:
            self._userinfo = {k: v for k, v in self._userinfo.items() if now - v[0] < USERINFO_CACHE_SECONDS}
            cached = self._userinfo.get(key)
        if cached is None:
            endpoint = self.metadata().get("userinfo_endpoint")
            if not endpoint:
                raise InvalidToken("the provider has no userinfo endpoint for opaque tokens")
            try:
                resp = httpx.get(endpoint, headers={"Authorization": f"Bearer {token}"}, timeout=self.timeout)
            except httpx.HTTPError as exc:
                raise InvalidToken(f"the identity provider cannot be reached ({type(exc).__name__})") from None
            claims = resp.json() if resp.status_code == 200 else None
            cached = (now, claims if isinstance(claims, dict) else None)
            with self._lock:
                self._userinfo[key] = cached
        if cached[1] is None:
            raise InvalidToken("token refused by the provider's userinfo endpoint")
        return cached[1]
