"""Tests for tsproxy.config.static (the default transports included) and the duration
grammar in tsproxy.config.schema."""

from __future__ import annotations

import textwrap
from typing import Any, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tests.certs import make_ca
from tsproxy.config.errors import Location
from tsproxy.config.resources import TransportSettings
from tsproxy.config.schema import parse_duration
from tsproxy.config.static import (
    AccessLogConfig,
    AccessLogFields,
    APIConfig,
    EntryPoint,
    PingConfig,
    PrometheusConfig,
    StaticConfig,
    parse_address,
    parse_static,
)
from tsproxy.config.transports import TCPTransportSettings

ADDRESSES = [
    (":8000", ("", 8000, "tcp")),
    ("127.0.0.1:8000", ("127.0.0.1", 8000, "tcp")),
    ("[::1]:8000", ("::1", 8000, "tcp")),
    ("[::]:80", ("::", 80, "tcp")),
    ("0.0.0.0:80", ("0.0.0.0", 80, "tcp")),
    (":5353/udp", ("", 5353, "udp")),
    ("127.0.0.1:5353/udp", ("127.0.0.1", 5353, "udp")),
    (":53/UDP", ("", 53, "udp")),
    (":80/tcp", ("", 80, "tcp")),
    (":0", ("", 0, "tcp")),
]

BAD_ADDRESSES = [
    ("8000", "must be [host]:port, like :8000 or 127.0.0.1:8000"),
    (":80/sctp", "invalid protocol 'sctp' (tcp or udp)"),
    (":65536", "port '65536' must be a number between 0 and 65535"),
    (":http", "port 'http' must be a number between 0 and 65535"),
    (":", "port '' must be a number between 0 and 65535"),
    ("::1:80", "host '::1' must be an IPv4 address or a bracketed IPv6 address"),
    ("localhost:80", "host 'localhost' must be an IPv4 address or a bracketed IPv6 address"),
    ("[127.0.0.1]:80", "'127.0.0.1' is not an IPv6 address"),
]

DURATIONS = [
    ("10s", 10.0),
    ("1m30s", 90.0),
    ("500ms", 0.5),
    ("1h", 3600.0),
    ("1.5s", 1.5),
    ("2h45m", 9900.0),
    ("250us", 0.00025),
    ("250\u00b5s", 0.00025),
    ("100ns", 1e-7),
    ("0", 0.0),
    ("-1s", -1.0),
    ("10", 10.0),
    ("2.5", 2.5),
    (10, 10.0),
    (0.25, 0.25),
]

BAD_DURATIONS = ["", "s", "1x", "1s2", "1 s", "ten", "1.2.3s", ".s", True, None, [1], "inf", 1e400]


class AddressTests(SynchronousTestCase):
    """Entrypoint addresses in every form Traefik accepts."""

    def test_good(self) -> None:
        """Each address form gives its host, port and protocol."""
        for text, expected in ADDRESSES:
            self.assertEqual(parse_address(text), expected, text)

    def test_bad(self) -> None:
        """Each malformed address is refused with a message saying why."""
        for text, message in BAD_ADDRESSES:
            with self.assertRaises(ValueError) as caught:
                parse_address(text)
            self.assertEqual(str(caught.exception), message, text)


class DurationTests(SynchronousTestCase):
    """Go duration strings and bare numbers (seconds)."""

    def test_good(self) -> None:
        """Each duration parses to its number of seconds."""
        for value, seconds in DURATIONS:
            self.assertAlmostEqual(parse_duration(value), seconds, msg=repr(value))

    def test_bad(self) -> None:
        """Malformed durations raise ValueError."""
        for value in BAD_DURATIONS:
            self.assertRaises(ValueError, parse_duration, value)


FULL = """\
entryPoints:
  web:
    address: ":8000"
  local:
    address: "127.0.0.1:8001"
    forwardedHeaders:
      trustedIPs: ["10.0.0.0/8", "127.0.0.1", "::1"]
      insecure: false
    transport:
      respondingTimeouts:
        readTimeout: 1m30s
        writeTimeout: 5
        idleTimeout: 500ms
      lifeCycle:
        graceTimeOut: 2s
  v6:
    address: "[::1]:8002"
    forwardedHeaders: {insecure: true}
  dns:
    address: ":5353/udp"
    udp:
      timeout: 10s
      maxSessions: 500
log:
  level: debug
api:
  dashboard: true
metrics: {}
"""


