"""Certificates for TLS termination: key pairs from Kubernetes Secrets, CA bundles for client
authentication, and Traefik's generated default certificate.

Pure values built with ``cryptography``; no Twisted and no OpenSSL contexts here. Problems a
user can cause are :class:`CertificateError` with the texts Traefik (and Go's crypto/tls) use.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import hashlib
import os
import re
from typing import List, Optional, Tuple, Union

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from tsproxy.config.resources import Secret

__all__ = [
    "DEFAULT_CERT_CN",
    "Certificate",
    "CertificateError",
    "ca_bundle_from_secret",
    "certificate_from_secret",
    "certificate_names",
    "generated_default_certificate",
    "load_ca_bundle",
    "load_key_pair",
]

#: The subject CN of the certificate Traefik generates when no default certificate is set.
DEFAULT_CERT_CN = "TRAEFIK DEFAULT CERT"

PrivateKey = Union[
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
]

_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([^-\r\n]*)-----\r?\n(.*?)-----END \1-----",
    re.DOTALL,
)


class CertificateError(ValueError):
    """A certificate, key or CA bundle that cannot be used; ``str()`` is the message."""


@attrs.frozen(eq=False)
class Certificate:
    """A certificate chain (leaf first) with its private key.

    ``names`` are the lower-cased names it is served for, as Traefik's store keys them: the
    subject CN, then the DNS SANs, then the IP SANs, without duplicates. ``source`` is
    ``"<namespace>/<secret>"`` or ``"generated"``.
    """

    chain: Tuple[x509.Certificate, ...]
    key: PrivateKey
    names: Tuple[str, ...]
    source: str

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def not_after(self) -> datetime.datetime:
        """The end of the leaf's validity, an aware UTC datetime."""
        return self.leaf.not_valid_after_utc

    @property
    def subject_cn(self) -> str:
        return _common_name(self.leaf)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the leaf's DER, hex; what the API can show to tell certificates apart."""
        return self.leaf.fingerprint(hashes.SHA256()).hex()


