"""HTTP router rules: compile a Traefik rule (v3 syntax, or v2 per route) into a matcher.

v3 matchers of Traefik v3.7 live here, v2 ones in ``http_v2``; it must not order routers.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, List, Optional, Tuple

import attrs

from tsproxy.rules import tree
from tsproxy.rules.http_common import (
    HTTPPredicate,
    client_ip,
    compile_regex,
    exact_hosts,
    in_one_label,
    path_must_start_with_slash,
    require_ascii,
)
from tsproxy.rules.http_v2 import V2_MATCHERS
from tsproxy.rules.parse import Call, Node, parse
from tsproxy.rules.tree import Matcher, Predicate, Syntax, by_name


@attrs.frozen
class HTTPRule:
    """A compiled HTTP rule. ``match`` is the predicate itself, called once per router."""

    text: str
    syntax: str
    default_priority: int
    # Lower-cased hosts (trailing dots removed) one of which every matching request has,
    # or None when the rule does not pin the host; used to index routers by host.
    required_hosts: Optional[FrozenSet[str]]
    match: HTTPPredicate = attrs.field(eq=False, repr=False)
    tree: Node = attrs.field(eq=False, repr=False)
    # Literal path prefixes one of which every matching request's routing path starts with,
    # or None: the router table's second index, for rules that do not pin the host.
    required_path_prefixes: Optional[FrozenSet[str]] = attrs.field(default=None, repr=False)


def rule_priority(text: str) -> int:
    """Traefik's default priority: the rule's length in bytes (Go's len), spaces included."""
    return len(text.encode("utf-8", "surrogatepass"))


# -- v3 matchers (pkg/muxer/http/matcher.go) ---------------------------------------------


def _host(call: Call) -> HTTPPredicate:
    require_ascii(call, "Host")
    host = call.args[0].lower()
    if host == "*":
        # v3.7.7: every request, including one without a host.
        return lambda req: True
    if host.startswith("*.") and "*" not in host[2:]:
        # v3.7.0: exactly one leftmost label.
        suffix = host[1:].rstrip(".")
        return lambda req: in_one_label(req.host, suffix)
    return exact_hosts((host,))


def _host_regexp(call: Call) -> HTTPPredicate:
    require_ascii(call, "HostRegexp")
    search = compile_regex(call, 0)
    return lambda req: search(req.traefik_host)


def _path(call: Call) -> HTTPPredicate:
    path_must_start_with_slash(call)
    path = call.args[0]
    return lambda req: req.path == path


def _path_prefix(call: Call) -> HTTPPredicate:
    path_must_start_with_slash(call)
    prefix = call.args[0]
    return lambda req: req.path.startswith(prefix)


def _path_regexp(call: Call) -> HTTPPredicate:
    search = compile_regex(call, 0)
    return lambda req: search(req.path)


def _method(call: Call) -> HTTPPredicate:
    method = call.args[0].upper()
    return lambda req: req.method == method


def _header(call: Call) -> HTTPPredicate:
    name, value = call.args[0].lower(), call.args[1]
    if name == "host":
        # Go moves the Host header out of the header map: it is only seen by Host matchers.
        return lambda req: False
    return lambda req: value in req.headers.get(name, ())


def _header_regexp(call: Call) -> HTTPPredicate:
    name = call.args[0].lower()
    search = compile_regex(call, 1)
    if name == "host":
        return lambda req: False
    return lambda req: any(search(line) for line in req.headers.get(name, ()))


def _query(call: Call) -> HTTPPredicate:
    key = call.args[0]
    # One argument: the key must be present with an empty value (?key or ?key=).
    value = call.args[1] if len(call.args) == 2 else ""
    return lambda req: value in req.query.get(key, ())


def _query_regexp(call: Call) -> HTTPPredicate:
    if len(call.args) == 1:
        return _query(call)
    key = call.args[0]
    search = compile_regex(call, 1)
    return lambda req: any(search(value) for value in req.query.get(key, ()))


V3_MATCHERS = by_name(
    Matcher("ClientIP", client_ip),
    Matcher("Method", _method),
    Matcher("Host", _host),
    Matcher("HostRegexp", _host_regexp),
    Matcher("Path", _path),
    Matcher("PathRegexp", _path_regexp),
    Matcher("PathPrefix", _path_prefix),
    Matcher("Header", _header, (2,)),
    Matcher("HeaderRegexp", _header_regexp, (2,)),
    Matcher("Query", _query, (1, 2)),
    Matcher("QueryRegexp", _query_regexp, (1, 2)),
)


def _with_hints(
    label: str, own: Dict[str, Matcher], other: Dict[str, Matcher], hint: str
) -> Syntax:
    """A syntax whose errors point at the other syntax for the matchers only it has."""
    foreign = {name.lower(): hint % name for name in other if name not in own}
    return Syntax(label, own, foreign)


_SYNTAXES: Dict[str, Syntax] = {}


def _syntax(name: str) -> Syntax:
    if not _SYNTAXES:
        _SYNTAXES["v3"] = _with_hints(
            "v3", V3_MATCHERS, V2_MATCHERS, "%s exists only in the v2 rule syntax (syntax: v2)"
        )
        _SYNTAXES["v2"] = _with_hints(
            "v2", V2_MATCHERS, V3_MATCHERS, "%s exists only in the v3 rule syntax"
        )
    return _SYNTAXES[name]


def _required_path_prefix(call: Call, syntax: str) -> Optional[FrozenSet[str]]:
    # Path(p) and PathPrefix(p) both need the path to start with p; in v2 only when p is
    # a template without {variables}.
    if call.name.lower() not in ("path", "pathprefix"):
        return None
    if syntax == "v2" and any("{" in value for value in call.args):
        return None
    return frozenset(call.args)


def _required_host(call: Call) -> Optional[FrozenSet[str]]:
    if call.name.lower() not in ("host", "hostheader"):
        return None
    hosts = [value.lower() for value in call.args]
    if any(host == "*" or host.startswith("*.") for host in hosts):
        return None
    return frozenset(host.rstrip(".") for host in hosts)


def compile_http_rule(text: str, syntax: str = "v3") -> HTTPRule:
    """Compile an HTTP router rule; raise RuleError (with a column) if Traefik would reject it.

    ``syntax`` is the route's rule syntax: "v2" selects Traefik's v2 matchers; any other
    value means v3, as Traefik silently treats an unknown per-router syntax.
    """
    syntax = "v2" if syntax == "v2" else "v3"
    node = parse(text)
    predicate: Predicate = tree.build(node, _syntax(syntax))
    normalized = tree.normalize(node)
    hosts = tree.required_values(normalized, _required_host)
    prefixes = tree.required_values(normalized, lambda call: _required_path_prefix(call, syntax))
    return HTTPRule(text, syntax, rule_priority(text), hosts, predicate, node, prefixes)


def parse_domains(text: str) -> Tuple[str, ...]:
    """Traefik's ParseDomains: the lower-cased arguments of every Host matcher, in order.

    Used for ACME and TLS-option lookup; matchers of both syntaxes are accepted and the
    arguments are not validated.
    """
    node = parse(text)
    names = dict(_syntax("v2").by_spelling)
    names.update(_syntax("v3").by_spelling)
    domains: List[str] = []
    for call in tree.leaves(node):
        # A name of neither syntax: resolve() raises the error v3 would give.
        matcher = names.get(call.name) or _syntax("v3").resolve(call)
        if matcher.name == "Host":
            domains.extend(value.lower() for value in call.args)
    return tuple(domains)
