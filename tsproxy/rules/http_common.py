"""What the HTTP rule syntaxes (``http``, ``http_v2``) and TCP rules share: argument checks,
regexp compilation, host aliases and ClientIP; kept apart so neither syntax imports the other's.
"""

from __future__ import annotations

from typing import Callable, FrozenSet, Optional, Tuple

from tsproxy.rules import regex
from tsproxy.rules.ipcheck import build_checker
from tsproxy.rules.parse import Call, RuleError
from tsproxy.rules.request import HTTPRequestInfo

HTTPPredicate = Callable[[HTTPRequestInfo], bool]


def argument_error(call: Call, index: int, message: str) -> RuleError:
    return RuleError(message, call.arg_columns[index])


def require_ascii(call: Call, what: str) -> None:
    for index, value in enumerate(call.args):
        if not value.isascii():
            raise argument_error(
                call,
                index,
                "invalid value %r for %s: non-ASCII characters are not allowed (use punycode)"
                % (value, what),
            )


def compile_regex(call: Call, index: int, pattern: Optional[str] = None) -> regex.Search:
    """The search function for argument ``index`` (or for ``pattern`` built from it)."""
    try:
        return regex.compile_search(call.args[index] if pattern is None else pattern)
    except regex.RegexError as err:
        raise argument_error(
            call, index, "invalid regular expression for %s: %s" % (call.name, err.message)
        ) from None


def host_aliases(host: str) -> FrozenSet[str]:
    """Request hosts (Traefik's canonical form) equal to a lower-cased rule host.

    Traefik tolerates one trailing dot on either side; an empty request host never matches.
    """
    aliases = {host, host + "."}
    if host.endswith("."):
        aliases.add(host[:-1])
    aliases.discard("")
    return frozenset(aliases)


def in_one_label(name: str, suffix: str) -> bool:
    """Whether name is exactly one non-empty label followed by suffix (v3.7's ``*.`` form).

    Trailing dots are ignored on both; suffix starts with its dot (".example.com").
    """
    label, dot, rest = name.rstrip(".").partition(".")
    return bool(label and dot) and "." + rest == suffix


def exact_hosts(hosts: Tuple[str, ...]) -> HTTPPredicate:
    accepted = frozenset().union(*(host_aliases(h.lower()) for h in hosts))
    if len(accepted) <= 2:
        first, *rest = sorted(accepted)
        second = rest[0] if rest else first
        return lambda req: req.traefik_host == first or req.traefik_host == second
    return lambda req: req.traefik_host in accepted


def path_must_start_with_slash(call: Call) -> None:
    for index, value in enumerate(call.args):
        if not value.startswith("/"):
            raise argument_error(call, index, "path %r does not start with a '/'" % value)


def client_ip(call: Call) -> HTTPPredicate:
    checker, bad = build_checker(call.args)
    if checker is None:
        raise argument_error(
            call, call.args.index(bad), "invalid IP or CIDR %r for %s" % (bad, call.name)
        )
    contains = checker.contains
    return lambda req: contains(req.client_address)
