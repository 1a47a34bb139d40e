"""A flagd flag file: one flag's ``fractional`` targeting is the split.

The rollout owns the ``targeting`` of one flag, written as

    {"fractional": [["canary", p], ["stable", 100 - p]]}

or, with a stage's ``match`` sending matching users to the new variant first,

    {"if": [RULE, "canary", {"fractional": [...]}]}

where RULE reads the evaluation context the application builds: the request's headers
under ``header`` (names in lower case) and its cookies under ``cookie``, so
``match: {header: x-user-group, exact: internal}`` is
``{"==": [{"var": "header.x-user-group"}, "internal"]}`` (``prefix`` is flagd's
``starts_with``).

flagd hashes each targeting key into a bucket and gives a variant by walking the list, so
with a fixed total of 100 and the canary at one end of it, a larger ``p`` only adds users:
whoever had the canary keeps it. An order found in the file is kept for the same reason.

The file is replaced whole (a temporary file beside it, fsync, rename), so a provider
polling it never reads half of one; other flags and fields keep their content and order.
A lock on the file's folder keeps two rollouts on two flags of one file from losing each
other's write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from activities.errors import RouterError, RouterRefused, RouterUnreachable
from activities.routers import flagd_shares
from plans import FlagdRouter, RequestMatch, TrafficSplit
from plans.runtime.shares import VariantShares
from plans.text import quote, some

MAX_FILE_BYTES = 16 << 20
_OWNS = "the rollout owns this flag's targeting: give it a flag of its own, or remove the rule"


class FlagdFile:
    """Sets and reads one flag's fractional split in a flagd flag-definition file."""

    def __init__(self, spec: FlagdRouter) -> None:
        self.spec = spec
        self.path = spec.file
        self.flag = spec.flag
        self.timeout = spec.timeout.total_seconds()

    def set_split(self, stable: str, canary: str, split: TrafficSplit) -> TrafficSplit:
        """Rewrite the flag's fractional weights, then read the file back."""
        if split.stable_weight + split.canary_weight == 0:
            raise RouterRefused(
                f"{self.spec.describe()}: flagd cannot split between weights 0 and 0 (it"
                " answers the default variant): give one variant a weight"
            )
        with self._locked():
            document = self._read()
            flag = self._flag(document, stable, canary)
            targeting = _with_split(flag.get("targeting"), stable, canary, split, self)
            flag["targeting"] = _with_match(targeting, canary, split.match)
            self._write(document)
        after = self.get_split(stable, canary)
        if after != _as_written(split):
            raise RouterError(
                f"{self.spec.describe()} holds {after} right after being set to {split}:"
                " something else is rewriting this flag (another controller or a person)"
            )
        return after

    def get_split(self, stable: str, canary: str) -> TrafficSplit:
        """The flag's split as the file says now; no targeting means all on the default."""
        flag = self._flag(self._read(), stable, canary)
        targeting = flag.get("targeting")
        if targeting is None or targeting == {}:
            return TrafficSplit.canary_percent(0)
        found = _fractional(targeting, stable, canary, self)
        weights = dict(_entries(found, stable, canary, self))
        return TrafficSplit(
            stable_weight=weights[stable],
            canary_weight=weights[canary],
            match=_match_of(targeting, self),
        )

    def set_shares(self, shares: VariantShares) -> VariantShares:
        """Write the variants' shares as the flag's targeting (see ``flagd_shares``), read back."""
        with self._locked():
            document = self._read()
            flagd_shares.write(document, self.flag, self.path, shares)
            self._write(document)
        after = self.get_shares(list(shares.shares))
        if after != shares:
            raise RouterError(
                f"{self.spec.describe()} holds {after.describe()} right after being set to"
                f" {shares.describe()}: something else is rewriting this flag"
            )
        return after

    def get_shares(self, names: list[str]) -> VariantShares:
        """The named variants' shares of the users, as the file says now."""
        return flagd_shares.read(self._read(), self.flag, self.path, names)

    # -- the file -------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as file:
                raw = file.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            known: dict[type[OSError], RouterError] = {
                FileNotFoundError: RouterRefused(
                    f"no flag file at {self.path}: create it with the flag {self.flag!r} (its"
                    " variants named as the plan's stable and canary), or fix router.file"
                ),
                IsADirectoryError: RouterRefused(
                    f"{self.path} is a folder: set router.file to the flag file"
                ),
                PermissionError: RouterUnreachable(
                    f"cannot read {self.path}: permission denied; let the worker's user read it"
                ),
            }
            raise _os_error(error, f"read {self.path}", known) from None
        if len(raw) > MAX_FILE_BYTES:
            raise RouterRefused(
                f"{self.path} is larger than {MAX_FILE_BYTES >> 20} MiB: is it a flag file?"
            )
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            # Likely someone writing it in place right now: worth another look shortly.
            raise RouterUnreachable(
                f"{self.path} is not valid JSON ({error}): is something writing it in place?"
                " Write flag files whole (a temporary file, then rename)"
            ) from None
        if not isinstance(document, dict) or not isinstance(document.get("flags"), dict):
            raise RouterRefused(
                f"{self.path} is not a flagd flag file: it needs an object"
                ' {"flags": {KEY: {...}}} at the top'
            )
        return document

    def _flag(self, document: dict[str, Any], stable: str, canary: str) -> dict[str, Any]:
        flags: dict[str, Any] = document["flags"]
        flag = flags.get(self.flag)
        if flag is None:
            known = some(sorted(flags), 10) or "none"
            raise RouterRefused(
                f"{self.path} has no flag {self.flag!r} (its flags: {known}): add it, with"
                f' variants {stable!r} and {canary!r} and "defaultVariant": {stable!r}, or'
                " fix router.flag"
            )
        where = f"flag {self.flag!r} in {self.path}"
        if not isinstance(flag, dict):
            raise RouterRefused(f"{where} is not an object: write it as flagd's schema says")
        if flag.get("state") != "ENABLED":
            raise RouterRefused(
                f"{where} is in state {quote(flag.get('state'))}: a disabled flag gives every"
                ' user the code\'s default, so no split can move anyone; set "state": "ENABLED"'
            )
        variants = flag.get("variants")
        missing = [
            v for v in (stable, canary) if not isinstance(variants, dict) or v not in variants
        ]
        if missing:
            listed = some(sorted(variants), 10) if isinstance(variants, dict) else "none"
            raise RouterRefused(
                f"{where} has no variant {', '.join(map(repr, missing))} (its variants:"
                f" {listed or 'none'}): the plan's stable and canary name the flag's variants"
            )
        if flag.get("defaultVariant") == canary:
            raise RouterRefused(
                f"{where} defaults to the canary {canary!r}: users without a targeting key"
                f" would get it at any split; set its defaultVariant to {stable!r}"
            )
        return flag

    def _write(self, document: dict[str, Any]) -> None:
        # A symlinked flag file stays a symlink: the file it points to is the one replaced.
        target = os.path.realpath(self.path)
        try:
            st = os.stat(target)
        except OSError as error:
            raise _os_error(error, f"stat {self.path}") from None
        mode = stat.S_IMODE(st.st_mode)
        if not mode & 0o222 or not os.access(self.path, os.W_OK):
            raise RouterUnreachable(
                f"{self.path} is not writable (mode {mode:04o}): the rollout replaces it"
                " whole; make it writable for the worker's user (chmod u+w) and the shift"
                " goes on"
            )
        directory = os.path.dirname(target)
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        try:
            fd, temp = tempfile.mkstemp(
                prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory
            )
        except OSError as error:
            raise RouterUnreachable(
                f"cannot write beside {self.path} ({error.strerror or error}): the rollout"
                f" writes a new file in {directory} and renames it over the old one; let the"
                " worker's user write that folder"
            ) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temp, mode)
            if os.geteuid() == 0:
                # Root's new file would be root's: keep the owner the application expects.
                os.chown(temp, st.st_uid, st.st_gid)
            os.replace(temp, target)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise RouterUnreachable(
                f"cannot replace {self.path}: {error.strerror or error}; it is left as it was"
            ) from None
        _sync_folder(directory)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock on the file's folder: one writer of this folder's flag files at a time."""
        directory = os.path.dirname(os.path.realpath(self.path))
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError as error:
            missing = RouterRefused(
                f"no folder {directory} for the flag file {self.path}: fix router.file"
            )
            raise _os_error(error, f"open {directory}", {FileNotFoundError: missing}) from None
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as error:
                    if error.errno not in (errno.EAGAIN, errno.EACCES):
                        raise _os_error(error, f"lock {directory}") from None
                    if time.monotonic() > deadline:
                        raise RouterUnreachable(
                            f"{directory} stayed locked by another writer for {self.timeout:g}s"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _os_error(
    error: OSError, doing: str, known: dict[type[OSError], RouterError] | None = None
) -> RouterError:
    """The router error for an OS error: a known kind's own, else "cannot <doing>" (retried)."""
    for kind, translated in (known or {}).items():
        if isinstance(error, kind):
            return translated
    return RouterUnreachable(f"cannot {doing}: {error.strerror or error}")


