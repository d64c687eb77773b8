"""Traefik's CRD provider vectors (crd-provider.json): the same manifests, the same services."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.errors import Location
from tsproxy.config.load import load_files
from tsproxy.config.resources import Meta, Service, ServicePort
from tsproxy.runtime.build import build_table
from tsproxy.runtime.endpoints import BuildError, get_service_port, parse_service_protocol
from tsproxy.runtime.services import LoadBalancer, MirroringService, Node, WeightedService

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n  foo:\n    address: ":8001"\n'

with open(os.path.join(DATA, "crd-provider.json")) as _stream:
    GROUPS = {group["id"]: group["cases"] for group in json.load(_stream)["groups"]}

# The provider options of Traefik's TestLoadIngressRoutes: ExternalName Services allowed for
# every case; allowCrossNamespace and allowEmptyServices as each case sets them.
PROVIDER_OPTIONS = """\
providers:
  kubernetesCRD:
    allowExternalNameServices: true
    allowCrossNamespace: {cross}
    allowEmptyServices: {empty}
"""


def render_node(node: Node) -> Dict[str, Any]:
    """A service node as Traefik's dynamic configuration shows it (the fields we model)."""
    definition = node.definition
    if isinstance(node, LoadBalancer):
        rendered: Dict[str, Any] = {
            "Servers": [{"URL": server.url} for server in node.definition.servers],
            "PassHostHeader": node.definition.pass_host_header,
        }
        if node.definition.sticky is not None:
            rendered["Sticky"] = render_cookie(node.definition.sticky)
        return {"LoadBalancer": rendered}
    if isinstance(node, WeightedService):
        weighted: Dict[str, Any] = {
            "Services": [{"Name": c.name, "Weight": c.weight} for c in node.definition.children]
        }
        if node.definition.sticky is not None:
            weighted["Sticky"] = render_cookie(node.definition.sticky)
        return {"Weighted": weighted}
    assert isinstance(node, MirroringService)
    return {
        "Mirroring": {
            "Service": node.main.name,
            "Mirrors": [
                {"Name": mirror.name, "Percent": percent}
                for mirror, (_, percent) in zip(node.mirrors, definition.mirrors)  # type: ignore[union-attr]
            ],
        }
    }


def render_cookie(cookie: Any) -> Dict[str, Any]:
    return {
        "Cookie": {
            "Name": cookie.name,
            "Secure": cookie.secure,
            "HTTPOnly": cookie.http_only,
            "SameSite": cookie.same_site,
            "MaxAge": cookie.max_age,
            "Path": cookie.path,
        }
    }


def expected_services(services: Dict[str, Any]) -> Dict[str, Any]:
    """Traefik's expected services with Go-only details folded into our vocabulary."""
    result: Dict[str, Any] = {}
    for name, service in services.items():
        if "LoadBalancer" in service:
            balancer = service["LoadBalancer"]
            rendered: Dict[str, Any] = {
                "Servers": balancer.get("Servers", []),
                "PassHostHeader": balancer["PassHostHeader"],
            }
            if "Sticky" in balancer:
                rendered["Sticky"] = expected_cookie(balancer["Sticky"])
            result[name] = {"LoadBalancer": rendered}
        elif "Weighted" in service:
            weighted = service["Weighted"]
            children = [
                {"Name": c["Name"], "Weight": 1 if isinstance(c["Weight"], dict) else c["Weight"]}
                for c in weighted["Services"]
            ]
            rendered = {"Services": children}
            if "Sticky" in weighted:
                rendered["Sticky"] = expected_cookie(weighted["Sticky"])
            result[name] = {"Weighted": rendered}
        else:
            mirroring = service["Mirroring"]
            result[name] = {
                "Mirroring": {
                    "Service": mirroring["Service"],
                    "Mirrors": [
                        {"Name": m["Name"], "Percent": m.get("Percent", 0)}
                        for m in mirroring["Mirrors"]
                    ],
                }
            }
    return result


def expected_cookie(sticky: Dict[str, Any]) -> Dict[str, Any]:
    cookie = dict(sticky["Cookie"])
    path = cookie.get("Path", "/")
    cookie["Path"] = path["$expr"].split('"')[1] if isinstance(path, dict) else path
    cookie.setdefault("SameSite", "")
    cookie.setdefault("MaxAge", 0)
    return {"Cookie": cookie}


def build_case(case: Dict[str, Any]) -> Tuple[Any, List[str]]:
    # Traefik's test loader splits fixtures on the text "---", so one fixture gets away with a
    # "------" separator line that is not valid YAML; make it the separator it was meant as.
    files = sorted(
        (name, text.replace("\n------\n", "\n---\n"))
        for name, text in case["inputs"]["fixtures"].items()
    )
    inputs = case["inputs"]
    options = PROVIDER_OPTIONS.format(
        cross=str(inputs.get("allowCrossNamespace", False)).lower(),
        empty=str(inputs.get("allowEmptyServices", False)).lower(),
    )
    loaded = load_files(STATIC + options, files)
    result = build_table(loaded)
    return result.table, [str(e) for e in loaded.errors + result.errors]


