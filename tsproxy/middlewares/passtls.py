"""Traefik's passTLSClientCert middleware: the client's certificates (PEM) and chosen fields of
them (Info) in X-Forwarded-Tls-Client-Cert[-Info], exactly as Traefik writes and escapes them."""

from __future__ import annotations

import base64
from typing import List, Optional, Tuple
from urllib.parse import quote_plus

import attrs
from cryptography import x509
from cryptography.x509.oid import NameOID

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import BuildContext, MiddlewareKind, Request, StepResult

__all__ = [
    "CERT_HEADER",
    "INFO_HEADER",
    "KINDS",
    "CertInfoSpec",
    "DNSpec",
    "PassTLSClientCert",
    "PassTLSClientCertSpec",
    "cert_info",
    "pem_value",
    "sans_of",
]

CERT_HEADER = "X-Forwarded-Tls-Client-Cert"
INFO_HEADER = "X-Forwarded-Tls-Client-Cert-Info"
_DC = x509.ObjectIdentifier("0.9.2342.19200300.100.1.25")
# (option, OID, label, several values kept) in the order Traefik writes them after DC.
_PARTS = (
    ("country", NameOID.COUNTRY_NAME, "C", True),
    ("province", NameOID.STATE_OR_PROVINCE_NAME, "ST", True),
    ("locality", NameOID.LOCALITY_NAME, "L", True),
    ("organization", NameOID.ORGANIZATION_NAME, "O", True),
    ("organizational_unit", NameOID.ORGANIZATIONAL_UNIT_NAME, "OU", True),
    ("serial_number", NameOID.SERIAL_NUMBER, "SN", False),
    ("common_name", NameOID.COMMON_NAME, "CN", False),
)


@attrs.frozen
class DNSpec:
    """Which parts of a distinguished name to report."""

    country: bool = False
    province: bool = False
    locality: bool = False
    organization: bool = False
    organizational_unit: bool = False
    common_name: bool = False
    serial_number: bool = False
    domain_component: bool = False


@attrs.frozen
class CertInfoSpec:
    not_after: bool = False
    not_before: bool = False
    sans: bool = False
    serial_number: bool = False
    subject: Optional[DNSpec] = None
    issuer: Optional[DNSpec] = None


@attrs.frozen
class PassTLSClientCertSpec:
    pem: bool = False
    info: Optional[CertInfoSpec] = None


def _dn(fields: Optional[Fields], with_ou: bool) -> Optional[DNSpec]:
    if fields is None:
        return None
    values = {
        "country": fields.boolean("country", False),
        "province": fields.boolean("province", False),
        "locality": fields.boolean("locality", False),
        "organization": fields.boolean("organization", False),
        "common_name": fields.boolean("commonName", False),
        "serial_number": fields.boolean("serialNumber", False),
        "domain_component": fields.boolean("domainComponent", False),
    }
    if with_ou:
        values["organizational_unit"] = fields.boolean("organizationalUnit", False)
    fields.done()
    return DNSpec(**values)


def parse(fields: Fields) -> PassTLSClientCertSpec:
    pem = fields.boolean("pem", False)
    section = fields.mapping("info")
    info = None
    if section is not None:
        info = CertInfoSpec(
            not_after=section.boolean("notAfter", False),
            not_before=section.boolean("notBefore", False),
            sans=section.boolean("sans", False),
            serial_number=section.boolean("serialNumber", False),
            subject=_dn(section.mapping("subject"), True),
            issuer=_dn(section.mapping("issuer"), False),
        )
        section.done()
    fields.done()
    return PassTLSClientCertSpec(pem, info)


def pem_value(certs: Tuple[bytes, ...]) -> str:
    """Each certificate's PEM without its BEGIN/END lines and newlines, joined by ","."""
    return ",".join(base64.b64encode(der).decode("ascii") for der in certs)


def _dn_text(spec: Optional[DNSpec], name: x509.Name) -> str:
    if spec is None:
        return ""
    attributes = [
        (attribute.oid, attribute.value)
        for rdn in name.rdns
        for attribute in rdn
        if isinstance(attribute.value, str)
    ]
    parts: List[str] = []
    if spec.domain_component:
        parts.extend(f"DC={value}" for oid, value in attributes if oid == _DC)
    for option, wanted, label, several in _PARTS:
        if not getattr(spec, option):
            continue
        values = [value for oid, value in attributes if oid == wanted and value]
        if not several:
            # Go's pkix.Name keeps only the last CommonName / SerialNumber.
            last = [value for oid, value in attributes if oid == wanted][-1:]
            values = [value for value in last if value]
        parts.extend(f"{label}={value}" for value in values)
    return ",".join(parts)


def sans_of(cert: Optional[x509.Certificate]) -> List[str]:
    """DNS names, e-mail addresses, IP addresses, then URIs, as Traefik lists them."""
    if cert is None:
        return []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    sans: List[str] = list(ext.get_values_for_type(x509.DNSName))
    sans.extend(ext.get_values_for_type(x509.RFC822Name))
    sans.extend(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))
    sans.extend(ext.get_values_for_type(x509.UniformResourceIdentifier))
    return sans


def _timestamp(cert: x509.Certificate, which: str) -> int:
    moment = getattr(cert, which + "_utc", None)
    if moment is None:  # cryptography < 42
        import calendar

        return calendar.timegm(getattr(cert, which).utctimetuple())
    return int(moment.timestamp())


def cert_info(info: CertInfoSpec, certs: Tuple[bytes, ...]) -> str:
    """The Info header's value before escaping: fields by ";", certificates by ","."""
    values: List[str] = []
    for der in certs:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            values.append("")
            continue
        fields: List[str] = []
        subject = _dn_text(info.subject, cert.subject)
        if subject:
            fields.append(f'Subject="{subject}"')
        issuer = _dn_text(info.issuer, cert.issuer)
        if issuer:
            fields.append(f'Issuer="{issuer}"')
        if info.serial_number:
            fields.append(f'SerialNumber="{cert.serial_number}"')
        if info.not_before:
            fields.append(f'NB="{_timestamp(cert, "not_valid_before")}"')
        if info.not_after:
            fields.append(f'NA="{_timestamp(cert, "not_valid_after")}"')
        if info.sans:
            sans = sans_of(cert)
            if sans:
                fields.append('SAN="%s"' % ",".join(sans))
        values.append(";".join(fields))
    return ",".join(values)


@attrs.define(eq=False)
class PassTLSClientCert:
    """One built passTLSClientCert step."""

    name: str
    pem: bool
    info: Optional[CertInfoSpec]

    def handle(self, request: Request) -> StepResult:
        certs = request.client_certs() if request.tls else ()
        if self.pem:
            self._put(request, CERT_HEADER, pem_value(certs) if certs else None)
        if self.info is not None:
            value = quote_plus(cert_info(self.info, certs), safe="") if certs else None
            self._put(request, INFO_HEADER, value)
        return None

    @staticmethod
    def _put(request: Request, header: str, value: Optional[str]) -> None:
        if value is not None:
            request.headers.set(header, value)
        elif not request.forwarded_trusted:
            # Without a client certificate a value could only be the client's own forgery.
            request.headers.remove(header)


def build(spec: PassTLSClientCertSpec, name: str, context: BuildContext) -> PassTLSClientCert:
    return PassTLSClientCert(name, spec.pem, spec.info)


KINDS = (MiddlewareKind("passTLSClientCert", parse, build),)
