"""Tests for tsproxy.config.transports' named TCP transports: the ServersTransportTCP kind and
the file provider's ``tcp.serversTransports``, read into TCPTransportSettings (every field,
Traefik's defaults) and each mistake located (file, line, resource, key path)."""

from __future__ import annotations

from typing import Dict

from twisted.trial.unittest import SynchronousTestCase

from tests.certs import make_ca, make_leaf
from tests.config.test_config_kinds import load, meta
from tsproxy.config.fileformat import parse_dynamic_files
from tsproxy.config.resources import TransportSettings
from tsproxy.config.transports import ServersTransportTCP, TCPTransportSettings

CA = make_ca()
CLIENT = make_leaf(CA, "client", client=True)

HEAD = "apiVersion: traefik.io/v1alpha1\nkind: ServersTransportTCP\nmetadata: {name: st, namespace: ns}\n"

FULL_CRD = (
    HEAD
    + """\
spec:
  dialTimeout: 5s
  dialKeepAlive: -1s
  terminationDelay: 250ms
  proxyProtocol: {version: 1}
  tls:
    serverName: backend.test
    insecureSkipVerify: false
    peerCertURI: spiffe://x/backend
    rootCAs: [{secret: ca}, {configMap: ca-map}]
    rootCAsSecrets: [old-ca]
    certificatesSecrets: [client]
    spiffe: {ids: [a]}
"""
)


def _indent(pem: bytes, spaces: int) -> str:
    pad = " " * spaces
    return "|\n" + "".join(pad + line + "\n" for line in pem.decode().splitlines())


class ServersTransportTCPTests(SynchronousTestCase):
    """The CRD kind: every field kept, Secrets and ConfigMaps by name (read when used)."""

    def test_everyField(self) -> None:
        """Dial settings (a negative keep-alive turns it off), terminationDelay, proxyProtocol
        and tls; spiffe is kept as unsupported (a service naming it is disabled)."""
        resources, errors, notices = load(FULL_CRD)
        self.assertEqual((errors, notices), ([], []))
        tls = TransportSettings(server_name="backend.test", peer_cert_uri="spiffe://x/backend")
        expected = ServersTransportTCP(
            meta("ServersTransportTCP", "st", namespace="ns"),
            TCPTransportSettings(5.0, -1.0, tls, 0.25, 1),
            ("tls.spiffe",),
            ("old-ca", "ca"),
            ("client",),
            ("ca-map",),
        )
        self.assertEqual(resources, (expected,))

    def test_defaults(self) -> None:
        """Traefik's defaults: dialTimeout 30s, dialKeepAlive 15s, terminationDelay 100ms,
        no PROXY protocol, no TLS settings; ``proxyProtocol: {}`` is version 2."""
        for spec, proxy in (("spec: {}\n", 0), ("spec: {proxyProtocol: {}}\n", 2)):
            resources, errors, _ = load(HEAD + spec)
            self.assertEqual(errors, [])
            (transport,) = resources
            assert isinstance(transport, ServersTransportTCP)
            self.assertEqual(
                transport.tcp,
                TCPTransportSettings(30.0, 15.0, TransportSettings(), 0.1, proxy),
            )

    def test_oldGroupIsSkipped(self) -> None:
        """traefik.containo.us never had the kind (Traefik v3 only): skipped with a notice."""
        text = HEAD.replace("traefik.io", "traefik.containo.us") + "spec: {}\n"
        resources, errors, notices = load(text)
        self.assertEqual((resources, errors), ((), []))
        self.assertIn("apiVersion traefik.containo.us/v1alpha1 not handled", notices[0])

    def test_bad(self) -> None:
        """Each mistake is its located error, and no resource."""
        where = "wrr.yaml:4: ServersTransportTCP ns/st: spec."
        cases = [
            (
                "spec: {proxyProtocol: {version: 3}}",
                "proxyProtocol.version: must be an integer between 1 and 2",
            ),
            (
                "spec: {dialTimeout: soon}",
                "dialTimeout: must be a duration (like 10s, 1m30s, 500ms) or a number of seconds",
            ),
            ("spec: {dialTimeout: -1s}", "dialTimeout: must not be negative"),
            (
                "spec: {tls: {rootCAs: [{secret: a, configMap: b}]}}",
                "tls.rootCAs[0]: secret and configMap are mutually exclusive",
            ),
            (
                "spec: {tls: {rootCAs: [{}]}}",
                "tls.rootCAs[0]: one of secret or configMap is required",
            ),
            ("spec: {tls: {cipherSuites: [x]}}", "tls.cipherSuites: unknown field"),
            ("spec: {lingerTime: 1s}", "lingerTime: unknown field"),
            (
                "spec: {tls: {insecureSkipVerify: maybe}}",
                "tls.insecureSkipVerify: must be true or false",
            ),
        ]
        for spec, message in cases:
            with self.subTest(spec=spec):
                resources, errors, _ = load(HEAD + spec + "\n")
                self.assertEqual((resources, errors), ((), [where + message]))


