"""Kinds reading, TLS: TLSOption, TLSStore and Secret (certificates and keys)."""

from __future__ import annotations

import base64
import binascii

from tsproxy.config.kinds_services import (
    _spec,
)
from tsproxy.config.resources import (
    Meta,
    Secret,
    TLSOption,
    TLSStore,
)
from tsproxy.config.schema import Fields

_TLS_VERSIONS = ("VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13")
_CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)


def parse_tls_option(root: Fields, meta: Meta) -> TLSOption:
    return read_tls_option(_spec(root), meta)


def read_tls_option(spec: Fields, meta: Meta) -> TLSOption:
    """The fields of a TLSOption spec (or a file provider's ``tls.options`` entry)."""
    client_auth = spec.mapping("clientAuth")
    auth_type, auth_secrets = "", ()  # type: tuple[str, tuple[str, ...]]
    if client_auth is not None:
        auth_type = client_auth.string("clientAuthType", choices=("",) + _CLIENT_AUTH_TYPES)
        auth_secrets = client_auth.strings("secretNames")
        client_auth.done()
    alpn = spec.strings("alpnProtocols") if spec.has("alpnProtocols") else None
    option = TLSOption(
        meta=meta,
        min_version=spec.string("minVersion", choices=("",) + _TLS_VERSIONS),
        max_version=spec.string("maxVersion", choices=("",) + _TLS_VERSIONS),
        cipher_suites=spec.strings("cipherSuites"),
        curve_preferences=spec.strings("curvePreferences"),
        client_auth_type=auth_type,
        client_auth_secrets=auth_secrets,
        sni_strict=spec.boolean("sniStrict", False),
        alpn_protocols=alpn,
        disable_session_tickets=spec.boolean("disableSessionTickets", False),
    )
    spec.done({"preferServerCipherSuites": "deprecated in Traefik, ignored"})
    return option


def parse_tls_store(root: Fields, meta: Meta) -> TLSStore:
    spec = _spec(root)
    default = spec.mapping("defaultCertificate")
    secret = ""
    if default is not None:
        secret = default.string("secretName", required=True)
        default.done()
    certificates = []
    for item in spec.mappings("certificates"):
        certificates.append(item.string("secretName", required=True))
        item.done()
    spec.done({"defaultGeneratedCert": "ACME resolvers are not supported; ignored"})
    if meta.name != "default":
        root.note("metadata", "only the TLSStore named default takes effect, as in Traefik")
    return TLSStore(meta, secret, tuple(certificates))


def parse_secret(root: Fields, meta: Meta) -> Secret:
    """A Secret, leniently: ``data`` values are base64, ``stringData`` values plain text."""
    data: dict[str, bytes] = {}
    for key in ("data", "stringData"):
        section = root.mapping(key)
        if section is None:
            continue
        for name in list(section.data):
            value = section.string(str(name))
            if key == "stringData":
                data[str(name)] = value.encode("utf-8")
                continue
            try:
                # Go's decoder (and so Kubernetes) skips line breaks inside the value.
                packed = "".join(value.split("\r\n")).replace("\n", "").replace("\r", "")
                data[str(name)] = base64.b64decode(packed.encode("ascii"), validate=True)
            except (ValueError, binascii.Error):
                raise section.fail(str(name), "is not valid base64") from None
    secret_type = root.string("type", "Opaque")
    if secret_type == "kubernetes.io/basic-auth" and not ({"username", "password"} & set(data)):
        raise root.fail("type", "a kubernetes.io/basic-auth Secret needs username or password")
    return Secret(meta, secret_type, tuple(data.items()))
