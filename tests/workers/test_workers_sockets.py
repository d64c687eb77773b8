"""Shared listening sockets: two workers bind one port with SO_REUSEPORT; a port held by a
socket outside the group is a CannotListenError, for TCP and UDP alike."""

from __future__ import annotations

import socket

from twisted.internet.error import CannotListenError
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.workers.sockets import shared_socket


class SharedSocketTests(SynchronousTestCase):
    def test_table(self) -> None:
        """Each row: the kind of socket; two shared ones bind one port, a third cannot when
        a plain socket holds another port."""
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with self.subTest(kind=kind):
                first = shared_socket("127.0.0.1", 0, kind)
                self.addCleanup(first.close)
                port = first.getsockname()[1]
                second = shared_socket("127.0.0.1", port, kind)
                self.addCleanup(second.close)
                self.assertEqual(second.getsockname(), ("127.0.0.1", port))
                self.assertFalse(second.getblocking())
                plain = socket.socket(socket.AF_INET, kind)
                self.addCleanup(plain.close)
                plain.bind(("127.0.0.1", 0))
                taken = plain.getsockname()[1]
                error = self.assertRaises(
                    CannotListenError, shared_socket, "127.0.0.1", taken, kind
                )
                self.assertEqual(error.port, taken)
