"""Tests for tsproxy.tcp.proxyproto: the PROXY protocol header, v1 text and v2 binary."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import tempfile
import time

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.tcpfixture import HAPROXY, HAPROXY_CFG
from tsproxy.tcp.proxyproto import (
    SIGNATURE,
    Arrival,
    ProxyHeader,
    bytes_wanted,
    encode,
    encode_v1,
    encode_v2,
    header_started,
    parse,
    read_arrival,
)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"

# (source, destination, v1 bytes, v2 bytes written out from the spec)
EXACT = [
    (
        ("1.2.3.4", 1111),
        ("5.6.7.8", 2222),
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n",
        SIG + b"\x21\x11\x00\x0c" + b"\x01\x02\x03\x04" + b"\x05\x06\x07\x08" + b"\x04\x57\x08\xae",
    ),
    (
        ("::ffff:10.0.0.1", 65535),
        ("::ffff:192.168.1.254", 0),
        b"PROXY TCP4 10.0.0.1 192.168.1.254 65535 0\r\n",
        SIG + b"\x21\x11\x00\x0c" + b"\x0a\x00\x00\x01" + b"\xc0\xa8\x01\xfe" + b"\xff\xff\x00\x00",
    ),
    (
        ("2001:db8::1", 443),
        ("fe80::1%eth0", 8443),
        b"PROXY TCP6 2001:db8::1 fe80::1 443 8443\r\n",
        SIG
        + b"\x21\x21\x00\x24"
        + b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x01"
        + b"\xfe\x80" + b"\x00" * 13 + b"\x01"
        + b"\x01\xbb\x20\xfb",
    ),
    (
        ("1.2.3.4", 1),
        ("::1", 2),
        b"PROXY UNKNOWN\r\n",
        SIG + b"\x21\x00\x00\x00",
    ),
]  # fmt: skip

V1_BAD = [
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1111\r\n",  # a field missing
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222 3\r\n",  # a field too many
    b"PROXY TCP4  1.2.3.4 5.6.7.8 1111 2222\r\n",  # two spaces
    b"PROXY TCP5 1.2.3.4 5.6.7.8 1111 2222\r\n",  # no such protocol
    b"PROXY tcp4 1.2.3.4 5.6.7.8 1111 2222\r\n",  # protocol is upper case
    b"PROXY TCP4 01.2.3.4 5.6.7.8 1111 2222\r\n",  # leading zero in an octet
    b"PROXY TCP4 1.2.3.256 5.6.7.8 1111 2222\r\n",  # octet out of range
    b"PROXY TCP4 ::1 5.6.7.8 1111 2222\r\n",  # IPv6 under TCP4
    b"PROXY TCP6 1.2.3.4 ::1 1111 2222\r\n",  # IPv4 under TCP6
    b"PROXY TCP6 fe80::1%eth0 ::1 1111 2222\r\n",  # a zone
    b"PROXY TCP6 ::1::2 ::1 1111 2222\r\n",  # two double colons
    b"PROXY TCP4 1.2.3.4 5.6.7.8 01111 2222\r\n",  # leading zero in a port
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 65536\r\n",  # port out of range
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 -1\r\n",  # negative port
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 \xd9\xa1\r\n",  # non-ASCII digit
    b"PROXY UNKNOWNX\r\n",  # not the UNKNOWN keyword
    b"PROXY TCP4 1.2.3.4\n5.6.7.8 1111 2222",  # a bare LF
    b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",  # longer than 107 bytes
    b"PROXY " + b"\x00" * 110,  # no CRLF in 107 bytes
    b"GET / HTTP/1.1\r\n",  # not a header at all
    b"PROXz",  # diverges from the prefix
    b"\r\n\r\n\x00\r\nQUIX",  # diverges from the signature
]

V2_BAD = [
    SIG + b"\x11\x11\x00\x0c" + b"\x00" * 12,  # version 1 in the binary form
    SIG + b"\x22\x11\x00\x0c" + b"\x00" * 12,  # command 2
    SIG + b"\x21\x41\x00\x00",  # address family 4
    SIG + b"\x21\x13\x00\x00",  # transport protocol 3
    SIG + b"\x21\x11\x00\x0b" + b"\x00" * 11,  # IPv4 block too short
    SIG + b"\x21\x21\x00\x0c" + b"\x00" * 12,  # IPv6 block too short
    SIG + b"\x21\x31\x00\x0c" + b"\x00" * 12,  # UNIX block too short
]

ports = st.integers(min_value=0, max_value=65535)


def _expected(host: str, port: int) -> tuple[str, int]:
    """The endpoint as parse returns it: IPv4-mapped addresses become IPv4."""
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), port


class EncodeTests(SynchronousTestCase):
    """The exact bytes of each version."""

    def test_signature(self) -> None:
        """The v2 signature is the one of the spec."""
        self.assertEqual(SIGNATURE, SIG)

    def test_v1_exact(self) -> None:
        """v1 text lines for IPv4, IPv4-mapped, IPv6 and mixed families."""
        for source, destination, v1, _ in EXACT:
            self.assertEqual(encode_v1(source, destination), v1, source)
            self.assertEqual(encode(1, source, destination), v1, source)

    def test_v2_exact(self) -> None:
        """v2 binary headers for IPv4, IPv4-mapped, IPv6 and mixed families."""
        for source, destination, _, v2 in EXACT:
            self.assertEqual(encode_v2(source, destination), v2, source)
            self.assertEqual(encode(2, source, destination), v2, source)

    def test_v1_longest(self) -> None:
        """The longest TCP6 line fits in 107 bytes."""
        full = ":".join(["ffff"] * 7) + ":fffe"
        line = encode_v1((full, 65535), (full, 65535))
        self.assertEqual(len(line), 104)
        self.assertEqual(parse(line)[0].source, (full, 65535))  # type: ignore[index]

    def test_bad_arguments(self) -> None:
        """Unknown versions, bad addresses and ports out of range raise ValueError."""
        good = ("1.2.3.4", 1)
        for version, source in [
            (0, good),
            (3, good),
            (1, ("1.2.3", 1)),
            (2, ("example.com", 1)),
            (1, ("1.2.3.4", 65536)),
            (2, ("1.2.3.4", -1)),
            (1, ("1.2.3.4", True)),
        ]:
            self.assertRaises(ValueError, encode, version, source, good)


class ParseTests(SynchronousTestCase):
    """Decoding both versions: complete, partial and malformed input."""

    def test_round_trip(self) -> None:
        """Each exact header parses back to its addresses and its own length."""
        for source, destination, v1, v2 in EXACT:
            for version, data in ((1, v1), (2, v2)):
                header, used = parse(data + b"rest")  # type: ignore[misc]
                self.assertEqual(used, len(data))
                self.assertEqual(header.version, version)
                if header.protocol == "UNKNOWN":
                    self.assertIsNone(header.source)
                    continue
                self.assertEqual(header.source, _expected(source[0].split("%")[0], source[1]))
                self.assertEqual(
                    header.destination, _expected(destination[0].split("%")[0], destination[1])
                )

    def test_partial(self) -> None:
        """Every proper prefix of a header asks for more bytes."""
        for _, _, v1, v2 in EXACT:
            for data in (v1, v2):
                for end in range(len(data)):
                    self.assertIsNone(parse(data[:end]), data[:end])
        self.assertIsNone(parse(SIG + b"\x21\x11\xff\xff" + b"\x00" * 1000))

    def test_v1_forms(self) -> None:
        """UNKNOWN ignores the rest of its line; IPv6 is read in any valid spelling."""
        cases = [
            (b"PROXY UNKNOWN\r\n", ProxyHeader(1, "PROXY", "UNKNOWN", None, None)),
            (b"PROXY UNKNOWN ::1 ::2 1 2\r\n", ProxyHeader(1, "PROXY", "UNKNOWN", None, None)),
            (
                b"PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 0 80\r\n",
                ProxyHeader(1, "PROXY", "TCP6", ("2001:db8::1", 0), ("::1", 80)),
            ),
        ]
        for data, header in cases:
            self.assertEqual(parse(data), (header, len(data)))

    def test_v2_forms(self) -> None:
        """LOCAL, UNSPEC, UDP, UNIX and TLVs after the addresses."""
        v4 = b"\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02"
        tlv = b"\x04\x00\x02ab"
        cases = [
            (SIG + b"\x20\x11\x00\x0c" + v4, ProxyHeader(2, "LOCAL", "UNKNOWN", None, None)),
            (SIG + b"\x20\xff\x00\x00", ProxyHeader(2, "LOCAL", "UNKNOWN", None, None)),
            (SIG + b"\x21\x00\x00\x02xy", ProxyHeader(2, "PROXY", "UNKNOWN", None, None, b"xy")),
            (
                SIG + b"\x21\x12\x00\x0c" + v4,
                ProxyHeader(2, "PROXY", "UDP4", ("1.2.3.4", 1), ("5.6.7.8", 2)),
            ),
            (
                SIG + b"\x21\x11\x00\x11" + v4 + tlv,
                ProxyHeader(2, "PROXY", "TCP4", ("1.2.3.4", 1), ("5.6.7.8", 2), tlv),
            ),
            (
                SIG + b"\x21\x31\x00\xd8" + b"\x00" * 216,
                ProxyHeader(2, "PROXY", "UNIX_STREAM", None, None),
            ),
        ]
        for data, header in cases:
            self.assertEqual(parse(data + b"more"), (header, len(data)))

    def test_malformed(self) -> None:
        """Malformed v1 lines and v2 headers raise ValueError."""
        for data in V1_BAD + V2_BAD:
            self.assertRaises(ValueError, parse, data)

    def test_empty(self) -> None:
        """No bytes yet is a request for more."""
        self.assertIsNone(parse(b""))


_V4 = b"\x01\x02\x03\x04\x05\x06\x07\x08\x04\x57\x00\x50"  # 1.2.3.4:1111 -> 5.6.7.8:80
_REQ = b"GET / HTTP/1.1\r\n\r\n"
_USED = Arrival(0, ("1.2.3.4", 1111), ("5.6.7.8", 80))
_CLOSE = "close"

# (first bytes, from a trusted peer, from another peer): an Arrival whose consumed counts the
# header, None (more bytes needed) or _CLOSE. Each row was checked against Traefik 3.7.15 with
# trustedIPs [127.0.0.1] (the trusted column) and [10.0.0.0/8] (the other), an HTTP router to a
# backend echoing X-Forwarded-For, and a TCP router with ClientIP whose service sends PROXY v1.
ARRIVALS = [
    (_REQ, Arrival(0), Arrival(0)),  # no header: served as is
    (b"PUT / HTTP/1.1\r\n", Arrival(0), Arrival(0)),  # starts like PROXY, then not
    (b"PROXZ / HTTP/1.1\r\n", Arrival(0), Arrival(0)),  # 5 bytes decide: not PROXY
    (b"PROXYZ TCP4 1.2.3.4 5.6.7.8 1 80\r\n", _CLOSE, _CLOSE),
    (b"", None, None),
    (b"P", None, None),  # a signature's prefix: wait (Traefik peeks 5, then 12 bytes)
    (b"PROXY", None, None),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 80", None, None),  # Traefik closes it (docs/security.md)
    (SIG[:7], None, None),
    (SIG + b"\x21\x11\x00\x0c" + _V4[:5], None, None),  # v2 split in its address block
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n" + _REQ, _USED._replace(consumed=36), Arrival(36)),
    (SIG + b"\x21\x11\x00\x0c" + _V4 + _REQ, _USED._replace(consumed=28), Arrival(28)),
    (
        b"PROXY TCP6 2001:db8::1 2001:db8::2 1111 80\r\n",
        Arrival(44, ("2001:db8::1", 1111), ("2001:db8::2", 80)),
        Arrival(44),
    ),
    (
        SIG + b"\x21\x21\x00\x24" + b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x01"
        + b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x02" + b"\x04\x57\x00\x50",
        Arrival(52, ("2001:db8::1", 1111), ("2001:db8::2", 80)),
        Arrival(52),
    ),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 0 80\r\n", Arrival(33, ("1.2.3.4", 0), ("5.6.7.8", 80)), Arrival(33)),
    (b"PROXY UNKNOWN\r\n" + _REQ, Arrival(15), Arrival(15)),  # the peer's address is kept
    (b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", Arrival(35), Arrival(35)),
    (SIG + b"\x20\x11\x00\x0c" + _V4, Arrival(28), Arrival(28)),  # LOCAL: the peer's kept
    (SIG + b"\x20\x31\x00\xd8" + b"\x00" * 216, Arrival(232), Arrival(232)),  # LOCAL, AF_UNIX
    (SIG + b"\x21\x12\x00\x0c" + _V4, _USED._replace(consumed=28), Arrival(28)),  # UDP4: used
    (SIG + b"\x21\x11\x00\x10" + _V4 + b"\x04\x00\x09\x00", _USED._replace(consumed=32), Arrival(32)),
    (SIG + b"\x21\x31\x00\xd8" + b"\x00" * 216, _CLOSE, Arrival(232)),  # AF_UNIX: Traefik panics
    (SIG + b"\x21\x00\x00\x00" + _REQ, _CLOSE, _CLOSE),  # PROXY of the UNSPEC family
    (SIG + b"\x21\x00\x00\x0c" + b"\x00" * 12, _CLOSE, _CLOSE),
    (SIG + b"\x21\x01\x00\x00", _CLOSE, _CLOSE),  # Traefik hangs on it until a timeout
    (SIG + b"\x31\x11\x00\x0c" + _V4, _CLOSE, _CLOSE),  # version 3
    (SIG + b"\x21\x11\x00\x04" + b"\x00" * 4, _CLOSE, _CLOSE),  # address block too short
    (b"PROXY TCP4 1.2.3 5.6.7.8 1111 80\r\n", _CLOSE, _CLOSE),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\n", _CLOSE, _CLOSE),  # LF without CR
    (b"PROXY TCP4 " + b"1" * 120 + b"\r\n", _CLOSE, _CLOSE),  # past 107 bytes
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1111\r\n", _CLOSE, _CLOSE),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n", _CLOSE, _CLOSE),
    (b"PROXY TCP4 2001:db8::1 5.6.7.8 1 80\r\n", _CLOSE, _CLOSE),
    (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 80\r\n", _CLOSE, _CLOSE),
    (b"PROXY TCP4 1.2.3.04 5.6.7.8 1 80\r\n", _CLOSE, _CLOSE),
]  # fmt: skip


class ArrivalTests(SynchronousTestCase):
    """read_arrival: what an entrypoint with proxyProtocol makes of a connection's first
    bytes, from trusted and other peers, as Traefik 3.7 does (ARRIVALS)."""

    def test_table(self) -> None:
        """Every row, for a trusted peer and for another."""
        for data, trusted, other in ARRIVALS:
            for is_trusted, expected in ((True, trusted), (False, other)):
                if expected == _CLOSE:
                    self.assertRaises(ValueError, read_arrival, data, is_trusted)
                else:
                    self.assertEqual(read_arrival(data, is_trusted), expected, (data, is_trusted))

    def test_split_anywhere(self) -> None:
        """Every proper prefix of a whole header asks for more bytes."""
        for data, trusted, _ in ARRIVALS:
            if isinstance(trusted, Arrival) and trusted.consumed:
                for end in range(trusted.consumed):
                    self.assertIsNone(read_arrival(data[:end], True), data[:end])

    def test_bytes_wanted(self) -> None:
        """A v2 header's whole length is known from its 16th byte; nothing else is."""
        self.assertEqual(bytes_wanted(SIG + b"\x21\x11\xff\xff"), 16 + 65535)
        self.assertEqual(bytes_wanted(SIG + b"\x21\x11\x00\x0c" + _V4[:3]), 28)
        for data in (
            SIG + b"\x21\x11\x00",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2",
            b"GET / HTTP/1.1\r\n",
        ):
            self.assertEqual(bytes_wanted(data), 0, data)

    def test_timeout(self) -> None:
        """At the read timeout a begun header closes the connection; a signature's prefix
        goes on as data (Traefik: "PRO" then silence is served; "PROXY TCP4 1.2" closed)."""
        self.assertTrue(header_started(b"PROXY"))
        self.assertTrue(header_started(SIG + b"\x21"))
        self.assertFalse(header_started(b"PRO"))
        self.assertFalse(header_started(SIG[:11]))
        self.assertFalse(header_started(b""))


