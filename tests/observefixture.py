"""Exchange records for the observability tests, with every field set to a plain value."""

from __future__ import annotations

from typing import Any

from tsproxy.observe.record import Exchange

#: 2009-11-10 23:00:00 UTC, the date of Traefik's own formatter tests.
START = 1257894000.0


def exchange(**changes: Any) -> Exchange:
    """A 200 GET through the seed's weighted route, with ``changes`` applied."""
    values: dict = dict(
        entrypoint="web",
        router="default-app-wrr-846b2c19626676e0a8ba",
        services=("default-app-wrr", "default-app-v1-80"),
        server_url="http://10.0.0.2:8080",
        method=b"GET",
        target=b"/foo?x=1",
        version=b"HTTP/1.1",
        headers=[
            (b"Host", b"traefikservice-wrr.kubesre.lc"),
            (b"User-Agent", b"agent"),
            (b"Referer", b"referer"),
        ],
        upgrade=None,
        status=200,
        origin_status=200,
        request_bytes=0,
        response_bytes=13,
        start=START,
        duration=0.25,
        origin_duration=0.2,
        client_ip="10.0.0.1",
        client_port=51234,
        trusted=False,
        tls=False,
        response_headers=[(b"Content-Type", b"text/plain"), (b"Content-Length", b"13")],
    )
    values.update(changes)
    return Exchange(**values)
