#!/usr/bin/env python3
"""What the `h2` library alone costs per HTTP/2 request on the server side, in process.

No sockets, no proxying: a client `H2Connection` makes h2load-like GET requests (the same
header fields h2load sends, 10 streams at a time, as `h2load -m10`), and a server
`H2Connection` configured exactly as tsproxy's (tsproxy/http/h2server.py: no inbound or
outbound validation by h2, plain HPACK encoding) receives them and answers each with a
200, the header fields nginx sends and a 13-byte body. Only the server's calls are timed
(receive_data, send_headers, send_data, data_to_send), in CPU time: the floor any proxy
built on `h2` pays per request before it routes, balances or talks to a backend.

    .venv/bin/python bench/h2_library_cost.py              # this checkout's interpreter
    bench/.venv-pypy/bin/python bench/h2_library_cost.py   # PyPy (longer warm-up)

Compare with the bench's h2c rows (README): HAProxy's whole per-request CPU time and the
budget 0.3x HAProxy's throughput leaves on one core.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from h2.config import H2Configuration  # noqa: E402
from h2.connection import H2Connection  # noqa: E402
from h2.events import DataReceived, RequestReceived  # noqa: E402

from tsproxy.http.h2server import _plain_hpack, server_config  # noqa: E402

REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"bench.local"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"user-agent", b"h2load nghttp2/1.52.0"),
]
RESPONSE = [
    (b":status", b"200"),
    (b"server", b"nginx/1.22.1"),
    (b"date", b"Fri, 04 Dec 2026 09:59:01 GMT"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
]
BODY = b"Hello app-v1\n"


def server_connection() -> H2Connection:
    conn = H2Connection(server_config())
    _plain_hpack(conn)
    return conn


def run(requests: int, streams: int) -> float:
    """CPU seconds the server side spent for `requests` requests."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    server = server_connection()
    client.initiate_connection()
    server.initiate_connection()
    spent = 0.0
    to_server = client.data_to_send()
    to_client = server.data_to_send()
    client.receive_data(to_client)
    done = 0
    while done < requests:
        batch = min(streams, requests - done)
        for _ in range(batch):
            client.send_headers(client.get_next_available_stream_id(), REQUEST, end_stream=True)
        to_server += client.data_to_send()
        t0 = time.process_time()
        events = server.receive_data(to_server)
        for event in events:
            if isinstance(event, RequestReceived):
                server.send_headers(event.stream_id, RESPONSE)
                server.send_data(event.stream_id, BODY, end_stream=True)
        to_client = server.data_to_send()
        spent += time.process_time() - t0
        for event in client.receive_data(to_client):
            if isinstance(event, DataReceived):
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        to_server = client.data_to_send()  # WINDOW_UPDATEs, timed with the next batch
        done += batch
    return spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--streams", type=int, default=10, help="requests per read (h2load -m)")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    warm = 3 if platform.python_implementation() == "PyPy" else 1
    for _ in range(warm):
        run(args.requests, args.streams)  # warm-up (the JIT, on PyPy)
    costs = sorted(run(args.requests, args.streams) / args.requests for _ in range(args.rounds))
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    print(
        f"{impl}: h2 server side {costs[len(costs) // 2] * 1e6:.1f} us/request "
        f"(median of {args.rounds}; min {costs[0] * 1e6:.1f}, max {costs[-1] * 1e6:.1f})"
    )


if __name__ == "__main__":
    main()
