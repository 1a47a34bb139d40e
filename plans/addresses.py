"""Addresses no plan may reach: link-local networks and the clouds' instance metadata services.

A metadata service hands out the machine's own credentials to whoever asks from the
machine, so a URL in a plan that reaches one would turn the worker into a way to read
them. These rules are the same everywhere: ``rollout validate`` applies them to the
addresses a plan writes out, and the worker (``activities.outbound``) to every address a
name resolves to, just before it connects. Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
# The instance metadata services (link-local ones are refused with their network too).
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack and most others
        "fd00:ec2::254",  # AWS, over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (its older address)
    )
)
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.azure.com",
    }
)
# IPv6 forms that carry an IPv4 address: the well-known NAT64 prefix and the deprecated
# IPv4-compatible form (::a.b.c.d); IPv4-mapped and 6to4 have ipaddress's own accessors.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (``::ffff:169.254.169.254``), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why no plan may reach ``address``, or None when it may."""
    for candidate in (address, embedded_ipv4(address)):
        if candidate is None:
            continue
        shown = str(address) if candidate is address else f"{address} ({candidate})"
        if candidate in METADATA:
            return f"{shown} is a cloud instance metadata address"
        if any(candidate in network for network in LINK_LOCAL):
            return f"{shown} is a link-local address (metadata services live there)"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host names when it is written as one, in any form a resolver accepts.

    Besides the usual forms this reads what ``inet_aton`` takes: ``2852039166``,
    ``0xa9.0xfe.0xa9.0xfe``, ``169.254.43518``; a name returns None.
    """
    host = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # a zone (fe80::1%eth0) is no help
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_ATON_PART.fullmatch(p) for p in parts):
        return None
    numbers = [int(p, 16 if p[:2].lower() == "0x" else 8 if p[0] == "0" else 10) for p in parts]
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    return ipaddress.IPv4Address(_aton(numbers))


def _aton(numbers: list[int]) -> int:
    """``inet_aton``'s reading of 1-4 numbers: the last fills the bytes the others leave."""
    value = 0
    for index, number in enumerate(numbers[:-1]):
        value |= number << (8 * (3 - index))
    return value | numbers[-1]


def host_refusal(host: str) -> str | None:
    """Why no plan may name ``host`` as written (a metadata name or address), or None."""
    name = host.strip("[]").rstrip(".").lower()
    if name in METADATA_NAMES:
        return f"{name} is a cloud instance metadata service"
    address = literal_address(name)
    return address_refusal(address) if address is not None else None


def url_refusal(url: str) -> str | None:
    """Why no plan may send requests to ``url``'s host as written, or None.

    Only what is written counts here; a name that resolves to such an address is refused
    by the worker when it connects.
    """
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host or "$" in host:
        return None
    found = host_refusal(host)
    if found is None:
        return None
    return f"{found}: a plan may not send requests there (the worker refuses it too)"