class PropertyTests(SynchronousTestCase):
    """Hypothesis: the decoder's failures and the encoders' round trips."""

    @given(
        st.one_of(
            st.binary(max_size=200),
            st.binary(max_size=120).map(lambda b: b"PROXY " + b),
            st.binary(max_size=120).map(lambda b: SIG + b),
            st.from_regex(
                rb"\APROXY (TCP4|TCP6|UNKNOWN) [0-9a-f:.]{0,40} [0-9a-f:.]{0,40} [0-9]{0,6} [0-9]{0,6}\r\n",
                fullmatch=True,
            ),
        )
    )
    def test_only_value_error(self, data: bytes) -> None:
        """Any bytes: a header, None, or ValueError; a header never claims more than it got."""
        try:
            result = parse(data)
        except ValueError:
            return
        if result is not None:
            self.assertLessEqual(result[1], len(data))

    @given(
        st.sampled_from([1, 2]),
        st.one_of(
            st.tuples(st.ip_addresses(v=4), st.ip_addresses(v=4)),
            st.tuples(st.ip_addresses(v=6), st.ip_addresses(v=6)),
        ),
        ports,
        ports,
    )
    def test_round_trip(self, version: int, hosts: tuple, sport: int, dport: int) -> None:
        """Random same-family addresses and ports come back as sent, mapped IPv6 as IPv4."""
        source, destination = (str(hosts[0]), sport), (str(hosts[1]), dport)
        data = encode(version, source, destination)
        header, used = parse(data)  # type: ignore[misc]
        self.assertEqual(used, len(data))
        self.assertLessEqual(len(data), 107)
        expected = (_expected(*source), _expected(*destination))
        if (
            ipaddress.ip_address(expected[0][0]).version
            != ipaddress.ip_address(expected[1][0]).version
        ):
            self.assertEqual(header.protocol, "UNKNOWN")
        else:
            self.assertEqual((header.source, header.destination), expected)


