"""A test valid at every look within the stage's planned bake, joined to the mixture's.

The mixture of ``activities.anytime`` is valid at every look for ever, and pays for it: at
the end of a 10-minute bake it asks a z of about 3.4 where a single look asks 2.05. A
stage's bake is planned, though, and a test need only be valid up to its end (and a little
after, for the check that ends it): ``within_p`` is, and asks 2.43 there at its share of
the level (2.33 with all of it). The two are
joined with Bonferroni (``joined_p``): the looks within the span get ``WITHIN_SHARE`` of
the level, the mixture the rest, for big effects early and for every look after the span.
"""

from __future__ import annotations

import math

# The share of alpha given to the looks within the stage's planned bake (``within_p``);
# the mixture keeps the rest, for the looks after it and for large effects early.
WITHIN_SHARE = 0.75
WITHIN_HITS = 20  # the canary's tolerated hits from which a rate's z is taken as normal


def within_p(z: float, elapsed: float | None) -> float:
    """A p-value valid at every look within the stage's planned bake, from the look's z.

    ``elapsed`` is the share of the bake that has passed. Under the null the evidence
    ``z sqrt(elapsed)`` moves as a Brownian motion over the bake, which reaches ``c`` at
    some time before the bake's end with probability ``2 (1 - Phi(c))`` (the reflection
    principle), however often it is looked at: so ``2 (1 - Phi(z sqrt(elapsed)))`` is a
    p-value for every look up to the end of the bake. At its end it asks little more than
    a single look would (z of 2.33 where one look needs 2.05, at 2%), where a mixture
    valid for ever asks about 3.4; early looks need far more. 1 outside the bake.
    """
    if elapsed is None or not 0 < elapsed <= 1:
        return 1.0
    return min(1.0, math.erfc(max(z, 0.0) * math.sqrt(elapsed) / math.sqrt(2)))


def rate_within(z: float, tolerated: float, elapsed: float | None) -> float | None:
    """``within_p`` of a rate's excess once the canary's tolerated hits reach ``WITHIN_HITS``
    (fewer are too skewed for a z: 1); None without a planned span."""
    if elapsed is None:
        return None
    return within_p(z, elapsed) if tolerated >= WITHIN_HITS else 1.0


def joined_p(p_mixture: float, p_within: float | None, share: float = WITHIN_SHARE) -> float:
    """The mixture's p-value and ``within_p``'s, each at its share of alpha (Bonferroni):
    ``share`` to ``within_p``, the rest to the mixture.

    Without a planned end (``p_within`` None) the mixture alone, at the whole level.
    """
    if p_within is None:
        return p_mixture
    return min(1.0, p_mixture / (1 - share), p_within / share)
