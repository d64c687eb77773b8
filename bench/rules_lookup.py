#!/usr/bin/env python3
"""Router lookup cost: build an HTTPRequestInfo and pick the router, as each request does.

Three router sets: 10 and 10,000 ``Host(`hN.example.com`) && PathPrefix(`/`)`` routes (the
host index should make both cost the same), and 1,000 mixed rules (HostRegexp, PathPrefix,
Header, Method, ClientIP, Query) that no index helps with. For each, representative
requests are timed with timeit and the cost is printed in microseconds per lookup.
Pure Python, no I/O: run it under CPython and PyPy alike,
e.g. ``.venv/bin/python bench/rules_lookup.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from typing import List, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tsproxy.rules import HTTPRequestInfo, RouterSet, compile_http_rule  # noqa: E402

Request = Tuple[str, str, Sequence[Tuple[str, str]], str]


def host_routes(count: int) -> RouterSet:
    entries = []
    for n in range(count):
        rule = compile_http_rule("Host(`h%d.example.com`) && PathPrefix(`/`)" % n)
        entries.append(("host-%05d" % n, rule, rule.default_priority, n))
    return RouterSet(entries)


def mixed_rule(n: int) -> str:
    """One of six rule shapes; every shape is unique per n so none is indexed by host."""
    shape = n % 6
    if shape == 0:
        return "HostRegexp(`^svc%d\\.[a-z]+\\.example\\.com$`) && PathPrefix(`/`)" % n
    if shape == 1:
        return "PathPrefix(`/api/v%d/`) && Method(`GET`)" % n
    if shape == 2:
        return "Header(`X-Tenant`, `t%d`) && PathPrefix(`/app`)" % n
    if shape == 3:
        return "Method(`POST`) && Path(`/submit/%d`)" % n
    if shape == 4:
        return "ClientIP(`10.%d.0.0/16`) && PathPrefix(`/internal`)" % (n % 256)
    return "Query(`tenant`, `q%d`) || PathRegexp(`^/r%d/[0-9]+$`)" % (n, n)


def mixed_routes(count: int) -> RouterSet:
    entries = []
    for n in range(count):
        rule = compile_http_rule(mixed_rule(n))
        entries.append(("mixed-%05d" % n, rule, rule.default_priority, n))
    return RouterSet(entries)


def lookup_cost(routers: RouterSet, request: Request, number: int) -> Tuple[float, object]:
    """Microseconds per (build HTTPRequestInfo + match), best of 5 runs."""
    method, target, headers, client = request

    def lookup() -> object:
        return routers.match(HTTPRequestInfo.from_request(method, target, headers, client))

    best = min(timeit.repeat(lookup, number=number, repeat=5))
    return best / number * 1e6, lookup()


def main(argv: List[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="lookups per timing run")
    args = parser.parse_args(argv)
    scenarios = [
        (
            "10 Host routes",
            host_routes(10),
            [
                ("hit h5", ("GET", "/index.html", [("Host", "h5.example.com")], "192.0.2.7")),
                ("miss", ("GET", "/index.html", [("Host", "nope.example.com")], "192.0.2.7")),
            ],
        ),
        (
            "10,000 Host routes",
            host_routes(10000),
            [
                ("hit h5", ("GET", "/index.html", [("Host", "h5.example.com")], "192.0.2.7")),
                (
                    "hit h9999",
                    ("GET", "/a/b?x=1", [("Host", "H9999.example.com:443")], "192.0.2.7"),
                ),
                ("miss", ("GET", "/index.html", [("Host", "nope.example.com")], "192.0.2.7")),
            ],
        ),
        (
            "1,000 mixed rules",
            mixed_routes(1000),
            [
                ("early HostRegexp", ("GET", "/", [("Host", "svc0.eu.example.com")], "192.0.2.7")),
                (
                    "mid Header",
                    (
                        "GET",
                        "/app/x",
                        [("Host", "a.example.com"), ("X-Tenant", "t500")],
                        "192.0.2.7",
                    ),
                ),
                ("late Query", ("GET", "/q?tenant=q995", [("Host", "a.example.com")], "192.0.2.7")),
                ("miss (all tried)", ("GET", "/zzz", [("Host", "a.example.com")], "192.0.2.7")),
            ],
        ),
    ]
    print(
        "%s %s, %d lookups per run, best of 5"
        % (sys.implementation.name, sys.version.split()[0], args.number)
    )
    for title, routers, requests in scenarios:
        for label, request in requests:
            micros, found = lookup_cost(routers, request, args.number)
            print("%-20s %-18s %8.2f us/lookup  -> %s" % (title, label, micros, found))


if __name__ == "__main__":
    main(sys.argv[1:])
