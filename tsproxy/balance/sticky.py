"""Sticky cookies: their names, the values that point at a child, and the Set-Cookie header.

Reads every value format Traefik ever wrote (raw, FNV-1, FNV-1a, sha256 prefix) and writes the
raw child name or server URL. Pure string work; the caller decides when to stick.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Mapping, Optional, Sequence

import attrs

__all__ = [
    "CookieValues",
    "StickyCookie",
    "StickyLevel",
    "cookie_name",
    "fnv1_64",
    "fnv1a_64",
    "generated_name",
    "name_values",
    "same_site_attribute",
    "sanitize_name",
    "server_values",
    "sha256_value",
]

PROVIDER = "kubernetescrd"
# RFC 2616 token characters besides letters and digits; anything else in a name becomes "_".
_TOKEN_EXTRA = frozenset("!#$%&'*+-.^`|~")
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF
_SAME_SITE = {"none": "None", "lax": "Lax", "strict": "Strict"}


def sanitize_name(name: str) -> str:
    """A configured cookie name with every non-token character replaced by ``_``."""
    return "".join(
        char if (char.isascii() and char.isalnum()) or char in _TOKEN_EXTRA else "_"
        for char in name
    )


def generated_name(qualified_service: str) -> str:
    """Traefik's default name: ``"_"`` and 5 hex digits of sha1("_TRAEFIK_BACKEND_" + service).

    ``qualified_service`` includes the provider, like ``default-app-80@kubernetescrd``.
    """
    digest = hashlib.sha1(("_TRAEFIK_BACKEND_" + qualified_service).encode()).hexdigest()
    return "_" + digest[:5]


def cookie_name(configured: str, service: str) -> str:
    """The cookie name for a sticky level of ``service`` (a bare name is the CRD
    provider's; ``web@file`` is already qualified)."""
    if configured:
        return sanitize_name(configured)
    return generated_name(service if "@" in service else f"{service}@{PROVIDER}")


def fnv1_64(data: str) -> int:
    value = _FNV_OFFSET
    for byte in data.encode():
        value = ((value * _FNV_PRIME) & _MASK) ^ byte
    return value


def fnv1a_64(data: str) -> int:
    value = _FNV_OFFSET
    for byte in data.encode():
        value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return value


def sha256_value(name: str) -> str:
    """The v3.3.4+ value: the first 16 hex digits of sha256(name)."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def name_values(name: str) -> tuple[str, ...]:
    """Every cookie value Traefik versions wrote for a weighted child ``name``.

    Raw (v2.10, and ours), FNV-1 hex without padding (v2.11 to v3.3.3), FNV-1 of that again
    (accepted by v3.3.4+), and the sha256 prefix (v3.3.4+).
    """
    fnv = format(fnv1_64(name), "x")
    return (name, sha256_value(name), fnv, format(fnv1_64(fnv), "x"))


def server_values(url: str) -> tuple[str, ...]:
    """Every cookie value Traefik versions wrote for a server ``url``.

    Adds to ``name_values``: FNV-1a of the URL without padding (v2 oxy), and FNV-1 of the
    zero-padded FNV-1a hex that v3.0 to v3.3.3 used as the server's name.
    """
    fnv1a = fnv1a_64(url)
    padded = format(fnv1a, "016x")
    return name_values(url) + (format(fnv1a, "x"), format(fnv1_64(padded), "x"))


@attrs.frozen
class CookieValues:
    """Maps any accepted cookie value to the index of the child it points at."""

    _index: dict[str, int]

    @classmethod
    def for_names(cls, names: Sequence[Optional[str]]) -> CookieValues:
        """A table for weighted children; a None name is a child no cookie may point at."""
        return cls._build(() if name is None else name_values(name) for name in names)

    @classmethod
    def for_servers(cls, urls: Sequence[Optional[str]]) -> CookieValues:
        """A table for servers; a None URL is a server no cookie may point at (weight 0)."""
        return cls._build(() if url is None else server_values(url) for url in urls)

    @classmethod
    def _build(cls, value_sets: Iterable[tuple[str, ...]]) -> CookieValues:
        index: dict[str, int] = {}
        for position, values in enumerate(value_sets):
            for value in values:
                index.setdefault(value, position)  # the first child keeps a colliding value
        return cls(index)

    def lookup(self, value: Optional[str]) -> Optional[int]:
        """The child ``value`` points at, or None for absent and unknown values."""
        if value is None:
            return None
        return self._index.get(value)


def same_site_attribute(value: str) -> Optional[str]:
    """The SameSite attribute value for a configured mode (any case); None omits it."""
    return _SAME_SITE.get(value.lower())


def _quote_value(value: str) -> str:
    """Go's sanitizeCookieValue: drop bytes a cookie value cannot hold, quote on space/comma."""
    kept = "".join(char for char in value if 0x20 <= ord(char) < 0x7F and char not in '";\\')
    if " " in kept or "," in kept:
        return f'"{kept}"'
    return kept


@attrs.frozen
class StickyCookie:
    """The cookie of one sticky level, with its Set-Cookie attributes.

    ``max_age`` 0 sends no Max-Age (a session cookie); a negative one sends ``Max-Age=0``.
    ``same_site`` is none, lax or strict in any case; anything else omits the attribute.
    """

    name: str = ""
    secure: bool = False
    http_only: bool = False
    same_site: str = ""
    max_age: int = 0
    path: str = "/"
    domain: str = ""

    def header(self, value: str) -> str:
        """The full Set-Cookie header value, attributes in Go's ``http.Cookie`` order."""
        parts = [f"{self.name}={_quote_value(value)}"]
        if self.path:
            parts.append(f"Path={self.path}")
        if self.domain:
            parts.append(f"Domain={self.domain.lstrip('.')}")
        if self.max_age > 0:
            parts.append(f"Max-Age={self.max_age}")
        elif self.max_age < 0:
            parts.append("Max-Age=0")
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        same_site = same_site_attribute(self.same_site)
        if same_site is not None:
            parts.append(f"SameSite={same_site}")
        return "; ".join(parts)


@attrs.frozen
class StickyLevel:
    """One sticky level of a balancer: its cookie, the values that lead to each child, and the
    value written for each child (a child with no value written cannot be stuck to)."""

    cookie: StickyCookie
    values: CookieValues
    written: tuple[Optional[str], ...]

    @classmethod
    def for_names(cls, cookie: StickyCookie, names: Sequence[Optional[str]]) -> StickyLevel:
        return cls(cookie, CookieValues.for_names(names), tuple(names))

    @classmethod
    def for_servers(cls, cookie: StickyCookie, urls: Sequence[Optional[str]]) -> StickyLevel:
        return cls(cookie, CookieValues.for_servers(urls), tuple(urls))

    def choose(
        self,
        cookies: Mapping[str, str],
        pick: Callable[[], Optional[int]],
        set_cookies: list[str],
        available: Optional[Callable[[int], bool]] = None,
    ) -> Optional[int]:
        """The child the cookie points at if ``available`` (when given) says it is up; else
        ``pick()``'s, with its Set-Cookie added."""
        index = self.values.lookup(cookies.get(self.cookie.name))
        if index is not None and (available is None or available(index)):
            return index
        index = pick()
        written = None if index is None else self.written[index]
        if written is not None:
            set_cookies.append(self.cookie.header(written))
        return index