class StaticConfigTests(SynchronousTestCase):
    """tsproxy.yaml: entrypoints, timeouts, log level, notices and errors."""

    def test_full(self) -> None:
        """A complete file gives every entrypoint in file order with its settings."""
        config, errors, notices = parse_static(FULL, path="conf/tsproxy.yaml")
        self.assertEqual(errors, ())
        self.assertEqual(
            config,
            StaticConfig(
                path="conf/tsproxy.yaml",
                log_level="DEBUG",
                entrypoints=(
                    EntryPoint(
                        "web",
                        "",
                        8000,
                        "tcp",
                        location=Location("tsproxy.yaml", 2, "entrypoint web"),
                    ),
                    EntryPoint(
                        "local",
                        "127.0.0.1",
                        8001,
                        "tcp",
                        trusted_ips=("10.0.0.0/8", "127.0.0.1", "::1"),
                        read_timeout=90.0,
                        write_timeout=5.0,
                        idle_timeout=0.5,
                        grace_timeout=2.0,
                        location=Location("tsproxy.yaml", 4, "entrypoint local"),
                    ),
                    EntryPoint(
                        "v6",
                        "::1",
                        8002,
                        "tcp",
                        insecure_forwarded=True,
                        location=Location("tsproxy.yaml", 16, "entrypoint v6"),
                    ),
                    EntryPoint(
                        "dns",
                        "",
                        5353,
                        "udp",
                        udp_timeout=10.0,
                        udp_max_sessions=500,
                        location=Location("tsproxy.yaml", 19, "entrypoint dns"),
                    ),
                ),
                api=APIConfig(),
            ),
        )
        self.assertEqual(
            notices,
            ("tsproxy.yaml:26: api.insecure: false: the API is served only with insecure: true",),
        )

    def test_defaults(self) -> None:
        """An entrypoint with only an address gets Traefik's v3 defaults."""
        config, _, _ = parse_static('entryPoints:\n  web:\n    address: ":80"\n')
        assert config is not None
        web = config.entrypoint("web")
        self.assertEqual(
            (
                web.read_timeout,
                web.write_timeout,
                web.idle_timeout,
                web.grace_timeout,
                web.udp_timeout,
                web.udp_max_sessions,
            ),
            (60.0, 0.0, 180.0, 10.0, 3.0, 10000),
        )
        self.assertEqual(
            (config.log_level, web.trusted_ips, web.insecure_forwarded), ("INFO", (), False)
        )
        self.assertRaises(KeyError, config.entrypoint, "websecure")

    def test_errors(self) -> None:
        """Each broken file gives no configuration and exactly these located errors."""
        cases = [
            (None, ["tsproxy.yaml:1: file not found: no entrypoints defined"]),
            ("", ["tsproxy.yaml:1: empty: no entrypoints defined"]),
            ("# only a comment\n", ["tsproxy.yaml:1: empty: no entrypoints defined"]),
            ("log: {level: INFO}\n", ["tsproxy.yaml:1: entryPoints: is required"]),
            (
                "entryPoints: {}\n",
                ["tsproxy.yaml:1: entryPoints: at least one entrypoint is required"],
            ),
            ("entryPoints: [web]\n", ["tsproxy.yaml:1: entryPoints: must be a mapping"]),
            ("- a\n", ["tsproxy.yaml:1: must be a mapping"]),
            ("entryPoints:\n  web: {}\n", ["tsproxy.yaml:2: entryPoints.web.address: is required"]),
            (
                "entryPoints:\n  web: {address: 8000}\n",
                ["tsproxy.yaml:2: entryPoints.web.address: must be a string"],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\n    reusePort: true\n    bogus: 1\n',
                ["tsproxy.yaml:5: entryPoints.web.bogus: unknown field"],
            ),
            (
                'entryPoints:\n  web:\n    address: "8000"\n  b:\n    address: ":1/sctp"\n',
                [
                    "tsproxy.yaml:3: entryPoints.web.address: must be [host]:port, like :8000 or 127.0.0.1:8000",
                    "tsproxy.yaml:5: entryPoints.b.address: invalid protocol 'sctp' (tcp or udp)",
                ],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\n    transport:\n      respondingTimeouts:\n        readTimeout: 10x\n',
                [
                    "tsproxy.yaml:6: entryPoints.web.transport.respondingTimeouts.readTimeout:"
                    " must be a duration (like 10s, 1m30s, 500ms) or a number of seconds"
                ],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\n    udp: {timeout: -1s}\n',
                ["tsproxy.yaml:4: entryPoints.web.udp.timeout: must not be negative"],
            ),
            (
                'entryPoints:\n  dns:\n    address: ":53/udp"\n    udp: {timeout: 0s}\n',
                ["tsproxy.yaml:4: entryPoints.dns.udp.timeout: must be above 0 (as in Traefik)"],
            ),
            (
                'entryPoints:\n  dns:\n    address: ":53/udp"\n    udp: {maxSessions: 0}\n',
                ["tsproxy.yaml:4: entryPoints.dns.udp.maxSessions: must be an integer >= 1"],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\n    forwardedHeaders:\n      trustedIPs: [10.0.0.0/33]\n',
                [
                    "tsproxy.yaml:5: entryPoints.web.forwardedHeaders.trustedIPs[0]: must be an IP address or a CIDR range"
                ],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\n    forwardedHeaders: {insecure: yes}\n',
                [
                    "tsproxy.yaml:4: entryPoints.web.forwardedHeaders.insecure: must be true or false"
                ],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\n    proxyProtocol: {}\n',
                [
                    "tsproxy.yaml:4: entryPoints.web.proxyProtocol: needs trustedIPs, or insecure: true"
                ],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\n    http: {bogus: 1}\n',
                ["tsproxy.yaml:4: entryPoints.web.http.bogus: unknown field"],
            ),
            (
                'entryPoints:\n  a:\n    address: ":80"\n  b:\n    address: ":80"\n',
                [
                    "tsproxy.yaml:4: entrypoint b: address is already used by entrypoint a (tsproxy.yaml:2)"
                ],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\nlog:\n  level: LOUD\n',
                [
                    "tsproxy.yaml:5: log.level: must be one of: TRACE, DEBUG, INFO, WARN, ERROR, FATAL, PANIC"
                ],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\nlog:\n  format: xml\n',
                ["tsproxy.yaml:5: log.format: must be one of: common, json"],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\nproviders: {}\nwhatever: 1\n',
                ["tsproxy.yaml:5: whatever: unknown field"],
            ),
            (
                'entryPoints:\n  web:\n    address: ":80"\n---\nx: 1\n',
                ["tsproxy.yaml:5: must hold a single YAML document"],
            ),
            (
                "entryPoints:\n  web:\n  web:\n",
                ["tsproxy.yaml:3: invalid YAML: duplicate key 'web' (first at line 2)"],
            ),
        ]
        for text, expected in cases:
            config, errors, _ = parse_static(text)
            self.assertEqual((config, [str(e) for e in errors]), (None, expected), text)

    def test_entrypoint_http_inert(self) -> None:
        """An entrypoint's ``http`` section with values that change nothing is accepted
        without a notice."""
        text = (
            'entryPoints:\n  web:\n    address: ":80"\n    http:\n      middlewares: []\n'
            "      encodeQuerySemicolons: false\n      sanitizePath: true\n"
        )
        config, errors, notices = parse_static(text)
        self.assertEqual((errors, notices), ((), ()))
        self.assertIsNotNone(config)

    def test_logFormat(self) -> None:
        """log.format is Traefik's common (the default) or json; log.level is upper-cased."""
        for text, expected in (
            ("", ("INFO", "common")),
            ("log:\n  level: debug\n  format: json\n", ("DEBUG", "json")),
            ("log:\n  format: common\n", ("INFO", "common")),
        ):
            config, errors, _ = parse_static('entryPoints:\n  web: {address: ":80"}\n' + text)
            self.assertEqual(errors, ())
            assert config is not None
            self.assertEqual((config.log_level, config.log_format), expected)

    def test_sameAddressOtherProtocol(self) -> None:
        """A TCP and a UDP entrypoint may share a port, and port 0 may repeat."""
        text = 'entryPoints:\n  a: {address: ":53"}\n  b: {address: ":53/udp"}\n  c: {address: ":0"}\n  d: {address: ":0"}\n'
        config, errors, _ = parse_static(text)
        self.assertEqual(errors, ())
        assert config is not None
        self.assertEqual([e.name for e in config.entrypoints], ["a", "b", "c", "d"])


