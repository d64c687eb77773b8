"""TLS options: a TLSOption resource read into :class:`TLSSettings`, and settings plus a
certificate made into a server ``OpenSSL.SSL.Context``.

Go names (versions, cipher suites, curves, client auth types) are mapped to OpenSSL's here and
nowhere else. Reading settings is pure; only :func:`make_context` touches OpenSSL. No Twisted.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import attrs
from cryptography import x509
from OpenSSL import SSL, crypto

from tsproxy.config.errors import ConfigError
from tsproxy.config.resources import Secret, TLSOption
from tsproxy.tls.certs import Certificate, CertificateError, ca_bundle_from_secret

__all__ = [
    "CLIENT_AUTH_TYPES",
    "DEFAULT_ALPN",
    "DEFAULT_CIPHERS",
    "DEFAULT_SETTINGS",
    "GO_CIPHER_SUITES",
    "GO_CURVES",
    "ALPNMismatch",
    "TLSSettings",
    "connection_labels",
    "make_context",
    "negotiate_alpn",
    "server_alpn",
    "settings_from_option",
]

VERSIONS: Dict[str, int] = {
    "VersionTLS10": SSL.TLS1_VERSION,
    "VersionTLS11": SSL.TLS1_1_VERSION,
    "VersionTLS12": SSL.TLS1_2_VERSION,
    "VersionTLS13": SSL.TLS1_3_VERSION,
}

_VERSION_NAMES = {number: name for name, number in VERSIONS.items()}

#: Traefik's default ALPN list (``tls.DefaultTLSOptions`` and any TLSOption without the field).
DEFAULT_ALPN: Tuple[str, ...] = ("h2", "http/1.1", "acme-tls/1")

#: Go cipher suite names (Traefik's ``CipherSuites`` map) to OpenSSL names. TLS 1.3 suites and
#: the fallback SCSV map to "": Go accepts them in ``cipherSuites`` but they change nothing.
GO_CIPHER_SUITES: Dict[str, str] = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": "",
    "TLS_AES_256_GCM_SHA384": "",
    "TLS_CHACHA20_POLY1305_SHA256": "",
    "TLS_FALLBACK_SCSV": "",
}

#: OpenSSL's names back to Go's (the later, shorter Go alias of CHACHA20 suites loses).
_OPENSSL_TO_GO: Dict[str, str] = {}
for _go, _openssl in GO_CIPHER_SUITES.items():
    if _openssl:
        _OPENSSL_TO_GO.setdefault(_openssl, _go)
_PROTOCOL_VERSIONS = {"TLSv1": "1.0", "TLSv1.1": "1.1", "TLSv1.2": "1.2", "TLSv1.3": "1.3"}


def connection_labels(connection: Any) -> Tuple[str, str]:
    """Traefik's ``tls_version`` and ``tls_cipher`` for an established OpenSSL connection:
    ("1.3", "TLS_AES_128_GCM_SHA256"); ("", "") before the handshake is done."""
    version = connection.get_protocol_version_name() or ""
    cipher = connection.get_cipher_name() or ""
    if not cipher:
        return "", ""
    if not cipher.startswith("TLS_"):  # TLS 1.3 suites have the same name in both
        cipher = _OPENSSL_TO_GO.get(cipher, cipher)
    return _PROTOCOL_VERSIONS.get(version, version), cipher


#: Go's default TLS 1.0-1.2 suites (crypto/tls cipherSuitesPreferenceOrder minus the insecure
#: ones), the list Traefik serves when ``cipherSuites`` is not set.
DEFAULT_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
    )
)

#: Traefik's ``Curves`` map, Go names to OpenSSL group names.
GO_CURVES: Dict[str, str] = {
    "secp256r1": "P-256",
    "CurveP256": "P-256",
    "secp384r1": "P-384",
    "CurveP384": "P-384",
    "secp521r1": "P-521",
    "CurveP521": "P-521",
    "x25519": "X25519",
    "X25519": "X25519",
    "X25519MLKEM768": "X25519MLKEM768",
}

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
_VERIFYING = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")

# pyOpenSSL has no public call for the group list; the binding exists on every OpenSSL it
# supports, so look it up once and report curves as unsupported if it is ever missing.
try:
    from OpenSSL._util import lib as _lib

    _set_curves: Optional[Callable[..., int]] = getattr(_lib, "SSL_CTX_set1_curves_list", None)
except ImportError:  # pragma: no cover
    _set_curves = None


class ALPNMismatch(SSL.Error):
    """The client offered ALPN protocols and none is acceptable (Go fails the handshake).

    Its argument has the shape of OpenSSL's error queue, as Twisted's TLS layer expects of
    every ``SSL.Error``; ``message`` is the text.
    """

    def __init__(self, message: str) -> None:
        super().__init__([("tsproxy", "negotiate_alpn", message)])
        self.message = message


@attrs.frozen(eq=False)
class TLSSettings:
    """What a server context is made of, already in OpenSSL's terms.

    ``name`` is Traefik's key of the option (``default`` or ``<namespace>-<name>``).
    ``client_auth`` is one of :data:`CLIENT_AUTH_TYPES`; ``client_cas`` are the trusted CAs.
    """

    name: str
    min_version: int = SSL.TLS1_2_VERSION
    max_version: int = 0
    ciphers: str = DEFAULT_CIPHERS
    curves: Tuple[str, ...] = ()
    client_auth: str = "NoClientCert"
    client_cas: Tuple[x509.Certificate, ...] = ()
    sni_strict: bool = False
    alpn: Tuple[str, ...] = DEFAULT_ALPN
    disable_session_tickets: bool = False


#: Traefik's built-in ``default`` option (``tls.DefaultTLSOptions``).
DEFAULT_SETTINGS = TLSSettings(name="default")


def option_name(namespace: str, name: str) -> str:
    """Traefik's key for a TLSOption (``makeID``); the one named ``default`` is ``default``."""
    return "%s-%s" % (namespace, name) if namespace else name


