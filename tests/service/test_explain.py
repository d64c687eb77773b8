"""Tests for `tsproxy route` (tsproxy.explain and the CLI around it) on the shipped conf/."""

from __future__ import annotations

import io
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout
from typing import List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.cli import main

CONF = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "conf"
)


def run_in(conf: str, *argv: str) -> Tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        status = main(["route", "-c", conf] + list(argv))
    return status, out.getvalue()


def run(*argv: str) -> Tuple[int, str]:
    return run_in(CONF, *argv)


# (arguments, exit status, lines the output must contain)
CASES: List[Tuple[Tuple[str, ...], int, Tuple[str, ...]]] = [
    (
        ("GET", "http://traefikservice-wrr.kubesre.lc/"),
        0,
        (
            "rule      Host(`traefikservice-wrr.kubesre.lc`)",
            "priority  37",
            "service   default-app-wrr (weighted)",
            "├─ weight 1: default-app-v1-80 (load balancer)",
            "└─ weight 2: default-app-v2-80 (load balancer)",
            "└─ http://127.0.0.1:9001",
        ),
    ),
    (
        ("GET", "http://traefikservice-copy.kubesre.lc/a?b=c"),
        0,
        (
            "service   default-app-mirror (mirroring)",
            "└─ mirror 10%: default-app-v2-80 (load balancer)",
        ),
    ),
    (
        ("GET", "http://traefikservice-cokie.kubesre.lc/"),
        0,
        ("service   default-app-cookie (weighted sticky cookie 'cookie')",),
    ),
    (
        ("GET", "http://unknown.example/"),
        1,
        ("no HTTP router of entrypoint web matches: 404 page not found",),
    ),
    (
        ("GET", "http://traefikservice-wrr.kubesre.lc/", "--entrypoint", "nope"),
        2,
        ("entrypoint nope does not exist; the entrypoints are: web (TCP), websecure (TCP),",),
    ),
    (
        ("--entrypoint", "websecure", "GET", "https://traefikservice-wrr.kubesre.lc/"),
        0,
        (
            "a TLS connection with SNI 'traefikservice-wrr.kubesre.lc': TLS ends here",
            "router    default-app-wrr-tls-846b2c19626676e0a8ba (HTTPS)",
            "service   default-app-wrr (weighted)",
        ),
    ),
    (
        (
            "--entrypoint",
            "websecure",
            "GET",
            "https://127.0.0.1:8443/",
            "-H",
            "Host: traefikservice-wrr.kubesre.lc",
        ),
        0,
        (
            "a TLS connection without SNI: TLS ends here, then the HTTPS routers",
            "rule      Host(`traefikservice-wrr.kubesre.lc`)",
        ),
    ),
    (
        ("--entrypoint", "websecure", "GET", "http://traefikservice-wrr.kubesre.lc/"),
        1,
        (
            "no HTTP router of entrypoint websecure matches: 404 page not found",
            "the entrypoint has HTTPS routers",
        ),
    ),
    (
        ("--entrypoint", "websecure", "--sni", "other.example"),
        0,
        ("a TLS connection with SNI 'other.example': TLS ends here, then the HTTPS routers",),
    ),
    (
        ("--entrypoint", "tcp"),
        0,
        (
            "entrypoint tcp on 127.0.0.1:9000 (TCP): 1 plain TCP router",
            "the connection goes to a plain TCP router, as it is accepted",
            "rule      HostSNI(`*`)",
            "├─ weight 1: default-greeter-673acf455cb2dab0b43a-greeter-1-7000 (load balancer)",
            "└─ 127.0.0.1:9102",
        ),
    ),
    (
        ("--entrypoint", "tcp", "--sni", "db.example"),
        0,
        ("is relayed as it is, TLS included", "router    default-greeter-673acf455cb2dab0b43a"),
    ),
    (
        ("--entrypoint", "tcp", "GET", "http://x/"),
        0,
        ("it has no HTTP router: a request is relayed as bytes",),
    ),
    (
        ("--entrypoint", "udp"),
        0,
        (
            "entrypoint udp on 127.0.0.1:5300/udp (UDP): 1 UDP router",
            "router    default-echo-0 (UDP)",
            "└─ weight 1: default-echo-0-echo-2-53 (load balancer)",
            "└─ 127.0.0.1:9054",
        ),
    ),
    (
        ("--entrypoint", "udp", "GET", "http://x/"),
        2,
        ("it is a UDP entrypoint: no HTTP request or TLS connection reaches it",),
    ),
    (
        ("--entrypoint", "web"),
        2,
        ("it speaks HTTP to a connection that is not TLS: give METHOD URL",),
    ),
    (
        ("--entrypoint", "web", "--sni", "a.example"),
        1,
        ("gets no handshake: the entrypoint has no HTTPS or TLS TCP router",),
    ),
    (
        ("--entrypoint", "traefik", "GET", "http://127.0.0.1:8080/api/overview"),
        0,
        ("/api/overview: answered by the internal api endpoint, before any router",),
    ),
    (("GET",), 2, ()),
]

