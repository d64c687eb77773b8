"""Traefik's digestAuth middleware: RFC 2617 MD5 digest with qop=auth, as its library does it.

Nonces are handed out with each challenge and remembered (bounded, oldest dropped); a nonce
count must grow. Randomness and time come in from the build (the reactor's clock).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import (
    Answer,
    BuildContext,
    BuildError,
    MiddlewareKind,
    Request,
    StepResult,
)
from tsproxy.middlewares.basicauth import (
    AuthSpec,
    parse_auth,
    secret_lines,
    set_user_header,
    unauthorized,
)

__all__ = ["KINDS", "DigestAuth", "DigestAuthSpec", "parse_pairs"]

#: The library's client cache: past SIZE + TOLERANCE nonces, the oldest are dropped down
#: to SIZE - TOLERANCE.
CLIENT_CACHE_SIZE = 1000
CLIENT_CACHE_TOLERANCE = 100


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()


def parse_digest_user(line: str) -> Optional[Tuple[str, str, str]]:
    """``user:realm:HA1`` with exactly two colons, else None."""
    parts = line.split(":")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _split_list(text: str) -> List[str]:
    """Comma-separated items; commas inside double quotes do not split (\\ escapes)."""
    items: List[str] = []
    current: List[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif quoted and char == "\\":
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def parse_pairs(text: str) -> Dict[str, str]:
    """``key=value`` / ``key="value"`` pairs of a Digest header."""
    pairs: Dict[str, str] = {}
    for item in _split_list(text):
        key, equals, value = item.partition("=")
        if not equals:
            continue
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        pairs[key.strip()] = value
    return pairs


def digest_params(header: Optional[str]) -> Optional[Dict[str, str]]:
    if header is None:
        return None
    scheme, space, rest = header.partition(" ")
    if not space or scheme != "Digest":
        return None
    return parse_pairs(rest)


DigestAuthSpec = AuthSpec


def parse(fields: Fields) -> AuthSpec:
    return parse_auth(fields, parse_digest_user, "user:realm:HA1 (two colons)", "digestAuth")


@attrs.define
class _Client:
    nc: int
    last_seen: float


@attrs.define(eq=False)
class DigestAuth:
    """One built digestAuth step (keeps the nonces it handed out)."""

    name: str
    #: HA1 by user name, for this realm only.
    secrets: Dict[str, str]
    realm: str
    header_field: str
    remove_header: bool
    opaque: str
    now: Callable[[], float]
    random_key: Callable[[], str]
    clients: Dict[str, _Client] = attrs.Factory(dict)

    def handle(self, request: Request) -> StepResult:
        user, stale = self.check(request)
        if user is None:
            return self.challenge(stale)
        request.notes["auth_user"] = user
        if self.header_field:
            set_user_header(request, self.header_field, user)
        if self.remove_header:
            request.headers.remove("Authorization")
        return None

    def check(self, request: Request) -> Tuple[Optional[str], bool]:
        """The user when the request's Digest credentials are good, else None; and whether
        they were right but for a nonce this step forgot or a count already seen (stale)."""
        auth = digest_params(request.headers.get("Authorization"))
        if auth is None:
            return None, False
        auth.setdefault("algorithm", "MD5")
        if (
            auth.get("opaque") != self.opaque
            or auth["algorithm"] != "MD5"
            or auth.get("qop") != "auth"
        ):
            return None, False
        uri = auth.get("uri", "")
        if uri != request.target:
            # The library lets the uri's path be a prefix of the request's path.
            try:
                uri_path = urlsplit(uri).path
            except ValueError:
                return None, False
            if not request.path.startswith(uri_path):
                return None, False
        username = auth.get("username", "")
        ha1 = self.secrets.get(username, "")
        ha2 = md5_hex(f"{request.method}:{uri}")
        parts = (ha1, auth.get("nonce", ""), auth.get("nc", ""), auth.get("cnonce", ""))
        expected = md5_hex(":".join((*parts, auth["qop"], ha2)))
        response = auth.get("response", "")
        if not hmac.compare_digest(expected.encode(), response.encode("utf-8", "replace")):
            return None, False
        if not ha1:
            return None, False
        try:
            nc = int(auth.get("nc", ""), 16)
        except ValueError:
            return None, False
        client = self.clients.get(auth.get("nonce", ""))
        if client is None or (client.nc != 0 and client.nc >= nc):
            # The password was right: the client should retry with a new nonce, unprompted.
            return None, True
        client.nc = nc
        client.last_seen = self.now()
        return username, False

    def challenge(self, stale: bool = False) -> Answer:
        if len(self.clients) > CLIENT_CACHE_SIZE + CLIENT_CACHE_TOLERANCE:
            self._purge(CLIENT_CACHE_TOLERANCE * 2)
        nonce = self.random_key()
        self.clients[nonce] = _Client(0, self.now())
        return unauthorized(
            f'Digest realm="{self.realm}", nonce="{nonce}", opaque="{self.opaque}", '
            'algorithm=MD5, qop="auth"' + (", stale=true" if stale else "")
        )

    def _purge(self, count: int) -> None:
        oldest = sorted(self.clients.items(), key=lambda item: item[1].last_seen)[:count]
        for nonce, _ in oldest:
            del self.clients[nonce]


def random_key() -> str:
    """A fresh nonce: 12 random bytes, base64 (as the library's RandomKey)."""
    import base64

    return base64.b64encode(os.urandom(12)).decode("ascii")


def build(spec: DigestAuthSpec, name: str, context: BuildContext) -> DigestAuth:
    lines: List[str] = []
    if spec.secret:
        lines.extend(secret_lines(context, spec.secret))
    lines.extend(spec.users)
    secrets: Dict[str, str] = {}
    for line in lines:
        parsed = parse_digest_user(line)
        if parsed is None:
            raise BuildError(f"error parsing DigestUser: {line}")
        user, realm, ha1 = parsed
        if realm == spec.realm:
            secrets[user] = ha1
    if not lines:
        raise BuildError("no users found")
    reactor: Any = context.reactor
    now: Callable[[], float] = reactor.seconds if reactor is not None else (lambda: 0.0)
    return DigestAuth(
        name,
        secrets,
        spec.realm,
        spec.header_field,
        spec.remove_header,
        random_key(),
        now,
        random_key,
    )


KINDS = (MiddlewareKind("digestAuth", parse, build),)
