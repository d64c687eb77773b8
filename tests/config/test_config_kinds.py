"""Tests for tsproxy.config.kinds: each kind read into its resource value, each mistake located."""

from __future__ import annotations

import textwrap
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.errors import Location
from tsproxy.config.kinds import PARSERS
from tsproxy.config.load import load_files
from tsproxy.config.resources import (
    CookieSpec,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    EndpointSubset,
    HTTPRoute,
    IngressRoute,
    IngressRouteUDP,
    Meta,
    MiddlewareRef,
    Mirroring,
    MirrorRef,
    ObjectRef,
    RouteTLS,
    ServersTransport,
    Service,
    ServicePort,
    ServiceRef,
    SliceEndpoint,
    TLSDomain,
    TraefikService,
    TransportSettings,
    UDPRoute,
    Weighted,
)

STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n'


def load(text: str, name: str = "wrr.yaml") -> tuple[tuple[object, ...], list[str], list[str]]:
    loaded = load_files(STATIC, [(name, textwrap.dedent(text))])
    return loaded.resources, [str(e) for e in loaded.errors], list(loaded.notices)


def meta(kind: str, name: str, line: int = 1, namespace: str = "default") -> Meta:
    label = f"{kind} {namespace}/{name}"
    return Meta(kind, namespace, name, Location("wrr.yaml", line, label))


INGRESS = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: app
spec:
  entryPoints: [web]
  routes:
    - match: Host(`a.example`)
      kind: Rule
      priority: 10
      syntax: v2
      middlewares:
        - name: strip
      services:
        - name: app-v1
          port: 80
          weight: 3
          scheme: h2c
          passHostHeader: false
          serversTransport: fast
          sticky:
            cookie: {name: lb, secure: true, httpOnly: true, sameSite: Lax, maxAge: -1, path: /x}
        - name: wrr
          namespace: other
          kind: TraefikService
    - match: PathPrefix(`/b`)
      services:
        - name: app-v2
          port: http
  tls:
    secretName: cert
    options: {name: modern}
    domains:
      - main: a.example
        sans: [b.example]