_WEB = 'entryPoints:\n  web:\n    address: "127.0.0.1:8000"\n'


class ObservabilitySectionTests(SynchronousTestCase):
    """api, ping, metrics.prometheus and accessLog, with Traefik's defaults."""

    def parse(self, text: str) -> StaticConfig:
        config, errors, _ = parse_static(_WEB + text)
        self.assertEqual(errors, ())
        assert config is not None
        return config

    def test_sections(self) -> None:
        """Each section as written, or its defaults when written empty."""
        cases = [
            ("api:\n  insecure: true\n", "api", APIConfig(insecure=True)),
            (
                "api:\n  insecure: true\n  dashboard: false\n",
                "api",
                APIConfig(insecure=True, dashboard=False),
            ),
            ("ping: {}\n", "ping", PingConfig()),
            ("ping:\n", "ping", PingConfig()),
            ("ping:\n  entryPoint: web\n", "ping", PingConfig(entrypoint="web")),
            ("metrics:\n  prometheus: {}\n", "prometheus", PrometheusConfig()),
            (
                "metrics:\n  prometheus:\n    buckets: [0.5, 1]\n    addRoutersLabels: true\n",
                "prometheus",
                PrometheusConfig(buckets=(0.5, 1.0), add_routers_labels=True),
            ),
            ("metrics: {}\n", "prometheus", None),
            (
                "metrics:\n  prometheus:\n    buckets: [0.5, .inf]\n",
                "prometheus",
                PrometheusConfig(buckets=(0.5,)),
            ),
            ("accessLog: {}\n", "access_log", AccessLogConfig()),
            (
                "accessLog:\n  filePath: /tmp/a.log\n  format: json\n  bufferingSize: 100\n"
                "  fields:\n    defaultMode: drop\n    names: {RouterName: keep}\n"
                "    headers:\n      names: {User-Agent: redact}\n",
                "access_log",
                AccessLogConfig(
                    "/tmp/a.log",
                    "json",
                    100,
                    AccessLogFields(
                        "drop", (("RouterName", "keep"),), "drop", (("User-Agent", "redact"),)
                    ),
                ),
            ),
        ]
        for text, attr, expected in cases:
            with self.subTest(text=text):
                self.assertEqual(getattr(self.parse(text), attr), expected)

    def test_traefik_entrypoint_added(self) -> None:
        """Serving something on ``traefik`` without defining it adds it on :8080."""
        config = self.parse("ping: {}\n")
        self.assertEqual(
            [(e.name, e.host, e.port) for e in config.entrypoints],
            [("web", "127.0.0.1", 8000), ("traefik", "", 8080)],
        )
        self.assertEqual(config.internal_entrypoints(), {"traefik": ("ping",)})
        # api without insecure serves nothing, so no entrypoint is added.
        config = self.parse("api: {}\n")
        self.assertEqual([e.name for e in config.entrypoints], ["web"])

    def test_defined_traefik_entrypoint_kept(self) -> None:
        text = (
            'entryPoints:\n  traefik:\n    address: "127.0.0.1:9000"\n'
            "api:\n  insecure: true\nmetrics:\n  prometheus:\n    entryPoint: traefik\n"
        )
        config, errors, _ = parse_static(text)
        self.assertEqual(errors, ())
        assert config is not None
        self.assertEqual([(e.name, e.port) for e in config.entrypoints], [("traefik", 9000)])
        self.assertEqual(
            config.internal_entrypoints(), {"traefik": ("api", "dashboard", "metrics")}
        )

    def test_errors(self) -> None:
        """Bad values are located errors."""
        cases = [
            ("ping:\n  entryPoint: nowhere\n", "entrypoint nowhere not found"),
            ("metrics:\n  prometheus:\n    buckets: [1, 0.5]\n", "increasing order"),
            ("metrics:\n  prometheus:\n    buckets: [-1]\n", "positive number"),
            ("metrics:\n  prometheus:\n    buckets: [.nan]\n", "positive number"),
            ("accessLog:\n  format: xml\n", "must be one of: common, json"),
            ("accessLog:\n  fields:\n    defaultMode: maybe\n", "must be one of"),
            ("api:\n  insecure: yes\n", "must be true or false"),
        ]
        for text, message in cases:
            with self.subTest(text=text):
                config, errors, _ = parse_static(_WEB + text)
                self.assertIsNone(config)
                self.assertIn(message, str(errors[0]))
                self.assertTrue(str(errors[0]).startswith("tsproxy.yaml:"))


