"""IP and CIDR checks for ClientIP matchers, with Go's net.ParseIP / ParseCIDR acceptance rules.

As Traefik's ip.Checker (no zones, IPv4-mapped equals IPv4); it must never look at headers.
"""

from __future__ import annotations

import ipaddress
import re
from typing import FrozenSet, Optional, Sequence, Tuple

import attrs

# (4 or 6, integer value); IPv4-mapped IPv6 addresses are folded to 4 so they compare equal
# to their IPv4 form, as Go's net.IP.Equal does.
Address = Tuple[int, int]

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(r"%s\.%s\.%s\.%s\Z" % ((_OCTET,) * 4))
_MAPPED = 0xFFFF00000000


def parse_ip(text: str) -> Optional[Address]:
    """Parse an IP address like Go's net.ParseIP; None when Go would return nil."""
    if _IPV4.match(text):
        a, b, c, d = text.split(".")
        return (4, (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d))
    if ":" not in text or "%" in text or not text.isascii():
        return None
    try:
        value = int(ipaddress.IPv6Address(text))
    except ValueError:
        return None
    if value >> 32 == 0xFFFF:
        return (4, value & 0xFFFFFFFF)
    return (6, value)


@attrs.frozen
class Network:
    version: int
    base: int
    prefix: int

    def contains(self, address: Address) -> bool:
        version, value = address
        if version != self.version:
            return False
        width = 32 if version == 4 else 128
        shift = width - self.prefix
        return value >> shift == self.base >> shift


def parse_cidr(text: str) -> Optional[Network]:
    """Parse ``address/prefix`` like Go's net.ParseCIDR; host bits may be set."""
    address, slash, prefix = text.partition("/")
    if not slash or not prefix.isdigit() or not prefix.isascii():
        return None
    parsed = parse_ip(address)
    if parsed is None:
        return None
    bits = int(prefix)
    if ":" in address:
        if bits > 128:
            return None
        if parsed[0] == 4:
            # An IPv4-mapped IPv6 network: Go compares the IPv4 part when the mask covers it.
            if bits < 96:
                return Network(6, _MAPPED | parsed[1], bits)
            bits -= 96
    elif bits > 32:
        return None
    return Network(parsed[0], parsed[1], bits)


@attrs.frozen
class IPChecker:
    """The set of IPs and networks one ClientIP matcher accepts."""

    addresses: FrozenSet[Address]
    networks: Tuple[Network, ...]

    def contains(self, address: Optional[Address]) -> bool:
        if address is None:
            return False
        if address in self.addresses:
            return True
        return any(network.contains(address) for network in self.networks)


def build_checker(values: Sequence[str]) -> Tuple[Optional[IPChecker], str]:
    """An IPChecker for the values, or None and the first value that is neither IP nor CIDR."""
    addresses = set()
    networks = []
    for value in values:
        address = parse_ip(value)
        if address is not None:
            addresses.add(address)
            continue
        network = parse_cidr(value)
        if network is None:
            return None, value
        networks.append(network)
    return IPChecker(frozenset(addresses), tuple(networks)), ""