def _free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HAProxyTests(SynchronousTestCase):
    """HAProxy reads our header (accept-proxy) and we read the one it sends on (send-proxy)."""

    if HAPROXY is None:
        skip = "haproxy is not installed"

    def _relay(self, version: int, send: str, source: tuple, destination: tuple) -> ProxyHeader:
        """Send our header through HAProxy and parse what its server line sends to us."""
        backend = socket.socket()
        self.addCleanup(backend.close)
        backend.bind(("127.0.0.1", 0))
        backend.listen(1)
        backend.settimeout(10)
        front = _free_port()
        with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
            cfg.write(HAPROXY_CFG % (front, backend.getsockname()[1], send))
        self.addCleanup(os.unlink, cfg.name)
        proc = subprocess.Popen(
            [str(HAPROXY), "-db", "-q", "-f", cfg.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        deadline = time.monotonic() + 10
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", front), timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        self.addCleanup(client.close)
        client.sendall(encode(version, source, destination) + b"hello")
        conn, _ = backend.accept()
        self.addCleanup(conn.close)
        conn.settimeout(10)
        data = b""
        while True:
            result = parse(data)
            if result is not None:
                break
            chunk = conn.recv(4096)
            self.assertTrue(chunk, "HAProxy closed before its header was complete")
            data += chunk
        header, used = result
        while len(data) < used + 5:
            data += conn.recv(4096)
        self.assertEqual(data[used:], b"hello")
        return header

    def test_haproxy(self) -> None:
        """Both versions both ways, IPv4 and IPv6, survive a trip through HAProxy."""
        cases = [
            (1, "send-proxy-v2", ("1.2.3.4", 1111), ("5.6.7.8", 2222)),
            (2, "send-proxy", ("2001:db8::1", 443), ("2001:db8::2", 8443)),
            (2, "send-proxy-v2", ("::ffff:10.0.0.1", 0), ("10.0.0.2", 65535)),
            (1, "send-proxy", ("fe80::1", 65535), ("::1", 1)),
        ]
        for version, send, source, destination in cases:
            header = self._relay(version, send, source, destination)
            self.assertEqual(header.command, "PROXY")
            self.assertEqual(header.source, _expected(*source), (version, send))
            self.assertEqual(header.destination, _expected(*destination), (version, send))
