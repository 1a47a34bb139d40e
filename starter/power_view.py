"""`rollout validate --traffic RPS` / `--live`: what each stage's comparing gates can detect.

Loaded only with one of those flags: the statistics (numpy) stay out of a plain validate.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from plans.plan import Plan

if TYPE_CHECKING:
    from activities.power_plan import GateReach, Traffic
    from starter.answers import ValidRollout


def wanted(args: argparse.Namespace) -> bool:
    """Whether the command line asks what the stages can detect."""
    return getattr(args, "traffic", None) is not None or bool(getattr(args, "live", False))


def traffic_of(plan: Plan, args: argparse.Namespace) -> Traffic:
    """The traffic the flags give, or read now from the gates' sources (``--live``)."""
    from activities import power, power_plan

    base = args.base_rate
    if args.live:
        return power_plan.live(plan, base)
    spread, step = power.LOG_SPREAD, (power.BUCKET_STEP - 1) * 100
    return power_plan.Traffic(
        canary_rps=args.traffic,
        base_rate=base,
        said=(
            f"{args.traffic:g} canary requests a second at every stage (the stable the rest by"
            f" weight); rate gates' stable rate {base:.3g} (--base-rate; a success rate"
            f" {1 - base:.3g}); latency log-normal (spread {spread:g} of log latency) in"
            f" buckets {step:.0f}% apart"
        ),
    )


def reach_of(plan: Plan, args: argparse.Namespace) -> tuple[Traffic, list[list[GateReach]]]:
    from activities import power_plan

    traffic = traffic_of(plan, args)
    return traffic, power_plan.reach(plan, traffic)


def with_power(lines: list[str], plan: Plan, args: argparse.Namespace) -> list[str]:
    """`validate`'s lines with, under each stage, what its gates can detect and warnings."""
    traffic, found = reach_of(plan, args)
    out = lines[:1]
    for index, stage_line in enumerate(lines[1 : 1 + len(plan.stages)]):
        out.append(stage_line)
        for gate in found[index]:
            counted = ""
            if gate.canary_requests is not None and gate.stable_requests is not None:
                counted = f" ({gate.canary_requests:,.0f} vs {gate.stable_requests:,.0f} requests)"
            out.append(f"     can detect {gate.shown}{counted}")
            if gate.warning:
                out.append(f"     warning: {gate.warning}")
    out += lines[1 + len(plan.stages) :]
    out.append(f"  power: {traffic.said}")
    return out


def add_to(answer: ValidRollout, plan: Plan, args: argparse.Namespace) -> ValidRollout:
    """The JSON answer with each stage's power and how the traffic was taken."""
    from starter.answers import GatePower

    traffic, found = reach_of(plan, args)
    for line, gates in zip(answer.stages, found, strict=True):
        line.power = [
            GatePower(
                gate=g.gate,
                test=g.test,
                canary_requests=g.canary_requests,
                stable_requests=g.stable_requests,
                detectable=g.detectable,
                shown=g.shown,
                warning=g.warning,
            )
            for g in gates
        ]
    answer.traffic = traffic.said
    return answer
