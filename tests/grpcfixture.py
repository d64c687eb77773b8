"""A grpcio echo server (service ``t.Echo``) for the gRPC tests, and the grpc codes the
proxy's metrics counted. Callers skip their tests when grpcio is absent (``grpc is None``,
PyPy has no grpcio wheel)."""

from __future__ import annotations

from concurrent import futures
from typing import Any, Iterator, List, Optional

from prometheus_client.parser import text_string_to_metric_families

try:
    import grpc
except ImportError:  # pragma: no cover - the test extra installs it
    grpc = None

#: The Service and Endpoints of the echo server ({port} to fill in), for a route's YAML.
GREETER = """\
---
apiVersion: v1
kind: Service
metadata:
  name: greeter
spec:
  ports:
    - name: grpc
      port: 80
---
apiVersion: v1
kind: Endpoints
metadata:
  name: greeter
subsets:
  - addresses:
      - ip: 127.0.0.1
    ports:
      - name: grpc
        port: {port}
"""


def _ident(b: bytes) -> bytes:
    return b


def _unary(request: bytes, context: Any) -> bytes:
    context.set_trailing_metadata((("x-trailer", "t1"),))
    return request[::-1]


def _fail(request: bytes, context: Any) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + request.decode())


def _chat(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
    for request in requests:
        yield b"re:" + request


def _late(request: bytes, context: Any) -> Iterator[bytes]:
    yield b"first"
    context.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")


def start_echo(test: Any, many_size: int = 20000, credentials: Optional[Any] = None) -> int:
    """Start the echo server (TLS with `credentials`), stopped at `test`'s cleanup; its port.

    Unary reverses its request with trailing metadata x-trailer: t1; Fail aborts NOT_FOUND;
    Chat answers each message "re:"-prefixed; Many streams int(request) messages of
    `many_size` bytes; Late sends one message then aborts PERMISSION_DENIED."""

    def many(request: bytes, context: Any) -> Iterator[bytes]:
        for i in range(int(request)):
            yield b"%d:" % i + b"x" * many_size

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary, _ident, _ident),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail, _ident, _ident),
        "Chat": grpc.stream_stream_rpc_method_handler(_chat, _ident, _ident),
        "Many": grpc.unary_stream_rpc_method_handler(many, _ident, _ident),
        "Late": grpc.unary_stream_rpc_method_handler(_late, _ident, _ident),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Echo", handlers),))
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    test.addCleanup(server.stop, None)
    return int(port)


def grpc_codes(service: Any) -> List[str]:
    """The `code` label of every gRPC sample of traefik_service_requests_total."""
    assert service is not None and service.metrics is not None
    _, body = service.metrics.exposition()
    codes = []
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "traefik_service_requests_total":
                if sample.labels.get("protocol") == "grpc":
                    codes.append(sample.labels["code"])
    return codes