class FileTCPTransportTests(SynchronousTestCase):
    """The file provider's ``tcp.serversTransports``: TLS files (or PEM) read and checked."""

    FILES: Dict[str, bytes] = {
        "ca.pem": CA.cert_pem,
        "c.pem": CLIENT.cert_pem,
        "c.key": CLIENT.key_pem,
    }

    def read(self, path: str) -> bytes:
        try:
            return self.FILES[path]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory") from None

    def test_everyField(self) -> None:
        """Dial settings, terminationDelay, proxyProtocol, and tls with rootCAs (a path and
        inline PEM) and a client certificate pair; a load balancer's serversTransport is kept."""
        text = (
            "tcp:\n  serversTransports:\n    st:\n      dialTimeout: 2s\n"
            "      dialKeepAlive: 0s\n      terminationDelay: -1\n      proxyProtocol: {}\n"
            "      tls:\n        serverName: b.test\n        insecureSkipVerify: true\n"
            "        peerCertURI: spiffe://x/b\n"
            "        rootCAs:\n          - ca.pem\n          - "
            + _indent(CA.cert_pem, 12)
            + "        certificates: [{certFile: c.pem, keyFile: c.key}]\n"
            "    plain: {}\n"
            "  services:\n    s:\n      loadBalancer:\n        serversTransport: st\n"
            "        servers: [{address: '127.0.0.1:1'}]\n"
        )
        config, errors, _ = parse_dynamic_files([("d.yml", text)], self.read)
        self.assertEqual(errors, ())
        st, plain = config.tcp_transports
        tls = TransportSettings(
            insecure_skip_verify=True,
            server_name="b.test",
            root_cas=(CA.cert_pem, CA.cert_pem.decode().strip().encode() + b"\n"),
            certificates=((CLIENT.cert_pem, CLIENT.key_pem),),
            peer_cert_uri="spiffe://x/b",
        )
        self.assertEqual((st.name, st.location.line), ("st", 3))
        self.assertEqual(st.settings, TCPTransportSettings(2.0, 0.0, tls, -1.0, 2))
        self.assertEqual(
            plain.settings, TCPTransportSettings(30.0, 15.0, TransportSettings(), 0.1, 0)
        )
        self.assertEqual(config.tcp_services[0].servers_transport, "st")

    def test_bad(self) -> None:
        """Each mistake is a located error and the transport is left out."""
        where = "d.yml:4: TCP serversTransport st: tcp.serversTransports.st."
        cases = [
            (
                "tls: {spiffe: {ids: [a]}}",
                "tls.spiffe: SPIFFE is not supported yet (it decides which servers are trusted)",
            ),
            (
                "tls: {rootCAs: [nofile.pem]}",
                "tls.rootCAs: [0]: cannot read nofile.pem: No such file or directory",
            ),
            ("tls: {rootCAs: [c.key]}", "tls.rootCAs: [0]: no valid PEM certificate found"),
            (
                "proxyProtocol: {version: 0}",
                "proxyProtocol.version: must be an integer between 1 and 2",
            ),
            ("forwardingTimeouts: {dialTimeout: 1s}", "forwardingTimeouts: unknown field"),
            (
                "tls: {certificates: [{certFile: a.pem, keyFile: c.key}]}",
                "tls.certificates[0].certFile: cannot read a.pem: No such file or directory",
            ),
            (
                "terminationDelay: later",
                "terminationDelay: must be a duration (like 10s, 1m30s, 500ms) or a number of seconds",
            ),
        ]
        for body, message in cases:
            with self.subTest(body=body):
                text = "tcp:\n  serversTransports:\n    st:\n      " + body + "\n"
                config, errors, _ = parse_dynamic_files([("d.yml", text)], self.read)
                self.assertEqual(
                    ([str(e) for e in errors], config.tcp_transports), ([where + message], ())
                )

    def test_keyValue(self) -> None:
        """etcd/Redis keys read the same section, each error at its key."""
        from tsproxy.providers.kv import parse_kv

        pairs = {
            "traefik/tcp/serversTransports/st/dialTimeout": "3s",
            "traefik/tcp/serversTransports/st/proxyProtocol/version": "1",
            "traefik/tcp/serversTransports/st/tls/serverName": "b.test",
            "traefik/tcp/serversTransports/bad/tls/spiffe/ids/0": "x",
            "traefik/tcp/services/s/loadBalancer/serversTransport": "st",
            "traefik/tcp/services/s/loadBalancer/servers/0/address": "127.0.0.1:1",
        }
        config, errors, _ = parse_kv(pairs, "traefik", "etcd")
        self.assertEqual(
            [str(e) for e in errors],
            [
                "etcd:traefik/tcp/serversTransports/bad/tls/spiffe: TCP serversTransport bad:"
                " tcp.serversTransports.bad.tls.spiffe: SPIFFE is not supported yet (it decides"
                " which servers are trusted)"
            ],
        )
        (st,) = config.tcp_transports
        tls = TransportSettings(server_name="b.test")
        self.assertEqual(st.settings, TCPTransportSettings(3.0, 15.0, tls, 0.1, 1))
        self.assertEqual(config.tcp_services[0].servers_transport, "st")
