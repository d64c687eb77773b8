"""TLS termination for tsproxy: certificates from Kubernetes Secrets, TLSOption settings,
certificate choice by SNI and Traefik's default certificate.

``build_tls(resources)`` gives a :class:`TLSManager`; the entrypoint code asks it, per
ClientHello, for the Twisted connection creator to hand to ``TLSMemoryBIOFactory``.
"""

from __future__ import annotations

from tsproxy.tls.certs import (
    DEFAULT_CERT_CN,
    Certificate,
    CertificateError,
    generated_default_certificate,
)
from tsproxy.tls.manager import PROVIDER, ServerCreator, TLSBuild, TLSManager, build_tls
from tsproxy.tls.options import DEFAULT_ALPN, TLSSettings
from tsproxy.tls.store import CertificateStore

__all__ = [
    "DEFAULT_ALPN",
    "DEFAULT_CERT_CN",
    "PROVIDER",
    "Certificate",
    "CertificateError",
    "CertificateStore",
    "ServerCreator",
    "TLSBuild",
    "TLSManager",
    "TLSSettings",
    "build_tls",
    "generated_default_certificate",
]
