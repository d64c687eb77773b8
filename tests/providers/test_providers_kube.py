"""The Kubernetes providers: kubernetesCRD and kubernetesIngress reading an API server (a fake
one written in tests/kubefake.py: list, watch, bookmarks, 410 Gone, 403), ConfigMaps from it
for ServersTransport rootCAs, and Ingress resources read from the configuration directory as
routers and services ``@kubernetes``."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any, Dict, List

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import SynchronousTestCase

from tests.http.test_http_backend_tls_roots import CA, OTHER_CA, _server_options
from tests.kubefake import FakeAPI, stop
from tests.proxyfixture import ProxyTestCase
from tsproxy.api.model import rawdata
from tsproxy.config.load import load_directory, load_files
from tsproxy.providers.kubeapi import kube_connection
from tsproxy.providers.kubeobjects import config_map_references
from tsproxy.runtime.audit import review
from tsproxy.service import ProxyService
from tsproxy.testing import app_site

ENTRY = "entryPoints:\n  web: {address: '127.0.0.1:0'}\n"


def service(name: str) -> Dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"name": "http", "port": 80}]}}


def endpoint_slice(name: str, port: int) -> Dict[str, Any]:
    return {
        "metadata": {"name": f"{name}-abc", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": port}],
    }


def ingress_route(host: str, backend: str) -> Dict[str, Any]:
    return {
        "metadata": {"name": "app"},
        "spec": {
            "entryPoints": ["web"],
            "routes": [{"match": f"Host(`{host}`)", "services": [{"name": backend, "port": 80}]}],
        },
    }


def ingress(host: str, backend: str, **annotations: str) -> Dict[str, Any]:
    return {
        "metadata": {
            "name": "app",
            "annotations": {
                f"traefik.ingress.kubernetes.io/{k.replace('_', '.')}": v
                for k, v in annotations.items()
            },
        },
        "spec": {
            "ingressClassName": "traefik",
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": backend, "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


class KubeTestCase(ProxyTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.ports = {"v1": self.start_app("app-v1"), "v2": self.start_app("app-v2")}
        self.api = FakeAPI(token="t0ken")
        self.api.listen()
        self.addCleanup(stop, self.api)
        for name, port in (("app-v1", self.ports["v1"]), ("app-v2", self.ports["v2"])):
            self.api.put("services", service(name))
            self.api.put("endpointslices", endpoint_slice(name, port))

    def proxy(self, provider: str, extra: str = "") -> ProxyService:
        self.write(
            "traefik.yml",
            ENTRY + "log: {level: ERROR}\nproviders:\n  providersThrottleDuration: 0s\n"
            f"  {provider}:\n    endpoint: {self.api.endpoint}\n    token: t0ken\n" + extra,
        )
        service = self.start_proxy()
        for watcher in service.kube_watchers.values():
            watcher.backoff_first, watcher.backoff_most = 0.05, 0.3
        return service

    @defer.inlineCallbacks
    def until(self, check: Any, seconds: float = 10.0) -> Any:
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > seconds:
                self.fail(f"not within {seconds} s")
            yield deferLater(reactor, 0.01, lambda: None)
        return time.monotonic() - start

    @staticmethod
    def backend(service: ProxyService) -> int:
        """The port of the first server of the first router's service."""
        routers = service.table.routers
        return int(routers[0].service.definition.servers[0].port) if routers else 0

    @defer.inlineCallbacks
    def who(self, host: str) -> Any:
        response, body = yield self.get(host)
        return body.split()[1].decode() if response.code == 200 else response.code