def settings_from_option(
    option: TLSOption, secrets: Mapping[Tuple[str, str], Secret], name: str
) -> Tuple[Optional[TLSSettings], List[ConfigError], List[ConfigError]]:
    """Read ``option`` (Traefik's ``buildTLSOptions`` then ``buildTLSConfig``).

    Returns (settings, errors, warnings); settings is None when the option cannot be built,
    which Traefik reports at every router using it.
    """
    where = option.meta.location
    label = option.meta.label
    errors: List[ConfigError] = []
    warnings: List[ConfigError] = []

    def located(message: str) -> ConfigError:
        return ConfigError(where.file, where.line, label, message)

    min_version = VERSIONS.get(option.min_version, SSL.TLS1_2_VERSION)
    max_version = VERSIONS.get(option.max_version, 0)
    ciphers = DEFAULT_CIPHERS
    if option.cipher_suites:
        names = []
        for suite in option.cipher_suites:
            if suite not in GO_CIPHER_SUITES:
                errors.append(located("spec.cipherSuites: invalid CipherSuite: %s" % suite))
            elif GO_CIPHER_SUITES[suite] and GO_CIPHER_SUITES[suite] not in names:
                names.append(GO_CIPHER_SUITES[suite])
        if names:
            ciphers = ":".join(names)
        else:
            # Only TLS 1.3 suites (which Go does not let one choose): no TLS 1.2 handshake can
            # succeed, and OpenSSL refuses an empty list, so say it with the version instead.
            min_version = max(min_version, SSL.TLS1_3_VERSION)
    curves = []
    for curve in option.curve_preferences:
        if curve not in GO_CURVES:
            errors.append(
                located("spec.curvePreferences: invalid CurveID in curvePreferences: %s" % curve)
            )
        elif GO_CURVES[curve] not in curves:
            curves.append(GO_CURVES[curve])
    if curves and _set_curves is None:  # pragma: no cover
        warnings.append(located("spec.curvePreferences: not supported by this pyOpenSSL, ignored"))
        curves = []

    cas: List[x509.Certificate] = []
    for secret_name in option.client_auth_secrets:
        secret = secrets.get((option.meta.namespace, secret_name))
        if secret is None:
            warnings.append(
                located(
                    "spec.clientAuth.secretNames: secret %s/%s does not exist"
                    % (option.meta.namespace, secret_name)
                )
            )
            continue
        try:
            cas.extend(ca_bundle_from_secret(secret))
        except CertificateError as exc:
            errors.append(located("spec.clientAuth.secretNames: %s" % exc))
    auth = option.client_auth_type
    if not auth:
        auth = "RequireAndVerifyClientCert" if cas else "NoClientCert"
    elif auth in _VERIFYING and not cas:
        errors.append(
            located("spec.clientAuth: invalid clientAuthType: %s, CAFiles is required" % auth)
        )

    if max_version and max_version < min_version:
        warnings.append(
            located(
                "spec.maxVersion: %s is below the minimum version %s, every handshake fails"
                % (option.max_version, _VERSION_NAMES[min_version])
            )
        )
    if errors:
        return None, errors, warnings
    settings = TLSSettings(
        name=name,
        min_version=min_version,
        max_version=max_version,
        ciphers=ciphers,
        curves=tuple(curves),
        client_auth=auth,
        client_cas=tuple(cas),
        sni_strict=option.sni_strict,
        alpn=DEFAULT_ALPN if option.alpn_protocols is None else option.alpn_protocols,
        disable_session_tickets=option.disable_session_tickets,
    )
    problem = check_settings(settings)
    if problem is not None:
        return None, [located(problem)], warnings
    return settings, errors, warnings


def server_alpn(settings: TLSSettings, http11_only: bool = False) -> Tuple[str, ...]:
    """The protocols the server accepts, in its order of preference; ``http11_only`` drops
    ``h2`` for listeners whose HTTP engine speaks HTTP/1.1 only."""
    if not http11_only:
        return settings.alpn
    return tuple(protocol for protocol in settings.alpn if protocol != "h2")


