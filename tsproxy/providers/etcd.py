"""The etcd provider's watcher: etcd v3 through its HTTP/JSON gateway (``/v3/kv/range``,
``/v3/watch`` streamed), with treq.

A session authenticates (``username``/``password``: ``/v3/auth/authenticate``, the token in
``Authorization``), reads the prefix ``<rootKey>/`` with one range request, reports it, and
watches the prefix from the next revision, so no change between the two is lost. Every watch
message updates the tree and reports it; a compacted revision or a cancelled watch ends the
session (the next one lists again). Keys and values travel in base64, as the gateway wants.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Dict, List, Optional

import treq
from twisted.internet import defer, protocol
from twisted.web.client import Agent, HTTPConnectionPool

from tsproxy.providers.kvwatch import KVWatcher, Pairs, client_tls_creator

__all__ = ["EtcdError", "EtcdWatcher", "prefix_end"]


class EtcdError(Exception):
    """etcd answered something other than what was asked for."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _text(data: Optional[str]) -> str:
    return base64.b64decode(data or "").decode("utf-8", "replace")


def prefix_end(prefix: bytes) -> bytes:
    """etcd's ``range_end`` for every key starting with ``prefix``: the prefix with its last
    byte below 0xff incremented (the rest dropped)."""
    for index in range(len(prefix) - 1, -1, -1):
        if prefix[index] < 0xFF:
            return prefix[:index] + bytes([prefix[index] + 1])
    return b"\0"


class _Lines(protocol.Protocol):
    """The watch stream: one JSON message per line, each handed to ``on_message``."""

    def __init__(self, on_message: Any, done: defer.Deferred[None]) -> None:
        self.on_message = on_message
        self.done = done
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                try:
                    self.on_message(json.loads(line))
                except Exception as exc:
                    self.transport.stopProducing()  # type: ignore[union-attr]
                    if not self.done.called:
                        self.done.errback(exc)
                    return

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(None)


class EtcdWatcher(KVWatcher):
    provider = "etcd"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool: Optional[HTTPConnectionPool] = None
        self._stream: Optional[_Lines] = None
        self._token = ""
        self._pending: List[defer.Deferred[Any]] = []

    def _url(self, path: str) -> str:
        scheme = "https" if self.config.tls is not None else "http"
        return f"{scheme}://{self.endpoint()}{path}"

    def _client(self) -> Any:
        self._pool = HTTPConnectionPool(self.reactor, persistent=False)
        if self.config.tls is not None:
            host = self.endpoint().rpartition(":")[0]
            creator = client_tls_creator(self.config, host.strip("[]"), self.base_dir)
            policy = _Policy(creator)
            agent = Agent(self.reactor, contextFactory=policy, pool=self._pool)
        else:
            agent = Agent(self.reactor, pool=self._pool)
        return treq.client.HTTPClient(agent)

    def _request(self, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """``d``, cancelled by ``close`` while it has not fired."""
        self._pending.append(d)

        def forget(result: Any) -> Any:
            if d in self._pending:
                self._pending.remove(d)
            return result

        return d.addBoth(forget)

    def close(self) -> None:
        pending, self._pending = self._pending, []
        for d in pending:
            d.cancel()
        stream, self._stream = self._stream, None
        if stream is not None and stream.transport is not None:
            stream.transport.stopProducing()  # type: ignore[attr-defined]
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.closeCachedConnections()

    @defer.inlineCallbacks
    def _post(self, client: Any, path: str, body: Dict[str, Any]) -> Any:
        headers = {"Authorization": [self._token]} if self._token else {}
        response = yield self._request(
            client.post(self._url(path), json=body, headers=headers, timeout=10)
        )
        data = yield self._request(response.json())
        if response.code != 200:
            raise EtcdError(f"{path}: HTTP {response.code}: {data.get('message', data)}")
        return data

    @defer.inlineCallbacks
    def session(self) -> Any:
        client = self._client()
        self._token = ""
        if self.config.username:
            answer = yield self._post(
                client,
                "/v3/auth/authenticate",
                {"name": self.config.username, "password": self.config.password},
            )
            self._token = answer.get("token", "")
        prefix = self.prefix.encode()
        key, end = _b64(prefix), _b64(prefix_end(prefix))
        answer = yield self._post(client, "/v3/kv/range", {"key": key, "range_end": end})
        revision = int(answer.get("header", {}).get("revision", 0))
        pairs = {_text(kv["key"]): _text(kv.get("value")) for kv in answer.get("kvs", [])}
        self.listed(pairs)
        if not self.running:
            return
        request = {"create_request": {"key": key, "range_end": end, "start_revision": revision + 1}}
        headers = {"Authorization": [self._token]} if self._token else {}
        response = yield self._request(
            client.post(self._url("/v3/watch"), json=request, headers=headers, unbuffered=True)
        )
        if response.code != 200:
            raise EtcdError(f"/v3/watch: HTTP {response.code}")
        done: defer.Deferred[None] = defer.Deferred()
        self._stream = _Lines(lambda message: self._message(message, pairs), done)
        response.deliverBody(self._stream)
        yield done

    def _message(self, message: Dict[str, Any], pairs: Pairs) -> None:
        if "error" in message:
            raise EtcdError(f"watch: {message['error'].get('message', message['error'])}")
        result = message.get("result", {})
        if result.get("canceled") or int(result.get("compact_revision", 0) or 0):
            raise EtcdError(f"watch cancelled: {result.get('cancel_reason', 'compacted')}")
        events: List[Dict[str, Any]] = result.get("events", [])
        if not events:
            return
        for event in events:
            kv = event.get("kv", {})
            key = _text(kv.get("key"))
            if event.get("type") == "DELETE":
                pairs.pop(key, None)
            else:
                pairs[key] = _text(kv.get("value"))
        self.listed(pairs)


class _Policy:
    """An IPolicyForHTTPS giving the configured TLS creator for the etcd endpoints."""

    def __init__(self, creator: Any) -> None:
        self.creator = creator

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return self.creator


def _declare() -> None:
    from twisted.web.iweb import IPolicyForHTTPS
    from zope.interface import classImplements

    classImplements(_Policy, IPolicyForHTTPS)


_declare()
