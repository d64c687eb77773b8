"""Tests for tsproxy.tls.certs: key pairs from Secrets with Traefik's error texts, the names a
certificate serves, CA bundles for client authentication, and the generated default
certificate."""

from __future__ import annotations

import base64
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import SynchronousTestCase

from tests import certs
from tsproxy.tls.certs import (
    DEFAULT_CERT_CN,
    CertificateError,
    ca_bundle_from_secret,
    certificate_from_secret,
    certificate_names,
    generated_default_certificate,
    load_key_pair,
)

CA = certs.make_ca()
LEAF = certs.make_leaf(CA, "www.example.com", dns=["www.example.com", "example.com"])
OTHER = certs.make_leaf(CA, "other.example")


def _rsa_key_pem() -> bytes:
    key = generated_default_certificate().key
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


class SecretTests(SynchronousTestCase):
    """certificate_from_secret: what a kubernetes.io/tls Secret may hold and the errors."""

    def test_loads_chain_and_key(self) -> None:
        """tls.crt with leaf then CA gives a two-certificate chain, leaf first, and its key."""
        secret = certs.tls_secret("web", LEAF, chain=(CA,))
        cert = certificate_from_secret(secret)
        self.assertEqual(cert.chain, (LEAF.cert, CA.cert))
        self.assertEqual(cert.source, "default/web")
        self.assertEqual(cert.names, ("www.example.com", "example.com"))
        self.assertEqual(cert.not_after, LEAF.cert.not_valid_after_utc)
        self.assertEqual(cert.subject_cn, "www.example.com")

    def test_errors(self) -> None:
        """Each broken Secret is refused with Traefik's (or Go crypto/tls's) text."""
        key, crt = LEAF.key_pem, LEAF.cert_pem
        garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        cases = [
            ({}, "secret default/s is missing the following TLS data entries: tls.crt, tls.key"),
            (
                {"tls.crt": crt},
                "secret default/s is missing the following TLS data entries: tls.key",
            ),
            (
                {"tls.key": key},
                "secret default/s is missing the following TLS data entries: tls.crt",
            ),
            (
                {"tls.crt": b"", "tls.key": b""},
                "secret default/s contains the following empty TLS data entries: tls.crt, tls.key",
            ),
            (
                {"tls.crt": crt, "tls.key": b""},
                "secret default/s contains the following empty TLS data entries: tls.key",
            ),
            (
                {"tls.crt": b"hello", "tls.key": key},
                "tls: failed to find any PEM data in certificate input",
            ),
            (
                {"tls.crt": crt, "tls.key": b"hello"},
                "tls: failed to find any PEM data in key input",
            ),
            (
                {"tls.crt": key, "tls.key": crt},
                "tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched",
            ),
            (
                {"tls.crt": crt, "tls.key": crt},
                "tls: found a certificate rather than a key in the PEM for the private key",
            ),
            (
                {"tls.crt": crt, "tls.key": OTHER.key_pem},
                "tls: private key does not match public key",
            ),
            (
                {"tls.crt": crt, "tls.key": _rsa_key_pem()},
                "tls: private key type does not match public key type",
            ),
            (
                {
                    "tls.crt": crt,
                    "tls.key": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                },
                "tls: failed to parse private key",
            ),
        ]
        for data, message in cases:
            with self.subTest(message=message):
                secret = certs.tls_secret("s", data=data)
                with self.assertRaises(CertificateError) as caught:
                    certificate_from_secret(secret)
                self.assertEqual(str(caught.exception), message)
        with self.assertRaises(CertificateError) as caught:
            certificate_from_secret(
                certs.tls_secret("s", data={"tls.crt": garbage, "tls.key": key})
            )
        self.assertTrue(str(caught.exception).startswith("x509: cannot parse certificate: "))

    def test_rsa_and_pkcs1(self) -> None:
        """An RSA key in PKCS#1 ("RSA PRIVATE KEY") form matches its certificate."""
        default = generated_default_certificate()
        crt = default.leaf.public_bytes(serialization.Encoding.PEM)
        cert = load_key_pair(crt, _rsa_key_pem(), "x/y")
        self.assertEqual(cert.names, default.names)

    def test_crlf_pem(self) -> None:
        """PEM with CRLF line ends (edited on Windows) still loads."""
        crt = LEAF.cert_pem.replace(b"\n", b"\r\n")
        key = LEAF.key_pem.replace(b"\n", b"\r\n")
        self.assertEqual(load_key_pair(crt, key, "a/b").chain, (LEAF.cert,))


