"""Tests for tsproxy.http.bodypump and the engine's spilled request bodies: the pump against
a connection that fills and drains; then through a running proxy, curl sending multi-MiB
bodies to a buffering route with a small memRequestBodyBytes, a real backend hashing what it
gets (exact bytes, retries replayed identically, memory bounded, temporary files closed
however the exchange ends)."""

from __future__ import annotations

import gc
import hashlib
import os
import sys
from typing import Any, Dict, List, Tuple

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, StreamEnded
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import FileSender
from twisted.trial.unittest import SynchronousTestCase

from tests.http.test_http_middlewares import ingress
from tests.http.test_http_traffic import STATIC, service
from tests.proxyfixture import ProxyTestCase
from tsproxy.http.bodypump import BodyPump
from tsproxy.middlewares import bodystore
from tsproxy.middlewares.bodystore import BodyStore

MIB = 1024 * 1024

MIDDLEWARES = """\
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: spill}
spec:
  buffering:
    memRequestBodyBytes: 65536
    retryExpression: IsNetworkError() && Attempts() < 3
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: hold}
spec: {buffering: {memRequestBodyBytes: 16777216}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: once}
spec: {buffering: {memRequestBodyBytes: 65536, maxRequestBodyBytes: 33554432}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: again}
spec:
  retry: {attempts: 2, status: ["502"], retryNonIdempotentMethod: true, maxRequestBodyBytes: 8388608}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: small}
spec:
  retry: {attempts: 2, status: ["502"], retryNonIdempotentMethod: true, maxRequestBodyBytes: 1048576}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: answers}
spec: {buffering: {memResponseBodyBytes: 65536}}
---
apiVersion: traefik.io/v1alpha1
kind: ServersTransport
metadata: {name: impatient}
spec: {forwardingTimeouts: {responseHeaderTimeout: 300ms}}
"""


class _Transport:
    """A connection's transport that takes `room` bytes before it says it is full."""

    def __init__(self, conn: _Conn, room: int) -> None:
        self.conn = conn
        self.room = room
        self.written: List[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if sum(map(len, self.written)) - self.conn.drained >= self.room:
            self.conn.write_blocked = True


class _Conn:
    def __init__(self, room: int) -> None:
        self.write_blocked = False
        self.drain_hook: Any = None
        self.drained = 0
        self.transport = _Transport(self, room)

    def drain(self) -> None:
        self.drained = sum(map(len, self.transport.written))
        self.write_blocked = False
        if self.drain_hook is not None:
            self.drain_hook()


class PumpTests(SynchronousTestCase):
    """BodyPump against a connection that fills up and drains."""

    def test_backpressure(self) -> None:
        """Writes stop while the connection is full and go on when it drains; the body
        arrives whole, in pieces of at most the chunk size, then `done` is called once."""
        store = BodyStore(100)
        self.addCleanup(store.close)
        body = bytes(range(256)) * 40
        store.write(body)
        conn = _Conn(room=1000)
        done: List[int] = []
        pump = BodyPump(conn, store.reader(), lambda: done.append(1), chunk=300)
        pump.start()
        # 100 from memory (a read does not cross into the file), then 300s until full.
        self.assertEqual(list(map(len, conn.transport.written)), [100, 300, 300, 300])
        rounds = 0
        while not done:
            rounds += 1
            conn.drain()
            self.assertLessEqual(len(conn.transport.written[-1]), 300)
        self.assertEqual(done, [1])
        self.assertEqual(b"".join(conn.transport.written), body)
        self.assertGreaterEqual(rounds, 7)
        self.assertIsNone(conn.drain_hook)
        self.assertTrue(pump.finished)

    def test_stop(self) -> None:
        """A stopped pump writes nothing more, even when the connection drains."""
        store = BodyStore(0)
        self.addCleanup(store.close)
        store.write(b"x" * 5000)
        conn = _Conn(room=1000)
        pump = BodyPump(conn, store.reader(), lambda: None, chunk=500)
        pump.start()
        hook = conn.drain_hook
        pump.stop()
        self.assertIsNone(conn.drain_hook)
        hook()
        conn.drain()
        self.assertEqual(sum(map(len, conn.transport.written)), 1000)
        self.assertFalse(pump.finished)


class HashingBackend(protocol.Protocol):
    """Reads one request, hashing its body as it comes (nothing kept), and answers the
    factory's next status with the body's sha256; `pause_at` stops reading after that many
    body bytes (a backend that does not read: the proxy must not push on)."""

    def connectionMade(self) -> None:
        self.buf = b""
        self.left = -1
        self.size = 0
        self.digest = hashlib.sha256()
        self.stalled = False
        self.factory.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        if self.left < 0:
            self.buf += data
            if b"\r\n\r\n" not in self.buf:
                return
            head, data = self.buf.split(b"\r\n\r\n", 1)
            self.buf = b""
            if head.split(b" ")[1] == b"/download":
                self.download()
                return
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self.left = int(value)
            self.left = max(self.left, 0)
        taken = data[: self.left]
        self.digest.update(taken)
        self.left -= len(taken)
        self.size += len(taken)
        pause_at = self.factory.pause_at
        if pause_at is not None and self.size >= pause_at and not self.stalled:
            self.stalled = True
            self.transport.pauseProducing()
            self.factory.paused.callback(self)
            return
        if self.left == 0 and not self.stalled:
            self.left = -2
            statuses = self.factory.statuses
            status = statuses.pop(0) if statuses else 200
            answer = self.digest.hexdigest().encode()
            self.factory.seen.append((self.size, answer.decode()))
            if status == 0:
                return  # never answers
            self.transport.write(
                b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (status, len(answer), answer)
            )
            self.transport.loseConnection()

    def download(self) -> None:
        """Answer the factory's `download` file, streamed (nothing of it held here)."""
        path = self.factory.download
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % os.path.getsize(path)
        )
        source = open(path, "rb")
        sent = FileSender().beginFileTransfer(source, self.transport)
        sent.addBoth(lambda _: (source.close(), self.transport.loseConnection()))


