"""What the etcd and Redis watchers share: a session loop that lists the tree, hands every
new version of it over, watches until the connection is lost, and starts again after a
backoff, while the proxy keeps serving the last configuration it applied.

The store-specific part is ``session``: list, report, watch; it returns (or fails) when the
connection is gone. A session that listed resets the backoff.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from twisted.internet import defer, task

from tsproxy.config.providers import KVProviderConfig
from tsproxy.logs import get_logger

__all__ = ["Backoff", "KVWatcher", "Pairs", "client_tls_creator"]

log = get_logger(__name__)

Pairs = Dict[str, str]


class Backoff:
    """Delays between reconnection attempts: ``first``, doubling up to ``most``."""

    def __init__(self, first: float = 0.1, most: float = 5.0) -> None:
        self.first = first
        self.most = most
        self.next = first

    def delay(self) -> float:
        delay, self.next = self.next, min(self.next * 2, self.most)
        return delay

    def reset(self) -> None:
        self.next = self.first


class KVWatcher:
    """Keeps ``on_change(provider, pairs)`` told of the key tree under the root key.

    ``pairs`` is the whole tree each time (keys under the root, values as text); it is told
    only when it differs from the last one told."""

    provider = ""

    def __init__(
        self,
        config: KVProviderConfig,
        reactor: Any,
        on_change: Callable[[str, Pairs], None],
        base_dir: str = "",
        backoff: Optional[Backoff] = None,
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.on_change = on_change
        self.base_dir = base_dir
        self.backoff = backoff if backoff is not None else Backoff()
        self.running = False
        self.pairs: Optional[Pairs] = None
        self.connected = False
        self._endpoint = 0
        self._loop: Optional[defer.Deferred[None]] = None
        self._sleep: Optional[defer.Deferred[None]] = None

    @property
    def prefix(self) -> str:
        return self.config.root_key + "/"

    def endpoint(self) -> str:
        """The endpoint to try next (they are tried in turn after each failure)."""
        return self.config.endpoints[self._endpoint % len(self.config.endpoints)]

    def start(self) -> None:
        self.running = True
        self._loop = self._run()

    def stop(self) -> defer.Deferred[None]:
        """Stop watching; fires when the session has ended."""
        self.running = False
        if self._sleep is not None and not self._sleep.called:
            self._sleep.cancel()
        self.close()
        loop = self._loop if self._loop is not None else defer.succeed(None)
        return loop

    def close(self) -> None:
        """Drop the store connections (the session then ends)."""
        raise NotImplementedError

    def session(self) -> defer.Deferred[None]:
        """List (calling ``listed``), then watch until the connection is lost."""
        raise NotImplementedError

    def listed(self, pairs: Pairs) -> None:
        """A whole tree was read: tell it if it changed."""
        self.connected = True
        self.backoff.reset()
        if pairs != self.pairs:
            self.pairs = dict(pairs)
            self.on_change(self.provider, dict(pairs))

    @defer.inlineCallbacks
    def _run(self) -> Any:
        while self.running:
            try:
                yield self.session()
                problem = "connection closed"
            except Exception as exc:  # any failure of the store means: reconnect
                problem = str(exc) or type(exc).__name__
            self.close()
            if not self.running:
                break
            delay = self.backoff.delay()
            if self.connected:
                log.warn(
                    "{provider}: lost {endpoint} ({problem}): serving the last configuration,"
                    " retrying",
                    provider=self.provider,
                    endpoint=self.endpoint(),
                    problem=problem,
                )
            self.connected = False
            self._endpoint += 1
            self._sleep = task.deferLater(self.reactor, delay, lambda: None)
            try:
                yield self._sleep
            except defer.CancelledError:
                break
            finally:
                self._sleep = None


def client_tls_creator(config: KVProviderConfig, hostname: str, base_dir: str) -> Any:
    """The TLS connection creator for ``providers.<kind>.tls``: the ``ca`` (else the system's
    roots) verifies the server unless ``insecureSkipVerify``; ``cert``/``key`` are
    presented."""
    import os

    from twisted.internet import ssl

    tls = config.tls
    assert tls is not None

    def read(path: str) -> bytes:
        with open(os.path.join(base_dir, path), "rb") as stream:
            return stream.read()

    client = None
    if tls.cert:
        client = ssl.PrivateCertificate.loadPEM(read(tls.cert) + b"\n" + read(tls.key))
    if tls.insecure_skip_verify:
        from OpenSSL import SSL

        options = ssl.CertificateOptions(
            verify=False,
            privateKey=client.privateKey.original if client else None,
            certificate=client.original if client else None,
        )
        context = options.getContext()
        context.set_verify(SSL.VERIFY_NONE, lambda *args: True)
        return _Insecure(context)
    trust = ssl.Certificate.loadPEM(read(tls.ca)) if tls.ca else None
    return ssl.optionsForClientTLS(hostname, trustRoot=trust, clientCertificate=client)


class _Insecure:
    """A client connection creator that checks nothing (insecureSkipVerify)."""

    def __init__(self, context: Any) -> None:
        self.context = context

    def clientConnectionForTLS(self, protocol: Any) -> Any:
        from OpenSSL import SSL

        connection = SSL.Connection(self.context, None)
        connection.set_app_data(protocol)
        return connection


def _declare() -> None:
    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
    from zope.interface import classImplements

    classImplements(_Insecure, IOpenSSLClientConnectionCreator)


_declare()
