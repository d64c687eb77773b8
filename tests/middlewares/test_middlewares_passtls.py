"""Tests for tsproxy.middlewares.passtls: Traefik's passTLSClientCert vectors, every harness."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any, Dict, Optional
from urllib.parse import unquote_plus

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.trial.unittest import SynchronousTestCase

from tests.authfixture import (
    FakeContext,
    fields_of,
    fields_yaml,
    load_vectors,
    request_of,
    run_step,
)
from tsproxy.config.schema import FieldError
from tsproxy.middlewares import passtls

VECTORS = load_vectors("passTLSClientCert.json")


def der_of(name: str) -> bytes:
    pem = VECTORS["certificates"][name].encode("ascii")
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def cert_with_sans(sans: Dict[str, Any]) -> x509.Certificate:
    """A throwaway self-signed certificate carrying `sans` (as the Go test's struct)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.datetime(2024, 1, 1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    general = [x509.DNSName(v) for v in sans.get("dnsNames", [])]
    general += [x509.RFC822Name(v) for v in sans.get("emailAddresses", [])]
    general += [x509.IPAddress(ipaddress.ip_address(v)) for v in sans.get("ipAddresses", [])]
    general += [x509.UniformResourceIdentifier(v) for v in sans.get("uris", [])]
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(key, hashes.SHA256())


class VectorTests(SynchronousTestCase):
    """Every case of passTLSClientCert.json."""

    def test_vectors(self) -> None:
        """Headers, sanitized PEM and SAN lists are Traefik's, byte for byte."""
        for case in VECTORS["cases"]:
            with self.subTest(case["name"]):
                harness = case.get("harness", "middleware")
                getattr(self, "run_" + harness)(case)

    def run_middleware(self, case: Dict[str, Any]) -> None:
        step = passtls.build(passtls.parse(fields_of(case["config"])), "p", FakeContext())
        certs = tuple(der_of(name) for name in case["request"]["peerCertificates"])
        request = request_of(case["request"], client_certs=lambda: certs)
        self.assertIsNone(run_step(step, request))
        for name, want in case["expect"]["backend"]["headers"].items():
            got = request.headers.get(name)
            if isinstance(want, dict):
                self.assertEqual(got, want["wire"])
                self.assertEqual(unquote_plus(got or ""), want["decoded"])
            else:
                self.assertEqual(got, want)

    def run_sanitize(self, case: Dict[str, Any]) -> None:
        source: str = case["input"]
        certs = (der_of(source.split(".", 1)[1]),) if source else ()
        self.assertEqual(passtls.pem_value(certs), case["expect"]["sanitized"])

    def run_sans(self, case: Dict[str, Any]) -> None:
        cert: Optional[x509.Certificate] = None
        if case["input"] is not None:
            cert = cert_with_sans(case["input"])
        self.assertEqual(passtls.sans_of(cert), case["expect"]["sans"])


class StepTests(SynchronousTestCase):
    """What the vectors do not cover: forged headers, empty info, parse errors."""

    def test_forged_headers_dropped(self) -> None:
        """Without a client certificate a client's own header is removed (unless trusted)."""
        step = passtls.build(
            passtls.parse(fields_of({"pem": True, "info": {}})), "p", FakeContext()
        )
        headers = {passtls.CERT_HEADER: "forged", passtls.INFO_HEADER: "forged"}
        request = request_of({"headers": headers})
        step.handle(request)
        self.assertIsNone(request.headers.get(passtls.CERT_HEADER))
        self.assertIsNone(request.headers.get(passtls.INFO_HEADER))
        trusted = request_of({"headers": headers}, forwarded_trusted=True)
        step.handle(trusted)
        self.assertEqual(trusted.headers.get(passtls.CERT_HEADER), "forged")

    def test_empty_info_sets_empty_header(self) -> None:
        """An info section choosing nothing still sets the header, empty, as Traefik does."""
        step = passtls.build(passtls.parse(fields_of({"info": {}})), "p", FakeContext())
        der = der_of("minimalCheeseCrt")
        request = request_of({"tls": True}, client_certs=lambda: (der, der))
        step.handle(request)
        self.assertEqual(request.headers.get(passtls.INFO_HEADER), "%2C")

    def test_errors(self) -> None:
        """Unknown fields, including issuer.organizationalUnit, are located errors."""
        table = [
            ("pem: true\nbogus: 1\n", 2, "spec.kind.bogus"),
            ("info:\n  issuer:\n    organizationalUnit: true\n", 3,
             "spec.kind.info.issuer.organizationalUnit"),
            ("info:\n  subject:\n    commonName: 1\n", 3, "spec.kind.info.subject.commonName"),
            ("info:\n  sans: true\n  san: true\n", 3, "spec.kind.info.san"),
        ]  # fmt: skip
        for text, line, path in table:
            with self.subTest(text):
                with self.assertRaises(FieldError) as caught:
                    passtls.parse(fields_yaml(text))
                self.assertEqual((caught.exception.line, caught.exception.path), (line, path))


class RegistryTests(SynchronousTestCase):
    """The kinds are listed in the registry."""

    def test_registered(self) -> None:
        """http_kinds() gives this module's kinds by their Traefik key."""
        from tsproxy.middlewares.registry import http_kinds

        kinds = http_kinds()
        for kind in passtls.KINDS:
            self.assertIs(kinds[kind.name], kind)
        self.assertEqual({kind.name for kind in passtls.KINDS}, {"passTLSClientCert"})
