"""Shared helpers for the rule engine's vector tests: load the Traefik vector files from
tests/data, turn their requests into HTTPRequestInfo, and honour rules-deviations.json.

One test method is generated per vector case so that each failure is visible on its own.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable, Dict, List, Tuple

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tsproxy.rules import HTTPRequestInfo
from tsproxy.rules.request import split_host_port

DATA = os.path.join(os.path.dirname(__file__), "data")

# The two Go expressions the TCP vectors leave unevaluated (tlsalpn01.ACMETLS1Protocol).
GO_EXPRESSIONS = {
    'fmt.Sprintf ( "ALPN(`%s`)" , tlsalpn01.ACMETLS1Protocol )': "ALPN(`acme-tls/1`)",
    "tlsalpn01.ACMETLS1Protocol": "acme-tls/1",
}


def load(name: str) -> Any:
    with open(os.path.join(DATA, name), encoding="utf-8") as stream:
        return json.load(stream)


def go_value(value: Any) -> Any:
    """A vector value with its unevaluated Go expressions replaced by their values."""
    if isinstance(value, dict) and "$expr" in value:
        return GO_EXPRESSIONS[value["$expr"]]
    if isinstance(value, list):
        return [go_value(item) for item in value]
    return value


@functools.cache
def deviations() -> Dict[str, Dict[str, Any]]:
    """Listed cases where tsproxy deliberately differs from a vector, by case key."""
    return {entry["case"]: entry for entry in load("rules-deviations.json")["deviations"]}


def ip_of(remote_addr: str) -> str:
    """Traefik's RemoteAddrStrategy: the host part of host:port, else the whole string."""
    parts = split_host_port(remote_addr)
    return remote_addr if parts is None else parts[0]


def request_from_vector(request: Dict[str, Any], raw_request: str = "") -> HTTPRequestInfo:
    """The HTTPRequestInfo for a vector request (the raw bytes win when the test sent them)."""
    remote = ip_of(request.get("remote_addr", ""))
    if raw_request:
        head = raw_request.split("\r\n\r\n", 1)[0].split("\r\n")
        method, target, _ = head[0].split(" ")
        lines = [tuple(part.strip() for part in line.split(":", 1)) for line in head[1:]]
        return HTTPRequestInfo.from_request(method, target, lines, remote)  # type: ignore[arg-type]
    headers: List[Tuple[str, str]] = []
    for name, value in request.get("headers", {}).items():
        for line in value if isinstance(value, list) else [value]:
            headers.append((name, line))
    return HTTPRequestInfo.from_request(request["method"], request["url"], headers, remote)


def check(test: SynchronousTestCase, key: str, actual: Any, expected: Any) -> None:
    """Assert actual == expected, unless the case is a listed deviation (then as listed)."""
    listed = deviations().get(key)
    if listed is None:
        test.assertEqual(actual, expected, key)
        return
    if listed["kind"] == "skip":
        raise SkipTest("%s: %s" % (key, listed["reason"]))
    # The listed value is JSON: compare through JSON so tuples equal lists.
    test.assertEqual(json.loads(json.dumps(actual)), listed["tsproxy"], key)
    test.assertNotEqual(actual, expected, "%s is listed as a deviation but matches" % key)


def add_case_tests(
    cls: type, prefix: str, cases: List[Tuple[str, str, Callable[[SynchronousTestCase], None]]]
) -> type:
    """Attach ``test_<prefix>_<n>`` for each (key, one-line description, body)."""
    for number, (key, description, body) in enumerate(cases):

        def method(self: SynchronousTestCase, body: Callable[..., None] = body) -> None:
            body(self)

        method.__doc__ = " ".join(("%s: %s" % (key, description)).split())
        method.__name__ = "test_%s_%03d" % (prefix, number)
        setattr(cls, method.__name__, method)
    return cls