TLS_TCP = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {name: db}
spec:
  entryPoints: [tcp]
  routes:
    - match: HostSNI(`db.example`)
      services: [{name: greeter-1, port: 7000}]
  tls: {passthrough: true}
"""


class RouteCommandTests(SynchronousTestCase):
    """`tsproxy route` explains routing decisions without touching balancer state."""

    def test_table(self) -> None:
        """Each request names its router, rule, priority and service tree, or 404."""
        for argv, status, expected in CASES:
            got_status, text = run(*argv)
            self.assertEqual(got_status, status, (argv, text))
            for line in expected:
                self.assertIn(line, text, argv)

    def test_all(self) -> None:
        """--all lists every router in evaluation order with its verdict, the winner starred."""
        status, text = run("--all", "GET", "http://traefikservice-copy.kubesre.lc/")
        self.assertEqual(status, 0)
        lines = [line for line in text.splitlines() if "Host(" in line and "match" in line]
        self.assertEqual(len(lines), 3)
        starred = [line for line in lines if line.startswith("*")]
        self.assertEqual(len(starred), 1)
        self.assertIn("traefikservice-copy", starred[0])
        self.assertEqual(sum("no match" in line for line in lines), 2)

    def test_hostHeaderOverridesUrl(self) -> None:
        """A -H Host header routes instead of the URL's host, as curl -H does."""
        status, text = run(
            "GET", "http://127.0.0.1:8000/", "-H", "Host: traefikservice-wrr.kubesre.lc"
        )
        self.assertEqual(status, 0, text)
        self.assertIn("default-app-wrr", text)

    def test_tlsTCPRouter(self) -> None:
        """--sni picks a TLS TCP router by its HostSNI; another name falls to the HTTPS
        default (no router: 404 when asked a request); --all lists the TLS routers."""
        conf = self.mktemp()
        shutil.copytree(CONF, conf)
        with open(os.path.join(conf, "db.yaml"), "w") as f:
            f.write(TLS_TCP)
        status, text = run_in(conf, "--entrypoint", "tcp", "--sni", "db.example", "--all")
        self.assertEqual(status, 0, text)
        self.assertIn("* match        21  default-db-", text)
        self.assertIn("goes to a TLS TCP router", text)
        self.assertIn("tls       passthrough", text)
        status, text = run_in(conf, "--entrypoint", "tcp", "GET", "https://other.example/")
        self.assertEqual(status, 1, text)
        self.assertIn("no HTTPS router of entrypoint tcp matches: 404 page not found", text)

    def test_badHeader(self) -> None:
        """A header without a colon is a usage error (status 2)."""
        status, _ = run("GET", "http://a/", "-H", "nocolon")
        self.assertEqual(status, 2)

    def test_strategy(self) -> None:
        """A load balancer's strategy other than wrr is named on its line."""
        conf = self.mktemp()
        shutil.copytree(CONF, conf)
        with open(os.path.join(conf, "strategy.yaml"), "w") as f:
            f.write(
                "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: lt}\n"
                "spec:\n  routes:\n    - match: Host(`lt.test`)\n      services:\n"
                "        - {name: app-v1, port: 80, strategy: leasttime}\n"
            )
        status, text = run_in(conf, "GET", "http://lt.test/")
        self.assertEqual(status, 0, text)
        self.assertIn("(load balancer leasttime)", text)
