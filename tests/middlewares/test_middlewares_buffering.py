"""Tests for tsproxy.middlewares.buffering: every case of Traefik's buffering vectors (request
and response limits, spooling to disk, retryExpression replays), through the body reader and
response sink the engine gives."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from tests.authfixture import FakeContext, fields_of, load_vectors, request_of
from tests.trafficfixture import Collected, HookedContext
from tsproxy.config.schema import FieldError
from tsproxy.middlewares import buffering
from tsproxy.middlewares.base import Answer, BodyTooLarge, BuildError, HeaderList, Response
from tsproxy.middlewares.bodystore import BodyStore

VECTORS = load_vectors("buffering.json")


def body_of(spec: Dict[str, Any]) -> bytes:
    if "raw" in spec:  # the chunked request: its decoded body
        chunks = spec["raw"].split("\r\n\r\n", 1)[1].split("\r\n")
        return "".join(chunks[1::2]).encode()
    if "bodySize" in spec:
        return spec.get("bodyByte", "x").encode() * spec["bodySize"]
    return str(spec.get("body") or "").encode()


def reader(body: bytes) -> Any:
    def read(limit: int, memory: Optional[int] = None) -> Any:
        if limit >= 0 and len(body) > limit:
            return defer.fail(BodyTooLarge())
        if memory is None:
            return defer.succeed(body)
        store = BodyStore(memory)
        store.write(body)
        return defer.succeed(store)

    return read


def context() -> HookedContext:
    built = HookedContext()
    built.request_bodies = True
    return built


def exchange(
    step: buffering.Buffering,
    case_request: Dict[str, Any],
    backend: bytes,
    servers: Optional[List[str]] = None,
) -> Collected:
    """One request through the step, the (possibly retried) service, and the sinks."""
    request = request_of(
        {k: v for k, v in case_request.items() if k in ("method", "headers")},
        read_body=reader(body_of(case_request)),
    )
    result = step.handle(request)
    box: List[Any] = []
    result.addBoth(box.append)
    client = Collected()
    if isinstance(box[0], Answer):
        client.head(Response(box[0].status, HeaderList(box[0].headers), request))
        client.data(box[0].body)
        client.end()
        return client
    status, body = 200, backend
    for attempt, server in enumerate(servers or ["ok"], start=1):
        status, body = (200, backend) if server == "ok" else (502, b"Bad Gateway")
        if server == "ok" or request.retry is None:
            break
        if request.retry.next_delay(attempt, True, status, 0.0) is None:
            break
    sink: Any = client
    for wrapper in request.sink_wrappers:
        sink = wrapper(sink)
    sink.head(Response(status, HeaderList(), request))
    for start in range(0, len(body), 1000):
        sink.data(body[start : start + 1000])
    sink.end()
    return client


class VectorTests(SynchronousTestCase):
    """buffering.json, every case and step."""

    def test_vectors(self) -> None:
        """Each case gives Traefik's status and body."""
        for index, case in enumerate(VECTORS["cases"]):
            with self.subTest("%d %s" % (index, case["name"])):
                step = buffering.build(buffering.parse(fields_of(case["config"])), "b", context())
                backend = body_of(case.get("backendResponse") or {})
                for item in case.get("steps", [case]):
                    if "request" not in item:
                        continue
                    client = exchange(step, item["request"], backend, case.get("servers"))
                    expect = item["expect"]
                    status = expect.get("status")
                    if "statusLine" in expect:
                        status = int(expect["statusLine"].split()[1])
                    if status is not None:
                        self.assertEqual(client.status, status)
                    if "body" in expect:
                        self.assertEqual(client.body, expect["body"].encode())
                    if client.status == 200:
                        self.assertEqual(
                            client.headers.get("Content-Length"), str(len(client.body))
                        )


class SinkTests(SynchronousTestCase):
    """Spooling and configuration."""

    def test_spools_to_disk(self) -> None:
        """Past memResponseBodyBytes the response goes on in a temporary file, unchanged;
        the file is closed once it is sent, or when the exchange ends before."""
        for ended_early in (False, True):
            client = Collected()
            request = request_of({})
            sink = buffering.BufferingSink(client, 0, 16)
            sink.head(Response(200, HeaderList(), request))
            sink.data(b"x" * 10)
            spool = sink.spool
            assert spool is not None
            self.assertIsNone(spool.file)
            sink.data(b"y" * 10)
            self.assertEqual((len(spool.head), spool.spilled), (16, 4))
            assert spool.file is not None
            file = spool.file
            self.assertEqual(client.status, 0)  # nothing out before the end
            if ended_early:
                for hook in request.end_hooks:  # the client left: the engine's end hooks
                    hook(None)
            else:
                sink.end()
                self.assertEqual(client.body, b"x" * 10 + b"y" * 10)
            self.assertTrue(file.closed)

    def test_config(self) -> None:
        """A bad retryExpression is located; the kind needs the engine's hooks."""
        table = [
            "Attempts() <= 2.0",
            'RequestMethod() > "GET"',
            "IsNetworkError() > 1",
            "Foo()",
        ]
        for text in table:
            with self.subTest(text):
                with self.assertRaises(FieldError) as caught:
                    buffering.parse(fields_of({"retryExpression": text}))
                self.assertIn("retryExpression", str(caught.exception))
        spec = buffering.parse(
            fields_of({"retryExpression": 'RequestMethod() == "GET" && Attempts() < 3'})
        )
        self.assertRaises(BuildError, buffering.build, spec, "b", FakeContext())
        condition = buffering.parse_retry_expression(
            'RequestMethod() == "GET" && ResponseCode() >= 500'
        )
        self.assertTrue(condition(buffering.Attempt(1, False, 503, "GET")))
        self.assertFalse(condition(buffering.Attempt(1, False, 503, "POST")))