def _sync_folder(directory: str) -> None:
    """Make the rename itself durable; a folder that cannot be synced is no reason to fail."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fractional(targeting: Any, stable: str, canary: str, file: FlagdFile) -> list[Any]:
    """The arguments of the rollout's ``fractional``, found where the rollout writes it."""
    if isinstance(targeting, dict) and len(targeting) == 1:
        if isinstance(targeting.get("fractional"), list):
            found: list[Any] = targeting["fractional"]
            return found
        rule = targeting.get("if")
        # A match ahead of the split: [RULE, canary, {"fractional": ...}].
        if isinstance(rule, list) and len(rule) == 3 and rule[1] == canary:
            return _fractional(rule[2], stable, canary, file)
    raise RouterRefused(
        f"flag {file.flag!r} in {file.path} has targeting the rollout did not write"
        f" ({quote(json.dumps(targeting))}): {_OWNS}"
    )


def _entries(args: list[Any], stable: str, canary: str, file: FlagdFile) -> list[tuple[str, int]]:
    """The ``[variant, weight]`` pairs of a fractional, which must be the plan's two variants."""
    pairs = [a for a in args if isinstance(a, list)]
    bucket_by = args[: len(args) - len(pairs)]
    ok = len(bucket_by) <= 1 and all(isinstance(a, list) for a in args[len(bucket_by) :])
    ok = ok and all(
        len(p) == 2
        and isinstance(p[0], str)
        and isinstance(p[1], int)
        and not isinstance(p[1], bool)
        and p[1] >= 0
        for p in pairs
    )
    if not ok or sorted(p[0] for p in pairs) != sorted([stable, canary]):
        raise RouterRefused(
            f"flag {file.flag!r} in {file.path} splits as {quote(json.dumps(args))}, not"
            f" between its variants {stable!r} and {canary!r} with whole weights: {_OWNS}"
        )
    return [(p[0], p[1]) for p in pairs]


