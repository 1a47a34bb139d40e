"""What a worker refuses of a plan when its rollout starts, before any request is sent.

A rollout's first activity is the claim of its traffic target; the claim carries the
variables the plan names and the hosts it writes out, and the worker refuses the plan
there when one is outside its policy: a variable ``ROLLOUT_PLAN_SECRETS`` does not give
plans, a host ``ROLLOUT_OUTBOUND_HOSTS`` does not list. Each use is checked again (a plan
validated long ago meets today's policy), so this is where a person hears it first.
"""

from __future__ import annotations

from activities import plan_secrets
from activities.outbound import current_policy
from plans import TargetClaim


def refusals(claim: TargetClaim) -> list[str]:
    """Why this worker refuses the claiming plan, one line per field; none when it runs."""
    found = plan_secrets.refusals(claim.variables)
    policy = current_policy()
    for field, host in claim.hosts:
        refused = policy.written_refusal(host)
        if refused is not None:
            found.append(f"{field}: {refused}")
    return found
