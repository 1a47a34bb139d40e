"""Where a plan's requests may go: the hosts allowed, and the addresses never connected to.

Whatever a plan's URLs name, the worker never connects to a link-local or cloud metadata
address (``plans.addresses``), checked on each address a name resolves to; with
``ROLLOUT_OUTBOUND_HOSTS`` set, it connects only to the hosts listed there. The requests
themselves go through ``activities.outbound``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from activities.errors import SideEffectError
from plans.addresses import IPAddress, address_refusal, host_refusal, literal_address

HOSTS_ENV = "ROLLOUT_OUTBOUND_HOSTS"

Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the addresses the host has, as text; raises OSError when it has none."""


class OutboundError(SideEffectError):
    """A request to an address a plan names did not get an answer.

    ``reason`` says why without naming the host, for callers whose URL is a secret.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class OutboundRefused(OutboundError):
    """The outbound policy does not let the worker send this request: fix the plan or policy."""

    retryable = False


class OutboundTooLarge(OutboundError):
    """The answer was longer than the request's byte cap."""

    retryable = False


class OutboundUnreachable(OutboundError):
    """The other side could not be reached, or broke off the exchange."""


class OutboundTimeout(OutboundUnreachable):
    """The whole request took longer than its deadline."""


def system_resolve(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives ``host``, in its order, each once."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


@dataclass(frozen=True)
class HostAllowlist:
    """The hosts requests may go to: names, ``*.suffix`` names, and address networks."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    setting: str = ""

    @classmethod
    def parse(cls, setting: str) -> HostAllowlist:
        """Read ``ROLLOUT_OUTBOUND_HOSTS``: comma-separated hosts, ``*.domain``, CIDR ranges."""
        names, suffixes, networks = set(), [], []
        entries = [e.strip().lower().rstrip(".") for e in setting.split(",") if e.strip()]
        for entry in entries:
            if entry.startswith("*."):
                suffixes.append(entry[1:])
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if not re.fullmatch(r"[a-z0-9_.-]+", entry):
                    raise OutboundRefused(
                        f"{HOSTS_ENV} holds {entry!r}, which is no host name, *.domain or"
                        " address range: fix it in the worker's environment"
                    ) from None
                names.add(entry)
        return cls(frozenset(names), tuple(suffixes), tuple(networks), ",".join(entries))

    def allows_name(self, host: str) -> bool:
        """Whether ``host`` is listed by name (or under a listed ``*.domain``)."""
        name = host.lower().rstrip(".")
        return name in self.names or name.endswith(self.suffixes)

    def allows_address(self, address: IPAddress) -> bool:
        """Whether ``address`` lies in a listed range."""
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class OutboundPolicy:
    """Where the worker may send requests for a plan; ``hosts`` None means any host."""

    hosts: HostAllowlist | None = None
    resolve: Resolver = field(default=system_resolve, compare=False)

    def check_name(self, host: str) -> None:
        """Refuse a host as written: a metadata name or address, or one the allowlist lacks.

        Requests through a proxy get only this check: the proxy resolves the name.
        """
        self._refuse_written(host)
        if not self._listed(host):
            raise OutboundRefused(self._not_listed(host))

    def written_refusal(self, host: str) -> str | None:
        """Why requests to ``host`` will be refused whatever it resolves to, or None.

        A name the allowlist does not list may still resolve into a range it does: that
        is known only when the request is sent.
        """
        try:
            self.check_name(host)
        except OutboundRefused as refused:
            unsure = self.hosts is not None and self.hosts.networks and not literal_address(host)
            return None if unsure and host_refusal(host) is None else str(refused)
        return None

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for ``host``, every one of them allowed, or why not."""
        self._refuse_written(host)
        try:
            found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in self.resolve(host, port)]
        except (OSError, UnicodeError) as error:
            why = f"its host cannot be resolved: {reason_of(error)}"
            raise OutboundUnreachable(f"cannot resolve {host}: {reason_of(error)}", why) from None
        if not found:
            raise OutboundUnreachable(f"cannot resolve {host}: it has no address")
        for address in found:
            refused = address_refusal(address)
            if refused is not None:
                raise OutboundRefused(
                    f"{host} resolves where the worker sends no request: {refused}"
                )
        hosts = self.hosts
        in_range = hosts is not None and all(hosts.allows_address(a) for a in found)
        if not self._listed(host) and not in_range:
            raise OutboundRefused(self._not_listed(host))
        return found

    def _refuse_written(self, host: str) -> None:
        refused = host_refusal(host)
        if refused is not None:
            raise OutboundRefused(f"{refused}: the worker sends no request there")

    def _listed(self, host: str) -> bool:
        """Whether the allowlist (if any) names ``host``, or holds the address it is written as."""
        if self.hosts is None or self.hosts.allows_name(host):
            return True
        address = literal_address(host)
        return address is not None and self.hosts.allows_address(address)

    def _not_listed(self, host: str) -> str:
        assert self.hosts is not None
        return (
            f"{host} is not among the hosts this worker sends requests to"
            f" ({HOSTS_ENV}={self.hosts.setting}): add it there, or change the plan"
        )


_policies: dict[str | None, OutboundPolicy] = {}


def current_policy() -> OutboundPolicy:
    """The policy the worker's environment sets (read again when the variable changes)."""
    setting = os.environ.get(HOSTS_ENV, "").strip() or None
    policy = _policies.get(setting)
    if policy is None:
        hosts = HostAllowlist.parse(setting) if setting else None
        policy = _policies[setting] = OutboundPolicy(hosts=hosts)
    return policy


def reason_of(error: BaseException) -> str:
    """What went wrong, in a few words: the OS's words, without errno numbers."""
    found = re.search(r"\[Errno -?\d+\] ([^'\"()\]]+)", str(error))
    if found:
        return found.group(1).strip()
    return str(error).strip() or type(error).__name__
