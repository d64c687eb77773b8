"""The Kubernetes API server as a provider's source: list, then watch, every kind a provider
reads, with treq.

Per kind (and per namespace when the provider's ``namespaces`` are set) a loop lists
(``GET /apis/<group>/<version>/<plural>``), remembers the list's ``resourceVersion``, and
watches from it (``?watch=1&resourceVersion=...&allowWatchBookmarks=true``, one JSON event
per line: ADDED, MODIFIED, DELETED, BOOKMARK, ERROR). A watch the server ends is resumed
from the last resourceVersion seen (bookmarks move it on); ``410 Gone`` (the version is too
old) lists again; a lost connection is retried with a backoff, the proxy serving the last
configuration meanwhile. The provider is told of the objects once every kind has listed,
and then on every change.

Connection: ``endpoint``, ``token`` and ``certAuthFilePath`` as Traefik reads them; without
an endpoint, inside a cluster (``KUBERNETES_SERVICE_HOST``), the service account's token and
CA from /var/run/secrets/kubernetes.io/serviceaccount/.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import quote, urlencode

import attrs
import treq
from twisted.internet import defer, protocol, task
from twisted.web.client import Agent, HTTPConnectionPool

from tsproxy.logs import get_logger
from tsproxy.providers.kubeobjects import config_map_references
from tsproxy.providers.kvwatch import Backoff

__all__ = [
    "CRD_KINDS",
    "INGRESS_KINDS",
    "KubeConnection",
    "KubeKind",
    "KubeWatcher",
    "SERVICE_ACCOUNT",
    "kube_connection",
]

log = get_logger(__name__)

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@attrs.frozen
class KubeKind:
    """A kind the API serves: ``group_version`` (``v1``, ``traefik.io/v1alpha1``)."""

    group_version: str
    kind: str
    plural: str
    #: A label selector the API server applies to the list and the watch ("" none).
    selector: str = ""

    def path(self, namespace: str) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if namespace:
            return f"{base}/namespaces/{quote(namespace)}/{self.plural}"
        return f"{base}/{self.plural}"


_TRAEFIK = "traefik.io/v1alpha1"
_NOT_HELM = "owner!=helm"
_CORE = (
    KubeKind("v1", "Service", "services"),
    KubeKind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    # Traefik's informer skips Helm's release Secrets (owner=helm): large, many, never TLS.
    KubeKind("v1", "Secret", "secrets", _NOT_HELM),
)
#: What the kubernetesCRD provider reads (ConfigMaps: for ServersTransport ``rootCAs``).
CRD_KINDS: Tuple[KubeKind, ...] = (
    tuple(
        KubeKind(_TRAEFIK, kind, kind.lower() + "s")
        for kind in (
            "IngressRoute",
            "IngressRouteTCP",
            "IngressRouteUDP",
            "Middleware",
            "MiddlewareTCP",
            "TraefikService",
            "ServersTransport",
            "ServersTransportTCP",
            "TLSOption",
            "TLSStore",
        )
    )
    + _CORE
    + (KubeKind("v1", "ConfigMap", "configmaps"),)
)
#: What the kubernetesIngress provider reads.
INGRESS_KINDS: Tuple[KubeKind, ...] = (
    KubeKind("networking.k8s.io/v1", "Ingress", "ingresses"),
    KubeKind("networking.k8s.io/v1", "IngressClass", "ingressclasses"),
) + _CORE
_CLUSTER_SCOPED = ("IngressClass",)


@attrs.frozen
class KubeConnection:
    """Where the API server is and how to authenticate."""

    endpoint: str
    token: str = ""
    ca_file: str = ""


def kube_connection(
    endpoint: str,
    token: str,
    ca_file: str,
    environ: Optional[Dict[str, str]] = None,
    account: str = SERVICE_ACCOUNT,
) -> Optional[KubeConnection]:
    """The API server to read, or None (the provider then reads the configuration
    directory): the ``endpoint`` given, else the in-cluster one (``KUBERNETES_SERVICE_HOST``
    and ``_PORT``) with the service account's token and CA when not given."""
    env = os.environ if environ is None else environ
    if not endpoint:
        host = env.get("KUBERNETES_SERVICE_HOST", "")
        if not host:
            return None
        port = env.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        endpoint = f"https://{host}:{port}"
        if not token and os.path.exists(os.path.join(account, "token")):
            with open(os.path.join(account, "token")) as stream:
                token = stream.read().strip()
        if not ca_file and os.path.exists(os.path.join(account, "ca.crt")):
            ca_file = os.path.join(account, "ca.crt")
    return KubeConnection(endpoint.rstrip("/"), token, ca_file)