"""


class GoodDocumentTests(SynchronousTestCase):
    """Well-formed documents of each kind become the expected frozen values."""

    def test_ingressRoute(self) -> None:
        """An IngressRoute keeps routes, refs with every option, middlewares and TLS."""
        resources, errors, notices = load(INGRESS)
        self.assertEqual(errors, [])
        self.assertEqual(
            resources,
            (
                IngressRoute(
                    meta=meta("IngressRoute", "app"),
                    entry_points=("web",),
                    routes=(
                        HTTPRoute(
                            match="Host(`a.example`)",
                            line=8,
                            path="spec.routes[0]",
                            priority=10,
                            syntax="v2",
                            middlewares=(
                                MiddlewareRef(
                                    "strip",
                                    "default",
                                    13,
                                    "spec.routes[0].middlewares[0]",
                                    "default",
                                ),
                            ),
                            services=(
                                ServiceRef(
                                    name="app-v1",
                                    namespace="default",
                                    line=15,
                                    path="spec.routes[0].services[0]",
                                    port=80,
                                    weight=3,
                                    scheme="h2c",
                                    pass_host_header=False,
                                    servers_transport="fast",
                                    sticky=CookieSpec("lb", True, True, "lax", -1, "/x"),
                                ),
                                ServiceRef(
                                    name="wrr",
                                    namespace="other",
                                    line=23,
                                    path="spec.routes[0].services[1]",
                                    kind="TraefikService",
                                    cross_namespace=True,
                                ),
                            ),
                        ),
                        HTTPRoute(
                            match="PathPrefix(`/b`)",
                            line=26,
                            path="spec.routes[1]",
                            services=(
                                ServiceRef(
                                    "app-v2",
                                    "default",
                                    28,
                                    "spec.routes[1].services[0]",
                                    port="http",
                                ),
                            ),
                        ),
                    ),
                    tls=RouteTLS(
                        secret_name="cert",
                        options=ObjectRef("modern", "default"),
                        domains=(TLSDomain("a.example", ("b.example",)),),
                    ),
                ),
            ),
        )
        self.assertEqual(notices, [])

    def test_traefikServices(self) -> None:
        """Weighted and mirroring TraefikServices with their defaults."""
        text = """\
        apiVersion: traefik.containo.us/v1alpha1
        kind: TraefikService
        metadata: {name: wrr, namespace: ns}
        spec:
          weighted:
            services:
              - {name: a, port: 80}
              - {name: b, port: 80, weight: 0}
            sticky: {cookie: {}}
        ---
        apiVersion: traefik.io/v1alpha1
        kind: TraefikService
        metadata: {name: shadow}
        spec:
          mirroring:
            name: wrr
            namespace: ns
            kind: TraefikService
            maxBodySize: 1024
            mirrorBody: false
            mirrors:
              - {name: c, port: 8080, percent: 10}
              - {name: d, port: 8080}
        """
        resources, errors, notices = load(text)
        self.assertEqual((errors, notices), ([], []))
        self.assertEqual(
            resources,
            (
                TraefikService(
                    meta=meta("TraefikService", "wrr", namespace="ns"),
                    weighted=Weighted(
                        services=(
                            ServiceRef("a", "ns", 7, "spec.weighted.services[0]", port=80),
                            ServiceRef(
                                "b", "ns", 8, "spec.weighted.services[1]", port=80, weight=0
                            ),
                        ),
                        sticky=CookieSpec(),
                    ),
                ),
                TraefikService(
                    meta=meta("TraefikService", "shadow", line=11),
                    mirroring=Mirroring(
                        service=ServiceRef(
                            "wrr",
                            "ns",
                            16,
                            "spec.mirroring",
                            kind="TraefikService",
                            cross_namespace=True,
                        ),
                        mirrors=(
                            MirrorRef(
                                ServiceRef(
                                    "c", "default", 22, "spec.mirroring.mirrors[0]", port=8080
                                ),
                                10,
                            ),
                            MirrorRef(
                                ServiceRef(
                                    "d", "default", 23, "spec.mirroring.mirrors[1]", port=8080
                                ),
                                0,
                            ),
                        ),
                        max_body_size=1024,
                        mirror_body=False,
                    ),
                ),
            ),
        )

    def test_serversTransport(self) -> None:
        """A ServersTransport reads its timeouts; absent maxIdleConnsPerHost means 200, -1 means 0;
        CA and client certificate Secrets are kept by name (read at build time); a TLS field
        tsproxy cannot honour (minVersion) is kept as unsupported."""
        text = """\
        apiVersion: traefik.io/v1alpha1
        kind: ServersTransport
        metadata: {name: fast}
        spec:
          forwardingTimeouts: {dialTimeout: 5s, responseHeaderTimeout: 1m, idleConnTimeout: 10}
          disableHTTP2: true
          insecureSkipVerify: true
          serverName: backend.internal
        ---
        apiVersion: traefik.io/v1alpha1
        kind: ServersTransport
        metadata: {name: noreuse}
        spec:
          maxIdleConnsPerHost: -1
        ---
        apiVersion: traefik.io/v1alpha1
        kind: ServersTransport
        metadata: {name: pinned}
        spec:
          rootCAsSecrets: [ca]
          rootCAs: [{secret: ca2}, {configMap: cm}]
          certificatesSecrets: [client]
          peerCertURI: spiffe://test/backend
          minVersion: VersionTLS13
        """
        resources, errors, notices = load(text)
        # Unsupported TLS fields would change which servers are trusted: kept by name, so
        # that the build disables every service using the transport (never served without).
        self.assertEqual(errors, [])
        self.assertEqual(
            resources,
            (
                ServersTransport(
                    meta("ServersTransport", "fast"),
                    TransportSettings(5.0, 60.0, 10.0, 200, True, True, "backend.internal"),
                ),
                ServersTransport(
                    meta("ServersTransport", "noreuse", line=10),
                    TransportSettings(max_idle_conns_per_host=0),
                ),
                ServersTransport(
                    meta("ServersTransport", "pinned", line=16),
                    TransportSettings(peer_cert_uri="spiffe://test/backend"),
                    unsupported=("minVersion",),
                    root_ca_secrets=("ca", "ca2"),
                    certificate_secrets=("client",),
                    root_ca_config_maps=("cm",),
                ),
            ),
        )
        self.assertEqual(notices, [])

    def test_coreKinds(self) -> None:
        """Service, Endpoints (ready addresses only) and EndpointSlice (ready not false)."""
        text = """\
        apiVersion: v1
        kind: Service
        metadata: {name: app, namespace: ns}
        spec:
          selector: {app: app}
          clusterIP: 10.0.0.10
          ports:
            - {name: http, port: 80, targetPort: web}
            - {port: 443, targetPort: 8443, protocol: TCP}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: ext}
        spec: {type: ExternalName, externalName: example.org}
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: app, namespace: ns}
        subsets:
          - addresses: [{ip: 10.0.0.1, nodeName: n1}, {ip: 10.0.0.2}]
            notReadyAddresses: [{ip: 10.0.0.3}]
            ports: [{name: http, port: 8080}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: app-abc
          namespace: ns
          labels: {kubernetes.io/service-name: app}
        addressType: IPv6
        ports: [{name: http, port: 8080}, {name: nameless}]
        endpoints:
          - addresses: ["fd00::1"]
            conditions: {ready: true}
          - addresses: ["fd00::2"]
            conditions: {ready: false, serving: true}
          - addresses: ["fd00::3"]
        """
        resources, errors, notices = load(text)
        self.assertEqual((errors, notices), ([], []))
        self.assertEqual(
            resources,
            (
                Service(
                    meta("Service", "app", namespace="ns"),
                    ports=(ServicePort(80, "http", "web"), ServicePort(443, "", 8443)),
                    cluster_ip="10.0.0.10",
                ),
                Service(
                    meta("Service", "ext", line=11),
                    type="ExternalName",
                    external_name="example.org",
                ),
                Endpoints(
                    meta("Endpoints", "app", line=16, namespace="ns"),
                    (EndpointSubset(("10.0.0.1", "10.0.0.2"), (EndpointPort(8080, "http"),)),),
                ),
                EndpointSlice(
                    attrs.evolve(
                        meta("EndpointSlice", "app-abc", line=24, namespace="ns"),
                        labels=(("kubernetes.io/service-name", "app"),),
                    ),
                    service_name="app",
                    address_type="IPv6",
                    ports=(EndpointPort(8080, "http"),),
                    endpoints=(
                        SliceEndpoint(("fd00::1",), True),
                        SliceEndpoint(("fd00::2",), False),
                        SliceEndpoint(("fd00::3",), True),
                    ),
                ),
            ),
        )

    def test_ingressRouteUDP(self) -> None:
        """An IngressRouteUDP (either API group) keeps entrypoints, routes and weighted refs."""
        text = """\
        apiVersion: {group}
        kind: IngressRouteUDP
        metadata: {{name: dns, namespace: net}}
        spec:
          entryPoints: [dns]
          routes:
            - services:
                - name: resolver-a
                  port: 53
                  weight: 3
                  nativeLB: true
                - {{name: resolver-b, namespace: other, port: dns}}
            - services: []
        """
        for group in ("traefik.io/v1alpha1", "traefik.containo.us/v1alpha1"):
            resources, errors, notices = load(text.format(group=group))
            self.assertEqual(errors, [])
            self.assertEqual(
                resources,
                (
                    IngressRouteUDP(
                        meta=meta("IngressRouteUDP", "dns", namespace="net"),
                        entry_points=("dns",),
                        routes=(
                            UDPRoute(
                                line=7,
                                path="spec.routes[0]",
                                services=(
                                    ServiceRef(
                                        "resolver-a",
                                        "net",
                                        8,
                                        "spec.routes[0].services[0]",
                                        port=53,
                                        weight=3,
                                        native_lb=True,
                                    ),
                                    ServiceRef(
                                        "resolver-b",
                                        "other",
                                        12,
                                        "spec.routes[0].services[1]",
                                        port="dns",
                                        cross_namespace=True,
                                    ),
                                ),
                            ),
                            UDPRoute(line=13, path="spec.routes[1]"),
                        ),
                    ),
                ),
            )
            self.assertEqual(notices, [])

    def test_skippedKinds(self) -> None:
        """Kinds not read (yet) are skipped with one notice each, naming file, line and object."""
        text = """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: app-v1}
        ---
        apiVersion: discovery.k8s.io/v1beta1
        kind: EndpointSlice
        metadata: {name: old}
        ---
        apiVersion: v1
        kind: ServiceAccount
        """
        resources, errors, notices = load(text, "seed.yaml")
        self.assertEqual((resources, errors), ((), []))
        self.assertEqual(
            notices,
            [
                "seed.yaml:1: skipping Deployment default/app-v1 (kind not handled)",
                "seed.yaml:5: skipping EndpointSlice default/old (apiVersion discovery.k8s.io/v1beta1 not handled)",
                "seed.yaml:9: skipping ServiceAccount (kind not handled)",
            ],
        )

    def test_dispatchTable(self) -> None:
        """Both Traefik API groups are read, through one table keyed by apiVersion and kind."""
        self.assertEqual(
            sorted(PARSERS),
            sorted(
                [
                    (group, kind)
                    for group in ("traefik.io/v1alpha1", "traefik.containo.us/v1alpha1")
                    for kind in (
                        "IngressRoute",
                        "IngressRouteTCP",
                        "IngressRouteUDP",
                        "TLSOption",
                        "TLSStore",
                        "TraefikService",
                        "ServersTransport",
                        "Middleware",
                        "MiddlewareTCP",
                    )
                ]
                + [
                    ("v1", "Service"),
                    ("v1", "Endpoints"),
                    ("v1", "Node"),
                    ("v1", "Secret"),
                    ("v1", "ConfigMap"),
                    ("discovery.k8s.io/v1", "EndpointSlice"),
                    ("traefik.io/v1alpha1", "ServersTransportTCP"),  # v3 only
                ]
            ),
        )


ROUTE_HEAD = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: app}
spec:
  routes:
    - match: Host(`a`)
      services:
"""
TS_HEAD = """\
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {name: wrr}
spec:
"""

