"""Listening sockets that several worker processes share (SO_REUSEPORT), adopted by a reactor.

Each worker binds its own socket to the entrypoint's address with SO_REUSEPORT; Linux then
spreads new TCP connections, and UDP datagrams by their 4-tuple, over the sockets of the group.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.error import CannotListenError

__all__ = ["listen_tcp_shared", "listen_udp_shared", "shared_socket"]


def shared_socket(host: str, port: int, kind: int) -> socket.socket:
    """A bound, non-blocking socket with SO_REUSEPORT (TCP: listening with backlog 1024);
    CannotListenError if the address is taken by a socket outside the group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if kind == socket.SOCK_STREAM:
            # As Twisted's listenTCP: a restarted worker rebinds despite TIME_WAIT sockets.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise CannotListenError(host, port, e) from None
    return sock


def listen_tcp_shared(reactor: Any, host: str, port: int, factory: Any) -> Any:
    """reactor.listenTCP(port, factory, interface=host), on a SO_REUSEPORT socket."""
    sock = shared_socket(host, port, socket.SOCK_STREAM)
    try:
        return reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
    finally:
        sock.close()  # the reactor holds its own duplicate


def listen_udp_shared(reactor: Any, host: str, port: int, protocol: Any, size: int) -> Any:
    """reactor.listenUDP(port, protocol, interface=host), on a SO_REUSEPORT socket."""
    sock = shared_socket(host, port, socket.SOCK_DGRAM)
    try:
        return reactor.adoptDatagramPort(sock.fileno(), sock.family, protocol, size)
    finally:
        sock.close()
