"""`rollout validate`: a plan checked offline, its stages (or a release's waves) listed.

It loads only the plan's models, so that validating a plan in a pre-commit hook or a CI
step takes no longer than they do to build.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from plans.durations import format_duration
from plans.errors import PlanError
from plans.experiment import ExperimentPlan, load_any_plan
from plans.release_plan import ReleasePlan
from starter import power_view

if TYPE_CHECKING:
    from plans.governance.windows import Windows
    from plans.plan import Plan
    from starter.answers import ValidRelease, ValidRollout


def cmd_validate(args: argparse.Namespace) -> int:
    # Checking a plan calls on no pydantic plugin, and finding them reads the metadata of every
    # installed package (a twentieth of the command's time); a PYDANTIC_DISABLE_PLUGINS the
    # caller set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        plan = load_any_plan(args.plan)
    except PlanError as error:
        if not args.json:
            raise
        from starter.answers import InvalidPlan, dump

        print(dump(InvalidPlan(file=args.plan, problems=error.problems)))
        return 2
    if isinstance(plan, ExperimentPlan):
        from starter import experiment_view

        return experiment_view.validated(args.plan, plan, as_json=args.json)
    if args.json:
        from starter.answers import dump

        if isinstance(plan, ReleasePlan):
            print(dump(release_answer(args.plan, plan)))
        elif power_view.wanted(args):
            print(dump(power_view.add_to(rollout_answer(args.plan, plan), plan, args)))
        else:
            print(dump(rollout_answer(args.plan, plan)))
        return 0
    if isinstance(plan, ReleasePlan):
        lines = release_lines(args.plan, plan)
    else:
        lines = rollout_lines(args.plan, plan)
        if power_view.wanted(args):
            lines = power_view.with_power(lines, plan, args)
    # Plain lines, never wrapped, so that a log or a grep reads whole stages; rich (the
    # other commands' printer) would take as long to load as the plan takes to check.
    lines[0] = ok() + lines[0].removeprefix("ok")
    print("\n".join(lines))
    return 0


def ok() -> str:
    """``ok``, green on a terminal that takes colours."""
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb":
        return "\x1b[32mok\x1b[0m"
    return "ok"


def rollout_lines(path: str, plan: Plan) -> list[str]:
    """What `validate` prints of a valid plan: the plan, then each stage."""
    lines = [f"ok: {path} is a valid plan for {plan.service} ({plan.workflow_id})"]
    for index, stage in enumerate(plan.stages, 1):
        gates = ", ".join(g.name for g in plan.gates_for(stage)) or "no gates"
        approval = ", then approval" if stage.approval else ""
        matched = f" and every request with {stage.match.describe()}" if stage.match else ""
        lines.append(
            f"  {index}. {stage.name}: {stage.weight}%{matched} for"
            f" {format_duration(stage.bake)},"
            f" checks every {format_duration(stage.check_every)} ({gates}){approval}"
        )
    if plan.windows is not None:
        lines.append(f"  increases: {windows_line(plan.windows)}")
    return lines


def release_lines(path: str, plan: ReleasePlan) -> list[str]:
    """What `validate` prints of a valid release: the release, its waves and targets."""
    lines = [
        f"ok: {path} is a valid release of {plan.service} to"
        f" {len(plan.targets)} targets ({plan.workflow_id}); on a failing target:"
        f" {plan.on_target_failure}"
    ]
    for i, wave in enumerate(plan.waves, 1):
        notes = [f"max {wave.max_parallel} at once"] if wave.max_parallel else []
        if wave.approval:
            notes.append("approval first")
        if wave.bake_between.total_seconds():
            notes.append(f"{format_duration(wave.bake_between)} after the previous wave")
        more = f" ({', '.join(notes)})" if notes else ""
        lines.append(f"  wave {i}: {', '.join(wave.targets)}{more}")
        for name in wave.targets:
            stages = " -> ".join(f"{s.weight}%" for s in plan.targets[name].stages)
            lines.append(f"    {name}: {plan.targets[name].router.describe()}: {stages}")
    return lines


def windows_line(windows: Windows) -> str:
    """The plan's windows and their next opening, as `validate` prints them."""
    allow = "; ".join(w.describe() for w in windows.allow) or "any time"
    deny = "; ".join(w.describe() for w in windows.deny)
    opens = windows.next_opening(datetime.now(UTC))
    when = f", next opening {opens:%a %Y-%m-%d %H:%M} UTC" if opens else ""
    return f"inside {allow}" + (f", never inside {deny}" if deny else "") + when


def rollout_answer(path: str, plan: Plan) -> ValidRollout:
    from starter.answers import StageLine, ValidRollout

    return ValidRollout(
        file=path,
        service=plan.service,
        version=plan.version,
        workflow_id=plan.workflow_id,
        router=plan.router.describe(),
        stages=[
            StageLine(
                name=stage.name,
                weight=stage.weight,
                match=stage.match.describe() if stage.match else None,
                bake_s=stage.bake.total_seconds(),
                check_every_s=stage.check_every.total_seconds(),
                gates=[g.name for g in plan.gates_for(stage)],
                approval=stage.approval,
            )
            for stage in plan.stages
        ],
        windows=windows_line(plan.windows) if plan.windows is not None else None,
    )


def release_answer(path: str, plan: ReleasePlan) -> ValidRelease:
    from starter.answers import TargetLine, ValidRelease, WaveLine

    return ValidRelease(
        file=path,
        service=plan.service,
        version=plan.version,
        workflow_id=plan.workflow_id,
        on_target_failure=plan.on_target_failure,
        waves=[
            WaveLine(
                targets=list(wave.targets),
                approval=wave.approval,
                max_parallel=wave.max_parallel,
                bake_between_s=wave.bake_between.total_seconds(),
            )
            for wave in plan.waves
        ],
        targets={
            name: TargetLine(
                router=target.router.describe(), weights=[s.weight for s in target.stages]
            )
            for name, target in plan.targets.items()
        },
    )
