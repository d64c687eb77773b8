"""TCP router rules: HostSNI, HostSNIRegexp, ClientIP and ALPN, in v3 syntax or v2.

As pkg/muxer/tcp of Traefik v3.7, catch-all and its -1 priority included; it must not peek.
"""

from __future__ import annotations

import re
from typing import Callable, FrozenSet, List, Optional, Tuple

import attrs

from tsproxy.rules import regex, templates, tree
from tsproxy.rules.http_common import (
    argument_error,
    client_ip,
    compile_regex,
    in_one_label,
    require_ascii,
)
from tsproxy.rules.parse import Call, Node, parse
from tsproxy.rules.request import TCPConnectionInfo
from tsproxy.rules.tree import Matcher, Syntax, by_name

TCPPredicate = Callable[[TCPConnectionInfo], bool]
ACME_TLS_ALPN = "acme-tls/1"
ANY_COUNT = None

_HOST_SNI_V3 = re.compile(r"(?:\*\.)?[0-9A-Za-z_.\-:]+\Z")
_HOST_SNI_V2 = re.compile(r"[0-9A-Za-z_.\-:]+\Z")


@attrs.frozen
class TCPRule:
    """A compiled TCP rule. ``match`` is the predicate itself."""

    text: str
    syntax: str
    default_priority: int
    # Exactly one positive HostSNI(`*`): tried after every other TLS route (Traefik's
    # catch-all) and given priority -1 by default.
    is_catch_all: bool
    # Some HostSNI or HostSNIRegexp looks at the SNI (Traefik requires TLS on such routers).
    uses_sni: bool
    # Lower-cased SNIs (trailing dots removed) one of which every match has, or None.
    required_hosts: Optional[FrozenSet[str]]
    match: TCPPredicate = attrs.field(eq=False, repr=False)
    tree: Node = attrs.field(eq=False, repr=False)


def _sni_equal(hosts: Tuple[str, ...]) -> TCPPredicate:
    # Traefik compares the (lower-cased) SNI with the host, then with its trailing dot trimmed.
    accepted = frozenset(
        h for host in hosts for h in (host, host[:-1] if host.endswith(".") else host)
    )

    def match(conn: TCPConnectionInfo) -> bool:
        return bool(conn.sni) and conn.sni in accepted

    return match


def _host_sni(call: Call) -> TCPPredicate:
    host = call.args[0]
    if host == "*":
        # The catch-all also matches connections without SNI (plain TCP).
        return lambda conn: True
    if not _HOST_SNI_V3.match(host):
        raise argument_error(
            call, 0, "invalid value for HostSNI: %r is not a valid hostname" % host
        )
    host = host.lower()
    if host.startswith("*."):
        suffix = host[1:].rstrip(".")
        return lambda conn: in_one_label(conn.sni, suffix)
    return _sni_equal((host,))


def _host_sni_regexp(call: Call) -> TCPPredicate:
    require_ascii(call, "HostSNIRegexp")
    search = compile_regex(call, 0)
    return lambda conn: search(conn.sni)


def _alpn(call: Call) -> TCPPredicate:
    for index, proto in enumerate(call.args):
        if proto == ACME_TLS_ALPN:
            raise argument_error(
                call, index, "ALPN protocol %r is reserved for ACME challenges" % proto
            )
    protocols = frozenset(call.args)
    return lambda conn: any(proto in protocols for proto in conn.alpn)


def _host_sni_v2(call: Call) -> TCPPredicate:
    for index, host in enumerate(call.args):
        if host != "*" and not _HOST_SNI_V2.match(host):
            raise argument_error(
                call, index, "invalid value for HostSNI: %r is not a valid hostname or IP" % host
            )
    if call.args[0] == "*":
        return lambda conn: True
    hosts = tuple(host.lower() for host in call.args)
    if "*" in hosts:
        # A later `*` matches any connection that has an SNI.
        return lambda conn: bool(conn.sni)
    return _sni_equal(hosts)


def _host_sni_regexp_v2(call: Call) -> TCPPredicate:
    searches = []
    for index, template in enumerate(call.args):
        try:
            source = templates.to_regex(template, templates.HOST, case_insensitive=True)[0]
            searches.append(regex.compile_search(source))
        except regex.RegexError as err:
            raise argument_error(
                call, index, "invalid pattern %r for HostSNIRegexp: %s" % (template, err)
            ) from None
    return lambda conn: any(search(conn.sni) for search in searches)


V3_SYNTAX = Syntax(
    "v3",
    by_name(
        Matcher("ALPN", _alpn),
        Matcher("ClientIP", client_ip),
        Matcher("HostSNI", _host_sni),
        Matcher("HostSNIRegexp", _host_sni_regexp),
    ),
)
V2_SYNTAX = Syntax(
    "v2",
    by_name(
        Matcher("ALPN", _alpn, ANY_COUNT),
        Matcher("ClientIP", client_ip, ANY_COUNT),
        Matcher("HostSNI", _host_sni_v2, ANY_COUNT),
        Matcher("HostSNIRegexp", _host_sni_regexp_v2, ANY_COUNT),
    ),
)


def _is_host_sni(call: Call) -> bool:
    return call.name.lower() == "hostsni"


def _required_sni(call: Call) -> Optional[FrozenSet[str]]:
    if not _is_host_sni(call):
        return None
    hosts = [value.lower() for value in call.args]
    if any(host == "*" or host.startswith("*.") for host in hosts):
        return None
    return frozenset(host.rstrip(".") for host in hosts)


def compile_tcp_rule(text: str, syntax: str = "v3") -> TCPRule:
    """Compile a TCP router rule; raise RuleError (with a column) if Traefik would reject it.

    ``syntax`` "v2" selects Traefik's v2 matchers (several arguments each, templates in
    HostSNIRegexp); any other value means v3.
    """
    syntax = "v2" if syntax == "v2" else "v3"
    node = parse(text)
    predicate = tree.build(node, V2_SYNTAX if syntax == "v2" else V3_SYNTAX)
    normalized = tree.normalize(node)
    catch_all = isinstance(normalized, Call) and _is_host_sni(normalized)
    catch_all = catch_all and normalized.args == ("*",)  # type: ignore[union-attr]
    uses_sni = any(
        call.name.lower() == "hostsniregexp" or (_is_host_sni(call) and call.args != ("*",))
        for call in tree.leaves(node)
    )
    priority = -1 if catch_all else len(text.encode("utf-8", "surrogatepass"))
    required = tree.required_values(normalized, _required_sni)
    return TCPRule(text, syntax, priority, catch_all, uses_sni, required, predicate, node)


def parse_host_sni(text: str) -> Tuple[str, ...]:
    """Traefik's ParseHostSNI: the lower-cased HostSNI arguments anywhere in the rule.

    Matchers of both syntaxes are accepted and their arguments are not validated.
    """
    node = parse(text)
    domains: List[str] = []
    for call in tree.leaves(node):
        V3_SYNTAX.resolve(call)  # unknown names and bad spellings are errors
        if _is_host_sni(call):
            domains.extend(value.lower() for value in call.args)
    return tuple(domains)