def _common_name(cert: x509.Certificate) -> str:
    attributes = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attributes:
        return ""
    value = attributes[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def certificate_names(cert: x509.Certificate) -> Tuple[str, ...]:
    """The names Traefik files a certificate under: CN, DNS SANs, IP SANs (lower case)."""
    names: List[str] = []

    def add(name: str) -> None:
        name = name.strip().lower().rstrip(".")
        if name and name not in names:
            names.append(name)

    add(_common_name(cert))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return tuple(names)
    for dns in san.get_values_for_type(x509.DNSName):
        add(dns)
    for ip in san.get_values_for_type(x509.IPAddress):
        add(str(ip))
    return tuple(names)


def _pem_blocks(data: bytes) -> List[Tuple[str, bytes]]:
    """(type, DER) of every well-formed PEM block, in order; bad base64 bodies are skipped
    like Go's pem.Decode does."""
    blocks = []
    for match in _PEM_BLOCK.finditer(data):
        body = match.group(2)
        # Encapsulated headers (Proc-Type, DEK-Info) end at the first blank line.
        if b":" in body.split(b"\n", 1)[0]:
            body = body.split(b"\n\n", 1)[-1]
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (ValueError, binascii.Error):
            continue
        blocks.append((match.group(1).decode("ascii", "replace"), der))
    return blocks


def _load_chain(cert_pem: bytes) -> Tuple[x509.Certificate, ...]:
    blocks = _pem_blocks(cert_pem)
    ders = [der for kind, der in blocks if kind == "CERTIFICATE"]
    if not ders:
        skipped = [kind for kind, _ in blocks]
        if not skipped:
            raise CertificateError("tls: failed to find any PEM data in certificate input")
        if any(kind.endswith("PRIVATE KEY") for kind in skipped):
            raise CertificateError(
                "tls: failed to find certificate PEM data in certificate input, but did find"
                " a private key; PEM inputs may have been switched"
            )
        raise CertificateError(
            'tls: failed to find "CERTIFICATE" PEM block in certificate input after skipping'
            " PEM blocks of the following types: [%s]" % " ".join(skipped)
        )
    chain = []
    for index, der in enumerate(ders):
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            which = "certificate" if index == 0 else "chain certificate %d" % index
            raise CertificateError("x509: cannot parse %s: %s" % (which, exc)) from None
    return tuple(chain)


def _load_key(key_pem: bytes) -> PrivateKey:
    blocks = _pem_blocks(key_pem)
    if not blocks:
        raise CertificateError("tls: failed to find any PEM data in key input")
    skipped = []
    for kind, der in blocks:
        if kind == "PRIVATE KEY" or kind.endswith(" PRIVATE KEY"):
            try:
                key = serialization.load_der_private_key(der, password=None)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                raise CertificateError("tls: failed to parse private key") from None
            if not isinstance(key, _KEY_TYPES):
                raise CertificateError("tls: unknown private key type")
            return key
        skipped.append(kind)
    if skipped == ["CERTIFICATE"] * len(skipped):
        raise CertificateError(
            "tls: found a certificate rather than a key in the PEM for the private key"
        )
    raise CertificateError(
        'tls: failed to find PEM block with type ending in "PRIVATE KEY" in key input after'
        " skipping PEM blocks of the following types: [%s]" % " ".join(skipped)
    )


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_key_pair(cert_pem: bytes, key_pem: bytes, source: str) -> Certificate:
    """A certificate chain and its key from PEM, checked as Go's ``tls.X509KeyPair`` does."""
    chain = _load_chain(cert_pem)
    key = _load_key(key_pem)
    public = chain[0].public_key()
    if type(public) is not type(key.public_key()):
        raise CertificateError("tls: private key type does not match public key type")
    if _public_der(public) != _public_der(key.public_key()):
        raise CertificateError("tls: private key does not match public key")
    return Certificate(chain, key, certificate_names(chain[0]), source)


def certificate_from_secret(secret: Secret) -> Certificate:
    """The key pair in a Secret's ``tls.crt`` / ``tls.key`` (Traefik's getCertificateBlocks)."""
    where = "%s/%s" % (secret.meta.namespace, secret.meta.name)
    cert_pem, key_pem = secret.get("tls.crt"), secret.get("tls.key")
    entries = (("tls.crt", cert_pem), ("tls.key", key_pem))
    missing = [name for name, value in entries if value is None]
    if missing:
        raise CertificateError(
            "secret %s is missing the following TLS data entries: %s" % (where, ", ".join(missing))
        )
    empty = [name for name, value in entries if not value]
    if empty:
        raise CertificateError(
            "secret %s contains the following empty TLS data entries: %s"
            % (where, ", ".join(empty))
        )
    assert cert_pem is not None and key_pem is not None
    return load_key_pair(cert_pem, key_pem, where)


def load_ca_bundle(pem: bytes) -> Tuple[x509.Certificate, ...]:
    """Every certificate of a PEM bundle; none found is an error (Go's AppendCertsFromPEM)."""
    found = []
    for kind, der in _pem_blocks(pem):
        if kind != "CERTIFICATE":
            continue
        try:
            found.append(x509.load_der_x509_certificate(der))
        except ValueError:
            continue
    if not found:
        raise CertificateError("no valid PEM certificate found")
    return tuple(found)


def ca_bundle_from_secret(secret: Secret) -> Tuple[x509.Certificate, ...]:
    """The CA certificates of a clientAuth secret: ``tls.ca``, else ``ca.crt``, else the only
    entry (Traefik's getCABlocks)."""
    where = "%s/%s" % (secret.meta.namespace, secret.meta.name)
    data = secret.get("tls.ca")
    if data is None:
        data = secret.get("ca.crt")
    if data is None and len(secret.data) == 1:
        data = secret.data[0][1]
    if data is None:
        raise CertificateError("secret %s contains neither tls.ca nor ca.crt" % where)
    try:
        return load_ca_bundle(data)
    except CertificateError as exc:
        raise CertificateError("invalid certificate(s) in secret %s: %s" % (where, exc)) from None


def _generate_default(now: datetime.datetime) -> Certificate:
    """A fresh self-signed RSA-2048 certificate shaped as Traefik's generate.DefaultCertificate."""
    digest = hashlib.sha256(os.urandom(100)).hexdigest()
    domain = "%s.%s.traefik.default" % (digest[:32], digest[32:])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEFAULT_CERT_CN)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(os.urandom(16), "big") >> 1 or 1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Certificate((cert,), key, certificate_names(cert), "generated")


@functools.cache
def generated_default_certificate() -> Certificate:
    """Traefik's ``TRAEFIK DEFAULT CERT``: generated on first use, then the same for the whole
    process, so that a reload does not pay for a new RSA key."""
    return _generate_default(datetime.datetime.now(datetime.timezone.utc))


def expired(cert: Certificate, now: Optional[datetime.datetime] = None) -> bool:
    """Whether the leaf is past its notAfter at ``now`` (default: the current time)."""
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    return cert.not_after < now