def _with_split(
    targeting: Any, stable: str, canary: str, split: TrafficSplit, file: FlagdFile
) -> dict[str, Any]:
    """The flag's targeting with the new weights, in the order and shape already there."""
    weights = {stable: split.stable_weight, canary: split.canary_weight}
    if targeting is None or targeting == {}:
        return {"fractional": [[canary, weights[canary]], [stable, weights[stable]]]}
    args = _fractional(targeting, stable, canary, file)
    order = [name for name, _ in _entries(args, stable, canary, file)]
    # Rewritten in place, so a match rule around it and a bucketing expression stay.
    args[len(args) - 2 :] = [[name, weights[name]] for name in order]
    result: dict[str, Any] = targeting
    return result


def match_rule(match: RequestMatch) -> dict[str, Any]:
    """The JsonLogic rule that holds for the requests ``match`` names."""
    if match.header is not None:
        path = f"header.{match.header.lower()}"
    else:
        path = f"cookie.{match.cookie}"
    if match.exact is not None:
        return {"==": [{"var": path}, match.exact]}
    if match.prefix is not None:
        return {"starts_with": [{"var": path}, match.prefix]}
    raise RouterRefused(f"flagd cannot route {match.describe()}: use exact or prefix")


def _with_match(targeting: dict[str, Any], canary: str, match: RequestMatch | None) -> Any:
    """The targeting with ``match`` ahead of its fractional split (or none)."""
    split = targeting["if"][2] if "if" in targeting else targeting
    if match is None:
        return split
    return {"if": [match_rule(match), canary, split]}


def _match_of(targeting: Any, file: FlagdFile) -> RequestMatch | None:
    """The match a rollout's rule ahead of the split stands for; None when there is none."""
    if not (isinstance(targeting, dict) and "if" in targeting):
        return None
    rule = targeting["if"][0]
    for op, how in (("==", "exact"), ("starts_with", "prefix")):
        args = rule.get(op) if isinstance(rule, dict) and len(rule) == 1 else None
        if not (isinstance(args, list) and len(args) == 2 and isinstance(args[1], str)):
            continue
        var = args[0].get("var") if isinstance(args[0], dict) else None
        part, _, name = var.partition(".") if isinstance(var, str) else ("", "", "")
        if part in ("header", "cookie") and name:
            try:
                return RequestMatch.model_validate({part: name, how: args[1]})
            except ValueError:
                break
    raise RouterRefused(
        f"flag {file.flag!r} in {file.path} has a rule the rollout did not write"
        f" ({quote(json.dumps(rule))}): {_OWNS}"
    )


def _as_written(split: TrafficSplit) -> TrafficSplit:
    """The split as the file keeps it: header names in lower case, as applications pass them."""
    match = split.match
    if match is None or match.header is None or match.header.islower():
        return split
    lowered = match.model_copy(update={"header": match.header.lower()})
    return split.model_copy(update={"match": lowered})
