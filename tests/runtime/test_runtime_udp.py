"""Tests for tsproxy.runtime.udp: IngressRouteUDP to one router per UDP entrypoint, and picks."""

from __future__ import annotations

import json
import os
import textwrap
from typing import Any, Dict, List, Optional, Sequence, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.load import load_files
from tsproxy.runtime.build import BuildResult, build_table
from tsproxy.runtime.table import RoutingTable
from tsproxy.runtime.udp import UDPLoadBalancer, UDPNode, UDPServer, UDPWeighted

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
STATIC = """\
entryPoints:
  web:
    address: ":8000"
  foo:
    address: ":8001/udp"
  dns:
    address: "127.0.0.1:5353/udp"
providers:
  kubernetesCRD:
    allowExternalNameServices: true
"""

with open(os.path.join(DATA, "crd-provider.json")) as _stream:
    CRD = {group["id"]: group["cases"] for group in json.load(_stream)["groups"]}
with open(os.path.join(DATA, "services.json")) as _stream:
    SERVICES = {group["id"]: group["cases"] for group in json.load(_stream)["groups"]}


def build(
    files: Sequence[Tuple[str, str]],
    previous: Optional[RoutingTable] = None,
    load_errors: int = 0,
) -> Tuple[BuildResult, List[str], List[str]]:
    """Build ``files`` (name, text); the loader must report exactly ``load_errors`` errors."""
    loaded = load_files(STATIC, [(name, textwrap.dedent(text)) for name, text in files])
    assert len(loaded.errors) == load_errors, loaded.errors
    result = build_table(loaded, previous)
    return result, [str(e) for e in result.errors], [str(w) for w in result.warnings]


def backends(weights: Sequence[Tuple[str, int]]) -> Tuple[str, str]:
    """A Service+Endpoints per name (one server each, 10.0.0.N:53) and a route over them."""
    docs = []
    refs = []
    for number, (name, weight) in enumerate(weights, 1):
        docs.append(
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"
            f"spec: {{ports: [{{name: dns, port: 53}}]}}\n---\n"
            f"apiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}}}\n"
            f"subsets: [{{addresses: [{{ip: 10.0.0.{number}}}], ports: [{{name: dns, port: 53}}]}}]\n"
        )
        refs.append(f"        - {{name: {name}, port: 53, weight: {weight}}}\n")
    route = udp_route("dns", "".join(refs))
    return "---\n".join(docs), route


def udp_route(name: str, services: str, entrypoints: str = "  entryPoints: [foo]\n") -> str:
    return (
        f"apiVersion: traefik.io/v1alpha1\nkind: IngressRouteUDP\nmetadata: {{name: {name}}}\n"
        f"spec:\n{entrypoints}  routes:\n    - services:\n{services}"
    )


def render(node: UDPNode) -> Dict[str, Any]:
    """A UDP service node as Traefik's dynamic configuration shows it."""
    if isinstance(node, UDPLoadBalancer):
        servers = [{"Address": s.address} for s in node.definition.servers]
        return {"LoadBalancer": {"Servers": servers}}
    children = [{"Name": c.name, "Weight": c.weight} for c in node.definition.children]
    return {"Weighted": {"Services": children}}


def go_weight(value: Any) -> int:
    """``func ( i int ) * int { return & i } ( 2 )`` -> 2."""
    if isinstance(value, dict):
        text = value["$expr"]
        return int(text[text.rindex("(") + 1 : text.rindex(")")])
    return int(value)


def picks(node: Optional[UDPNode], count: int) -> List[Optional[str]]:
    """The servers ``count`` new sessions get, by address."""
    assert node is not None
    result = []
    for _ in range(count):
        server = node.pick()
        result.append(None if server is None else server.address)
    return result


class CRDVectorTests(SynchronousTestCase):
    """Traefik's TestLoadIngressRouteUDPs fixtures give the same routers and services."""

    def test_vectors(self) -> None:
        """Every v2.10 IngressRouteUDP case: names, entrypoints, servers and weights."""
        cases = CRD["v2.10-IngressRouteUDP"]
        self.assertEqual(len(cases), 3)
        for case in cases:
            description = case["description"]
            # The shared fixture holds a Service without a port number, which the loader
            # rejects (as Kubernetes would); no route of these cases uses it.
            result, errors, _ = build(sorted(case["inputs"]["fixtures"].items()), load_errors=1)
            table = result.table
            assert table is not None
            expected = case["expected"]["UDP"]
            served = {r.name: (list(r.entrypoints), r.service.name) for r in table.udp_routers}
            want = {
                name: (router["EntryPoints"], router["Service"])
                for name, router in expected["Routers"].items()
            }
            if len(want) == 2:
                # Two routers on one entrypoint: Traefik generates both and serves the last by
                # name; tsproxy builds the one it serves and reports the other.
                self.assertEqual(served, {"default-test.route-1": want["default-test.route-1"]})
                self.assertEqual(len(errors), 1, errors)
                self.assertIn("already has the UDP router default-test.route-1", errors[0])
                continue
            self.assertEqual((served, errors), (want, []), description)
            got: Dict[str, Any] = {}
            for router in table.udp_routers:
                got[router.service.name] = render(router.service)
                if isinstance(router.service, UDPWeighted):
                    for child in router.service.balancers:
                        got[child.name] = render(child)
            for service in expected["Services"].values():
                for child in service.get("Weighted", {}).get("Services", []):
                    child["Weight"] = go_weight(child["Weight"])
            self.assertEqual(got, expected["Services"], description)