class EntryPointProxyProtocolTests(SynchronousTestCase):
    """``proxyProtocol``: trustedIPs and insecure, located errors, ignored on UDP."""

    def test_table(self) -> None:
        """(the web entrypoint's extra YAML, its ProxyProtocol or the error)."""
        from tsproxy.config.entrypoints import ProxyProtocol

        cases = [
            ("", None),
            (
                "    proxyProtocol:\n      trustedIPs: [127.0.0.1, 10.0.0.0/8, '::1']\n",
                ProxyProtocol(("127.0.0.1", "10.0.0.0/8", "::1"), False),
            ),
            ("    proxyProtocol: {insecure: true}\n", ProxyProtocol((), True)),
            (
                "    proxyProtocol: {insecure: false, trustedIPs: ['2001:db8::/32']}\n",
                ProxyProtocol(("2001:db8::/32",), False),
            ),
            (
                "    proxyProtocol:\n      trustedIPs: [127.0.0.1, 1.2.3.4/33]\n",
                "tsproxy.yaml:5: entryPoints.web.proxyProtocol.trustedIPs[1]: must be an IP"
                " address or a CIDR range",
            ),
            (
                "    proxyProtocol: {trustedIPs: []}\n",
                "tsproxy.yaml:4: entryPoints.web.proxyProtocol: needs trustedIPs, or insecure: true",
            ),
            (
                "    proxyProtocol: {insecure: yes please}\n",
                "tsproxy.yaml:4: entryPoints.web.proxyProtocol.insecure: must be true or false",
            ),
            (
                "    proxyProtocol:\n      version: 2\n",
                "tsproxy.yaml:5: entryPoints.web.proxyProtocol.version: unknown field",
            ),
        ]
        for extra, expected in cases:
            config, errors, _ = parse_static(
                "entryPoints:\n  web:\n    address: '127.0.0.1:80'\n" + extra
            )
            if isinstance(expected, str):
                self.assertEqual([str(e) for e in errors], [expected], extra)
                continue
            self.assertEqual(errors, (), extra)
            assert config is not None
            self.assertEqual(config.entrypoint("web").proxy_protocol, expected, extra)

    def test_udp(self) -> None:
        """Traefik has no PROXY protocol on UDP entrypoints and ignores the section there:
        so does tsproxy, with a notice."""
        config, errors, notices = parse_static(
            "entryPoints:\n  dns:\n    address: ':53/udp'\n    proxyProtocol: {insecure: true}\n"
        )
        self.assertEqual(errors, ())
        assert config is not None
        self.assertIsNone(config.entrypoint("dns").proxy_protocol)
        self.assertEqual(
            list(notices),
            [
                "tsproxy.yaml:4: entryPoints.dns.proxyProtocol: ignored on a UDP entrypoint (as in Traefik)"
            ],
        )


