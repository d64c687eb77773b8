"""twistd/twist plugin: `twistd -n --pidfile= tsproxy -c conf/` and `twist tsproxy -c conf/`.

This directory must never hold an __init__.py: Twisted finds plugins by scanning it.
"""

from __future__ import annotations

from twisted.application.service import ServiceMaker

tsproxy = ServiceMaker(
    "tsproxy",
    "tsproxy.tap",
    "A reverse proxy that reads Traefik's Kubernetes-style configuration.",
    "tsproxy",
)
