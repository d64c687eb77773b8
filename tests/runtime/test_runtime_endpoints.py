"""Tests for tsproxy.runtime.endpoints: which servers a Service reference gets."""

from __future__ import annotations

from typing import List, Optional, Union

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.load import load_files
from tsproxy.config.providers import CRDProviderConfig
from tsproxy.config.resources import ServiceRef
from tsproxy.runtime.endpoints import BuildError, ServiceDirectory
from tsproxy.runtime.services import TransportSettings

STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n'

RESOURCES = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
    - {name: http, port: 80, targetPort: 8080}
    - {name: https-admin, port: 8443}
    - {name: tls, port: 443}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets:
  - addresses: [{ip: 10.0.0.1}, {ip: 10.0.0.2}, {ip: 10.0.0.1}]
    notReadyAddresses: [{ip: 10.0.0.9}]
    ports: [{name: http, port: 8080}, {name: https-admin, port: 9443}, {name: tls, port: 8443}]
  - addresses: [{ip: "fd00::1"}]
    ports: [{name: http, port: 8080}]
  - addresses: [{ip: 10.0.0.3}]
    ports: [{name: other, port: 1}]
---
apiVersion: v1
kind: Service
metadata: {name: sliced}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: sliced}
subsets: [{addresses: [{ip: 10.9.9.9}], ports: [{port: 80}]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: sliced-a, labels: {kubernetes.io/service-name: sliced}}
ports: [{port: 8080}]
endpoints:
  - addresses: [10.1.0.1]
  - addresses: [10.1.0.2]
    conditions: {ready: false}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: sliced-b, labels: {kubernetes.io/service-name: sliced}}
ports: [{port: 8080}]
endpoints:
  - addresses: [10.1.0.1, 10.1.0.3]
    conditions: {ready: true}
---
apiVersion: v1
kind: Service
metadata: {name: ext6}
spec: {type: ExternalName, externalName: "2001:db8::7"}
"""


def servers(name: str, port: Optional[Union[int, str]], scheme: str = "") -> List[str]:
    loaded = load_files(STATIC, [("s.yaml", RESOURCES)])
    assert loaded.errors == (), loaded.errors
    directory = ServiceDirectory(
        loaded.resources, CRDProviderConfig(allow_external_name_services=True)
    )
    ref = ServiceRef(name, "default", 1, "ref", port=port, scheme=scheme)
    return [server.url for server in directory.servers(ref, TransportSettings())]


class ServersTests(SynchronousTestCase):
    """Port matching, schemes, duplicates, readiness, EndpointSlices over Endpoints."""

    def test_table(self) -> None:
        """Each reference gives its server URLs, in endpoint order."""
        cases = [
            (
                ("web", 80),
                ["http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://[fd00::1]:8080"],
            ),
            (
                ("web", "http"),
                ["http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://[fd00::1]:8080"],
            ),
            (("web", "https-admin"), ["https://10.0.0.1:9443", "https://10.0.0.2:9443"]),
            (("web", 443), ["https://10.0.0.1:8443", "https://10.0.0.2:8443"]),
            (
                ("web", 80, "h2c"),
                ["h2c://10.0.0.1:8080", "h2c://10.0.0.2:8080", "h2c://[fd00::1]:8080"],
            ),
            (("sliced", 80), ["http://10.1.0.1:8080", "http://10.1.0.3:8080"]),
            (("ext6", 8080), ["http://[2001:db8::7]:8080"]),
            (("ext6", 443), ["https://[2001:db8::7]:443"]),
        ]
        for arguments, expected in cases:
            self.assertEqual(servers(*arguments), expected, arguments)  # type: ignore[arg-type]

    def test_errors(self) -> None:
        """Missing Service, unknown port, no matching endpoints: one message each."""
        cases = [
            (("nope", 80), "service default/nope not found"),
            (("web", 81), "port 81 not found in service default/web"),
            (("web", "grpc"), "port grpc not found in service default/web"),
            (("ext6", "http"), "port http not found in service default/ext6"),
            (("web", None), "no port given for service default/web"),
        ]
        for arguments, message in cases:
            with self.assertRaises(BuildError) as caught:
                servers(*arguments)  # type: ignore[arg-type]
            self.assertEqual(str(caught.exception), message)