class CRDFromAPITests(KubeTestCase):
    """kubernetesCRD with an endpoint: list, watch, 410, bookmarks, the API down."""

    @defer.inlineCallbacks
    def test_list_and_watch(self) -> None:
        """Listed at start; a modified IngressRoute is applied within a second; deleted, its
        route goes; every request carries the token."""
        self.api.put("ingressroutes", ingress_route("a.test", "app-v1"))
        service = self.proxy("kubernetesCRD")
        yield self.until(lambda: len(service.table.routers) == 1)
        self.assertEqual((yield self.who("a.test")), "app-v1")
        self.api.put("ingressroutes", ingress_route("a.test", "app-v2"))
        took = yield self.until(lambda: self.backend(service) == self.ports["v2"], 1.0)
        self.assertLess(took, 1.0)
        self.assertEqual((yield self.who("a.test")), "app-v2")
        self.api.delete("ingressroutes", "default", "app")
        yield self.until(lambda: not service.table.routers)
        self.assertEqual((yield self.who("a.test")), 404)
        self.assertTrue(any("watch=1" in r for r in self.api.requests))

    @defer.inlineCallbacks
    def test_gone_relists(self) -> None:
        """A watch ended by the server resumes from the last version; a version too old
        (410 Gone) lists again and finds what changed meanwhile."""
        self.api.put("ingressroutes", ingress_route("a.test", "app-v1"))
        service = self.proxy("kubernetesCRD")
        yield self.until(lambda: len(service.table.routers) == 1)
        lists = sum(1 for r in self.api.requests if r.endswith("/ingressroutes"))
        self.api.bookmark()
        yield deferLater(reactor, 0.05, lambda: None)
        self.api.close_watches()
        version = self.api.version
        yield self.until(
            lambda: any(f"resourceVersion={version}" in r for r in self.api.requests[-40:])
        )
        self.assertEqual(sum(1 for r in self.api.requests if r.endswith("/ingressroutes")), lists)
        # Now a change the open watch misses, with the history gone.
        watches = list(self.api.watches)
        self.api.watches = []
        self.api.put("ingressroutes", ingress_route("a.test", "app-v2"))
        self.api.compact()
        for request, _, _ in watches:
            request.finish()
        yield self.until(lambda: self.backend(service) == self.ports["v2"])
        self.assertGreater(sum(1 for r in self.api.requests if r.endswith("/ingressroutes")), lists)

    @defer.inlineCallbacks
    def test_api_down(self) -> None:
        """The API server gone, the proxy keeps serving; back, the watch resumes."""
        self.api.put("ingressroutes", ingress_route("a.test", "app-v1"))
        service = self.proxy("kubernetesCRD")
        yield self.until(lambda: len(service.table.routers) == 1)
        port = self.api.port.getHost().port
        yield stop(self.api)
        yield deferLater(reactor, 0.3, lambda: None)
        self.assertEqual((yield self.who("a.test")), "app-v1")
        self.api.put("ingressroutes", ingress_route("a.test", "app-v2"))
        from twisted.web import server as web_server

        self.api.port = reactor.listenTCP(port, web_server.Site(self.api), interface="127.0.0.1")
        yield self.until(lambda: self.backend(service) == self.ports["v2"])
        self.assertEqual((yield self.who("a.test")), "app-v2")

    @defer.inlineCallbacks
    def test_wrong_token(self) -> None:
        """A refused token: nothing is read (and it is retried), no route is made up."""
        self.api.token = "other"
        self.api.put("ingressroutes", ingress_route("a.test", "app-v1"))
        service = self.proxy("kubernetesCRD")
        yield deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(len(service.table.routers), 0)
        self.api.token = "t0ken"
        yield self.until(lambda: len(service.table.routers) == 1)


def config_map(name: str, pem: bytes, namespace: str = "default") -> Dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "data": {"ca.crt": pem.decode()}}


def ca_secret(name: str, pem: bytes) -> Dict[str, Any]:
    data = {"ca.crt": base64.b64encode(pem).decode()}
    return {"metadata": {"name": name}, "type": "Opaque", "data": data}


def transport(name: str, root: Dict[str, str]) -> Dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"rootCAs": [root]}}