UDP_HEAD = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRouteUDP
metadata: {name: dns}
spec:
  routes:
"""

# (document text, exact errors)
BAD_DOCUMENTS = [
    (
        ROUTE_HEAD + "        - {name: a, port: 80}\n  tls: {certResolver: le}\n",
        "wrr.yaml:9: IngressRoute default/app: spec.tls.certResolver: ACME certificate resolvers"
        " are not supported",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80}\n        - {name: b, port: 80, weight: -1}\n",
        "wrr.yaml:9: IngressRoute default/app: spec.routes[0].services[1].weight: must be an integer >= 0",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, weight: '2'}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].weight: must be an integer >= 0",
    ),
    (
        ROUTE_HEAD + "        - {name: a}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].port: is required for a Service reference",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 0}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].port: is required for a Service reference",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 70000}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].port: must be a port number (1-65535) or a port name",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, kind: Ingress}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].kind: must be one of: Service, TraefikService",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, scheme: ftp}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].scheme: must be one of: , http, https, h2c",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, passHostHeader: yes}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].passHostHeader: must be true or false",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, weigth: 2}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].weigth: unknown field",
    ),
    (
        ROUTE_HEAD + "        - {name: app@file, port: 80}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].name:"
        " name@provider references are for kind TraefikService",
    ),
    (
        ROUTE_HEAD + "        - {port: 80}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].name: is required",
    ),
    (
        ROUTE_HEAD + "        - a\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0]: must be a mapping",
    ),
    (
        ROUTE_HEAD
        + "        - name: a\n          port: 80\n          sticky: {cookie: {sameSite: sometimes}}\n",
        "wrr.yaml:10: IngressRoute default/app: spec.routes[0].services[0].sticky.cookie.sameSite:"
        " must be one of: none, lax, strict",
    ),
    (
        ROUTE_HEAD
        + "        - name: a\n          port: 80\n          sticky: {cookie: {maxAge: 1h}}\n",
        "wrr.yaml:10: IngressRoute default/app: spec.routes[0].services[0].sticky.cookie.maxAge: must be an integer",
    ),
    (
        ROUTE_HEAD.replace("      services:\n", "      kind: Match\n      services: []\n"),
        "wrr.yaml:7: IngressRoute default/app: spec.routes[0].kind: must be one of: , Rule",
    ),
    (
        ROUTE_HEAD.replace("      services:\n", "      syntax: v4\n"),
        "wrr.yaml:7: IngressRoute default/app: spec.routes[0].syntax: must be one of: , v2, v3",
    ),
    (
        ROUTE_HEAD.replace("      services:\n", "      priority: high\n"),
        "wrr.yaml:7: IngressRoute default/app: spec.routes[0].priority: must be an integer <= 9223372036854774807",
    ),
    (
        ROUTE_HEAD.replace("    - match: Host(`a`)\n      services:\n", "    - match: ''\n"),
        "wrr.yaml:6: IngressRoute default/app: spec.routes[0].match: must not be empty",
    ),
    (
        ROUTE_HEAD.replace("    - match: Host(`a`)\n      services:\n", "    - services: []\n"),
        "wrr.yaml:6: IngressRoute default/app: spec.routes[0].match: is required",
    ),
    (
        ROUTE_HEAD.replace(
            "  routes:\n    - match: Host(`a`)\n      services:\n",
            "  entryPoints: web\n  routes: []\n",
        ),
        "wrr.yaml:5: IngressRoute default/app: spec.entryPoints: must be a list",
    ),
    (
        ROUTE_HEAD.replace(
            "  routes:\n    - match: Host(`a`)\n      services:\n", "  rotues: []\n"
        ),
        "wrr.yaml:4: IngressRoute default/app: spec.routes: is required",
    ),
    (
        ROUTE_HEAD.replace("spec:\n  routes:\n    - match: Host(`a`)\n      services:\n", ""),
        "wrr.yaml:1: IngressRoute default/app: spec: is required",
    ),
    (
        ROUTE_HEAD.replace("metadata: {name: app}", "metadata: {namespace: x}"),
        "wrr.yaml:3: IngressRoute: metadata.name: is required",
    ),
    (
        ROUTE_HEAD.replace("metadata: {name: app}", "metadata: {name: 7}"),
        "wrr.yaml:3: IngressRoute: metadata.name: must be a string",
    ),
    (
        ROUTE_HEAD.replace("metadata: {name: app}\n", ""),
        "wrr.yaml:1: IngressRoute: metadata: is required",
    ),
    (
        TS_HEAD
        + "  weighted:\n    services:\n      - {name: a, port: 80}\n  mirroring: {name: a, port: 80}\n",
        "wrr.yaml:4: TraefikService default/wrr: spec: exactly one of weighted, mirroring,"
        " highestRandomWeight, failover is required",
    ),
    (
        TS_HEAD + "  weigthed: {}\n",
        "wrr.yaml:4: TraefikService default/wrr: spec: exactly one of weighted, mirroring,"
        " highestRandomWeight, failover is required",
    ),
    (
        TS_HEAD + "  failover: {service: {name: a, port: 80}}\n",
        "wrr.yaml:5: TraefikService default/wrr: spec.failover.fallback: is required",
    ),
    (
        TS_HEAD
        + "  failover:\n    service: {name: a, port: 80}\n    fallback: {name: b, port: 80}\n"
        "    errors: {status: ['500']}\n",
        "wrr.yaml:8: TraefikService default/wrr: spec.failover.errors:"
        " failover on error statuses is not supported",
    ),
    (
        TS_HEAD + "  weighted:\n    services: []\n    healthCheck: {path: /}\n",
        "wrr.yaml:7: TraefikService default/wrr: spec.weighted.healthCheck.path: unknown field",
    ),
    (
        TS_HEAD
        + "  highestRandomWeight:\n    services:\n      - name: a\n        kind: TraefikService\n"
        "        passiveHealthCheck: {}\n",
        "wrr.yaml:9: TraefikService default/wrr: spec.highestRandomWeight.services[0]"
        ".passiveHealthCheck: applies to Service references only",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, healthCheck: {path: /h, method: GÉT}}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].healthCheck.method:"
        " must be an HTTP method name",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, healthCheck: {path: /h, scheme: h2c}}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].healthCheck.scheme:"
        " h2c is for mode grpc only",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, healthCheck: {path: 'http://b/health'}}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].healthCheck.path:"
        " must be a path (with an optional query), not a URL",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, healthCheck: {path: /, status: 600}}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].healthCheck.status:"
        " must be an integer between 0 and 599",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, healthCheck: {path: /, scheme: ftp}}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0].healthCheck.scheme:"
        " must be one of: , http, https, h2c",
    ),
    (
        ROUTE_HEAD + "        - {name: a, port: 80, passiveHealthCheck: {maxFailedAttempts: 0}}\n",
        "wrr.yaml:8: IngressRoute default/app: spec.routes[0].services[0]"
        ".passiveHealthCheck.maxFailedAttempts: must be an integer >= 1",
    ),
    (
        TS_HEAD
        + "  mirroring:\n    name: a\n    port: 80\n    mirrors:\n      - {name: b, port: 80, percent: 101}\n",
        "wrr.yaml:9: TraefikService default/wrr: spec.mirroring.mirrors[0].percent: must be an integer between 0 and 100",
    ),
    (
        TS_HEAD
        + "  mirroring:\n    name: a\n    port: 80\n    mirrors:\n      - {name: b, port: 80, percent: -1}\n",
        "wrr.yaml:9: TraefikService default/wrr: spec.mirroring.mirrors[0].percent: must be an integer between 0 and 100",
    ),
    (
        TS_HEAD + "  mirroring:\n    name: a\n    port: 80\n    maxBodySize: -2\n",
        "wrr.yaml:8: TraefikService default/wrr: spec.mirroring.maxBodySize: must be an integer >= -1",
    ),
    (
        TS_HEAD + "  mirroring:\n    port: 80\n",
        "wrr.yaml:5: TraefikService default/wrr: spec.mirroring.name: is required",
    ),
    (
        TS_HEAD
        + "  weighted:\n    services:\n      - {name: a, port: 80}\n    sticky: {cookie: {secure: 1}}\n",
        "wrr.yaml:8: TraefikService default/wrr: spec.weighted.sticky.cookie.secure: must be true or false",
    ),
    (
        "apiVersion: traefik.io/v1alpha1\nkind: ServersTransport\nmetadata: {name: t}\nspec:\n"
        "  forwardingTimeouts: {dialTimeout: soon}\n",
        "wrr.yaml:5: ServersTransport default/t: spec.forwardingTimeouts.dialTimeout:"
        " must be a duration (like 10s, 1m30s, 500ms) or a number of seconds",
    ),
    (
        "apiVersion: traefik.io/v1alpha1\nkind: ServersTransport\nmetadata: {name: t}\nspec:\n"
        "  maxIdleConnsPerHost: -5\n",
        "wrr.yaml:5: ServersTransport default/t: spec.maxIdleConnsPerHost: must be an integer >= -1",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n    - {name: http}\n",
        "wrr.yaml:6: Service default/s: spec.ports[0].port: is required",
    ),
    (
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: ExternalName\n",
        "wrr.yaml:4: Service default/s: spec.externalName: is required for type ExternalName",
    ),
    (
        "apiVersion: v1\nkind: Endpoints\nmetadata: {name: s}\nsubsets:\n  - addresses: [{hostname: x}]\n",
        "wrr.yaml:5: Endpoints default/s: subsets[0].addresses[0].ip: is required",
    ),
    (
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s-1}\nendpoints: []\n",
        "wrr.yaml:1: EndpointSlice default/s-1: metadata.labels.kubernetes.io/service-name: is required",
    ),
    (
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s-1\n"
        "  labels: {kubernetes.io/service-name: s}\nendpoints:\n  - addresses: [10.0.0.1]\n"
        "    conditions: {ready: 'no'}\n",
        "wrr.yaml:8: EndpointSlice default/s-1: endpoints[0].conditions.ready: must be true or false",
    ),
    ("just a string\n", "wrr.yaml:1: not a mapping"),
    (
        UDP_HEAD + "    - services:\n        - {name: a}\n",
        "wrr.yaml:7: IngressRouteUDP default/dns: spec.routes[0].services[0].port: is required",
    ),
    (
        UDP_HEAD + "    - services:\n        - {name: a, port: 53, weight: -2}\n",
        "wrr.yaml:7: IngressRouteUDP default/dns: spec.routes[0].services[0].weight:"
        " must be an integer >= 0",
    ),
    (
        UDP_HEAD + "    - match: HostSNI(`*`)\n      services: [{name: a, port: 53}]\n",
        "wrr.yaml:6: IngressRouteUDP default/dns: spec.routes[0].match: unknown field",
    ),
    (
        UDP_HEAD + "    - services:\n        - {name: a, port: 53, kind: TraefikService}\n",
        "wrr.yaml:7: IngressRouteUDP default/dns: spec.routes[0].services[0].kind: unknown field",
    ),
    (
        UDP_HEAD.replace("  routes:\n", "  entryPoints: [dns]\n"),
        "wrr.yaml:4: IngressRouteUDP default/dns: spec.routes: is required",
    ),
    (
        "kind: IngressRoute\nmetadata: {name: a}\n",
        "wrr.yaml:1: apiVersion and kind are required (strings)",
    ),
]


class BadDocumentTests(SynchronousTestCase):
    """Each mistake gives exactly one error naming file, line, resource and field path."""

    def test_table(self) -> None:
        """Every row of the bad-document table gives its exact error and no resource."""
        for text, expected in BAD_DOCUMENTS:
            resources, errors, _ = load(text)
            self.assertEqual((resources, errors), ((), [expected]), text)

    def test_otherDocumentsSurvive(self) -> None:
        """A bad document does not take the good ones of the same file with it."""
        text = (
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n---\n"
            + BAD_DOCUMENTS[0][0]
            + "---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: 80}]}\n"
        )
        resources, errors, _ = load(text)
        self.assertEqual([r.meta.name for r in resources], ["a", "b"])  # type: ignore[attr-defined]
        self.assertEqual(errors, [BAD_DOCUMENTS[0][1].replace("wrr.yaml:9:", "wrr.yaml:14:")])

    def test_unsupportedFieldsAreNotices(self) -> None:
        """Fields whose absence changes nothing a client or backend sees are accepted with a
        notice (nativeLB and strategy p2c are implemented: no notice)."""
        resources, errors, notices = load(
            ROUTE_HEAD + "        - name: a\n          port: 80\n          nativeLB: true\n"
            "          strategy: p2c\n          sticky: {}\n"
        )
        self.assertEqual((len(resources), errors), (1, []))
        self.assertEqual(
            notices,
            [
                "wrr.yaml:12: IngressRoute default/app: spec.routes[0].services[0].sticky:"
                " no cookie section: stickiness stays off",
            ],
        )


class ConfigMapTests(SynchronousTestCase):
    """ConfigMaps are read leniently: only what a ServersTransport's rootCAs may use."""

    def test_entries(self) -> None:
        """Text ``data`` and base64 ``binaryData`` are kept; entries of neither form are left
        out without an error (unrelated ConfigMaps share the files)."""
        from tsproxy.config.kinds_core import ConfigMap

        text = """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: cas, namespace: ns}
        data: {ca.crt: "PEM", number: 5, nested: {a: b}}
        binaryData: {bin: aGk=, broken: "!!"}
        extra: ignored
        """
        resources, errors, notices = load(text)
        self.assertEqual((errors, notices), ([], []))
        (config_map,) = resources
        assert isinstance(config_map, ConfigMap)
        self.assertEqual(config_map.data, (("ca.crt", b"PEM"), ("bin", b"hi")))
        self.assertEqual((config_map.get("bin"), config_map.get("gone")), (b"hi", None))


