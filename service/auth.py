"""Token authentication: clients send `authorization: Bearer TOKEN` metadata;
every RPC but health needs one of the tokens of --auth-token-file."""

from __future__ import annotations

import hmac
from pathlib import Path

from service.errors import Unauthenticated

HEALTH_PREFIX = "/grpc.health.v1.Health/"


def read_tokens(path: Path) -> tuple[str, ...]:
    """The tokens of a file, one a line; blank lines and '#' comments skipped.
    Raises ValueError for a file without a token."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    tokens = tuple(t for t in (line.strip() for line in lines) if t and not t.startswith("#"))
    if not tokens:
        raise ValueError(f"{path} holds no token (one a line)")
    if any(any(c.isspace() for c in t) for t in tokens):
        raise ValueError(f"{path}: a token may not contain spaces")
    return tokens


class TokenCheck:
    def __init__(self, tokens: tuple[str, ...]):
        self._tokens = [t.encode() for t in tokens]

    def __call__(self, method: str, metadata) -> None:
        """Raise Unauthenticated unless `method` is health or `metadata` holds a token."""
        if method.startswith(HEALTH_PREFIX):
            return  # load balancers and orchestrators probe health without credentials
        value = dict(metadata or ()).get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("this server needs a token: send metadata 'authorization: Bearer TOKEN'")
        given = token.strip().encode()
        # compare_digest against every token: the time taken says nothing about which one was close.
        if not sum(hmac.compare_digest(given, t) for t in self._tokens):
            raise Unauthenticated("the token is not valid")
