"""HAProxy through its runtime API (the admin-level ``stats socket``).

One command per connection: HAProxy answers and closes, so there is no session
state to get wrong and a retry simply sends the command again.
"""

from __future__ import annotations

import re
import socket

from activities.errors import (
    CanaryGone,
    RouterError,
    RouterRefused,
    RouterUnreachable,
    ServerMissing,
)
from activities.routers import haproxy_match, haproxy_shares
from plans import HAProxyRouter, RequestMatch, TrafficSplit
from plans.runtime.shares import VariantShares
from plans.text import SAFE_NAME

_WEIGHT = re.compile(r"^(\d+) \(initial (\d+)\)$")
_VERSION = re.compile(r"^New version created: (\d+)$")
_MAX_ANSWER = 1 << 16


class HAProxyRuntime:
    """Sets and reads server weights in one HAProxy backend."""

    def __init__(self, spec: HAProxyRouter) -> None:
        self.spec = spec
        self.backend = spec.backend
        self.timeout = spec.timeout.total_seconds()
        self.address = spec.runtime_api
        self.match_map = spec.match_map

    def set_split(self, stable: str, canary: str, split: TrafficSplit) -> TrafficSplit:
        """Set both weights and the match, then read them back; raise RouterError if HAProxy
        disagrees.

        A new match is set before the weights and an old one cleared after them, so the
        requests it names stay on the canary while the weights move.
        """
        if split.match is not None:
            self.set_match(split.match)
        try:
            self._set_weights(stable, canary, split)
        except ServerMissing as missing:
            if missing.server != canary or split != TrafficSplit.canary_percent(0):
                raise
            self._restore_without(canary, stable, split, missing)
        if split.match is None and self.match_map is not None:
            self.set_match(None)
        after = self.get_split(stable, canary)
        if after != split:
            raise RouterError(
                f"HAProxy backend {self.backend!r} reports {after} right after being set to"
                f" {split}: something else is changing these weights (another controller,"
                " an operator, or a reload)"
            )
        return after

    def _restore_without(
        self, canary: str, stable: str, split: TrafficSplit, missing: ServerMissing
    ) -> None:
        """Put stable back when the canary server is gone (removed mid-incident): stable gets
        its whole weight, and the answer says nothing routes to the canary any more."""
        self.set_weight(stable, split.stable_weight)
        if self.match_map is not None:
            self.set_match(None)
        if (now := self.get_weight(stable)) != split.stable_weight:
            raise RouterError(
                f"HAProxy backend {self.backend!r} reports stable {stable!r} at weight {now}"
                f" right after being set to {split.stable_weight}"
            )
        raise CanaryGone(
            f"HAProxy backend {self.backend!r} no longer has the canary server {canary!r},"
            f" so nothing routes to it; stable {stable!r} has weight {now} ({missing})"
        )

    def _set_weights(self, stable: str, canary: str, split: TrafficSplit) -> None:
        before = self._get_weights(stable, canary)
        writes = [(stable, before.stable_weight, split.stable_weight)]
        writes.append((canary, before.canary_weight, split.canary_weight))
        # Raise a weight before lowering the other, so that between the two commands
        # both servers never sit at 0 (HAProxy would answer 503) and the canary's
        # share stays between the old and the new split.
        writes.sort(key=lambda w: w[2] <= w[1])
        for server, _, weight in writes:
            self.set_weight(server, weight)

    def get_split(self, stable: str, canary: str) -> TrafficSplit:
        """The two servers' current weights and the match, as HAProxy routes now."""
        weights = self._get_weights(stable, canary)
        if self.match_map is None:
            return weights
        return weights.model_copy(update={"match": self.get_match()})

    def _get_weights(self, stable: str, canary: str) -> TrafficSplit:
        stable_weight, canary_weight = self.get_weights(stable, canary)
        return TrafficSplit(stable_weight=stable_weight, canary_weight=canary_weight)

    def set_shares(self, shares: VariantShares) -> VariantShares:
        """Weight each variant's server by its share (see ``haproxy_shares``) and read back."""
        return haproxy_shares.set_shares(self, shares)

    def get_shares(self, names: list[str]) -> VariantShares:
        """The named variants' shares, from their servers' weights."""
        return haproxy_shares.get_shares(self, names)

    # -- the match map ----------------------------------------------------------------------

    def get_match(self) -> RequestMatch | None:
        """The match the map routes to the canary now; RouterError for entries not ours."""
        found = haproxy_match.match_of(self._map_entries())
        if isinstance(found, str):
            raise RouterError(
                f"HAProxy map {self.match_map} holds {found}: the rollout's next shift replaces"
                f" them, or clear them with `clear map {self.match_map}`"
            )
        return found

    def set_match(self, match: RequestMatch | None) -> None:
        """Make the map hold exactly ``match`` (or nothing), replacing it in one commit."""
        path = self._map_path(match)
        wanted = [] if match is None else [(haproxy_match.map_key(match), match.encode())]
        if [(key, value) for _, key, value in self._map_entries()] == wanted:
            return
        answer = self.command(f"prepare map {path}")
        version = _VERSION.match(answer.splitlines()[0] if answer else "")
        if version is None:
            raise self._map_refusal(f"prepare map {path}", answer)
        for key, value in wanted:
            args = f"{haproxy_match.cli_argument(key)} {haproxy_match.cli_argument(value)}"
            command = f"add map @{version.group(1)} {path} {args}"
            answer = self.command(command)
            if answer:
                raise self._map_refusal(command, answer)
        command = f"commit map @{version.group(1)} {path}"
        answer = self.command(command)
        if answer:
            raise self._map_refusal(command, answer)

    def _map_entries(self) -> list[tuple[str, str, str]]:
        command = f"show map {self._map_path(None)}"
        answer = self.command(command)
        found = haproxy_match.entries(answer)
        if answer and not found:
            raise self._map_refusal(command, answer)
        return found

    def _map_path(self, match: RequestMatch | None) -> str:
        if self.match_map is None:
            raise RouterRefused(
                f"{self.spec.describe()} has no match_map: it cannot send requests by"
                f" {match.describe() if match else 'header or cookie'} to the canary"
            )
        return self.match_map

    def _map_refusal(self, command: str, answer: str) -> RouterRefused:
        said = answer.splitlines()[0] if answer else "(no answer)"
        if said.startswith("Unknown map identifier"):
            return RouterRefused(
                f"HAProxy has no map {self.match_map}: add the rule that reads it to backend"
                f" {self.backend!r} (use-server CANARY if {{ req.hdrs,map_reg({self.match_map})"
                f" -m found }}) and create the file, even empty (HAProxy said: {said})"
            )
        return RouterRefused(f"HAProxy refused `{command}` on {self.address}: {said}")

    def set_weight(self, server: str, weight: int) -> None:
        """``set weight <backend>/<server> <weight>``; HAProxy answers nothing on success."""
        command = f"set weight {self._target(server)} {int(weight)}"
        answer = self.command(command)
        if answer:
            raise self._refusal(command, server, answer)

    def get_weight(self, server: str) -> int:
        """``get weight <backend>/<server>``: the weight HAProxy uses now."""
        (weight,) = self.get_weights(server)
        return weight

    def get_weights(self, *servers: str) -> list[int]:
        """Each server's ``get weight``, asked on one connection (``a; b``), in order.

        HAProxy ends each command's answer with an empty line; a read of a split costs one
        connection, not one per server.
        """
        commands = [f"get weight {self._target(server)}" for server in servers]
        answers = self.command("; ".join(commands)).split("\n\n")
        weights: list[int] = []
        for index, (server, command) in enumerate(zip(servers, commands, strict=True)):
            answer = answers[index].strip() if index < len(answers) else ""
            if not answer:
                # HAProxy always answers `get weight`; silence means the connection was
                # cut. (A `set weight` that was cut is caught by the read-back after it.)
                raise RouterUnreachable(
                    f"HAProxy at {self.address} closed the connection without answering `{command}`"
                )
            match = _WEIGHT.match(answer)
            if not match:
                raise self._refusal(command, server, answer)
            weights.append(int(match.group(1)))
        return weights

    def command(self, line: str) -> str:
        """Send one runtime API command and return HAProxy's answer, stripped."""
        try:
            with self._connect() as conn:
                conn.sendall(line.encode("ascii") + b"\n")
                chunks: list[bytes] = []
                size = 0
                while size < _MAX_ANSWER:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
        except TimeoutError:
            raise RouterUnreachable(
                f"HAProxy at {self.address} did not answer `{line}` within {self.timeout:g}s:"
                " is it overloaded, or is router.runtime_api pointing at something else?"
            ) from None
        except OSError as error:
            # A reset mid-answer is a flaky connection, not a configuration to fix.
            raise RouterUnreachable(
                f"the connection to HAProxy at {self.address} broke during `{line}`:"
                f" {error.strerror or error}"
            ) from None
        return b"".join(chunks).decode("utf-8", "replace").strip()

    def _connect(self) -> socket.socket:
        address = self.address
        if address.startswith("tcp://"):
            host, _, port = address[len("tcp://") :].rpartition(":")
            host = host.strip("[]")
            try:
                return socket.create_connection((host, int(port)), timeout=self.timeout)
            except ConnectionRefusedError:
                raise RouterUnreachable(
                    f"nothing listens on {host}:{port} ({address}): is HAProxy running, with"
                    f" 'stats socket ipv4@{host}:{port} level admin' in its global section?"
                ) from None
            except TimeoutError:
                raise RouterUnreachable(
                    f"cannot connect to HAProxy at {address} within {self.timeout:g}s"
                ) from None
            except OSError as error:
                raise RouterUnreachable(
                    f"cannot connect to HAProxy at {address}: {error.strerror or error}"
                ) from None
        path = address[len("unix://") :] if address.startswith("unix://") else address
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(self.timeout)
        try:
            conn.connect(path)
        except FileNotFoundError:
            conn.close()
            raise RouterUnreachable(
                f"no HAProxy runtime socket at {path}: start HAProxy, or set router.runtime_api"
                " to the path in its 'stats socket' line"
            ) from None
        except ConnectionRefusedError:
            conn.close()
            raise RouterUnreachable(
                f"nothing listens on {path}: the socket file is left from an HAProxy that is"
                " not running; start HAProxy"
            ) from None
        except PermissionError:
            conn.close()
            raise RouterRefused(
                f"not allowed to open {path}: run the worker as a user the 'stats socket'"
                " line's mode/user/group lets in"
            ) from None
        except TimeoutError:
            conn.close()
            raise RouterUnreachable(
                f"cannot connect to HAProxy at {path} within {self.timeout:g}s"
            ) from None
        except OSError as error:
            conn.close()
            raise RouterUnreachable(
                f"cannot connect to HAProxy at {path}: {error.strerror or error}"
            ) from None
        return conn

    def _target(self, server: str) -> str:
        # The runtime API splits commands on ';' and newlines: a name must not carry one.
        if not SAFE_NAME.match(server):
            raise RouterRefused(
                f"{server!r} is not a valid HAProxy server name: use letters, digits,"
                " '_', '.', ':' or '-'"
            )
        return f"{self.backend}/{server}"

    def _refusal(self, command: str, server: str, answer: str) -> RouterRefused:
        said = answer.splitlines()[0] if answer else "(no answer)"
        if said.startswith("No such backend"):
            return RouterRefused(
                f"HAProxy has no backend {self.backend!r}: set router.backend in the plan to"
                f" one of its backends (HAProxy said: {said})"
            )
        if said.startswith("No such server"):
            return ServerMissing(
                f"HAProxy backend {self.backend!r} has no server {server!r}: make the plan's"
                f" stable and canary names match the backend's 'server' lines"
                f" (HAProxy said: {said})",
                server,
            )
        if said.startswith("Permission denied"):
            return RouterRefused(
                f"the runtime API at {self.address} is not admin level: add 'level admin' to"
                f" its 'stats socket' line (HAProxy said: {said})"
            )
        if "static LB algorithm" in said:
            return RouterRefused(
                f"HAProxy backend {self.backend!r} cannot change weights at run time: use"
                f" 'balance roundrobin' (or leastconn) there (HAProxy said: {said})"
            )
        return RouterRefused(f"HAProxy refused `{command}` on {self.address}: {said}")
