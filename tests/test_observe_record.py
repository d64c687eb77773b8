"""Label values derived from a request: method normalisation and protocol."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.observe.record import method_label, request_protocol


class MethodLabelTests(SynchronousTestCase):
    """Traefik's getMethod: standard methods kept, the rest folded."""

    def test_table(self) -> None:
        """Each method maps to its label value."""
        cases = [
            (b"GET", "GET"),
            (b"HEAD", "HEAD"),
            (b"POST", "POST"),
            (b"PUT", "PUT"),
            (b"DELETE", "DELETE"),
            (b"CONNECT", "CONNECT"),
            (b"OPTIONS", "OPTIONS"),
            (b"TRACE", "TRACE"),
            (b"PATCH", "PATCH"),
            (b"PRI", "PRI"),
            (b"get", "EXTENSION_METHOD"),
            (b"PROPFIND", "EXTENSION_METHOD"),
            (b"PURGE", "EXTENSION_METHOD"),
            (b"\xff\xfe", "NON_UTF8_HTTP_METHOD"),
        ]
        for method, label in cases:
            self.assertEqual(method_label(method), label, method)


class ProtocolTests(SynchronousTestCase):
    """The protocol label: websocket, sse or http."""

    def test_table(self) -> None:
        """Upgrade and Accept decide the protocol."""
        cases = [
            (None, [], "http"),
            (b"websocket", [], "websocket"),
            (b"WebSocket ", [], "websocket"),
            (b"h2c", [], "http"),
            (None, [(b"Accept", b"text/event-stream")], "sse"),
            (None, [(b"accept", b"text/html, text/event-stream")], "sse"),
            (None, [(b"Accept", b"text/html")], "http"),
            (b"websocket", [(b"Accept", b"text/event-stream")], "websocket"),
        ]
        for upgrade, headers, protocol in cases:
            self.assertEqual(request_protocol(upgrade, headers), protocol, (upgrade, headers))
