"""The certificate store: which certificate a handshake gets for its SNI (Traefik's
``CertificateStore.GetBestCertificate``).

Pure: no I/O, no OpenSSL. The store does not know about TLS options; the manager decides what
a miss means (default certificate, or a refusal under ``sniStrict``).
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import attrs

from tsproxy.tls.certs import Certificate

__all__ = ["CertificateStore", "candidates", "canonical_name"]


def canonical_name(name: str) -> str:
    """A server name as the store compares it: trimmed, lower case, no trailing dots."""
    return name.strip().lower().rstrip(".")


def candidates(name: str) -> Iterator[str]:
    """The store keys that serve ``name``, best first: the name itself, then the name with
    its leftmost label, then its two leftmost labels, ... replaced by ``*`` (Go's matchDomain;
    Traefik takes the greatest matching key, which is this order)."""
    yield name
    labels = name.split(".")
    for index in range(len(labels)):
        labels[index] = "*"
        yield ".".join(labels)


@attrs.frozen(eq=False)
class CertificateStore:
    """Certificates by the names they serve, and the default certificate.

    When two certificates serve the same name, the one added first keeps it.
    """

    default: Certificate
    certificates: Tuple[Certificate, ...] = ()
    _by_name: Dict[str, Certificate] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        by_name: Dict[str, Certificate] = {}
        for cert in self.certificates:
            for name in cert.names:
                by_name.setdefault(canonical_name(name), cert)
        object.__setattr__(self, "_by_name", by_name)

    @classmethod
    def build(cls, default: Certificate, certificates: Iterable[Certificate]) -> CertificateStore:
        """A store of ``certificates``; one serving exactly the same names as an earlier one
        is left out, as Traefik skips a certificate whose domain list is already stored."""
        kept: List[Certificate] = []
        seen = set()
        for cert in certificates:
            if cert.names in seen:
                continue
            seen.add(cert.names)
            kept.append(cert)
        return cls(default, tuple(kept))

    def match(self, server_name: str, local_ip: str = "") -> Optional[Certificate]:
        """The certificate for ``server_name``, or None when no stored name covers it.

        Without SNI the local IP address of the connection is looked up instead (IP SANs).
        """
        name = canonical_name(server_name) or canonical_name(local_ip)
        if not name:
            return None
        for candidate in candidates(name):
            cert = self._by_name.get(candidate)
            if cert is not None:
                return cert
        return None

    def select(self, server_name: str, local_ip: str = "") -> Certificate:
        """The certificate for ``server_name``, falling back to the default certificate."""
        cert = self.match(server_name, local_ip)
        return self.default if cert is None else cert

    def names(self) -> Tuple[str, ...]:
        """Every name some stored certificate serves, sorted."""
        return tuple(sorted(self._by_name))