Key = Tuple[str, str, str]  # kind, namespace, name


class _Lines(protocol.Protocol):
    def __init__(self, on_line: Callable[[Any], None], done: defer.Deferred[None]) -> None:
        self.on_line = on_line
        self.done = done
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                self.on_line(json.loads(line))
            except Exception as exc:
                if self.transport is not None:
                    self.transport.stopProducing()  # type: ignore[attr-defined]
                if not self.done.called:
                    self.done.errback(exc)
                return

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(None)

    def abort(self) -> None:
        """Drop the watch's connection (the stream then ends)."""
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]
        if not self.done.called:
            self.done.callback(None)


class _Gone(Exception):
    """410: the resourceVersion is too old; list again."""


class KubeWatcher:
    """Keeps ``on_change(provider, objects)`` told of every object of ``kinds``; objects are
    the API's JSON (with ``apiVersion`` and ``kind`` set), sorted by kind, namespace, name."""

    def __init__(
        self,
        provider: str,
        connection: KubeConnection,
        kinds: Tuple[KubeKind, ...],
        namespaces: Tuple[str, ...],
        reactor: Any,
        on_change: Callable[[str, List[Dict[str, Any]]], None],
    ) -> None:
        self.provider = provider
        self.connection = connection
        self.kinds = kinds
        self.namespaces = namespaces or ("",)
        self.reactor = reactor
        self.on_change = on_change
        self.objects: Dict[Key, Dict[str, Any]] = {}
        self.listed: set = set()
        self.running = False
        self.backoff_first = 0.1
        self.backoff_most = 5.0
        self._loops: List[defer.Deferred[None]] = []
        self._pending: List[defer.Deferred[Any]] = []
        self._streams: List[_Lines] = []
        self._sleeps: List[defer.Deferred[None]] = []
        self._pool = HTTPConnectionPool(reactor, persistent=False)
        self._client = self._make_client()

    def _make_client(self) -> Any:
        if self.connection.endpoint.startswith("https://"):
            from twisted.internet import ssl

            from tsproxy.providers.etcd import _Policy

            host = self.connection.endpoint.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
            trust = None
            if self.connection.ca_file:
                with open(self.connection.ca_file, "rb") as stream:
                    trust = ssl.Certificate.loadPEM(stream.read())
            creator = ssl.optionsForClientTLS(host, trustRoot=trust)
            return treq.client.HTTPClient(
                Agent(self.reactor, contextFactory=_Policy(creator), pool=self._pool)
            )
        return treq.client.HTTPClient(Agent(self.reactor, pool=self._pool))

    def start(self) -> None:
        self.running = True
        for kind in self.kinds:
            scopes = ("",) if kind.kind in _CLUSTER_SCOPED else self.namespaces
            for namespace in scopes:
                self._loops.append(self._run(kind, namespace))

    def stop(self) -> defer.Deferred[Any]:
        self.running = False
        for stream in list(self._streams):
            stream.abort()
        for d in list(self._pending) + list(self._sleeps):
            if not d.called:
                d.cancel()
        self._pool.closeCachedConnections()
        return defer.DeferredList(self._loops)

    def _headers(self) -> Dict[str, List[str]]:
        headers = {"Accept": ["application/json"]}
        if self.connection.token:
            headers["Authorization"] = [f"Bearer {self.connection.token}"]
        return headers

    def _tracked(self, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
        self._pending.append(d)

        def forget(result: Any) -> Any:
            if d in self._pending:
                self._pending.remove(d)
            return result

        return d.addBoth(forget)

    def _notify(self, changed: Optional[Key] = None) -> None:
        """Tell the provider, once every kind has listed. ConfigMaps are all kept (as
        Traefik's informers keep them) but only those a ServersTransport names are passed
        on, and a change of another one (leader-election maps, ...) rebuilds nothing."""
        wanted = sum(1 if k.kind in _CLUSTER_SCOPED else len(self.namespaces) for k in self.kinds)
        if len(self.listed) < wanted:
            return
        used = config_map_references(self.objects.values())

        def passed(key: Key) -> bool:
            return key[0] != "ConfigMap" or (key[1] or "default", key[2]) in used

        if changed is not None and not passed(changed):
            return
        objects = [self.objects[key] for key in sorted(self.objects) if passed(key)]
        self.on_change(self.provider, objects)

    def _set(self, kind: KubeKind, item: Dict[str, Any]) -> Key:
        item = dict(item)
        item.setdefault("apiVersion", kind.group_version)
        item.setdefault("kind", kind.kind)
        meta = item.get("metadata") or {}
        key = (kind.kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
        if kind.selector == _NOT_HELM and (meta.get("labels") or {}).get("owner") == "helm":
            # Also when a server ignored the selector, or a Secret became Helm's.
            self.objects.pop(key, None)
        else:
            self.objects[key] = item
        return key

    @defer.inlineCallbacks
    def _list(self, kind: KubeKind, namespace: str) -> Any:
        url = self.connection.endpoint + kind.path(namespace)
        if kind.selector:
            url += "?" + urlencode({"labelSelector": kind.selector})
        response = yield self._tracked(self._client.get(url, headers=self._headers(), timeout=30))
        body = yield self._tracked(treq.content(response))
        if response.code != 200:
            raise RuntimeError(f"GET {kind.path(namespace)}: HTTP {response.code}")
        data = json.loads(body)
        for key in [
            k for k in self.objects if k[0] == kind.kind and (not namespace or k[1] == namespace)
        ]:
            del self.objects[key]
        for item in data.get("items") or []:
            self._set(kind, item)
        self.listed.add((kind.kind, namespace))
        self._notify()
        return str((data.get("metadata") or {}).get("resourceVersion", ""))

    @defer.inlineCallbacks
    def _watch(self, kind: KubeKind, namespace: str, version: str) -> Any:
        """Watch from ``version``; the last version seen when the server ends the watch."""
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true"}
        if kind.selector:
            params["labelSelector"] = kind.selector
        query = urlencode(params)
        url = f"{self.connection.endpoint}{kind.path(namespace)}?{query}"
        response = yield self._tracked(
            self._client.get(url, headers=self._headers(), unbuffered=True)
        )
        if response.code == 410:
            raise _Gone()
        if response.code != 200:
            raise RuntimeError(f"watch {kind.path(namespace)}: HTTP {response.code}")
        seen = [version]

        def event(message: Dict[str, Any]) -> None:
            kind_of = message.get("type")
            item = message.get("object") or {}
            if kind_of == "ERROR":
                if item.get("code") == 410:
                    raise _Gone()
                raise RuntimeError(f"watch {kind.path(namespace)}: {item.get('message', item)}")
            meta = item.get("metadata") or {}
            if meta.get("resourceVersion"):
                seen[0] = str(meta["resourceVersion"])
            if kind_of == "BOOKMARK":
                return
            if kind_of == "DELETED":
                key = (kind.kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
                self.objects.pop(key, None)
            elif kind_of in ("ADDED", "MODIFIED"):
                key = self._set(kind, item)
            else:
                return
            self._notify(key)

        done: defer.Deferred[None] = defer.Deferred()
        stream = _Lines(event, done)
        self._streams.append(stream)
        response.deliverBody(stream)
        if not self.running:
            stream.abort()  # stopped while the watch was being answered
        try:
            yield done
        finally:
            self._streams.remove(stream)
        return seen[0]

    @defer.inlineCallbacks
    def _run(self, kind: KubeKind, namespace: str) -> Any:
        backoff = Backoff(self.backoff_first, self.backoff_most)
        version: Optional[str] = None
        while self.running:
            try:
                if version is None:
                    version = yield self._list(kind, namespace)
                backoff.reset()
                started = self.reactor.seconds()
                version = yield self._watch(kind, namespace, version)
                if self.reactor.seconds() - started >= 1.0:
                    continue  # the server ended the watch: resume from where it got
                # A watch ended at once: resume after a pause, not in a tight loop.
            except _Gone:
                version = None
                continue
            except Exception as exc:
                if not self.running:
                    break
                log.warn(
                    "{provider}: {path}: {error}: serving the last configuration, retrying",
                    provider=self.provider,
                    path=kind.path(namespace),
                    error=str(exc) or type(exc).__name__,
                )
                version = None
            sleep = task.deferLater(self.reactor, backoff.delay(), lambda: None)
            self._sleeps.append(sleep)
            try:
                yield sleep
            except defer.CancelledError:
                break
            finally:
                self._sleeps.remove(sleep)
