"""Label values derived from a request: method normalisation and protocol."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.observe.record import grpc_code, method_label, request_protocol


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
    """The protocol label: Traefik's getRequestProtocol, predicate for predicate."""

    def test_table(self) -> None:
        """Connection/Upgrade tokens, the first Accept, then the Content-Type prefix decide."""
        ws = [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]
        cases = [
            ([], "http"),
            (ws, "websocket"),
            ([(b"connection", b"keep-alive, UPGRADE"), (b"upgrade", b" WebSocket ")], "websocket"),
            ([(b"Connection", b"Upgrade"), (b"Upgrade", b"h2c, websocket")], "websocket"),
            # Go's ToLower folds the Kelvin sign to k.
            ([(b"Connection", b"upgrade"), (b"Upgrade", "websoc\u212aet".encode())], "websocket"),
            # Upgrade alone, or Connection without the upgrade token, is not a WebSocket.
            ([(b"Upgrade", b"websocket")], "http"),
            ([(b"Connection", b"keep-alive"), (b"Upgrade", b"websocket")], "http"),
            ([(b"Connection", b"upgraded"), (b"Upgrade", b"websocket")], "http"),
            ([(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket/13")], "http"),
            # Only the first Connection header counts (Header.Get).
            ([(b"Connection", b"close"), (b"Connection", b"upgrade"), ws[1]], "http"),
            ([(b"Accept", b"text/event-stream")], "sse"),
            ([(b"accept", b"text/html, Text/Event-Stream ")], "sse"),
            ([(b"Accept", b"\xa0text/event-stream")], "http"),  # a byte, not U+00A0
            ([(b"Accept", "\u00a0text/event-stream".encode())], "sse"),  # TrimSpace takes it
            ([(b"Accept", b"text/event-stream;q=0.9")], "http"),
            ([(b"Accept", b"text/event-streams")], "http"),
            ([(b"Accept", b"text/html"), (b"Accept", b"text/event-stream")], "http"),
            ([(b"Accept", b"text/html")], "http"),
            (ws + [(b"Accept", b"text/event-stream")], "websocket"),
            ([(b"Content-Type", b"application/grpc")], "grpc"),
            ([(b"content-type", b"application/grpc+proto")], "grpc"),
            ([(b"Content-Type", b"application/grpc-web+proto")], "grpc-web"),
            ([(b"Content-Type", b"application/grpc-web-text")], "grpc-web"),
            ([(b"Content-Type", b"Application/gRPC")], "http"),  # a case-sensitive prefix
            (
                [(b"Content-Type", b"application/json"), (b"Content-Type", b"application/grpc")],
                "http",
            ),
            ([(b"Accept", b"text/event-stream"), (b"Content-Type", b"application/grpc")], "sse"),
            (ws + [(b"Content-Type", b"application/grpc-web")], "websocket"),
        ]
        for headers, protocol in cases:
            self.assertEqual(request_protocol(headers), protocol, headers)


class GRPCCodeTests(SynchronousTestCase):
    """The code label of gRPC exchanges: Grpc-Status as grpc-go's Code.UnmarshalJSON reads
    it, Unknown (2) otherwise."""

    def test_table(self) -> None:
        cases = [
            ([], "2"),
            ([(b"Content-Type", b"application/grpc")], "2"),
            ([(b"Grpc-Status", b"0")], "0"),
            ([(b"grpc-status", b"14")], "14"),
            ([(b"GRPC-STATUS", b"16")], "16"),
            ([(b"Grpc-Status", b"17")], "2"),
            ([(b"Grpc-Status", b"007")], "7"),
            ([(b"Grpc-Status", b"000")], "0"),
            ([(b"Grpc-Status", b"99999999999999999999")], "2"),
            ([(b"Grpc-Status", b"1" * 5000)], "2"),
            ([(b"Grpc-Status", b"-1")], "2"),
            ([(b"Grpc-Status", b"+1")], "2"),
            ([(b"Grpc-Status", b"1_0")], "2"),
            ([(b"Grpc-Status", b"")], "2"),
            ([(b"Grpc-Status", b"null")], "2"),
            ([(b"Grpc-Status", b"abc")], "2"),
            ([(b"Grpc-Status", b'"NOT_FOUND"')], "5"),
            ([(b"Grpc-Status", b'"CANCELLED"')], "1"),
            ([(b"Grpc-Status", b"NOT_FOUND")], "2"),
            ([(b"Grpc-Status", "\u0661".encode())], "2"),  # not an ASCII digit
            ([(b"Grpc-Status", b"5"), (b"Grpc-Status", b"0")], "5"),
            ([(b"Grpc-Status", b""), (b"Grpc-Status", b"0")], "2"),
        ]
        for headers, code in cases:
            self.assertEqual(grpc_code(headers), code, headers)