class StrategyTests(SynchronousTestCase):
    """A service reference's ``strategy``: Traefik 3.7's values, RoundRobin as wrr, any other
    value a located error that drops the document (the file provider reads the same way)."""

    def test_accepted(self) -> None:
        """written value -> (the reference's strategy, notices) on an IngressRoute service and
        on a TraefikService's weighted child."""
        deprecated = "strategy: RoundRobin is deprecated: it is wrr"
        table = [
            (None, "wrr", []),
            ("''", "wrr", []),
            ("wrr", "wrr", []),
            ("p2c", "p2c", []),
            ("hrw", "hrw", []),
            ("leasttime", "leasttime", []),
            ("RoundRobin", "wrr", [deprecated]),
        ]
        for written, expected, notices in table:
            extra = "" if written is None else f"          strategy: {written}\n"
            for head, line, path in (
                (ROUTE_HEAD, 10, "IngressRoute default/app: spec.routes[0].services[0]"),
                (
                    TS_HEAD + "  weighted:\n    services:\n",
                    9,
                    "TraefikService default/wrr: spec.weighted.services[0]",
                ),
            ):
                indent = "        " if head is ROUTE_HEAD else "      "
                text = (
                    head
                    + f"{indent}- name: a\n{indent}  port: 80\n"
                    + extra.replace("          ", indent + "  ")
                )
                resources, errors, got_notices = load(text)
                self.assertEqual(errors, [], (written, head))
                resource: Any = resources[0]
                if head is ROUTE_HEAD:
                    ref = resource.routes[0].services[0]
                else:
                    ref = resource.weighted.services[0]
                self.assertEqual(ref.strategy, expected, (written, path))
                self.assertEqual(
                    got_notices, [f"wrr.yaml:{line}: {path}.{n}" for n in notices], written
                )

    def test_errors(self) -> None:
        """Unknown values (the names are case-sensitive, as in Traefik) are errors at the
        strategy's line, naming the key path and the values there are; a strategy other
        than wrr on a TraefikService reference (which has no servers) is one too."""
        values = "(one of: wrr, p2c, hrw, leasttime)"
        table = [
            ("bogus", f'unsupported load-balancer strategy "bogus" {values}'),
            ("WRR", f'unsupported load-balancer strategy "WRR" {values}'),
            ("roundrobin", f'unsupported load-balancer strategy "roundrobin" {values}'),
            ("LeastTime", f'unsupported load-balancer strategy "LeastTime" {values}'),
            ("3", "must be a string"),
        ]
        extra = "          kind: TraefikService\n          strategy: p2c\n"
        resources, errors, _ = load(ROUTE_HEAD + "        - name: ts\n" + extra)
        self.assertEqual(
            (resources, errors),
            (
                (),
                [
                    "wrr.yaml:10: IngressRoute default/app: spec.routes[0].services[0].strategy:"
                    " applies to Service references only"
                ],
            ),
        )
        for written, message in table:
            text = (
                ROUTE_HEAD
                + f"        - name: a\n          port: 80\n          strategy: {written}\n"
            )
            resources, errors, _ = load(text)
            self.assertEqual(resources, (), written)
            self.assertEqual(
                errors,
                [
                    "wrr.yaml:10: IngressRoute default/app:"
                    f" spec.routes[0].services[0].strategy: {message}"
                ],
            )