class NamesTests(SynchronousTestCase):
    """certificate_names: CN, then DNS SANs, then IP SANs, lower case, no duplicates."""

    def test_table(self) -> None:
        """One row per shape of subject and SANs."""
        rows = [
            (dict(cn="Only.CN.example"), ("only.cn.example",)),
            (dict(cn="a.example", dns=["a.example", "B.example"]), ("a.example", "b.example")),
            (dict(dns=["*.wild.example", "wild.example."]), ("*.wild.example", "wild.example")),
            (dict(cn="svc", ips=["10.0.0.1", "::1"]), ("svc", "10.0.0.1", "::1")),
            (dict(), ()),
        ]
        for kwargs, names in rows:
            with self.subTest(kwargs=kwargs):
                issued = certs.make_leaf(CA, **kwargs)  # type: ignore[arg-type]
                self.assertEqual(certificate_names(issued.cert), names)


class CABundleTests(SynchronousTestCase):
    """ca_bundle_from_secret: tls.ca, else ca.crt, else the only entry."""

    def test_keys(self) -> None:
        """The entry chosen for each Secret layout, and the error when none applies."""
        other_ca = certs.make_ca("other CA")
        rows = [
            ({"tls.ca": CA.cert_pem, "ca.crt": other_ca.cert_pem}, (CA.cert,)),
            ({"ca.crt": other_ca.cert_pem, "tls.crt": CA.cert_pem}, (other_ca.cert,)),
            ({"anything": CA.cert_pem + other_ca.cert_pem}, (CA.cert, other_ca.cert)),
        ]
        for data, expected in rows:
            with self.subTest(keys=sorted(data)):
                self.assertEqual(ca_bundle_from_secret(certs.tls_secret("ca", data=data)), expected)
        with self.assertRaises(CertificateError) as caught:
            ca_bundle_from_secret(certs.tls_secret("ca", data={"a": b"1", "b": b"2"}))
        self.assertEqual(
            str(caught.exception), "secret default/ca contains neither tls.ca nor ca.crt"
        )
        with self.assertRaises(CertificateError) as caught:
            ca_bundle_from_secret(certs.tls_secret("ca", data={"ca.crt": b"not pem"}))
        self.assertEqual(
            str(caught.exception),
            "invalid certificate(s) in secret default/ca: no valid PEM certificate found",
        )


class DefaultCertificateTests(SynchronousTestCase):
    """generated_default_certificate: Traefik's self-signed TRAEFIK DEFAULT CERT."""

    def test_shape(self) -> None:
        """CN TRAEFIK DEFAULT CERT, a <32hex>.<32hex>.traefik.default SAN, RSA-2048, one year."""
        cert = generated_default_certificate()
        self.assertEqual(cert.subject_cn, DEFAULT_CERT_CN)
        self.assertEqual(cert.leaf.issuer, cert.leaf.subject)
        san = cert.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        (dns,) = san.get_values_for_type(x509.DNSName)
        first, second, *rest = dns.split(".")
        self.assertEqual((len(first), len(second), rest), (32, 32, ["traefik", "default"]))
        self.assertEqual(cert.key.key_size, 2048)  # type: ignore[union-attr]
        lifetime = cert.not_after - cert.leaf.not_valid_before_utc
        self.assertEqual(lifetime, datetime.timedelta(days=365))

    def test_once_per_process(self) -> None:
        """Every call returns the same certificate and key."""
        self.assertIs(generated_default_certificate(), generated_default_certificate())


class YAMLSecretTests(SynchronousTestCase):
    """The tests' YAML helper encodes data as Kubernetes does (base64)."""

    def test_base64(self) -> None:
        """secret_yaml puts base64 of each value under data."""
        text = certs.secret_yaml("web", {"tls.crt": b"abc"})
        self.assertIn("  tls.crt: %s\n" % base64.b64encode(b"abc").decode(), text)