class PickTests(SynchronousTestCase):
    """New sessions spread by weight across services, and in turn across servers."""

    def test_weightedVectors(self) -> None:
        """Traefik's TCP/UDP WRR count tables and exact sequences hold for UDP sessions."""
        for case in SERVICES["tcp-udp-weighted-round-robin"]:
            inputs, expected = case["inputs"], case["expected"]
            if "serversWeight" in inputs:
                weights = list(inputs["serversWeight"].items())
                count = inputs["totalCall"]
            elif "sequence" in expected:
                weights = [tuple(child) for child in inputs["children"]]
                count = inputs["connections"]
            else:
                continue  # health status cases: UDP has no health checks, as in Traefik
            services, route = backends(weights)
            result, errors, _ = build([("backends.yaml", services), ("dns.yaml", route)])
            assert result.table is not None
            got = picks(result.table.udp_service("foo"), count)
            address = {f"10.0.0.{n}:53": name for n, (name, _) in enumerate(weights, 1)}
            names = [None if a is None else address[a] for a in got]
            if "sequence" in expected:
                self.assertEqual(names, expected["sequence"], case["description"])
                continue
            counts = {name: names.count(name) for name in set(names) if name is not None}
            self.assertEqual(counts, expected["expectedWrite"], case["description"])
            self.assertEqual(names.count(None), expected.get("expectedClose", 0))

    def test_serversInTurn(self) -> None:
        """Inside one Service, sessions take the endpoints in turn, duplicates removed."""
        services = """\
        apiVersion: v1
        kind: Service
        metadata: {name: resolver}
        spec: {ports: [{name: dns, port: 53}]}
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: resolver}
        subsets:
          - addresses: [{ip: 10.0.0.1}, {ip: "fd00::1"}, {ip: 10.0.0.1}]
            ports: [{name: dns, port: 5353}]
        """
        route = udp_route("dns", "        - {name: resolver, port: dns}\n")
        result, errors, _ = build([("a.yaml", services), ("b.yaml", route)])
        assert result.table is not None
        self.assertEqual(errors, [])
        self.assertEqual(
            picks(result.table.udp_service("foo"), 3),
            ["10.0.0.1:5353", "[fd00::1]:5353", "10.0.0.1:5353"],
        )
        self.assertEqual(UDPServer("fd00::1", 53).address, "[fd00::1]:53")


