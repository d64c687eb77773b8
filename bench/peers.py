"""Configuration of the peers http_bench.py measures tsproxy against, and of its backend.

Each writer returns the text of one configuration file: the nginx backend (two servers
answering "Hello app-v1" / "Hello app-v2", and with ``grpc`` two h2c servers answering a
gRPC unary call), and the proxies routing to them by weighted round-robin 1:2: HAProxy
(nbthread 1), nginx (1 worker, upstream keepalive 64) and Caddy (its Caddyfile; GOMAXPROCS=1
is set by the command line).  Each proxy speaks HTTP/1.1 to its clients, or h2c with prior
knowledge with ``h2``, or gRPC (h2c on both sides) with ``grpc``.  Python 3 standard library
only; everything listens on 127.0.0.1.
"""

from __future__ import annotations

import struct
from typing import Optional, Tuple

LOOPBACK = "127.0.0.1"
#: The unary method the gRPC rows call, and its request: helloworld.HelloRequest(name="bench").
GRPC_METHOD = "/helloworld.Greeter/SayHello"
GRPC_REQUEST_MESSAGE = b"\x0a\x05bench"


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message, uncompressed (flag 0, 4-byte big-endian length)."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def grpc_reply_message(text: str) -> bytes:
    """helloworld.HelloReply(message=text) as protobuf: field 1, length-delimited."""
    data = text.encode("utf-8")
    if len(data) > 127:
        raise ValueError("reply text too long for a one-byte length")
    return b"\x0a" + bytes([len(data)]) + data


def nginx_backend_conf(
    v1_port: int, v2_port: int, grpc: Optional[Tuple[int, int, str]] = None
) -> str:
    """The backend; ``grpc`` = (v1 port, v2 port, directory holding v1/reply and v2/reply)
    adds two h2c servers answering any POST with that file (a gRPC length-prefixed
    HelloReply), content-type application/grpc and the trailer grpc-status 0: a gRPC unary
    server in C, so that the backend is not what limits the gRPC rows. nginx's static module
    refuses POST (405), which `error_page 405 =200` turns into the file. The empty `mirror`
    makes nginx read the whole request body before it answers: a server answering before the
    body ends makes nginx's grpc_pass fail the call ("upstream sent frame for unknown
    stream"). `ssi` (the file holds no SSI command, it passes unchanged) drops the
    content-length and last-modified headers, which gRPC servers do not send."""
    grpc_servers = ""
    if grpc is not None:
        g1, g2, root = grpc
        for port, name in ((g1, "v1"), (g2, "v2")):
            grpc_servers += f"""
    server {{
        listen {LOOPBACK}:{port} backlog=4096 http2;
        root {root}/{name};
        location / {{
            mirror /read-body;
            default_type application/grpc;
            etag off;
            ssi on;
            ssi_types application/grpc;
            add_trailer grpc-status 0 always;
            error_page 405 =200 /reply;
            rewrite ^ /reply break;
        }}
        location = /read-body {{
            internal;
            return 204;
        }}
    }}"""
    return f"""# Tiny fixed backend (not under test), as shared/bench-anchors/nginx-backend.conf.
user root;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/plain;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    server {{
        listen {LOOPBACK}:{v1_port} backlog=4096;
        location / {{ return 200 "Hello app-v1\\n"; }}
    }}
    server {{
        listen {LOOPBACK}:{v2_port} backlog=4096;
        location / {{ return 200 "Hello app-v2\\n"; }}
    }}{grpc_servers}
}}
"""


def nginx_proxy_conf(
    port: int, v1_port: int, v2_port: int, h2: bool = False, grpc: bool = False
) -> str:
    # keepalive 64 >= the client concurrency: with 32 nginx reopens backend connections (-27 %).
    if grpc:
        location = "grpc_pass grpc://app;"
    else:
        location = """proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;"""
    return f"""# nginx peer, the anchors' tuned row: 1 worker, upstream keepalive 64, weights 1:2.
user root;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    upstream app {{
        server {LOOPBACK}:{v1_port} weight=1;
        server {LOOPBACK}:{v2_port} weight=2;
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen {LOOPBACK}:{port} backlog=4096{" http2" if h2 or grpc else ""};
        location / {{
            {location}
        }}
    }}
}}
"""


def haproxy_conf(
    port: int, v1_port: int, v2_port: int, h2: bool = False, grpc: bool = False
) -> str:
    # maxconn 4000: 20000 fails against this machine's `ulimit -n` of 20000.
    server_proto = " proto h2" if grpc else ""
    return f"""# HAProxy peer, as shared/bench-anchors/haproxy.cfg: one thread, roundrobin 1:2.
global
    nbthread 1
    maxconn 4000

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client  30s
    timeout server  30s

frontend http_in
    bind {LOOPBACK}:{port}{" proto h2" if h2 or grpc else ""}
    default_backend app

backend app
    balance roundrobin
    http-reuse always
    server v1 {LOOPBACK}:{v1_port} weight 1{server_proto}
    server v2 {LOOPBACK}:{v2_port} weight 2{server_proto}
"""


def caddy_conf(
    port: int, v1_port: int, v2_port: int, host: str, h2: bool = False, grpc: bool = False
) -> str:
    """A Caddyfile: `reverse_proxy` with `lb_policy weighted_round_robin 1 2` (Caddy 2.8+),
    upstream keep-alive with at least as many idle connections per backend as the load's
    concurrency, no admin endpoint, no automatic HTTPS, no access log (Caddy logs requests
    only with a `log` directive in the site), errors only. The site answers Host `host` on
    127.0.0.1:port; ``h2`` or ``grpc`` add h2c with prior knowledge to its protocols, and
    ``grpc`` talks h2c to the backends too."""
    protocols = "h1 h2c" if h2 or grpc else "h1"
    versions = "\n\t\t\tversions h2c" if grpc else ""
    return f"""# Caddy peer: weighted round robin 1:2, GOMAXPROCS=1 from the command line.
{{
\tadmin off
\tpersist_config off
\tauto_https off
\tlog default {{
\t\tlevel ERROR
\t}}
\tservers {{
\t\tprotocols {protocols}
\t}}
}}

http://{host}:{port} {{
\tbind {LOOPBACK}
\treverse_proxy {LOOPBACK}:{v1_port} {LOOPBACK}:{v2_port} {{
\t\tlb_policy weighted_round_robin 1 2
\t\ttransport http {{{versions}
\t\t\tkeepalive 65s
\t\t\tkeepalive_idle_conns 256
\t\t\tkeepalive_idle_conns_per_host 128
\t\t}}
\t}}
}}
"""