class H2HashingBackend(protocol.Protocol):
    """An h2c server hashing each stream's request body (window updates as it reads, so
    the proxy's sending follows HTTP/2 flow control) and answering its sha256."""

    def connectionMade(self) -> None:
        self.conn = H2Connection(H2Configuration(client_side=False))
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())
        self.digests: Dict[int, Any] = {}
        self.sizes: Dict[int, int] = {}

    def dataReceived(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, RequestReceived):
                self.digests[event.stream_id] = hashlib.sha256()
                self.sizes[event.stream_id] = 0
            elif isinstance(event, DataReceived):
                self.digests[event.stream_id].update(event.data)
                self.sizes[event.stream_id] += len(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                sid = event.stream_id
                answer = self.digests[sid].hexdigest().encode()
                self.factory.seen.append((self.sizes[sid], answer.decode()))
                headers = [(":status", "200"), ("content-length", str(len(answer)))]
                self.conn.send_headers(sid, headers)
                self.conn.send_data(sid, answer, end_stream=True)
        self.transport.write(self.conn.data_to_send())


class SlowReader(protocol.Protocol):
    """A client that sends a request, then reads the answer only when told to, hashing
    its body (after the head) as it comes."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.head = b""
        self.size = 0
        self.digest = hashlib.sha256()
        self.first: defer.Deferred = defer.Deferred()
        self.closed: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        if not self.first.called:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.head, data = self.head.split(b"\r\n\r\n", 1)
            self.transport.pauseProducing()
            self.first.callback(self)
        self.size += len(data)
        self.digest.update(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(self)


def temp_fds() -> List[str]:
    """The process's open descriptors on deleted files (the stores' temporary files)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue
        if target.endswith("(deleted)"):
            found.append(name + " " + target)
    return found


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


class Curl(protocol.ProcessProtocol):
    """curl POSTing a file; `ended` fires with (status printed, exit code)."""

    def __init__(self) -> None:
        self.out = b""
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def processEnded(self, reason: Any) -> None:
        self.ended.callback((self.out, reason.value.exitCode))


