"""Test certificates made with ``cryptography``: a CA, leaves with SANs (wildcards, IPs),
expired ones, mismatched keys, client certificates; and Secret resources or YAML holding
them, base64 as in Kubernetes.

EC P-256 keys keep generation fast; nothing here is written to disk unless a test does.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from typing import Dict, Optional, Sequence, Tuple

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tsproxy.config.errors import Location
from tsproxy.config.resources import Meta, Secret

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
DAY = datetime.timedelta(days=1)


@attrs.frozen(eq=False)
class Issued:
    """A certificate and its key, with PEM encodings."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])


def make_ca(cn: str = "tsproxy test CA") -> Issued:
    """A self-signed CA certificate valid for a year around now. It and the leaves carry key
    identifiers, as RFC 5280 asks: Python 3.13's default context (VERIFY_X509_STRICT)
    refuses a leaf without an Authority Key Identifier."""
    key = new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def make_leaf(
    ca: Issued,
    cn: str = "",
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    not_before: Optional[datetime.datetime] = None,
    not_after: Optional[datetime.datetime] = None,
    client: bool = False,
    uris: Sequence[str] = (),
) -> Issued:
    """A leaf signed by ``ca`` with the given CN, DNS, IP and URI SANs (server auth, or client
    auth when ``client``)."""
    key = new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY)
        .not_valid_after(not_after or NOW + 90 * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    sans = [x509.DNSName(name) for name in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    sans += [x509.UniformResourceIdentifier(uri) for uri in uris]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def meta(kind: str, namespace: str, name: str, file: str = "secrets.yaml", line: int = 1) -> Meta:
    label = "%s %s/%s" % (kind, namespace, name)
    return Meta(kind, namespace, name, Location(file, line, label))


def tls_secret(
    name: str,
    issued: Optional[Issued] = None,
    namespace: str = "default",
    data: Optional[Dict[str, bytes]] = None,
    line: int = 1,
    chain: Tuple[Issued, ...] = (),
) -> Secret:
    """A kubernetes.io/tls Secret resource: ``issued`` (plus ``chain``) or raw ``data``."""
    if data is None:
        assert issued is not None
        crt = issued.cert_pem + b"".join(item.cert_pem for item in chain)
        data = {"tls.crt": crt, "tls.key": issued.key_pem}
    return Secret(
        meta("Secret", namespace, name, line=line), "kubernetes.io/tls", tuple(data.items())
    )


def secret_yaml(
    name: str, data: Dict[str, bytes], namespace: str = "default", kind: str = "kubernetes.io/tls"
) -> str:
    """The YAML document of a Secret with ``data`` base64-encoded as Kubernetes stores it."""
    lines = [
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        "  name: %s" % name,
        "  namespace: %s" % namespace,
        "type: %s" % kind,
        "data:",
    ]
    for key, value in data.items():
        lines.append("  %s: %s" % (key, base64.b64encode(value).decode("ascii")))
    return "\n".join(lines) + "\n"