class EntryPointHTTPTests(SynchronousTestCase):
    """``http.middlewares``, ``http.redirections``, ``asDefault``, ``core``; options that
    would change routing or security and are not implemented are errors, not notices."""

    def test_table(self) -> None:
        """(the web entrypoint's extra YAML, its (middlewares, redirection) or the error)."""
        from tsproxy.config.static import REDIRECTION_PRIORITY, Redirection

        head = "entryPoints:\n  web:\n    address: ':80'\n"
        tail = "  websecure:\n    address: ':443'\n"
        cases = [
            ("    http: {middlewares: [a@kubernetescrd, b]}\n", (("a@kubernetescrd", "b"), None)),
            (
                "    http: {redirections: {entryPoint: {to: websecure}}}\n",
                ((), Redirection("websecure", "https", True, REDIRECTION_PRIORITY)),
            ),
            (
                "    http: {redirections: {entryPoint: {to: ':8443', scheme: http,"
                " permanent: false, priority: 7}}}\n",
                ((), Redirection(":8443", "http", False, 7)),
            ),
            (
                "    http: {redirections: {entryPoint: {to: nowhere}}}\n",
                "tsproxy.yaml:2: entrypoint web: http.redirections.entryPoint.to: entrypoint"
                " nowhere not found",
            ),
            (
                "    http: {redirections: {entryPoint: {to: ':0x'}}}\n",
                "tsproxy.yaml:2: entrypoint web: http.redirections.entryPoint.to: ':0x' is not"
                " a port",
            ),
            (
                "    http: {redirections: {entryPoint: {}}}\n",
                "tsproxy.yaml:4: entryPoints.web.http.redirections.entryPoint.to: is required",
            ),
            (
                "    http: {middlewares: ['@file']}\n",
                "tsproxy.yaml:4: entryPoints.web.http.middlewares[0]: must be a middleware name"
                " (name@provider)",
            ),
            ("    http: {tls: {}}\n", ((), None)),
            ("    http: {sanitizePath: true, encodeQuerySemicolons: false}\n", ((), None)),
            ("    http: {sanitizePath: false}\n", ((), None)),
            ("    http: {redirections: {}}\n", ((), None)),
            (
                "    http: {encodeQuerySemicolons: true}\n",
                "tsproxy.yaml:4: entryPoints.web.http.encodeQuerySemicolons: true is not"
                " supported yet",
            ),
        ]
        for extra, expected in cases:
            with self.subTest(extra=extra):
                config, errors, _ = parse_static(head + extra + tail)
                if isinstance(expected, str):
                    self.assertEqual([str(e) for e in errors], [expected])
                    continue
                self.assertEqual(errors, ())
                assert config is not None
                web = config.entrypoint("web")
                self.assertEqual((web.middlewares, web.redirection), expected)

    def test_tls(self) -> None:
        """``http.tls``: options as written and domains kept; certResolver and option names
        that cannot be resolved are located errors (the entrypoint's routers would not get
        the TLS asked for)."""
        from tsproxy.config.entrypoints import EntryPointTLS
        from tsproxy.config.resources import TLSDomain

        head = "entryPoints:\n  web:\n    address: ':80'\n    http:\n"
        cases = [
            ("      tls: {}\n", EntryPointTLS()),
            ("      tls:\n", EntryPointTLS()),
            ("      tls: {options: modern}\n", EntryPointTLS("modern")),
            ("      tls: {options: modern@file}\n", EntryPointTLS("modern@file")),
            (
                "      tls:\n        domains: [{main: a.test, sans: [b.test]}, {main: c.test}]\n",
                EntryPointTLS("", (TLSDomain("a.test", ("b.test",)), TLSDomain("c.test"))),
            ),
            (
                "      tls: {certResolver: le}\n",
                "tsproxy.yaml:5: entryPoints.web.http.tls.certResolver: ACME certificate"
                " resolvers are not supported",
            ),
            (
                "      tls: {options: '@file'}\n",
                "tsproxy.yaml:5: entryPoints.web.http.tls.options: must be a TLS option name,"
                " or name@provider",
            ),
            (
                "      tls: {options: 'modern@'}\n",
                "tsproxy.yaml:5: entryPoints.web.http.tls.options: must be a TLS option name,"
                " or name@provider",
            ),
            (
                "      tls: {options: default-modern@kubernetescrd}\n",
                "tsproxy.yaml:5: entryPoints.web.http.tls.options: TLS options of the"
                " kubernetescrd provider are not supported",
            ),
            (
                "      tls: {stores: [default]}\n",
                "tsproxy.yaml:5: entryPoints.web.http.tls.stores: unknown field",
            ),
            (
                "      tls:\n        domains: [{main: a.test, extra: 1}]\n",
                "tsproxy.yaml:6: entryPoints.web.http.tls.domains[0].extra: unknown field",
            ),
        ]
        for extra, expected in cases:
            with self.subTest(extra=extra):
                config, errors, _ = parse_static(head + extra)
                if isinstance(expected, str):
                    self.assertEqual([str(e) for e in errors], [expected])
                    continue
                self.assertEqual(errors, ())
                assert config is not None
                self.assertEqual(config.entrypoint("web").tls, expected)
        config, errors, _ = parse_static("entryPoints:\n  web: {address: ':80'}\n")
        assert config is not None
        self.assertIsNone(config.entrypoint("web").tls)

    def test_asDefault(self) -> None:
        """Routers listing no entrypoint use the asDefault ones when any is marked."""
        text = "entryPoints:\n  a: {address: ':1'}\n  b: {address: ':2', asDefault: true}\n"
        config, errors, _ = parse_static(text)
        assert config is not None
        self.assertEqual(config.select((), "tcp", ""), (("b",), ()))
        config, errors, _ = parse_static(text.replace(", asDefault: true", ""))
        assert config is not None
        self.assertEqual(config.select((), "tcp", ""), (("a", "b"), ()))

    def test_core(self) -> None:
        """core.defaultRuleSyntax v3 is what tsproxy does; v2 is an error."""
        head = "entryPoints:\n  a: {address: ':1'}\ncore: {defaultRuleSyntax: %s}\n"
        _, errors, _ = parse_static(head % "v3")
        self.assertEqual(errors, ())
        _, errors, _ = parse_static(head % "v2")
        self.assertEqual(
            [str(e) for e in errors], ["tsproxy.yaml:3: core.defaultRuleSyntax: must be one of: v3"]
        )


