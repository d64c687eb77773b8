"""The v2 HTTP rule syntax (``syntax: v2`` on a route), as Traefik v3.7 keeps it (matcher_v2.go).

Several arguments per matcher, gorilla templates, pairs; it must not offer v3-only matchers.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from tsproxy.rules import regex, templates
from tsproxy.rules.http_common import (
    HTTPPredicate,
    argument_error,
    client_ip,
    exact_hosts,
    path_must_start_with_slash,
    require_ascii,
)
from tsproxy.rules.parse import Call, RuleError
from tsproxy.rules.request import HTTPRequestInfo, split_host_port
from tsproxy.rules.tree import Matcher, by_name

ANY_COUNT = None


def _template_search(call: Call, index: int, template: str, kind: str) -> regex.Search:
    """Compile a gorilla template (and, as gorilla does, each variable's own pattern)."""
    try:
        source, variables = templates.to_regex(template, kind, kind == templates.HOST)
        for pattern in variables:
            regex.parse("^%s$" % pattern)
        return regex.compile_search(source)
    except regex.RegexError as err:
        raise argument_error(
            call, index, "invalid template %r for %s: %s" % (template, call.name, err.message)
        ) from None


def _any_of(searches: List[regex.Search], subject: str) -> bool:
    return any(search(subject) for search in searches)


def _host(call: Call) -> HTTPPredicate:
    require_ascii(call, "Host")
    return exact_hosts(call.args)


def _gorilla_host(authority: str) -> str:
    """The host gorilla matches a template without ':' against: the port split off, if any."""
    parts = split_host_port(authority)
    return authority if parts is None else parts[0]


def _host_regexp(call: Call) -> HTTPPredicate:
    require_ascii(call, "HostRegexp")
    with_port: List[regex.Search] = []
    without_port: List[regex.Search] = []
    for index, template in enumerate(call.args):
        search = _template_search(call, index, template, templates.HOST)
        source = templates.to_regex(template, templates.HOST, True)[0]
        # gorilla compares against host:port only when the template mentions a port.
        (with_port if ":" in source else without_port).append(search)

    def match(req: HTTPRequestInfo) -> bool:
        authority = req.authority
        if with_port and _any_of(with_port, authority):
            return True
        return bool(without_port) and _any_of(without_port, _gorilla_host(authority))

    return match


def _path(call: Call) -> HTTPPredicate:
    path_must_start_with_slash(call)
    searches = [
        _template_search(call, i, template, templates.PATH) for i, template in enumerate(call.args)
    ]
    return lambda req: _any_of(searches, req.path)


def _path_prefix(call: Call) -> HTTPPredicate:
    path_must_start_with_slash(call)
    searches = [
        _template_search(call, i, template, templates.PREFIX)
        for i, template in enumerate(call.args)
    ]
    return lambda req: _any_of(searches, req.path)


def _method(call: Call) -> HTTPPredicate:
    methods = frozenset(method.upper() for method in call.args)
    return lambda req: req.method in methods


def _pairs(call: Call, values: List[str]) -> List[Tuple[str, str]]:
    if len(values) % 2:
        raise RuleError(
            "mux: number of parameters must be multiple of 2, got %s" % values, call.column
        )
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def _headers(call: Call) -> HTTPPredicate:
    # gorilla keeps the pairs in a map: a repeated key keeps its last value.
    expected: Dict[str, str] = dict(_pairs(call, list(call.args)))
    wanted = [(name.lower(), value) for name, value in expected.items()]

    def match(req: HTTPRequestInfo) -> bool:
        headers = req.headers
        for name, value in wanted:
            if name == "host" or value not in headers.get(name, ()):
                return False
        return True

    return match


def _headers_regexp(call: Call) -> HTTPPredicate:
    compiled: Dict[str, regex.Search] = {}
    for index, (name, pattern) in enumerate(_pairs(call, list(call.args))):
        try:
            compiled[name] = regex.compile_search(pattern)
        except regex.RegexError as err:
            raise argument_error(
                call, 2 * index + 1, "invalid regular expression for %s: %s" % (call.name, err)
            ) from None
    wanted = [(name.lower(), search) for name, search in compiled.items()]

    def match(req: HTTPRequestInfo) -> bool:
        headers = req.headers
        for name, search in wanted:
            lines = () if name == "host" else headers.get(name, ())
            if not any(search(line) for line in lines):
                return False
        return True

    return match


def _query(call: Call) -> HTTPPredicate:
    values: List[str] = []
    for value in call.args:
        key, equals, rest = value.partition("=")
        values += [key, rest] if equals else [key]
    checks = []
    for index, (key, value) in enumerate(_pairs(call, values)):
        template = key + "=" + value
        position = min(index, len(call.args) - 1)
        checks.append((key, _template_search(call, position, template, templates.QUERY)))

    def match(req: HTTPRequestInfo) -> bool:
        query = req.query
        for key, search in checks:
            # gorilla looks at the first value of the key only.
            found = query.get(key)
            if not search(key + "=" + found[0] if found else ""):
                return False
        return True

    return match


V2_MATCHERS = by_name(
    Matcher("Host", _host, ANY_COUNT),
    Matcher("HostHeader", _host, ANY_COUNT),
    Matcher("HostRegexp", _host_regexp, ANY_COUNT),
    Matcher("ClientIP", client_ip, ANY_COUNT),
    Matcher("Path", _path, ANY_COUNT),
    Matcher("PathPrefix", _path_prefix, ANY_COUNT),
    Matcher("Method", _method, ANY_COUNT),
    Matcher("Headers", _headers, ANY_COUNT),
    Matcher("HeadersRegexp", _headers_regexp, ANY_COUNT),
    Matcher("Query", _query, ANY_COUNT),
)
