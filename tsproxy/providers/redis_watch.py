"""The Redis provider's watcher, with txredisapi (Twisted-native).

A session opens two connections (AUTH with ``username``/``password``, SELECT ``db``): one
for commands, one subscribed to the keyspace notifications of the keys under the root key
(``PSUBSCRIBE __keyspace@<db>__:<rootKey>/*``). It turns the notifications on with ``CONFIG
SET notify-keyspace-events KEA``, as Traefik does; where CONFIG is not allowed (a managed
Redis), it says so once and relies on the periodic resync (every ``resync`` seconds) alone,
so the server's own setting must include ``K`` and ``A`` (or ``g$``) for changes to apply at
once. The tree is read with SCAN (MATCH ``<rootKey>/*``) and MGET; every notification
re-reads it (notifications arriving during a read make one more read after it), as
Traefik's watch does.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import txredisapi
from twisted.internet import defer, endpoints, protocol

from tsproxy.logs import get_logger
from tsproxy.providers.kvwatch import KVWatcher, client_tls_creator

__all__ = ["RedisWatcher"]

log = get_logger(__name__)

#: Seconds between two full reads when no notification came (the net under notifications
#: lost or disabled).
RESYNC = 10.0


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class _Commands(txredisapi.RedisProtocol):
    pass


class _Subscriber(txredisapi.SubscriberProtocol):
    watcher: Any = None

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.watcher.notified()


class _Factory(protocol.Factory):
    """Builds one txredisapi protocol; what its connectionMade needs of a factory."""

    isLazy = False

    def __init__(self, build: Any) -> None:
        self.build = build
        self.error: Optional[str] = None

    def buildProtocol(self, addr: Any) -> Any:
        made = self.build()
        made.factory = self
        return made

    def stopTrying(self) -> None:
        pass

    def connectionError(self, message: str) -> None:
        self.error = message


class RedisWatcher(KVWatcher):
    provider = "redis"
    resync = RESYNC

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: List[Any] = []
        self._reading = False
        self._again = False
        self._lost: Optional[defer.Deferred[None]] = None
        self._warned_config = False
        self._connecting: Optional[defer.Deferred[Any]] = None
        self._timer: Any = None

    def close(self) -> None:
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.called:
            connecting.cancel()
        connections, self._connections = self._connections, []
        for connection in connections:
            if connection.transport is not None:
                connection.transport.abortConnection()

    @defer.inlineCallbacks
    def _connect(self, kind: Any, dbid: Optional[int]) -> Any:
        host, _, port = self.endpoint().rpartition(":")
        host = host.strip("[]")
        endpoint: Any = endpoints.HostnameEndpoint(self.reactor, host, int(port), timeout=5)
        if self.config.tls is not None:
            creator = client_tls_creator(self.config, host, self.base_dir)
            endpoint = endpoints.wrapClientTLS(creator, endpoint)
        password = self.config.password or None
        username = self.config.username or None

        def build() -> Any:
            return kind(
                password=password,
                dbid=dbid,
                username=username,
                replyTimeout=10,
                convertNumbers=False,
            )

        factory = _Factory(build)
        connecting = endpoint.connect(factory)
        self._connecting = connecting
        made = yield connecting
        self._connecting = None
        self._connections.append(made)
        lost = made.whenDisconnected()
        ready = made.whenConnected()
        first = yield defer.DeferredList([ready, lost], fireOnOneCallback=True)
        if first[1] == 1 or not made.connected:
            raise ConnectionError(factory.error or "connection closed during AUTH/SELECT")
        lost.addBoth(self._connection_lost)
        return made

    def _connection_lost(self, ignored: Any) -> None:
        if self._lost is not None and not self._lost.called:
            self._lost.callback(None)

    @defer.inlineCallbacks
    def session(self) -> Any:
        self._lost = defer.Deferred()
        lost = self._lost
        commands = yield self._connect(_Commands, self.config.db)
        self.commands = commands
        try:
            yield commands.execute_command("CONFIG", "SET", "notify-keyspace-events", "KEA")
        except txredisapi.ResponseError as exc:
            if not self._warned_config:
                self._warned_config = True
                log.warn(
                    "redis: cannot turn keyspace notifications on ({error}): set"
                    " notify-keyspace-events to KEA on the server, or changes apply only at"
                    " the next resync ({seconds} s)",
                    error=str(exc),
                    seconds=self.resync,
                )
        subscriber = yield self._connect(_Subscriber, None)
        subscriber.watcher = self
        pattern = f"__keyspace@{self.config.db}__:{_glob_escape(self.prefix)}*"
        yield subscriber.psubscribe(pattern)
        yield self._read()
        timer = self.reactor.callLater(self.resync, self._resync)
        self._timer = timer
        try:
            yield lost
        finally:
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _resync(self) -> None:
        if not self.running:
            return
        self._timer = self.reactor.callLater(self.resync, self._resync)
        self.notified()

    def notified(self) -> None:
        """A key under the root changed (or a resync is due): read the tree again."""
        if self._reading:
            self._again = True
            return
        d = self._read()
        d.addErrback(lambda failure: self.close())

    @defer.inlineCallbacks
    def _read(self) -> Any:
        self._reading = True
        try:
            while True:
                self._again = False
                pairs = yield self._list()
                self.listed(pairs)
                if not self._again:
                    break
        finally:
            self._reading = False

    @defer.inlineCallbacks
    def _list(self) -> Any:
        commands = self.commands
        match = _glob_escape(self.prefix) + "*"
        keys: List[str] = []
        cursor: Any = 0
        while True:
            cursor, found = yield commands.scan(cursor, pattern=match, count=1000)
            keys.extend(k.decode() if isinstance(k, bytes) else k for k in found)
            if int(cursor) == 0:
                break
        pairs: Dict[str, str] = {}
        keys = sorted(set(keys))
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            values = yield commands.mget(chunk)
            for key, value in zip(chunk, values):
                if value is not None:
                    pairs[key] = value if isinstance(value, str) else str(value)
        return pairs
