"""gRPC through the proxy: a real grpcio server behind an h2c service, a real grpcio client
over h2c to the entrypoint; unary and streaming calls, statuses and metadata carried in
trailers, and the grpc code in the metrics."""

from __future__ import annotations

from typing import Any, List

from twisted.internet import defer, threads
from twisted.trial.unittest import SkipTest

from tests.grpcfixture import GREETER, grpc_codes, start_echo
from tests.proxyfixture import STATIC, ProxyTestCase

try:
    import grpc
except ImportError:  # pragma: no cover - the test extra installs it
    grpc = None

ROUTE = (
    """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: grpc
spec:
  entryPoints: [web]
  routes:
    - match: Host(`grpc.test`)
      kind: Rule
      services:
        - name: greeter
          port: 80
          scheme: h2c
"""
    + GREETER
)

TRAEFIK = 'entryPoints:\n  traefik:\n    address: "127.0.0.1:0"\n'

METRICS = """\
metrics:
  prometheus: {}
"""


class GRPCTests(ProxyTestCase):
    """grpcio client → proxy (h2c) → grpcio server (h2c service)."""

    def setUp(self) -> None:
        if grpc is None:
            raise SkipTest("grpcio is not installed")
        super().setUp()
        port = start_echo(self)
        self.use_seed_config()
        self.write("tsproxy.yaml", STATIC.replace("entryPoints:\n", TRAEFIK) + METRICS)
        self.write("grpc.yaml", ROUTE.format(port=port))
        self.start_proxy()
        assert self.service is not None
        self.channel = grpc.insecure_channel(
            "127.0.0.1:%d" % self.service.port_of("web"),
            options=[("grpc.default_authority", "grpc.test")],
        )
        self.addCleanup(self.channel.close)

    def call(self, kind: str, method: str, request: Any) -> Any:
        stub = getattr(self.channel, kind)("/t.Echo/" + method)
        return threads.deferToThread(lambda: stub(request, timeout=10))

    @defer.inlineCallbacks
    def test_unary(self) -> None:
        """A unary call is answered; trailing metadata crosses the proxy."""

        def run() -> Any:
            stub = self.channel.unary_unary("/t.Echo/Unary")
            return stub.with_call(b"hello", timeout=10)

        answer, call = yield threads.deferToThread(run)
        self.assertEqual(answer, b"olleh")
        self.assertIn(("x-trailer", "t1"), tuple(call.trailing_metadata()))

    @defer.inlineCallbacks
    def test_status(self) -> None:
        """An error status and its message (trailers) reach the client; the metrics count
        the call with its grpc code, as Traefik's code label for gRPC does."""
        try:
            yield self.call("unary_unary", "Fail", b"abc")
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
            self.assertEqual(e.details(), "no such thing: abc")
        else:
            self.fail("no error")
        yield self.call("unary_unary", "Unary", b"x")
        codes = grpc_codes(self.service)
        self.assertIn("5", codes)  # NOT_FOUND: from the headers of a trailers-only answer
        self.assertIn("0", codes)  # OK: from the trailers

    @defer.inlineCallbacks
    def test_bidiStreaming(self) -> None:
        """A bidirectional stream: every message answered in order."""
        messages = [b"m%d" % i for i in range(50)]

        def run() -> List[bytes]:
            stub = self.channel.stream_stream("/t.Echo/Chat")
            return list(stub(iter(messages), timeout=10))

        got = yield threads.deferToThread(run)
        self.assertEqual(got, [b"re:" + m for m in messages])

    @defer.inlineCallbacks
    def test_serverStreaming(self) -> None:
        """A server stream larger than every flow-control window arrives whole."""

        def run() -> List[bytes]:
            stub = self.channel.unary_stream("/t.Echo/Many")
            return list(stub(b"200", timeout=20))

        got = yield threads.deferToThread(run)
        self.assertEqual(len(got), 200)
        self.assertEqual(got[199], b"199:" + b"x" * 20000)

    @defer.inlineCallbacks
    def test_concurrentCalls(self) -> None:
        """Many calls at once share the proxy's HTTP/2 connection to the server."""

        def run() -> List[bytes]:
            stub = self.channel.unary_unary("/t.Echo/Unary")
            calls = [stub.future(b"n%d" % i, timeout=10) for i in range(40)]
            return [c.result() for c in calls]

        got = yield threads.deferToThread(run)
        self.assertEqual(got, [(b"n%d" % i)[::-1] for i in range(40)])
        assert self.service is not None
        found = {id(f.pool): f.pool for f in self.service.factories if getattr(f, "pool", None)}
        pools = list(found.values())
        conns = [c for p in pools if p.h2 is not None for cs in p.h2.conns.values() for c in cs]
        self.assertEqual(len(conns), 1)

    @defer.inlineCallbacks
    def test_cancel(self) -> None:
        """A client cancelling a server stream midway resets the proxy's stream to the server
        too; the connection serves the next call."""

        def run() -> List[bytes]:
            stub = self.channel.unary_stream("/t.Echo/Many")
            call = stub(b"100000", timeout=20)
            got = [next(call) for _ in range(5)]
            call.cancel()
            return got

        got = yield threads.deferToThread(run)
        self.assertEqual(len(got), 5)
        answer = yield self.call("unary_unary", "Unary", b"after")
        self.assertEqual(answer, b"retfa")
        assert self.service is not None
        pools = {id(f.pool): f.pool for f in self.service.factories if getattr(f, "pool", None)}
        streams = [
            len(c.streams)
            for p in pools.values()
            if p.h2 is not None
            for cs in p.h2.conns.values()
            for c in cs
        ]
        self.assertEqual(streams, [0])
