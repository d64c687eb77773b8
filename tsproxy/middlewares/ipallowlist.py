"""Traefik's ipAllowList middleware (and its deprecated ipWhiteList name): allow listed client
IPs, chosen by an ipStrategy (peer address, X-Forwarded-For depth, or excluded proxies)."""

from __future__ import annotations

import ipaddress
from typing import Optional, Tuple

import attrs

from tsproxy.config.schema import FieldError, Fields
from tsproxy.middlewares.base import (
    Answer,
    BuildContext,
    MiddlewareKind,
    Request,
    StepResult,
)
from tsproxy.rules.ipcheck import Address, IPChecker, build_checker, parse_cidr, parse_ip

__all__ = [
    "KINDS",
    "IPAllowList",
    "IPAllowListSpec",
    "IPStrategy",
    "client_ip",
    "go_status_text",
    "parse_client_address",
    "parse_ip_strategy",
    "split_host",
]

# Go's http.StatusText: rejectStatusCode must be one of these.
_GO_STATUS_TEXT = {
    100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
    204: "No Content", 205: "Reset Content", 206: "Partial Content", 207: "Multi-Status",
    208: "Already Reported", 226: "IM Used",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other",
    304: "Not Modified", 305: "Use Proxy", 307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 409: "Conflict",
    410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Request Entity Too Large", 414: "Request URI Too Long",
    415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
    417: "Expectation Failed", 418: "I'm a teapot", 421: "Misdirected Request",
    422: "Unprocessable Entity", 423: "Locked", 424: "Failed Dependency", 425: "Too Early",
    426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
    505: "HTTP Version Not Supported", 506: "Variant Also Negotiates",
    507: "Insufficient Storage", 508: "Loop Detected", 510: "Not Extended",
    511: "Network Authentication Required",
}  # fmt: skip


def go_status_text(status: int) -> str:
    """Go's http.StatusText ("" for a code Go does not know)."""
    return _GO_STATUS_TEXT.get(status, "")


def split_host(address: str) -> str:
    """The host of ``host:port`` as Go's SplitHostPort; the whole string when it fails."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or address[end + 1 : end + 2] != ":" or "]" in address[end + 2 :]:
            return address
        return address[1:end]
    colon = address.rfind(":")
    if colon < 0 or ":" in address[:colon] or "[" in address or "]" in address:
        return address
    return address[:colon]


def parse_client_address(text: str) -> Optional[Address]:
    """A client IP as Go's netip.ParseAddr reads it: an IPv6 zone is accepted and ignored."""
    if "%" in text:
        text, _, zone = text.partition("%")
        if ":" not in text or not zone:
            return None
    return parse_ip(text)