def negotiate_alpn(server: Sequence[str], client: Sequence[str]) -> str:
    """Go's ``negotiateALPN``: the first server protocol the client offers; "" for no ALPN
    (no server list, no client list, or an ``http/1.1`` client of an ``h2`` server).

    Raises ALPNMismatch when the client offered protocols and none is acceptable.
    """
    if not server or not client:
        return ""
    http11_fallback = False
    for protocol in server:
        for offered in client:
            if protocol == offered:
                return protocol
            if protocol == "h2" and offered == "http/1.1":
                http11_fallback = True
    if http11_fallback:
        return ""
    raise ALPNMismatch(
        "tls: client requested unsupported application protocols (%s)" % ", ".join(client)
    )


def _alpn_selector(server: Tuple[str, ...]) -> Callable[[SSL.Connection, List[bytes]], bytes]:
    def select(connection: SSL.Connection, offered: List[bytes]) -> bytes:
        chosen = negotiate_alpn(server, [p.decode("latin-1") for p in offered])
        if not chosen:
            return SSL.NO_OVERLAPPING_PROTOCOLS  # type: ignore[return-value]
        return chosen.encode("latin-1")

    return select


def _accept_any(connection: SSL.Connection, cert: object, errno: int, depth: int, ok: int) -> bool:
    # RequestClientCert and RequireAnyClientCert ask for a certificate but do not check it.
    return True


def _configure(context: SSL.Context, settings: TLSSettings, http11_only: bool) -> None:
    context.set_min_proto_version(settings.min_version)
    if settings.max_version:
        context.set_max_proto_version(settings.max_version)
    options = SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
    options |= getattr(SSL, "OP_NO_RENEGOTIATION", 0)
    if settings.disable_session_tickets:
        options |= SSL.OP_NO_TICKET
    context.set_options(options)
    context.set_cipher_list(_cipher_string(settings))
    if settings.curves and _set_curves is not None and not _apply_curves(context, settings.curves):
        raise SSL.Error("curves not supported by this OpenSSL: %s" % ", ".join(settings.curves))
    digest = hashlib.sha256(settings.name.encode("utf-8")).digest()
    context.set_session_id(b"tsproxy" + digest[:25])
    if settings.disable_session_tickets:
        context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    mode = {
        "NoClientCert": SSL.VERIFY_NONE,
        "RequestClientCert": SSL.VERIFY_PEER,
        "RequireAnyClientCert": SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
        "VerifyClientCertIfGiven": SSL.VERIFY_PEER,
        "RequireAndVerifyClientCert": SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
    }[settings.client_auth]
    if settings.client_auth in _VERIFYING:
        context.set_verify(mode, None)
    elif mode != SSL.VERIFY_NONE:
        context.set_verify(mode, _accept_any)
    if settings.client_cas:
        store = context.get_cert_store()
        assert store is not None
        for ca in settings.client_cas:
            store.add_cert(crypto.X509.from_cryptography(ca))
            context.add_client_ca(ca)
    protocols = server_alpn(settings, http11_only)
    if protocols:
        context.set_alpn_select_callback(_alpn_selector(protocols))


def _cipher_string(settings: TLSSettings) -> bytes:
    ciphers = settings.ciphers
    if settings.min_version < SSL.TLS1_2_VERSION:
        # OpenSSL 3 refuses TLS 1.0/1.1 signatures at the default security level; a user who
        # asks for those versions asks for that level.
        ciphers += ":@SECLEVEL=0"
    return ciphers.encode("ascii")


def _apply_curves(context: SSL.Context, curves: Tuple[str, ...]) -> bool:
    assert _set_curves is not None
    handle = context._context  # pyOpenSSL exposes no setter for the group list
    if _set_curves(handle, ":".join(curves).encode("ascii")):
        return True
    _lib.ERR_clear_error()
    return False


def check_settings(settings: TLSSettings) -> Optional[str]:
    """Why OpenSSL refuses ``settings`` (no usable cipher, unknown curve), or None."""
    context = SSL.Context(SSL.TLS_METHOD)
    try:
        context.set_cipher_list(_cipher_string(settings))
    except SSL.Error:
        return "spec.cipherSuites: none of these cipher suites is available in this OpenSSL: %s" % (
            settings.ciphers.replace(":", ", ")
        )
    if settings.curves and _set_curves is not None and not _apply_curves(context, settings.curves):
        return "spec.curvePreferences: curves not supported by this OpenSSL: %s" % (
            ", ".join(settings.curves)
        )
    return None


def make_context(
    settings: TLSSettings, certificate: Certificate, http11_only: bool = False
) -> SSL.Context:
    """A server context presenting ``certificate`` with ``settings``; complete on return
    (pyOpenSSL forbids changing a context once a connection used it)."""
    context = SSL.Context(SSL.TLS_METHOD)
    _configure(context, settings, http11_only)
    context.use_certificate(certificate.leaf)
    for extra in certificate.chain[1:]:
        context.add_extra_chain_cert(extra)
    context.use_privatekey(certificate.key)
    context.check_privatekey()
    return context
