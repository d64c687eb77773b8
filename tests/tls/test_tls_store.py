"""Tests for tsproxy.tls.store: which certificate a server name gets (exact, then wildcard,
then the default), table-driven."""

from __future__ import annotations

from typing import Dict

from twisted.trial.unittest import SynchronousTestCase

from tests import certs
from tsproxy.tls.certs import Certificate, load_key_pair
from tsproxy.tls.store import CertificateStore, candidates

CA = certs.make_ca()


def _cert(label: str, **kwargs: object) -> Certificate:
    issued = certs.make_leaf(CA, **kwargs)  # type: ignore[arg-type]
    return load_key_pair(issued.cert_pem, issued.key_pem, label)


CERTS: Dict[str, Certificate] = {
    "default": _cert("default", cn="fallback.example"),
    "exact": _cert("exact", cn="a.example.com", dns=["a.example.com"]),
    "wild": _cert("wild", dns=["*.example.com", "example.com"]),
    "deep": _cert("deep", dns=["*.*.deep.example"]),
    "ip": _cert("ip", cn="ip-only", ips=["127.0.0.1", "::1"]),
    "upper": _cert("upper", cn="Upper.Example.ORG."),
    "dup": _cert("dup", dns=["a.example.com", "dup.example"]),
}
STORE = CertificateStore.build(
    CERTS["default"],
    [CERTS[k] for k in ("exact", "wild", "deep", "ip", "upper", "dup")],
)


class SelectionTests(SynchronousTestCase):
    """CertificateStore.match/select."""

    def test_table(self) -> None:
        """(server name, local IP) -> source of the certificate chosen; None is no match."""
        rows = [
            ("a.example.com", "", "exact"),
            ("A.EXAMPLE.COM", "", "exact"),
            ("a.example.com.", "", "exact"),
            (" a.example.com ", "", "exact"),
            ("b.example.com", "", "wild"),
            ("example.com", "", "wild"),
            ("x.y.example.com", "", None),
            ("x.y.deep.example", "", "deep"),
            ("y.deep.example", "", None),
            ("upper.example.org", "", "upper"),
            ("dup.example", "", "dup"),
            ("127.0.0.1", "", "ip"),
            ("", "127.0.0.1", "ip"),
            ("", "::1", "ip"),
            ("", "10.1.1.1", None),
            ("", "", None),
            ("a.example.com", "127.0.0.1", "exact"),
            ("unknown.test", "127.0.0.1", None),
            ("com", "", None),
        ]
        for name, local_ip, expected in rows:
            with self.subTest(name=name, local_ip=local_ip):
                match = STORE.match(name, local_ip)
                self.assertEqual(None if match is None else match.source, expected)
                chosen = STORE.select(name, local_ip)
                self.assertEqual(chosen.source, expected or "default")

    def test_same_names_once(self) -> None:
        """A second certificate for exactly the same names is left out; the first one serves."""
        again = _cert("again", cn="a.example.com", dns=["a.example.com"])
        store = CertificateStore.build(CERTS["default"], [CERTS["exact"], again])
        self.assertEqual([c.source for c in store.certificates], ["exact"])

    def test_names(self) -> None:
        """names() lists every stored name once, sorted; the default certificate's are not in."""
        self.assertEqual(
            STORE.names(),
            (
                "*.*.deep.example",
                "*.example.com",
                "127.0.0.1",
                "::1",
                "a.example.com",
                "dup.example",
                "example.com",
                "ip-only",
                "upper.example.org",
            ),
        )

    def test_candidates(self) -> None:
        """The lookup order: the name, then one more leftmost label wildcarded at a time."""
        self.assertEqual(
            list(candidates("a.b.example")),
            ["a.b.example", "*.b.example", "*.*.example", "*.*.*"],
        )