class SpillTests(ProxyTestCase):
    """A proxy whose buffering routes spill request bodies to temporary files."""

    def setUp(self) -> None:
        super().setUp()
        # Temporary files other tests let go of without closing are closed now: the
        # descriptor counts below are this test's (PyPy closes them only when collected).
        gc.collect()
        self.backend = protocol.Factory.forProtocol(HashingBackend)
        self.backend.connections = []
        self.backend.statuses = []
        self.backend.seen = []
        self.backend.pause_at = None
        port = reactor.listenTCP(0, self.backend, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.write("tsproxy.yaml", STATIC)
        h2 = protocol.Factory.forProtocol(H2HashingBackend)
        h2.seen = self.h2_seen = []
        h2port = reactor.listenTCP(0, h2, interface="127.0.0.1")
        self.addCleanup(h2port.stopListening)
        self.write(
            "backend.yaml",
            service("hashing", port.getHost().port) + service("h2hashing", h2port.getHost().port),
        )
        self.write("middlewares.yaml", MIDDLEWARES)
        self.write(
            "routes.yaml",
            ingress("spilled", "spill.example", "{name: spill}", service="hashing")
            + ingress("held", "hold.example", "{name: hold}", service="hashing")
            + ingress("once", "once.example", "{name: once}", service="hashing")
            + ingress("answers", "answers.example", "{name: answers}", service="hashing")
            + ingress("again", "again.example", "{name: once}, {name: again}", service="hashing")
            + ingress("small", "small.example", "{name: once}, {name: small}", service="hashing")
            + ingress("h2", "h2.example", "{name: once}", service="h2hashing").replace(
                "port: 80}", "port: 80, scheme: h2c}"
            )
            + ingress("late", "late.example", "{name: once}", service="hashing").replace(
                "port: 80}", "port: 80, serversTransport: impatient}"
            ),
        )
        self.start_proxy()

    def body_file(self, size: int) -> Tuple[str, str]:
        """A file of `size` pseudo-random bytes, and its sha256."""
        path = self.mktemp()
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            block = hashlib.sha512(b"seed").digest() * 1024
            for start in range(0, size, len(block)):
                piece = bytes((b + start // len(block)) % 256 for b in block[:8])
                piece = piece + block[8 : min(len(block), size - start)]
                f.write(piece)
                digest.update(piece)
        return path, digest.hexdigest()

    def curl(self, host: str, path: str, *extra: str) -> Curl:
        assert self.service is not None
        url = "http://127.0.0.1:%d/up" % (self.service.port_of("web"),)
        args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: " + host]
        args += ["--data-binary", "@" + path, "-H", "Content-Type: application/octet-stream"]
        curl = Curl()
        reactor.spawnProcess(curl, "curl", args + list(extra) + [url], env=dict(os.environ))
        return curl

    @defer.inlineCallbacks
    def settled(self, fds: int) -> Any:
        """Wait (at most 5 s) until the descriptor count is back to `fds`; return it."""
        for _ in range(100):
            if fd_count() <= fds and not temp_fds():
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        return fd_count()

    @defer.inlineCallbacks
    def quiet(self) -> Any:
        """The descriptor count once the last exchange's connections are closed (the same
        over 150 ms, at most 5 s)."""
        counts = [fd_count()]
        for _ in range(100):
            yield task.deferLater(reactor, 0.05, lambda: None)
            counts.append(fd_count())
            if len(set(counts[-4:])) == 1 and len(counts) >= 4:
                break
        return counts[-1]

    def watch_stores(self) -> List[Dict[str, int]]:
        """Record each store's largest in-memory part and its final split."""
        seen: List[Dict[str, int]] = []
        write = BodyStore.write

        def recording(store: BodyStore, data: bytes) -> None:
            write(store, data)
            record = getattr(store, "_record", None)
            if record is None:
                record = store._record = {"memory": 0}  # type: ignore[attr-defined]
                seen.append(record)
            record["memory"] = max(record["memory"], len(store.head))
            record["spilled"], record["size"] = store.spilled, store.size

        self.patch(bodystore.BodyStore, "write", recording)
        return seen

    @defer.inlineCallbacks
    def send(self, host: str, path: str, *extra: str) -> Any:
        out, code = yield self.curl(host, path, *extra).ended
        self.assertEqual(code, 0)
        return int(out)

    @defer.inlineCallbacks
    def test_spilled_body(self) -> Any:
        """5 MiB with memRequestBodyBytes 64 KiB: 64 KiB in memory, the rest in a file;
        the backend gets the exact bytes; the proxy's Python heap grows by a fraction of the
        body (while a route holding it in memory grows by the whole body); the temporary
        file is open during the exchange and closed after, the fd count back."""
        size = 5 * MIB
        path, digest = self.body_file(size)
        stores = self.watch_stores()
        yield self.send("spill.example", path)  # warm up (connections, imports)
        fds = yield self.quiet()
        seen_during: List[List[str]] = []
        self.backend.pause_at = None
        original = HashingBackend.dataReceived

        def peek(backend: HashingBackend, data: bytes) -> None:
            # Once per request (one per connection here): its head may come alone.
            if not getattr(backend, "peeked", False):
                backend.peeked = True  # type: ignore[attr-defined]
                seen_during.append(temp_fds())
            original(backend, data)

        self.patch(HashingBackend, "dataReceived", peek)
        measure = sys.implementation.name == "cpython"  # PyPy has no tracemalloc
        if measure:
            import tracemalloc
        growth = {}
        for host in ("spill.example", "hold.example"):
            if measure:
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
            status = yield self.send(host, path)
            if measure:
                growth[host] = tracemalloc.get_traced_memory()[1] - base
                tracemalloc.stop()
            self.assertEqual(status, 200)
            self.assertEqual(self.backend.seen[-1], (size, digest))
        spilled, held = [store for store in stores if store["size"] == size][-2:]
        self.assertEqual(spilled, {"memory": 65536, "spilled": size - 65536, "size": size})
        self.assertEqual(held, {"memory": size, "spilled": 0, "size": size})
        self.assertEqual(len(seen_during[0]), 1)  # the spilled body's file, while sent
        self.assertEqual(seen_during[1], [])  # the held one has none
        if measure:
            self.assertLess(growth["spill.example"], size // 4, growth)
            self.assertGreater(growth["hold.example"], size, growth)
        after = yield self.settled(fds)
        self.assertEqual(after, fds)
        self.assertEqual(temp_fds(), [])

    @defer.inlineCallbacks
    def test_retry_replays(self) -> Any:
        """retryExpression: the backend answers 502 to a spilled 3 MiB body, the proxy
        sends it again from the file, the same bytes; three 502s exhaust the retries (502
        to the client); either way the file is closed after."""
        size = 3 * MIB
        path, digest = self.body_file(size)
        yield self.send("spill.example", path)  # warm up (connections, process waker)
        del self.backend.seen[:]
        fds = yield self.quiet()
        self.backend.statuses = [502]
        status = yield self.send("spill.example", path)
        self.assertEqual(status, 200)
        self.assertEqual(self.backend.seen, [(size, digest), (size, digest)])
        self.backend.statuses = [502, 502, 502]
        status = yield self.send("spill.example", path)
        self.assertEqual(status, 502)
        self.assertEqual(self.backend.seen[2:], [(size, digest)] * 3)
        after = yield self.settled(fds)
        self.assertEqual(after, fds)

    @defer.inlineCallbacks
    def test_retry_middleware(self) -> Any:
        """The retry middleware after buffering replays the spilled body from the file too;
        so does an HTTP/2 client's (h2c) body, the same bytes."""
        size = 3 * MIB
        path, digest = self.body_file(size)
        yield self.send("again.example", path)  # warm up (connections, process waker)
        del self.backend.seen[:]
        fds = yield self.quiet()
        self.backend.statuses = [502]
        status = yield self.send("again.example", path)
        self.assertEqual(status, 200)
        self.assertEqual(self.backend.seen, [(size, digest)] * 2)
        curl = self.curl(
            "spill.example", path, "--http2-prior-knowledge", "-w", "%{http_code} %{http_version}"
        )
        out, code = yield curl.ended
        self.assertEqual((out, code), (b"200 2", 0))
        self.assertEqual(self.backend.seen[2:], [(size, digest)])
        after = yield self.settled(fds)
        self.assertEqual((after, temp_fds()), (fds, []))

    @defer.inlineCallbacks
    def test_retry_body_limit(self) -> Any:
        """A body past the retry's maxRequestBodyBytes turns its status retries off (Traefik
        3.7): the 502 reaches the client after one attempt; a body under it is retried."""
        big, big_digest = self.body_file(2 * MIB)
        small, small_digest = self.body_file(MIB // 2)
        yield self.send("small.example", small)  # warm up (connections, process waker)
        del self.backend.seen[:]
        self.backend.statuses = [502]
        status = yield self.send("small.example", big)
        self.assertEqual(status, 502)
        self.assertEqual(self.backend.seen, [(2 * MIB, big_digest)])
        self.backend.statuses = [502]
        status = yield self.send("small.example", small)
        self.assertEqual(status, 200)
        self.assertEqual(self.backend.seen[1:], [(MIB // 2, small_digest)] * 2)

    @defer.inlineCallbacks
    def test_h2c_backend(self) -> Any:
        """A spilled body to an h2c backend goes in stream DATA as its window allows, whole."""
        size = 3 * MIB
        path, digest = self.body_file(size)
        yield self.send("h2.example", path)  # warm up (connections, process waker)
        status = yield self.send("h2.example", path)
        self.assertEqual(status, 200)
        self.assertEqual(self.h2_seen, [(size, digest)] * 2)
        self.assertEqual(temp_fds(), [])

    @defer.inlineCallbacks
    def test_timeout(self) -> Any:
        """A backend that takes the whole spilled body and never answers: 504 after
        responseHeaderTimeout, and the file is closed."""
        size = 2 * MIB
        path, digest = self.body_file(size)
        yield self.send("late.example", path)  # warm up (connections, process waker)
        fds = yield self.quiet()
        self.backend.statuses = [0]
        status = yield self.send("late.example", path)
        self.assertEqual(status, 504)
        self.assertEqual(self.backend.seen[-1], (size, digest))
        after = yield self.settled(fds)
        self.assertEqual((after, temp_fds()), (fds, []))

    @defer.inlineCallbacks
    def stalled(self, size: int) -> Any:
        """Send `size` bytes to a backend that stops reading after 64 KiB; return the
        curl process, the backend connection and how far the proxy read the file."""
        path, _ = self.body_file(size)
        readers: List[Any] = []
        make_reader = BodyStore.reader

        def reader(store: BodyStore) -> Any:
            readers.append(make_reader(store))
            return readers[-1]

        self.patch(bodystore.BodyStore, "reader", reader)
        self.backend.pause_at = 65536
        self.backend.paused = defer.Deferred()
        curl = self.curl("once.example", path)
        backend = yield self.backend.paused
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(len(temp_fds()), 1, temp_fds())
        return curl, backend, readers[-1].offset

    @defer.inlineCallbacks
    def test_backend_stalls(self) -> Any:
        """A backend that does not read holds the proxy back: of 24 MiB, what the proxy read
        from the file stays within the socket buffers (not the whole body); the client
        leaving then ends the exchange (499) and closes the file; a backend that resets
        instead gets the client a 502, the file closed too."""
        size = 24 * MIB
        path, _ = self.body_file(1000)
        yield self.send("once.example", path)  # warm up (connections, process waker)
        fds = yield self.quiet()
        curl, backend, offset = yield self.stalled(size)
        self.assertLess(offset, size // 2)
        curl.transport.signalProcess("KILL")
        yield curl.ended
        backend.transport.resumeProducing()  # the test backend's own end sees the close
        after = yield self.settled(fds)
        self.assertEqual((after, temp_fds()), (fds, []))
        curl, backend, offset = yield self.stalled(size)
        backend.transport.abortConnection()
        out, code = yield curl.ended
        self.assertEqual(int(out), 502)
        after = yield self.settled(fds)
        self.assertEqual((after, temp_fds()), (fds, []))

    @defer.inlineCallbacks
    def test_spilled_response(self) -> Any:
        """memResponseBodyBytes 64 KiB: a 16 MiB answer is held 64 KiB in memory and the
        rest in a file, then sent as fast as the client reads: a client that stops reading
        holds the proxy back (it read a fraction of the file), and once it reads it gets the
        exact bytes; the file is closed after."""
        size = 16 * MIB
        path, digest = self.body_file(size)
        self.backend.download = path
        stores = self.watch_stores()
        readers: List[Any] = []
        make_reader = BodyStore.reader

        def reader(store: BodyStore) -> Any:
            readers.append(make_reader(store))
            return readers[-1]

        self.patch(bodystore.BodyStore, "reader", reader)
        assert self.service is not None
        port = self.service.port_of("web")
        payload = b"GET /download HTTP/1.1\r\nHost: answers.example\r\nConnection: close\r\n\r\n"
        fds = yield self.quiet()
        client = SlowReader(payload)
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        yield client.first
        self.assertIn(b"Content-Length: %d" % size, client.head)
        self.assertEqual(stores[-1], {"memory": 65536, "spilled": size - 65536, "size": size})
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(len(temp_fds()), 1)  # the response's file, while it is sent
        self.assertLess(readers[-1].offset, size // 2)
        client.transport.resumeProducing()
        yield client.closed
        self.assertEqual((client.size, client.digest.hexdigest()), (size, digest))
        after = yield self.settled(fds)
        self.assertEqual((after, temp_fds()), (fds, []))
