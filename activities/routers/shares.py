"""What every router does alike with an experiment's shares: check them, round weights to them.

An experiment asks a router for two to four variants at whole percents that add up to 100
(``plans.runtime.shares.VariantShares``). A router keeps weights, not percents: HAProxy's
servers take 0-256, flagd's fractional entries any whole number, and whoever set them last
may not have used percents. ``percents`` reads weights back as percents that add up to 100
(largest remainder), so weights set to the percents themselves read back exactly.
"""

from __future__ import annotations

from activities.errors import RouterRefused
from plans.runtime.shares import VariantShares
from plans.text import SAFE_NAME

MIN_VARIANTS = 2
MAX_VARIANTS = 4


def check_shares(shares: VariantShares, where: str) -> None:
    """Refuse shares an experiment cannot route: 2-4 named variants, 0-100 each, 100 in all."""
    named = shares.shares
    if not MIN_VARIANTS <= len(named) <= MAX_VARIANTS:
        raise RouterRefused(
            f"{where}: an experiment runs {MIN_VARIANTS} to {MAX_VARIANTS} variants, not"
            f" {len(named)} ({shares.describe() or 'none'})"
        )
    check_names(list(named), where)
    wrong = [f"{name} {share}" for name, share in named.items() if not 0 <= share <= 100]
    if wrong:
        raise RouterRefused(
            f"{where}: each variant's share is a percent from 0 to 100, not {', '.join(wrong)}"
        )
    total = sum(named.values())
    if total != 100:
        raise RouterRefused(
            f"{where}: the variants' shares add up to {total}%, not 100% ({shares.describe()})"
        )


def check_names(names: list[str], where: str) -> None:
    """Refuse variant names a router cannot carry, and a name given twice."""
    if not MIN_VARIANTS <= len(names) <= MAX_VARIANTS:
        raise RouterRefused(
            f"{where}: an experiment runs {MIN_VARIANTS} to {MAX_VARIANTS} variants, not"
            f" {len(names)} ({', '.join(names) or 'none'})"
        )
    bad = [name for name in names if not SAFE_NAME.match(name)]
    if bad:
        raise RouterRefused(
            f"{where}: {', '.join(map(repr, bad))} cannot name a variant: use 1-63 letters,"
            " digits, '_', '.', ':' or '-'"
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise RouterRefused(f"{where}: variant {', '.join(map(repr, twice))} is named twice")


def percents(weights: dict[str, int]) -> dict[str, int]:
    """Each weight as a whole percent of their total, adding up to 100 (all 0 when none is set).

    The largest remainders get the percents rounding leaves over; ties go to the earlier
    name, so the same weights always read as the same percents.
    """
    total = sum(weights.values())
    if total <= 0:
        return dict.fromkeys(weights, 0)
    exact = {name: 100 * weight / total for name, weight in weights.items()}
    result = {name: int(value) for name, value in exact.items()}
    left = 100 - sum(result.values())
    order = sorted(exact, key=lambda name: -(exact[name] - result[name]))
    for name in order[:left]:
        result[name] += 1
    return result


def write_order(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """The order to set weights in: those that rise first, then those that fall.

    Between two commands the variants never all sit at 0 (HAProxy would answer 503), and
    no variant's weight passes outside its old and new value.
    """
    names = list(after)
    return sorted(names, key=lambda name: after[name] <= before.get(name, 0))