class RouterTests(SynchronousTestCase):
    """Which router serves which entrypoint, and every problem located."""

    def test_noEntryPointsMeansEveryUDPEntrypoint(self) -> None:
        """A route without entryPoints serves every UDP entrypoint and no TCP one."""
        services, _ = backends([("a", 1)])
        route = udp_route("dns", "        - {name: a, port: 53}\n", entrypoints="")
        result, errors, _ = build([("a.yaml", services), ("b.yaml", route)])
        table = result.table
        assert table is not None
        self.assertEqual(errors, [])
        self.assertEqual([r.entrypoints for r in table.udp_routers], [("foo", "dns")])
        self.assertIs(table.udp_service("foo"), table.udp_service("dns"))
        self.assertIsNone(table.udp_service("web"))
        self.assertIsNone(table.udp_router("nope"))

    def test_secondRouterIsAnError(self) -> None:
        """Two routers on one entrypoint: the last by name serves; the error names both files."""
        services, _ = backends([("a", 1), ("b", 1)])
        first = udp_route("alpha", "        - {name: a, port: 53}\n", "  entryPoints: [foo, dns]\n")
        second = udp_route("beta", "        - {name: b, port: 53}\n")
        result, errors, _ = build([("a.yaml", services), ("x.yaml", first), ("y.yaml", second)])
        table = result.table
        assert table is not None
        self.assertEqual(
            errors,
            [
                "x.yaml:7: IngressRouteUDP default/alpha: spec.routes[0]: entrypoint foo already"
                " has the UDP router default-beta-0 (y.yaml:7); one UDP router per entrypoint,"
                " as in Traefik: default-alpha-0 is not used there"
            ],
        )
        self.assertEqual(picks(table.udp_service("foo"), 1), ["10.0.0.2:53"])
        self.assertEqual(picks(table.udp_service("dns"), 1), ["10.0.0.1:53"])
        # For the API: alpha still serves dns, so it is a router with a warning.
        self.assertEqual(table.failed_routers, ())
        ((protocol, name, listed, messages),) = [
            (w.protocol, w.name, w.entrypoints, w.errors) for w in table.router_warnings
        ]
        self.assertEqual((protocol, name, listed), ("udp", "default-alpha-0", ("foo", "dns")))
        self.assertEqual(messages, (errors[0].split(": ", 2)[2],))

    def test_routerServingNothingIsDisabled(self) -> None:
        """A router that lost every entrypoint it lists is kept for the API as a failed one."""
        services, _ = backends([("a", 1), ("b", 1)])
        first = udp_route("alpha", "        - {name: a, port: 53}\n", "  entryPoints: [foo]\n")
        second = udp_route("beta", "        - {name: b, port: 53}\n")
        result, errors, _ = build([("a.yaml", services), ("x.yaml", first), ("y.yaml", second)])
        table = result.table
        assert table is not None
        self.assertEqual([r.name for r in table.udp_routers], ["default-beta-0"])
        self.assertEqual(table.router_warnings, ())
        (failed,) = table.failed_routers
        self.assertEqual(
            (failed.protocol, failed.name, failed.entrypoints, failed.using, failed.service),
            ("udp", "default-alpha-0", ("foo",), ("foo",), "default-alpha-0"),
        )
        self.assertEqual(failed.errors, tuple(e.split(": ", 2)[2] for e in errors))

    def test_errors(self) -> None:
        """Each broken route is dropped with exactly this located error."""
        services, _ = backends([("a", 1)])
        external = (
            "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\n"
            "spec: {type: ExternalName, externalName: dns.example, ports: [{port: 53}]}\n"
        )
        rows = [
            (
                "  entryPoints: [nope, web]\n",
                "        - {name: a, port: 53}\n",
                [
                    "r.yaml:1: IngressRouteUDP default/r: entrypoint nope not found",
                    "r.yaml:1: IngressRouteUDP default/r: entrypoint web is not a UDP entrypoint"
                    " (its address needs /udp)",
                    "r.yaml:7: IngressRouteUDP default/r: spec.routes[0]: no usable entrypoint,"
                    " route dropped",
                ],
            ),
            (
                "  entryPoints: [foo]\n",
                "        - {name: missing, port: 53}\n",
                [
                    "r.yaml:8: IngressRouteUDP default/r: service default/missing not found,"
                    " route dropped"
                ],
            ),
            (
                "  entryPoints: [foo]\n",
                "        - {name: a, port: 54}\n",
                [
                    "r.yaml:8: IngressRouteUDP default/r: port 54 not found in service"
                    " default/a, route dropped"
                ],
            ),
            (
                "  entryPoints: [foo]\n",
                "        - {name: ext, port: 53}\n",
                [
                    "r.yaml:8: IngressRouteUDP default/r: service default/ext: UDP servers need"
                    " an IP address, 'dns.example' is a name (ExternalName hosts are not"
                    " resolved for UDP), route dropped"
                ],
            ),
            (
                "  entryPoints: [foo]\n",
                "        []\n",
                [
                    "r.yaml:7: IngressRouteUDP default/r: spec.routes[0].services: no service,"
                    " route dropped"
                ],
            ),
        ]
        for entrypoints, refs, expected in rows:
            route = udp_route("r", refs, entrypoints)
            result, errors, _ = build(
                [("a.yaml", services + "---\n" + external), ("r.yaml", route)]
            )
            assert result.table is not None
            self.assertEqual((errors, result.table.udp_routers), (expected, ()), refs)

    def test_allWeightsZero(self) -> None:
        """A route whose services all weigh 0 is kept with a warning and picks nothing."""
        services, route = backends([("a", 0), ("b", 0)])
        result, errors, warnings = build([("a.yaml", services), ("dns.yaml", route)])
        assert result.table is not None
        self.assertEqual(errors, [])
        self.assertEqual(
            warnings,
            [
                "dns.yaml:7: IngressRouteUDP default/dns: spec.routes[0]: no service with a"
                " weight above 0: datagrams are dropped"
            ],
        )
        self.assertEqual(picks(result.table.udp_service("foo"), 2), [None, None])


class RebuildTests(SynchronousTestCase):
    """A rebuild keeps unchanged UDP services, with their position, and replaces changed ones."""

    def test_reuse(self) -> None:
        """Same definition: same node, the split goes on; changed weights: a fresh node."""
        services, route = backends([("a", 1), ("b", 1)])
        files = [("a.yaml", services), ("dns.yaml", route)]
        first, _, _ = build(files)
        assert first.table is not None
        node = first.table.udp_service("foo")
        self.assertEqual(picks(node, 1), ["10.0.0.1:53"])
        again, _, _ = build(files, first.table)
        assert again.table is not None
        self.assertIs(again.table.udp_service("foo"), node)
        self.assertEqual(picks(node, 1), ["10.0.0.2:53"])
        changed, _, _ = build([files[0], ("dns.yaml", route.replace("weight: 1}", "weight: 2}"))])
        assert changed.table is not None
        fresh = changed.table.udp_service("foo")
        self.assertIsNot(fresh, node)
        self.assertEqual(picks(fresh, 1), ["10.0.0.1:53"])