def _v6_text(value: int) -> str:
    """Go's netip text of an IPv6 address (IPv4-mapped ones in dotted form)."""
    if value >> 32 == 0xFFFF:
        return "::ffff:" + str(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return ipaddress.IPv6Address(value).compressed


def subnet_ip(ip: str, ipv6_subnet: Optional[int]) -> str:
    """An IPv6 client IP replaced by the first address of its /ipv6_subnet (Traefik's
    getIPv6SubnetIP); IPv4 and unparsable text unchanged."""
    if ipv6_subnet is None or not 1 <= ipv6_subnet <= 128 or ":" not in ip:
        return ip
    text = ip.partition("%")[0]
    try:
        value = int(ipaddress.IPv6Address(text))
    except ValueError:
        return ip
    shift = 128 - ipv6_subnet
    return _v6_text(value >> shift << shift)


@attrs.frozen
class IPStrategy:
    """How the client IP is chosen: depth > 0 wins, then excluded IPs, else the peer."""

    depth: int = 0
    excluded: Optional[IPChecker] = None
    ipv6_subnet: Optional[int] = None


def client_ip(strategy: Optional[IPStrategy], request: Request) -> str:
    """The client IP under `strategy` ("" when the header has none to give)."""
    if strategy is not None and strategy.depth > 0:
        xffs = (request.headers.get("X-Forwarded-For") or "").split(",")
        if len(xffs) < strategy.depth:
            return ""
        return subnet_ip(xffs[len(xffs) - strategy.depth].strip(), strategy.ipv6_subnet)
    if strategy is not None and strategy.excluded is not None:
        xffs = (request.headers.get("X-Forwarded-For") or "").split(",")
        for entry in reversed(xffs):
            entry = entry.strip()
            if entry and not strategy.excluded.contains(parse_client_address(entry)):
                return entry
        return ""
    subnet = strategy.ipv6_subnet if strategy is not None else None
    return subnet_ip(split_host(request.client_ip), subnet)


def _ip_list(fields: Fields, key: str, required: bool) -> Tuple[str, ...]:
    values = []
    items = fields.items(key)
    if required and not items:
        raise fields.fail(key, "must list at least one IP or CIDR")
    for item, path, line in items:
        if not isinstance(item, str):
            raise FieldError(line, path, "must be a string")
        if parse_ip(item) is None and parse_cidr(item) is None:
            raise FieldError(line, path, f"invalid CIDR address: {item!r}")
        values.append(item)
    return tuple(values)


def parse_ip_strategy(fields: Fields) -> Optional[IPStrategy]:
    """The optional ``ipStrategy`` section (also used by other kinds that pick a client IP)."""
    section = fields.mapping("ipStrategy")
    if section is None:
        return None if not fields.has("ipStrategy") else IPStrategy()
    depth = section.integer("depth", 0)
    excluded = _ip_list(section, "excludedIPs", False)
    subnet: Optional[int] = None
    if section.has("ipv6Subnet"):
        subnet = section.integer("ipv6Subnet", 0)
        if not 1 <= subnet <= 128:
            raise section.fail(
                "ipv6Subnet",
                f"invalid IPv6 subnet {subnet} value, should be greater to 0 and lower or "
                "equal to 128",
            )
    section.done()
    checker = build_checker(excluded)[0] if excluded else None
    return IPStrategy(depth, checker, subnet)


@attrs.frozen
class IPAllowListSpec:
    source_range: Tuple[str, ...]
    strategy: Optional[IPStrategy] = None
    reject_status: int = 403


def _parse(fields: Fields, with_status: bool) -> IPAllowListSpec:
    source = _ip_list(fields, "sourceRange", True)
    strategy = parse_ip_strategy(fields)
    status = 403
    if with_status:
        status = fields.integer("rejectStatusCode", 0) or 403
        if not go_status_text(status):
            raise fields.fail("rejectStatusCode", f"invalid HTTP status code {status}")
    fields.done()
    return IPAllowListSpec(source, strategy, status)


def parse(fields: Fields) -> IPAllowListSpec:
    return _parse(fields, True)


def parse_white_list(fields: Fields) -> IPAllowListSpec:
    """The deprecated ipWhiteList: the same minus rejectStatusCode."""
    return _parse(fields, False)


@attrs.define(eq=False)
class IPAllowList:
    """One built ipAllowList step."""

    name: str
    checker: IPChecker
    strategy: Optional[IPStrategy]
    reject_status: int

    def handle(self, request: Request) -> StepResult:
        ip = split_host(client_ip(self.strategy, request))
        if ip and self.checker.contains(parse_client_address(ip)):
            return None
        # No Content-Type: the real Traefik sends none with this answer (its unit tests'
        # recorder sniffs one; a running Traefik 3.7 does not).
        return Answer(self.reject_status, (), go_status_text(self.reject_status).encode("ascii"))


def build(spec: IPAllowListSpec, name: str, context: BuildContext) -> IPAllowList:
    checker, bad = build_checker(spec.source_range)
    assert checker is not None, bad  # parse checked every entry
    return IPAllowList(name, checker, spec.strategy, spec.reject_status)


KINDS = (
    MiddlewareKind("ipAllowList", parse, build),
    MiddlewareKind("ipWhiteList", parse_white_list, build),
)