class ConfigMapFromAPITests(KubeTestCase):
    """kubernetesCRD with an endpoint: ServersTransport ``rootCAs: [{configMap: ca}]`` reads
    the ConfigMap from the API server, to an https backend signed by CA."""

    def setUp(self) -> None:
        super().setUp()
        self.tracked = WrappingFactory(app_site("secure"))
        port = reactor.listenSSL(0, self.tracked, _server_options(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(self._closed)  # runs after the proxy stopped
        self.api.put("services", service("secure"))
        self.api.put("endpointslices", endpoint_slice("secure", port.getHost().port))
        self.api.put("serverstransports", transport("cm", {"configMap": "ca"}))
        self.api.put("serverstransports", transport("sec", {"secret": "ca"}))
        routes = [
            {"match": f"Host(`{host}`)", "services": [dict(name=name, port=80, **extra)]}
            for host, name, extra in (
                ("a.test", "app-v1", {}),
                ("cm.test", "secure", {"scheme": "https", "serversTransport": "cm"}),
                ("sec.test", "secure", {"scheme": "https", "serversTransport": "sec"}),
            )
        ]
        route = {"metadata": {"name": "app"}, "spec": {"entryPoints": ["web"], "routes": routes}}
        self.api.put("ingressroutes", route)

    @defer.inlineCallbacks
    def _closed(self) -> Any:
        """Close the https backend's connections the proxy pooled, and wait for them."""
        for wrapped in list(self.tracked.protocols):
            wrapped.transport.abortConnection()
        yield self.until(lambda: not self.tracked.protocols)

    @defer.inlineCallbacks
    def statuses(self) -> Any:
        """The answers for a.test (plain http), cm.test and sec.test."""
        got = []
        for host in ("a.test", "cm.test", "sec.test"):
            response, _ = yield self.get(host)
            got.append(response.code)
        return got

    def errors(self, service: ProxyService) -> List[str]:
        """The errors of the configuration the API now gives (what a refused reload logs)."""
        return [str(e) for e in review(service._with_kv(load_directory(self.config_dir))).errors]

    @defer.inlineCallbacks
    def test_rotation(self) -> None:
        """The ConfigMap's CA verifies the backend (200, as the Secret's); rotated to another
        valid CA the change applies (502); bad PEM refuses the reload, located, and the
        working configuration keeps serving every route; rotated back, 200 again."""
        self.api.put("configmaps", config_map("ca", CA.cert_pem))
        self.api.put("secrets", ca_secret("ca", CA.cert_pem))
        service = self.proxy("kubernetesCRD")
        yield self.until(lambda: len(service.table.routers) == 3)
        self.assertEqual((yield self.statuses()), [200, 200, 200])
        self.api.put("configmaps", config_map("ca", OTHER_CA.cert_pem))
        table = service.table
        yield self.until(lambda: service.table is not table)
        self.assertEqual((yield self.statuses()), [200, 502, 200])
        table = service.table
        self.api.put("configmaps", config_map("ca", b"not a certificate"))
        yield self.until(lambda: service._refused)
        self.assertIs(service.table, table)
        self.assertEqual(
            self.errors(service),
            [
                "kubernetes-api: IngressRoute default/app: serversTransport cm (at kubernetes-api):"
                " invalid certificate(s) in configMap default/ca:"
                " no valid PEM certificate found"
            ],
        )
        self.assertEqual((yield self.statuses()), [200, 502, 200])
        self.api.put("configmaps", config_map("ca", CA.cert_pem))
        yield self.until(lambda: service.table is not table)
        self.assertEqual((yield self.statuses()), [200, 200, 200])

    @defer.inlineCallbacks
    def test_added_later_deleted(self) -> None:
        """A ConfigMap missing at the first listing refuses the API's configuration as a
        missing Secret does (nothing routed); added later, every route works; deleted (like
        the Secret), the reload is refused with the located error and the last good
        configuration keeps serving."""
        self.api.put("secrets", ca_secret("ca", CA.cert_pem))
        service = self.proxy("kubernetesCRD")
        yield self.until(lambda: service._refused)
        self.assertEqual(service.table.routers, ())
        self.assertEqual((yield self.statuses()), [404, 404, 404])
        self.api.put("configmaps", config_map("ca", CA.cert_pem))
        yield self.until(lambda: len(service.table.routers) == 3)
        self.assertEqual((yield self.statuses()), [200, 200, 200])
        at = "kubernetes-api: IngressRoute default/app: serversTransport "
        for plural, missing in (
            ("configmaps", at + "cm (at kubernetes-api): configMap"),
            ("secrets", at + "sec (at kubernetes-api): secret"),
        ):
            table = service.table
            service._refused = False
            self.api.delete(plural, "default", "ca")
            yield self.until(lambda: service._refused)
            self.assertIs(service.table, table)
            self.assertIn(missing + " default/ca not found", self.errors(service))
            self.assertEqual((yield self.statuses()), [200, 200, 200])

    @defer.inlineCallbacks
    def test_unreferenced_not_passed(self) -> None:
        """Only ConfigMaps a ServersTransport names reach the provider: changes of other
        ones (leader-election maps) rebuild nothing; a ServersTransport naming one later
        brings it in."""
        self.api.put("configmaps", config_map("ca", CA.cert_pem))
        self.api.put("configmaps", config_map("leader", b"x"))
        self.api.put("secrets", ca_secret("ca", CA.cert_pem))
        service = self.proxy("kubernetesCRD")
        yield self.until(lambda: len(service.table.routers) == 3)
        watcher = service.kube_watchers["kubernetescrd"]
        told: List[List[str]] = []
        on_change = watcher.on_change

        def record(provider: str, objects: List[Dict[str, Any]]) -> None:
            told.append([o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"])
            on_change(provider, objects)

        watcher.on_change = record
        for n in range(3):
            self.api.put("configmaps", config_map("leader", b"%d" % n))
        self.api.delete("configmaps", "default", "leader")
        self.api.put("configmaps", config_map("ca", CA.cert_pem + b"\n"))
        yield self.until(lambda: told)
        self.assertEqual(told, [["ca"]])
        self.api.put("configmaps", config_map("leader", b"x"))
        self.api.put("serverstransports", transport("other", {"configMap": "leader"}))
        yield self.until(lambda: len(told) == 2)
        self.assertEqual(told[1], ["ca", "leader"])

    @defer.inlineCallbacks
    def test_namespaces(self) -> None:
        """With ``namespaces``, ConfigMaps are listed and watched in those namespaces only;
        one of another namespace is not read (not kept, not passed on)."""
        self.api.put("configmaps", config_map("ca", CA.cert_pem))
        self.api.put("configmaps", config_map("ca", OTHER_CA.cert_pem, "other"))
        self.api.put("secrets", ca_secret("ca", CA.cert_pem))
        service = self.proxy("kubernetesCRD", "    namespaces: [default]\n")
        yield self.until(lambda: len(service.table.routers) == 3)
        self.assertEqual((yield self.statuses()), [200, 200, 200])
        paths = {r.split("?")[0] for r in self.api.requests if "configmaps" in r}
        self.assertEqual(paths, {"/api/v1/namespaces/default/configmaps"})
        watcher = service.kube_watchers["kubernetescrd"]
        self.assertEqual(
            [key for key in watcher.objects if key[0] == "ConfigMap"],
            [("ConfigMap", "default", "ca")],
        )

    def _lists(self, plural: str) -> int:
        """How many times ``plural`` was listed (its path, whatever the query)."""
        paths = [r.split("?")[0] for r in self.api.requests if "watch=" not in r]
        return sum(1 for path in paths if path.endswith("/" + plural))

    @defer.inlineCallbacks
    def forbidden(self, plural: str) -> Any:
        """A 403 on ``plural``: retried, the provider not told meanwhile (no route made up);
        allowed, everything is read."""
        self.api.put("configmaps", config_map("ca", CA.cert_pem))
        self.api.put("secrets", ca_secret("ca", CA.cert_pem))
        self.api.forbidden = {plural}
        service = self.proxy("kubernetesCRD")
        yield self.until(lambda: self._lists(plural) >= 3)
        self.assertEqual(service.table.routers, ())
        self.assertEqual(service.kube_objects, {})
        self.api.forbidden = set()
        yield self.until(lambda: len(service.table.routers) == 3)
        self.assertEqual((yield self.statuses()), [200, 200, 200])

    def test_forbidden(self) -> Any:
        """A 403 on configmaps (RBAC without them) is retried, nothing routed meanwhile;
        allowed, every route works."""
        return self.forbidden("configmaps")

    def test_forbidden_secrets(self) -> Any:
        """The same for a 403 on secrets (the behaviour configmaps follow)."""
        return self.forbidden("secrets")

    @defer.inlineCallbacks
    def test_helm_secrets_skipped(self) -> None:
        """Secrets are listed and watched with labelSelector owner!=helm, as Traefik's
        informer does; a Helm-owned Secret is not read even from a server that ignores the
        selector (so a rootCAs naming it is "not found"), and one that stops being Helm's is."""
        helm = ca_secret("ca", CA.cert_pem)
        helm["metadata"]["labels"] = {"owner": "helm"}
        self.api.put("configmaps", config_map("ca", CA.cert_pem))
        self.api.put("secrets", helm)
        service = self.proxy("kubernetesCRD")
        yield self.until(lambda: service._refused)
        self.assertIn(
            "kubernetes-api: IngressRoute default/app: serversTransport sec (at kubernetes-api):"
            " secret default/ca not found",
            self.errors(service),
        )
        secrets = [r for r in self.api.requests if "/secrets" in r]
        self.assertTrue(secrets)
        self.assertTrue(all("labelSelector=owner!=helm" in r for r in secrets), secrets)
        self.api.put("secrets", ca_secret("ca", CA.cert_pem))
        yield self.until(lambda: len(service.table.routers) == 3)
        self.assertEqual((yield self.statuses()), [200, 200, 200])
        table = service.table
        service._refused = False
        self.api.put("secrets", helm)
        yield self.until(lambda: service._refused)
        self.assertIs(service.table, table)


class ServersTransportTCPFromAPITests(KubeTestCase):
    """kubernetesCRD with an endpoint: a ServersTransportTCP listed and watched, its
    ``tls.rootCAs: [{configMap: ca}]`` read from the API server."""

    @defer.inlineCallbacks
    def test_listed_and_watched(self) -> None:
        """The TCP route's servers are dialled with the transport's serverName and the
        ConfigMap's CA; a CA rotated in the ConfigMap, or a new dialTimeout, applies."""
        self.api.put("configmaps", config_map("ca", CA.cert_pem))
        spec = {
            "dialTimeout": "5s",
            "tls": {"serverName": "b.test", "rootCAs": [{"configMap": "ca"}]},
        }
        self.api.put("serverstransporttcps", {"metadata": {"name": "st"}, "spec": spec})
        ref = {"name": "app-v1", "port": 80, "tls": True, "serversTransport": "st"}
        route = {"match": "HostSNI(`*`)", "services": [ref]}
        self.api.put("ingressroutetcps", {"metadata": {"name": "t"}, "spec": {"routes": [route]}})
        service = self.proxy("kubernetesCRD")

        def dialled() -> Any:
            routers = service.table.tcp_routers
            server = routers[0].service.servers[0] if routers else None
            return server and (server.dial_timeout, server.tls.server_name, server.tls.root_cas)

        yield self.until(lambda: dialled() == (5.0, "b.test", (CA.cert_pem,)))
        self.api.put("configmaps", config_map("ca", OTHER_CA.cert_pem))
        yield self.until(lambda: dialled() == (5.0, "b.test", (OTHER_CA.cert_pem,)))
        spec["dialTimeout"] = "2s"
        self.api.put("serverstransporttcps", {"metadata": {"name": "st"}, "spec": spec})
        yield self.until(lambda: dialled() == (2.0, "b.test", (OTHER_CA.cert_pem,)))


class ConfigMapReferenceTests(SynchronousTestCase):
    """Which ConfigMaps a configuration reads (config_map_references)."""

    def test_references(self) -> None:
        """Every case: ServersTransport rootCAs and ServersTransportTCP tls.rootCAs, in the
        transport's namespace ("default" when absent); secrets and malformed entries none."""
        cases = [
            (
                {
                    "kind": "ServersTransport",
                    "metadata": {"namespace": "ns"},
                    "spec": {"rootCAs": [{"configMap": "a"}, {"secret": "b"}]},
                },
                {("ns", "a")},
            ),
            (
                {
                    "kind": "ServersTransport",
                    "metadata": {},
                    "spec": {"rootCAs": [{"configMap": "a"}]},
                },
                {("default", "a")},
            ),
            (
                {
                    "kind": "ServersTransportTCP",
                    "metadata": {"namespace": "ns"},
                    "spec": {"tls": {"rootCAs": [{"configMap": "t"}]}},
                },
                {("ns", "t")},
            ),
            (
                {
                    "kind": "ServersTransportTCP",
                    "metadata": {},
                    "spec": {"rootCAs": [{"configMap": "t"}]},
                },
                set(),
            ),
            (
                {"kind": "Middleware", "metadata": {}, "spec": {"rootCAs": [{"configMap": "m"}]}},
                set(),
            ),
            (
                {
                    "kind": "ServersTransport",
                    "metadata": {},
                    "spec": {"rootCAs": ["x", {"configMap": 3}]},
                },
                set(),
            ),
            (
                {
                    "kind": "ServersTransport",
                    "metadata": {},
                    "spec": {"rootCAs": {"configMap": "x"}},
                },
                set(),
            ),
            ({"kind": "ServersTransport", "metadata": {}, "spec": None}, set()),
        ]
        for item, expected in cases:
            self.assertEqual(config_map_references([item]), frozenset(expected), item)


class IngressFromAPITests(KubeTestCase):
    """kubernetesIngress with an endpoint."""

    @defer.inlineCallbacks
    def test_ingress(self) -> None:
        """An Ingress of the traefik IngressClass is routed (@kubernetes); a change of its
        backend applies; an Ingress of another class is left alone."""
        self.api.put(
            "ingressclasses",
            {
                "metadata": {"name": "traefik"},
                "spec": {"controller": "traefik.io/ingress-controller"},
            },
        )
        self.api.put("ingresses", ingress("a.test", "app-v1", router_entrypoints="web"))
        other = ingress("b.test", "app-v2")
        other["metadata"]["name"] = "other"
        other["spec"]["ingressClassName"] = "nginx"
        self.api.put("ingresses", other)
        service = self.proxy("kubernetesIngress")
        yield self.until(lambda: len(service.table.routers) == 1)
        self.assertEqual(service.table.routers[0].name, "default-app-a-test@kubernetes")
        self.assertEqual((yield self.who("a.test")), "app-v1")
        self.assertEqual((yield self.who("b.test")), 404)
        self.api.put("ingresses", ingress("a.test", "app-v2", router_entrypoints="web"))
        yield self.until(lambda: service.table.routers[0].service.name.startswith("default-app-v2"))
        self.assertEqual((yield self.who("a.test")), "app-v2")


class ConnectionTests(SynchronousTestCase):
    """Where the API server is."""

    def test_in_cluster(self) -> None:
        """No endpoint: inside a cluster, KUBERNETES_SERVICE_HOST/PORT and the service
        account's token and CA; outside, None (the directory is read)."""
        account = self.mktemp()
        os.makedirs(account)
        with open(os.path.join(account, "token"), "w") as stream:
            stream.write("sa-token\n")
        with open(os.path.join(account, "ca.crt"), "w") as stream:
            stream.write("x")
        env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        found = kube_connection("", "", "", env, account)
        self.assertEqual(
            (found.endpoint, found.token, found.ca_file),
            ("https://10.96.0.1:443", "sa-token", os.path.join(account, "ca.crt")),
        )
        self.assertIsNone(kube_connection("", "", "", {}, account))
        given = kube_connection("http://127.0.0.1:8001/", "t", "", env, account)
        self.assertEqual((given.endpoint, given.token), ("http://127.0.0.1:8001", "t"))


# -- Ingress from the configuration directory --------------------------------------------------

BACKEND = """\
apiVersion: v1
kind: Service
metadata: {name: whoami, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: whoami-x, namespace: default, labels: {kubernetes.io/service-name: whoami}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
ports: [{name: http, port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: traefik}
spec: {controller: traefik.io/ingress-controller}
"""
INGRESS_DOC = """\
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: default
  annotations: {annotations}
spec:
  ingressClassName: {cls}
  rules:
    - host: {host}
      http:
        paths:
          - path: {path}
            pathType: {kind}
            backend: {{service: {{name: whoami, port: {{number: 80}}}}}}
"""
STATIC_INGRESS = ENTRY + "providers:\n  kubernetesIngress: {}\n"

# (annotations, class, host, path, pathType) -> routers {name: (rule, priority, extra)}
INGRESS_CASES: List[Any] = [
    (
        "{}",
        "traefik",
        "whoami.localhost",
        "/bar",
        "Prefix",
        {
            "default-web-whoami-localhost-bar@kubernetes": (
                "Host(`whoami.localhost`) && PathPrefix(`/bar`)",
                None,
            )
        },
    ),
    (
        "{}",
        "traefik",
        "whoami.localhost",
        "/bar",
        "Exact",
        {
            "default-web-whoami-localhost-bar@kubernetes": (
                "Host(`whoami.localhost`) && Path(`/bar`)",
                None,
            )
        },
    ),
    (
        "{}",
        "traefik",
        "'*.example.com'",
        "/",
        "ImplementationSpecific",
        {
            "default-web-example-com@kubernetes": (
                "HostRegexp(`^[a-z0-9-]+\\.example\\.com$`) && PathPrefix(`/`)",
                None,
            )
        },
    ),
    (
        "{traefik.ingress.kubernetes.io/router.priority: '42', traefik.ingress.kubernetes.io/router.pathmatcher: Path}",
        "traefik",
        "a.test",
        "/x",
        "Prefix",
        {"default-web-a-test-x@kubernetes": ("Host(`a.test`) && Path(`/x`)", 42)},
    ),
    ("{}", "nginx", "a.test", "/", "Prefix", {}),
]


class IngressFileTests(SynchronousTestCase):
    """Ingress documents of the configuration directory, for providers.kubernetesIngress."""

    def build(self, doc: str) -> Any:
        loaded = load_files(STATIC_INGRESS, [("routes.yaml", BACKEND + doc)])
        result = review(loaded)
        return result, rawdata(result.table)

    def test_rules(self) -> None:
        """Every table case: the routers, their rules and priorities, the service
        default-whoami-80@kubernetes over the EndpointSlice."""
        for written, cls, host, path, kind, expected in INGRESS_CASES:
            doc = INGRESS_DOC.format(annotations=written, cls=cls, host=host, path=path, kind=kind)
            result, document = self.build(doc)
            self.assertEqual([str(e) for e in result.errors], [], doc)
            routers = document.get("routers", {})
            self.assertEqual(sorted(routers), sorted(expected), doc)
            for name, (rule, priority) in expected.items():
                self.assertEqual(routers[name]["rule"], rule)
                self.assertEqual(routers[name].get("priority"), priority)
                self.assertEqual(routers[name]["service"], "default-whoami-80")
            if expected:
                servers = document["services"]["default-whoami-80@kubernetes"]["loadBalancer"][
                    "servers"
                ]
                self.assertEqual(servers, [{"url": "http://10.0.0.1:8080"}])

    def test_errors(self) -> None:
        """A missing Service and an annotation tsproxy does not read are errors at the
        Ingress; a missing middleware disables the router, located at the Ingress."""
        doc = INGRESS_DOC.format(annotations="{}", cls="traefik", host="a", path="/", kind="Prefix")
        result, _ = self.build(doc.replace("name: whoami, port", "name: nope, port"))
        self.assertEqual(
            [str(e) for e in result.errors],
            ["routes.yaml:18: Ingress default/web: rule a/: service default/nope not found"],
        )
        bad = "{traefik.ingress.kubernetes.io/router.tls.certresolver: le}"
        result, _ = self.build(
            INGRESS_DOC.format(annotations=bad, cls="traefik", host="a", path="/", kind="Prefix")
        )
        self.assertEqual(
            [str(e) for e in result.errors],
            [
                "routes.yaml:18: Ingress default/web: annotation"
                " traefik.ingress.kubernetes.io/router.tls.certresolver is not supported yet: not read"
            ],
        )
        mw = "{traefik.ingress.kubernetes.io/router.middlewares: default-strip@kubernetescrd}"
        result, document = self.build(
            INGRESS_DOC.format(annotations=mw, cls="traefik", host="a", path="/", kind="Prefix")
        )
        self.assertEqual(document["routers"]["default-web-a@kubernetes"]["status"], "disabled")
        self.assertEqual(
            [str(e) for e in result.errors],
            [
                "routes.yaml:18: router default-web-a: http.routers.default-web-a"
                '.middlewares[0]: middleware "default-strip@kubernetescrd" does not exist'
            ],
        )

    def test_annotation_middlewares(self) -> None:
        """router.middlewares names CRD middlewares as Traefik writes them
        (``<ns>-<name>@kubernetescrd``): the router runs them, in order."""
        mw = (
            "{traefik.ingress.kubernetes.io/router.middlewares:"
            " 'default-strip@kubernetescrd, default-auth@kubernetescrd'}"
        )
        crd = (
            "---\napiVersion: traefik.io/v1alpha1\nkind: Middleware\n"
            "metadata: {name: strip, namespace: default}\nspec: {stripPrefix: {prefixes: [/a]}}\n"
            "---\napiVersion: traefik.io/v1alpha1\nkind: Middleware\n"
            "metadata: {name: auth, namespace: default}\n"
            "spec: {headers: {customRequestHeaders: {X-A: b}}}\n"
        )
        doc = INGRESS_DOC.format(annotations=mw, cls="traefik", host="a", path="/", kind="Prefix")
        static = STATIC_INGRESS + "  kubernetesCRD: {}\n"
        loaded = load_files(static, [("routes.yaml", BACKEND + doc + crd)])
        result = review(loaded)
        self.assertEqual(result.errors, ())
        (router,) = [r for r in result.table.routers if r.name == "default-web-a@kubernetes"]
        self.assertEqual(
            router.middlewares, ("default-strip@kubernetescrd", "default-auth@kubernetescrd")
        )
        self.assertEqual(
            [name for name, _ in router.chain],
            ["default-strip@kubernetescrd", "default-auth@kubernetescrd"],
        )

    def test_not_configured(self) -> None:
        """Without providers.kubernetesIngress an Ingress is skipped with a notice, as before."""
        doc = INGRESS_DOC.format(annotations="{}", cls="traefik", host="a", path="/", kind="Prefix")
        loaded = load_files(ENTRY, [("routes.yaml", BACKEND + doc)])
        self.assertEqual(loaded.kv, ())
        self.assertTrue(any("skipping Ingress default/web" in n for n in loaded.notices))

    def test_crd_from_api(self) -> None:
        """kubernetesCRD reading an API server and kubernetesIngress the directory: the
        Ingress and its Service are read, the directory's IngressRoutes are not."""
        doc = INGRESS_DOC.format(annotations="{}", cls="traefik", host="a", path="/", kind="Prefix")
        route = (
            "---\napiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: r}\n"
            "spec: {routes: [{match: Host(`r`), services: [{name: whoami, port: 80}]}]}\n"
        )
        static = (
            ENTRY + "providers:\n  kubernetesIngress: {}\n"
            "  kubernetesCRD: {endpoint: 'http://127.0.0.1:1'}\n"
        )
        loaded = load_files(static, [("routes.yaml", BACKEND + doc + route)])
        result = review(loaded)
        self.assertEqual(result.errors, ())
        self.assertEqual([r.name for r in result.table.routers], ["default-web-a@kubernetes"])
        self.assertFalse(any(r.meta.kind == "IngressRoute" for r in loaded.resources))

    def test_overview(self) -> None:
        """/api/overview lists KubernetesIngress among the providers."""
        loaded = load_files(STATIC_INGRESS, [])
        self.assertEqual(loaded.static.providers.names, ("KubernetesIngress",))
        json.dumps(loaded.static.providers.names)