class InternalEntryPointMiddlewareTests(SynchronousTestCase):
    """Entrypoint middlewares where api/ping/metrics are served would be skipped by them."""

    def test_refused(self) -> None:
        """http.middlewares on the entrypoint serving the API is an error (fail closed)."""
        text = (
            "entryPoints:\n  traefik:\n    address: ':8080'\n"
            "    http: {middlewares: [auth@kubernetescrd]}\napi: {insecure: true}\n"
        )
        config, errors, _ = parse_static(text)
        self.assertIsNone(config)
        self.assertEqual(
            [str(e) for e in errors],
            [
                "tsproxy.yaml:2: entrypoint traefik: http.middlewares: not supported yet on an"
                " entrypoint serving api, dashboard"
            ],
        )

    def test_tls_refused(self) -> None:
        """http.tls on the entrypoint serving the API is an error: they would answer in
        clear where Traefik answers over TLS only."""
        text = (
            "entryPoints:\n  traefik:\n    address: ':8080'\n"
            "    http: {tls: {}}\napi: {insecure: true}\nping: {}\n"
        )
        config, errors, _ = parse_static(text)
        self.assertIsNone(config)
        self.assertEqual(
            [str(e) for e in errors],
            [
                "tsproxy.yaml:2: entrypoint traefik: http.tls: not supported yet on an"
                " entrypoint serving api, dashboard, ping"
            ],
        )


def _files(**files: bytes) -> Any:
    """A read_file over ``files`` (name: content); other names are missing."""

    def read_file(name: str) -> bytes:
        if name not in files:
            raise FileNotFoundError(2, "No such file or directory")
        return files[name]

    return read_file


_CA = make_ca("static transport CA").cert_pem


