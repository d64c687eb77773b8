"""gRPC check of one http_bench.py row: unary calls with a real gRPC client (grpcio).

Run by http_bench.py with the tsproxy interpreter (grpcio is in tsproxy's test extra):
`python bench/grpc_split.py PORT AUTHORITY [--calls N] [--wait S]`.  It calls
/helloworld.Greeter/SayHello on 127.0.0.1:PORT over h2c with :authority AUTHORITY, first
until one call succeeds (at most --wait seconds: the proxy may still be starting), then N
times on one channel, and prints one JSON line: {"v1": n, "v2": n, "other": n, "errors": [..]}.
A call counts as v1 or v2 only when its status is OK (grpc-status 0 in the trailers) and its
reply is the backend's HelloReply "Hello app-v1" or "Hello app-v2".  Exit status 0 when the
counts were taken, 1 when no call succeeded in time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Dict, List, Union

from peers import GRPC_METHOD, GRPC_REQUEST_MESSAGE, LOOPBACK, grpc_reply_message

REPLIES = {grpc_reply_message(f"Hello app-{v}\n"): v for v in ("v1", "v2")}


def main(argv: Union[List[str], None] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("port", type=int)
    p.add_argument("authority")
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("--wait", type=float, default=15.0)
    args = p.parse_args(argv)
    import grpc  # here, so that --help works without grpcio

    channel = grpc.insecure_channel(
        f"{LOOPBACK}:{args.port}", options=[("grpc.default_authority", args.authority)]
    )
    call = channel.unary_unary(GRPC_METHOD)
    counts: Dict[str, int] = {"v1": 0, "v2": 0, "other": 0}
    errors: List[str] = []
    deadline = time.monotonic() + min(args.wait, 60.0)
    try:
        while True:
            try:
                call(GRPC_REQUEST_MESSAGE, timeout=2.0)
                break
            except grpc.RpcError as exc:
                if time.monotonic() >= deadline:
                    print(json.dumps({"ready": False, "errors": [_describe(exc)]}))
                    return 1
                time.sleep(0.2)
        for _ in range(min(args.calls, 1000)):
            try:
                reply = call(GRPC_REQUEST_MESSAGE, timeout=3.0)
            except grpc.RpcError as exc:
                errors.append(_describe(exc))
                counts["other"] += 1
                continue
            key = REPLIES.get(reply, "other")
            counts[key] += 1
            if key == "other":
                errors.append(f"unexpected reply {reply!r}")
    finally:
        channel.close()
    print(json.dumps({**counts, "errors": errors[:5]}))
    return 0


def _describe(exc: object) -> str:
    code, details = getattr(exc, "code", None), getattr(exc, "details", None)
    if callable(code) and callable(details):
        return f"{code()}: {details()}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
