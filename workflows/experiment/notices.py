"""What an experiment tells people: its start, a variant taken out, a pause, its end.

The plan's ``notify`` channels and templates, as a rollout's (``workflows.rollout.notices``
hands each message to the notify activity). An experiment's notice carries its variants side
by side (``ExperimentBrief``): the templates show each share and effect. Its end is
``promoted`` (the winner at 100%), ``no_winner`` (the control kept), ``rolled_back`` or
``aborted``. Each key names its event once for the whole experiment; a lost message stops
nothing, and never the restore.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from plans import CommandKind, EventKind, Notice, Notification
    from plans.experiment import ExperimentPlan
    from plans.runtime.experiment import ExperimentProgress, ExperimentState
    from plans.runtime.notices import ExperimentBrief, VariantBrief
    from plans.runtime.shares import VariantShares
    from workflows.experiment import board
    from workflows.rollout.notices import settled, start_telling

ENDS = {
    ExperimentState.ROLLED_FORWARD: EventKind.PROMOTED,
    ExperimentState.KEPT_CONTROL: EventKind.NO_WINNER,
    ExperimentState.ROLLED_BACK: EventKind.ROLLED_BACK,
}


class Notices:
    """The experiment's voice: builds each event and waits for the notify activity."""

    def __init__(self, plan: ExperimentPlan, progress: ExperimentProgress) -> None:
        self._plan, self._progress = plan, progress

    async def started(self) -> None:
        shares = VariantShares(shares=self._plan.experiment.shares).describe()
        await self.send(EventKind.STARTED, f"{self._title} started: {shares}")

    async def variant_out(self, variant: str, why: str) -> None:
        control = self._plan.experiment.control
        await self.send(
            EventKind.GATE_FAILING,
            f"{self._title}: {variant} taken out, its share to {control}: {why}",
            reason=why,
            variant=variant,
        )

    async def paused(self, why: str) -> None:
        service = self._plan.service
        await self.send(
            EventKind.PAUSED,
            f"{self._title} paused: {why} (`rollout resume {service}` goes on)",
            reason=why,
        )

    async def ended(self, report_url: str | None) -> None:
        """The end the state says: the winner forward, the control kept, or put back."""
        p = self._progress
        kind = ENDS[p.state]
        if kind is EventKind.ROLLED_BACK and p.stop_asked.startswith(f"{CommandKind.ABORT} by "):
            kind = EventKind.ABORTED
        words = p.state.value.replace("_", " ")
        if kind is EventKind.ABORTED:
            words = "aborted"
        await self.send(
            kind,
            f"{self._title} {words}: {p.reason}",
            reason=p.reason,
            variant=p.winner,
            report_url=report_url,
        )

    def for_the_lease(self) -> Notification | None:
        """The message the target's lease sends should it put the control back itself (this
        run ended without a restore: terminated), or None when no channel hears it."""
        kind = EventKind.ROLLED_BACK
        channels = self._plan.plan.notify.channels_for(kind)
        if not channels:
            return None
        text = f"{self._title} ended without a rollback (terminated): its lease put it back"
        notice = self._notice(kind, text, "", None)
        return Notification.to(
            channels,
            text,
            self._plan.service,
            ExperimentState.ROLLED_BACK.value,
            notice.model_copy(update={"key": f"{notice.key}/lease"}),
        )

    @property
    def _title(self) -> str:
        return f"Experiment on {self._plan.service}"

    async def send(
        self,
        kind: EventKind,
        text: str,
        reason: str = "",
        variant: str = "",
        report_url: str | None = None,
    ) -> None:
        """Send the event to every channel that hears it, and wait; a lost one is logged."""
        plan, p = self._plan, self._progress
        channels = plan.plan.notify.channels_for(kind)
        if not channels:
            return
        p.notices += 1
        notice = self._notice(kind, reason or text, variant, report_url)
        message = Notification.to(channels, text, plan.service, p.state.value, notice)
        await settled(start_telling(message, kind))

    def _notice(self, kind: EventKind, reason: str, variant: str, report_url: str | None) -> Notice:
        plan, p = self._plan, self._progress
        ex = plan.experiment
        info = workflow.info()
        shown = board.variants_of(plan, p)
        about = next((v for v in shown if v.name == variant), None)
        verdicts = (
            [] if about is None else [x for x in (about.primary, *about.guardrails.values()) if x]
        )
        control = p.shares.get(ex.control, ex.shares[ex.control])
        templates = plan.plan.notify.templates
        return Notice(
            kind=kind,
            key=f"{info.workflow_id}/{info.first_execution_run_id}/{kind.value}/experiment/{p.notices}",
            service=plan.service,
            version=variant or plan.version,
            strategy="experiment",
            stage="experiment",
            stage_index=0,
            stage_count=1,
            weight=100 - control,
            verdicts=verdicts,
            reason=reason,
            restored=[f"{ex.control} at 100% on {plan.router.describe()}"]
            if kind in (EventKind.ROLLED_BACK, EventKind.ABORTED)
            else [],
            at=workflow.now(),
            report_url=report_url,
            templates_dir=templates.dir if templates else None,
            experiment=ExperimentBrief(
                control=ex.control,
                primary=ex.primary,
                max_duration_s=ex.max_duration.total_seconds(),
                variants=[
                    VariantBrief(
                        name=v.name,
                        share=v.share,
                        control=v.control,
                        effect=v.effect_text(),
                        better=v.better,
                        out=v.out,
                    )
                    for v in shown
                ],
                variant=variant,
            ),
        )
