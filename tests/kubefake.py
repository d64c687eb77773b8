"""A small fake Kubernetes API server for the provider tests: list and watch over HTTP with
the API's JSON shapes (lists whose items carry no kind, ``metadata.resourceVersion``, watch
events one per line, BOOKMARK events, ``410 Gone`` as an ERROR event for a version older
than the history kept), bearer-token checks, ``403 Forbidden`` for the kinds RBAC denies. No real API server can run here.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Set, Tuple

from twisted.internet import reactor
from twisted.web import resource, server


class FakeAPI(resource.Resource):
    isLeaf = True

    def __init__(self, token: str = "") -> None:
        super().__init__()
        self.token = token
        self.version = 100
        #: plural -> (namespace, name) -> object (with kind and apiVersion)
        self.objects: Dict[str, Dict[Tuple[str, str], Dict[str, Any]]] = {}
        #: (version, plural, type, object) of every change, oldest first
        self.history: List[Tuple[int, str, str, Dict[str, Any]]] = []
        self.oldest = 0  # versions at or below this are gone (410)
        self.watches: List[Tuple[Any, str, str]] = []
        self.requests: List[str] = []
        #: plurals the token may not list or watch (403, as RBAC answers)
        self.forbidden: Set[str] = set()
        self.port: Any = None

    # -- the test's side --------------------------------------------------------------------

    def listen(self) -> int:
        self.port = reactor.listenTCP(0, server.Site(self), interface="127.0.0.1")
        return int(self.port.getHost().port)

    @property
    def endpoint(self) -> str:
        return "http://127.0.0.1:%d" % self.port.getHost().port

    def close_watches(self) -> None:
        """End every open watch (as an API server does when a watch times out)."""
        watches, self.watches = self.watches, []
        for request, _, _ in watches:
            if not request.finished and not request._disconnected:
                request.finish()

    def put(self, plural: str, obj: Dict[str, Any]) -> None:
        """Create or replace an object; open watches see ADDED or MODIFIED."""
        self.version += 1
        obj = json.loads(json.dumps(obj))
        meta = obj.setdefault("metadata", {})
        if plural != "ingressclasses":
            meta.setdefault("namespace", "default")
        meta["resourceVersion"] = str(self.version)
        key = (meta.get("namespace", ""), meta["name"])
        store = self.objects.setdefault(plural, {})
        kind = "MODIFIED" if key in store else "ADDED"
        store[key] = obj
        self._event(plural, kind, obj)

    def delete(self, plural: str, namespace: str, name: str) -> None:
        self.version += 1
        obj = self.objects[plural].pop((namespace, name))
        obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self.version)))
        self._event(plural, "DELETED", obj)

    def compact(self) -> None:
        """Forget the history: watches from an older version get 410."""
        self.oldest = self.version
        self.history = []

    def bookmark(self) -> None:
        """Send every open watch a BOOKMARK at the current version."""
        for request, _, _ in self.watches:
            self._send(request, "BOOKMARK", {"metadata": {"resourceVersion": str(self.version)}})

    # -- the server side --------------------------------------------------------------------

    def _event(self, plural: str, kind: str, obj: Dict[str, Any]) -> None:
        self.history.append((self.version, plural, kind, obj))
        for request, watched, namespace in list(self.watches):
            if watched == plural and namespace in ("", obj["metadata"].get("namespace", "")):
                self._send(request, kind, obj)

    def _send(self, request: Any, kind: str, obj: Dict[str, Any]) -> None:
        if not request.finished and not request._disconnected:
            request.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

    @staticmethod
    def _route(path: str) -> Tuple[str, str]:
        parts = [p for p in path.split("/") if p]
        namespace = ""
        if "namespaces" in parts:
            index = parts.index("namespaces")
            namespace = parts[index + 1]
            parts = parts[:index] + parts[index + 2 :]
        return parts[-1], namespace

    def render_GET(self, request: Any) -> Any:
        path = request.path.decode()
        query = {k.decode(): v[0].decode() for k, v in request.args.items()}
        self.requests.append(
            path + ("?" + "&".join(f"{k}={v}" for k, v in sorted(query.items())) if query else "")
        )
        request.setHeader(b"content-type", b"application/json")
        if self.token and request.getHeader(b"authorization") != f"Bearer {self.token}".encode():
            request.setResponseCode(401)
            return json.dumps({"kind": "Status", "code": 401, "reason": "Unauthorized"}).encode()
        plural, namespace = self._route(path)
        if plural in self.forbidden:
            request.setResponseCode(403)
            return json.dumps(
                {
                    "kind": "Status",
                    "code": 403,
                    "reason": "Forbidden",
                    "message": f'{plural} is forbidden: cannot list resource "{plural}"',
                }
            ).encode()
        if query.get("watch") in ("1", "true"):
            return self._watch(request, plural, namespace, int(query.get("resourceVersion") or 0))
        items = [
            {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
            for (ns, _), obj in sorted(self.objects.get(plural, {}).items())
            if namespace in ("", ns)
        ]
        return json.dumps(
            {"kind": "List", "metadata": {"resourceVersion": str(self.version)}, "items": items}
        ).encode()

    def _watch(self, request: Any, plural: str, namespace: str, since: int) -> Any:
        if since < self.oldest:
            gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
            return json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n"
        request.write(b"\n")  # the headers go now, as an API server sends them
        for version, watched, kind, obj in self.history:
            if version > since and watched == plural:
                if namespace in ("", obj["metadata"].get("namespace", "")):
                    self._send(request, kind, obj)
        entry = (request, plural, namespace)
        self.watches.append(entry)

        def gone(ignored: Any) -> None:
            if entry in self.watches:
                self.watches.remove(entry)

        request.notifyFinish().addBoth(gone)
        return server.NOT_DONE_YET


def stop(fake: FakeAPI) -> Optional[Any]:
    fake.close_watches()
    if fake.port is not None:
        return fake.port.stopListening()
    return None