class DefaultTransportTests(SynchronousTestCase):
    """serversTransport and tcpServersTransport: Traefik's default transports."""

    def parse(self, text: str) -> Tuple[Any, Any]:
        config, errors, _ = parse_static(_WEB + text, read_file=_files(**{"ca.pem": _CA}))
        self.assertEqual([str(e) for e in errors], [])
        assert config is not None
        return config.servers_transport, config.tcp_servers_transport

    def test_good(self) -> None:
        """Each section as written, with Traefik's defaults for what it leaves out (the
        same reading as a file provider's serversTransport)."""
        http, tcp = TransportSettings(), TCPTransportSettings()
        cases = [
            ("", http, tcp),
            ("serversTransport: {}\ntcpServersTransport: {}\n", http, tcp),
            ("serversTransport:\ntcpServersTransport:\n", http, tcp),
            (
                "serversTransport: {insecureSkipVerify: true, maxIdleConnsPerHost: 7}\n",
                TransportSettings(insecure_skip_verify=True, max_idle_conns_per_host=7),
                tcp,
            ),
            (
                "serversTransport: {maxIdleConnsPerHost: -1}\n",
                TransportSettings(max_idle_conns_per_host=0),
                tcp,
            ),
            ("serversTransport: {maxIdleConnsPerHost: 0}\n", http, tcp),
            ("serversTransport: {rootCAs: [ca.pem]}\n", TransportSettings(root_cas=(_CA,)), tcp),
            (
                "serversTransport:\n  rootCAs:\n    - |\n"
                + textwrap.indent(_CA.decode(), "      "),
                TransportSettings(root_cas=(_CA,)),
                tcp,
            ),
            (
                "serversTransport:\n  forwardingTimeouts: {responseHeaderTimeout: 200ms}\n",
                TransportSettings(response_header_timeout=0.2),
                tcp,
            ),
            (
                "serversTransport:\n  forwardingTimeouts:\n    dialTimeout: 5s\n"
                "    idleConnTimeout: 0\n    responseHeaderTimeout: 1m\n",
                TransportSettings(
                    dial_timeout=5.0, idle_conn_timeout=0.0, response_header_timeout=60.0
                ),
                tcp,
            ),
            (
                "tcpServersTransport: {dialTimeout: 2s, dialKeepAlive: -1s}\n",
                http,
                TCPTransportSettings(dial_timeout=2.0, dial_keep_alive=-1.0),
            ),
            (
                "tcpServersTransport: {dialTimeout: 0, dialKeepAlive: 1m}\n",
                http,
                TCPTransportSettings(dial_timeout=0.0, dial_keep_alive=60.0),
            ),
            (
                "tcpServersTransport:\n  tls: {insecureSkipVerify: true, rootCAs: [ca.pem]}\n",
                http,
                TCPTransportSettings(
                    tls=TransportSettings(insecure_skip_verify=True, root_cas=(_CA,))
                ),
            ),
            ("tcpServersTransport: {tls: {}}\n", http, tcp),
            ("tcpServersTransport: {terminationDelay: -1s}\n", http, tcp),
        ]
        for text, want_http, want_tcp in cases:
            with self.subTest(text=text):
                self.assertEqual(self.parse(text), (want_http, want_tcp))

    def test_errors(self) -> None:
        """Unknown fields, bad values, CA files that cannot be read or hold no certificate,
        and spiffe (it changes which servers are trusted) are errors at their line: no
        configuration, so the proxy does not start (a reload keeps the one in force)."""
        files = _files(**{"ca.pem": _CA, "bad.pem": b"not PEM"})
        cases = [
            ("serversTransport: {bogus: 1}\n", "4: serversTransport.bogus: unknown field"),
            (
                "serversTransport: {serverName: x}\n",
                "4: serversTransport.serverName: unknown field",
            ),
            (
                "serversTransport: {disableHTTP2: true}\n",
                "4: serversTransport.disableHTTP2: unknown field",
            ),
            ("serversTransport: []\n", "4: serversTransport: must be a mapping"),
            (
                "serversTransport:\n  insecureSkipVerify: yes\n",
                "5: serversTransport.insecureSkipVerify: must be true or false",
            ),
            (
                "serversTransport:\n  maxIdleConnsPerHost: -2\n",
                "5: serversTransport.maxIdleConnsPerHost: must be an integer >= -1",
            ),
            (
                "serversTransport:\n  forwardingTimeouts:\n    dialTimeout: 10x\n",
                "6: serversTransport.forwardingTimeouts.dialTimeout: must be a duration"
                " (like 10s, 1m30s, 500ms) or a number of seconds",
            ),
            (
                "serversTransport:\n  forwardingTimeouts:\n    responseHeaderTimeout: -1s\n",
                "6: serversTransport.forwardingTimeouts.responseHeaderTimeout: must not be"
                " negative",
            ),
            (
                "serversTransport:\n  forwardingTimeouts: {nope: 1s}\n",
                "5: serversTransport.forwardingTimeouts.nope: unknown field",
            ),
            (
                "serversTransport:\n  forwardingTimeouts: {pingTimeout: 1s}\n",
                "5: serversTransport.forwardingTimeouts.pingTimeout: unknown field",
            ),
            (
                "serversTransport:\n  rootCAs: [missing.pem]\n",
                "5: serversTransport.rootCAs: [0]: cannot read missing.pem: No such file or"
                " directory",
            ),
            (
                "serversTransport:\n  rootCAs: [ca.pem, bad.pem]\n",
                "5: serversTransport.rootCAs: [1]: no valid PEM certificate found",
            ),
            (
                "serversTransport:\n  rootCAs: ca.pem\n",
                "5: serversTransport.rootCAs: must be a list",
            ),
            (
                "serversTransport:\n  spiffe: {ids: [spiffe://x/y]}\n",
                "5: serversTransport.spiffe: SPIFFE is not supported yet (no workload API client)",
            ),
            (
                "serversTransport:\n  insecureSkipVerify: true\n  spiffe:\n",
                "6: serversTransport.spiffe: SPIFFE is not supported yet (no workload API client)",
            ),
            ("tcpServersTransport: {bogus: 1}\n", "4: tcpServersTransport.bogus: unknown field"),
            (
                "tcpServersTransport:\n  dialTimeout: -1s\n",
                "5: tcpServersTransport.dialTimeout: must not be negative",
            ),
            (
                "tcpServersTransport:\n  dialKeepAlive: soon\n",
                "5: tcpServersTransport.dialKeepAlive: must be a duration (like 10s, 1m30s,"
                " 500ms) or a number of seconds",
            ),
            (
                "tcpServersTransport:\n  terminationDelay: true\n",
                "5: tcpServersTransport.terminationDelay: must be a duration (like 10s, 1m30s,"
                " 500ms) or a number of seconds",
            ),
            (
                "tcpServersTransport:\n  tls:\n    serverName: backend\n",
                "6: tcpServersTransport.tls.serverName: unknown field",
            ),
            (
                "tcpServersTransport:\n  tls:\n    rootCAs: [missing.pem]\n",
                "6: tcpServersTransport.tls.rootCAs: [0]: cannot read missing.pem: No such file"
                " or directory",
            ),
            (
                "tcpServersTransport:\n  tls:\n    spiffe: {trustDomain: x}\n",
                "6: tcpServersTransport.tls.spiffe: SPIFFE is not supported yet (no workload API client)",
            ),
        ]
        for text, message in cases:
            with self.subTest(text=text):
                config, errors, _ = parse_static(_WEB + text, read_file=files)
                self.assertEqual(
                    (config, [str(e) for e in errors]), (None, ["tsproxy.yaml:" + message])
                )

    def test_file_path_needs_directory(self) -> None:
        """Without the configuration directory to read from, a rootCAs path is an error."""
        _, errors, _ = parse_static(_WEB + "serversTransport: {rootCAs: [ca.pem]}\n")
        self.assertEqual(
            [str(e) for e in errors],
            [
                "tsproxy.yaml:4: serversTransport.rootCAs: [0]: a file path needs the"
                " configuration directory"
            ],
        )

    def test_notices(self) -> None:
        """The sections are no longer ignored; terminationDelay alone gets a notice (Traefik
        3.7 does not apply it to its default transport either)."""
        text = (
            "serversTransport: {insecureSkipVerify: true}\n"
            "tcpServersTransport:\n  dialTimeout: 1s\n  terminationDelay: 2s\n"
        )
        _, errors, notices = parse_static(_WEB + text)
        self.assertEqual(errors, ())
        self.assertEqual(
            notices,
            (
                "tsproxy.yaml:7: tcpServersTransport.terminationDelay: not applied: Traefik 3.7"
                " leaves it out of its default TCP transport too (a TCP service's own"
                " terminationDelay, 100ms unless set, is used)",
            ),
        )

    def test_toml(self) -> None:
        """traefik.toml reads the same sections."""
        text = (
            '[entryPoints.web]\naddress = "127.0.0.1:8000"\n'
            "[serversTransport]\ninsecureSkipVerify = true\n"
            '[serversTransport.forwardingTimeouts]\nresponseHeaderTimeout = "2s"\n'
            '[tcpServersTransport]\ndialTimeout = "3s"\n'
            "[tcpServersTransport.tls]\ninsecureSkipVerify = true\n"
        )
        config, errors, _ = parse_static(text, "traefik.toml")
        self.assertEqual(errors, ())
        assert config is not None
        self.assertEqual(
            (config.servers_transport, config.tcp_servers_transport),
            (
                TransportSettings(insecure_skip_verify=True, response_header_timeout=2.0),
                TCPTransportSettings(
                    dial_timeout=3.0, tls=TransportSettings(insecure_skip_verify=True)
                ),
            ),
        )