class IngressRouteVectorTests(SynchronousTestCase):
    """TestLoadIngressRoutes cases: routers and services match Traefik's generated config."""

    def check_group(self, group: str, count: int) -> None:
        cases = GROUPS[group]
        self.assertEqual(len(cases), count)
        for case in cases:
            description = case["description"]
            table, errors = build_case(case)
            expected = case["expected"]["HTTP"]
            routers = {}
            for router in table.routers:
                routers[router.name] = router
                self.assertEqual(
                    router.service.name, expected["Routers"][router.name]["Service"], description
                )
            self.assertEqual(sorted(routers), sorted(expected["Routers"]), (description, errors))
            for name, want in expected["Routers"].items():
                router = routers[name]
                self.assertEqual(list(router.entrypoints), want["EntryPoints"], description)
                self.assertEqual(router.rule, want["Rule"], description)
                self.assertEqual(
                    router.priority, want.get("Priority", len(want["Rule"])), description
                )
            if not expected["Routers"]:
                self.assertTrue(errors, description)
                continue
            self.assertEqual(errors, [], description)
            got = {name: render_node(node) for name, node in table.services.items()}
            self.assertEqual(got, expected_services(expected["Services"]), description)

    def test_v2(self) -> None:
        """Traefik v2.10 fixtures (Endpoints) build the same routers and services."""
        self.check_group("v2.10-IngressRoute-services", 19)

    def test_v3(self) -> None:
        """Traefik v3 fixtures (EndpointSlices, sticky defaults) build the same routers and services."""
        self.check_group("v3-IngressRoute-services", 22)

    def test_droppedRouteErrors(self) -> None:
        """Where Traefik generates nothing, tsproxy says why, at the service reference."""
        cases = {c["description"]: c for c in GROUPS["v3-IngressRoute-services"]}
        expectations = {
            "Ingress Route, externalName service without ports": (
                "with_externalname_without_ports.yml:15: IngressRoute default/test.route:"
                " spec.routes[0].services[0].port: is required for a Service reference"
            ),
            "Ingress Route, empty service disallowed": (
                "with_empty_services.yml:16: IngressRoute default/test.route:"
                " no endpoints for service default/whoami-without-endpointslice-endpoints"
            ),
        }
        for description, message in expectations.items():
            _, errors = build_case(cases[description])
            self.assertEqual(errors, [message], description)


class ServiceProtocolVectorTests(SynchronousTestCase):
    """parseServiceProtocol: explicit scheme, or https for port 443 / https* port names."""

    def test_vectors(self) -> None:
        """Every TestParseServiceProtocol row."""
        cases = GROUPS["parseServiceProtocol"]
        self.assertEqual(len(cases), 6)
        for case in cases:
            inputs, expected = case["inputs"], case["expected"]
            arguments = (inputs["scheme"], inputs["portName"], inputs["portNumber"])
            if expected["expectedError"]:
                self.assertRaises(BuildError, parse_service_protocol, *arguments)
            else:
                self.assertEqual(
                    parse_service_protocol(*arguments), expected["expected"], case["description"]
                )


def go_port(value: Any) -> Any:
    """intstr.FromInt(80) -> 80, intstr.FromString("http") -> "http", absent -> None."""
    if value is None:
        return None
    text = value["$expr"]
    argument = text[text.index("(") + 1 : text.rindex(")")].strip()
    return argument.strip('"') if "FromString" in text else int(argument)


class ServicePortVectorTests(SynchronousTestCase):
    """getServicePort: by number or by name; ExternalName accepts an undeclared number."""

    def test_vectors(self) -> None:
        """Every TestGetServicePort row."""
        cases = GROUPS["getServicePort"]
        self.assertEqual(len(cases), 16)
        meta = Meta("Service", "default", "s", Location("f.yaml", 1))
        for case in cases:
            spec = case["inputs"].get("svc", {}).get("Spec", {})
            service = Service(
                meta,
                ports=tuple(
                    ServicePort(p.get("Port", 0), p.get("Name", "")) for p in spec.get("Ports", [])
                ),
                type="ExternalName" if "Type" in spec else "ClusterIP",
                external_name="example.org",
            )
            port = go_port(case["inputs"].get("port"))
            if case["expected"]["expectError"]:
                self.assertRaises(BuildError, get_service_port, service, port)
                continue
            want = case["expected"]["expected"]
            self.assertEqual(
                get_service_port(service, port),
                ServicePort(want["Port"], want.get("Name", "")),
                case["description"],
            )
