"""An experiment's variants as variants of one flagd flag, split by ``fractional`` targeting.

The experiment owns the flag's ``targeting``, written as

    {"fractional": [["control", 34], ["b", 33], ["c", 33]]}

flagd hashes each user's targeting key into one of 100 buckets and walks the list, so with
the percents as weights each variant gets its share of the users, and a user keeps the
variant while the shares stay. An order found in the file is kept, and a bucketing
expression ahead of the pairs too. A rollout's fractional between two of the flag's
variants is taken over as it is; a targeting rule of anything else is refused.

No targeting gives every user the flag's ``defaultVariant``: that variant's share is 100%.
The file itself is read, locked and replaced whole by ``flagd.FlagdFile``.
"""

from __future__ import annotations

import json
from typing import Any

from activities.errors import RouterRefused
from activities.routers.shares import check_names, check_shares, percents
from plans.runtime.shares import VariantShares
from plans.text import quote, some

_OWNS = "an experiment owns its flag's targeting: give it a flag of its own, or remove the rule"


def write(document: dict[str, Any], flag_key: str, path: str, shares: VariantShares) -> None:
    """Set the flag's targeting in ``document`` to the shares (checked first)."""
    where = f"flag {flag_key!r} in {path}"
    check_shares(shares, where)
    flag = _flag(document, flag_key, path, list(shares.shares))
    bucket_by, pairs = _fractional(flag.get("targeting"), flag, where)
    order = [name for name, _ in pairs if name in shares.shares]
    order += [name for name in shares.shares if name not in order]
    entries: list[Any] = [[name, shares.shares[name]] for name in order]
    flag["targeting"] = {"fractional": [*bucket_by, *entries]}


def read(document: dict[str, Any], flag_key: str, path: str, names: list[str]) -> VariantShares:
    """Each named variant's share of the users, as the flag's targeting gives them now."""
    where = f"flag {flag_key!r} in {path}"
    check_names(names, where)
    flag = _flag(document, flag_key, path, names)
    _, pairs = _fractional(flag.get("targeting"), flag, where)
    if not pairs:
        default = flag.get("defaultVariant")
        pairs = [(name, 100 if name == default else 0) for name in names]
    weights = dict.fromkeys(names, 0)
    # Variants the experiment does not name still take their users from the total.
    others = {f" {name}": weight for name, weight in pairs if name not in weights}
    weights |= {name: weight for name, weight in pairs if name in weights}
    found = percents(weights | others)
    return VariantShares(shares={name: found[name] for name in names})


def _flag(document: dict[str, Any], flag_key: str, path: str, names: list[str]) -> dict[str, Any]:
    flags: dict[str, Any] = document["flags"]
    flag = flags.get(flag_key)
    where = f"flag {flag_key!r} in {path}"
    if flag is None:
        known = some(sorted(flags), 10) or "none"
        raise RouterRefused(
            f"{path} has no flag {flag_key!r} (its flags: {known}): add it, with a variant for"
            f" each of {', '.join(map(repr, names))}, or fix router.flag"
        )
    if not isinstance(flag, dict):
        raise RouterRefused(f"{where} is not an object: write it as flagd's schema says")
    if flag.get("state") != "ENABLED":
        raise RouterRefused(
            f"{where} is in state {quote(flag.get('state'))}: a disabled flag gives every user"
            ' the code\'s default, so no share can move anyone; set "state": "ENABLED"'
        )
    variants = flag.get("variants")
    missing = [name for name in names if not isinstance(variants, dict) or name not in variants]
    if missing:
        listed = some(sorted(variants), 10) if isinstance(variants, dict) else "none"
        raise RouterRefused(
            f"{where} has no variant {', '.join(map(repr, missing))} (its variants:"
            f" {listed or 'none'}): each of the experiment's variants names one of the flag's"
        )
    return flag


def _fractional(
    targeting: Any, flag: dict[str, Any], where: str
) -> tuple[list[Any], list[tuple[str, int]]]:
    """The bucketing expression (if any) and the ``[variant, weight]`` pairs of the targeting."""
    if targeting is None or targeting == {}:
        return [], []
    args = targeting.get("fractional") if isinstance(targeting, dict) else None
    if len(targeting) != 1 or not isinstance(args, list):
        raise RouterRefused(
            f"{where} has targeting no experiment wrote ({quote(json.dumps(targeting))}): {_OWNS}"
        )
    pairs = [a for a in args if isinstance(a, list)]
    bucket_by = args[: len(args) - len(pairs)]
    variants = flag["variants"]
    ok = len(bucket_by) <= 1 and all(isinstance(a, list) for a in args[len(bucket_by) :])
    ok = ok and all(
        len(p) == 2
        and isinstance(p[0], str)
        and p[0] in variants
        and isinstance(p[1], int)
        and not isinstance(p[1], bool)
        and p[1] >= 0
        for p in pairs
    )
    if not ok:
        raise RouterRefused(
            f"{where} splits as {quote(json.dumps(args))}, not between its variants with whole"
            f" weights: {_OWNS}"
        )
    return bucket_by, [(p[0], p[1]) for p in pairs]
