"""Blue-green as a plan writes it, and the stages it stands for.

Green (the new version, the plan's ``canary``) first gets no live traffic: people and the
``pre_promotion`` gates reach it on a preview route the router's setup provides. Promotion
(by ``rollout approve``, or by itself after ``auto_promote_after``) moves all traffic in one
step; the ``post_promotion`` gates then judge it, and a failure flips back. For
``keep_previous_for`` blue stays ready: a rollback inside it is a single flip that skips
analysis. The workflow runs these as three ordinary stages, so commands, checks, drift
repair and the history read the same as a canary's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from plans import text
from plans.durations import Duration, format_duration
from plans.gates import Gate
from plans.stage import Stage
from plans.text import Strict

PREVIEW = "preview"
POST_PROMOTION = "post-promotion"
KEEP_BLUE = "keep-blue"


def _gate_names(v: Any) -> Any:
    return text.at_most(
        v, text.MAX_GATES, "gate names", "a blue-green phase may list", "name each gate once"
    )


class BlueGreen(Strict):
    """A plan's ``blue_green`` section: preview, promotion, and how long blue stays ready."""

    preview: Duration = Field(
        default=timedelta(minutes=5),
        description="least time green is previewed (pre_promotion gates) before promotion",
    )
    auto_promote_after: Duration | None = Field(
        default=None,
        description="promote by itself after this long of preview; unset: wait for approve",
    )
    auto_abort_after: Duration | None = Field(
        default=None,
        description="end the preview aborted when nobody promoted green within this long",
    )
    post_promotion_for: Duration = Field(
        default=timedelta(minutes=5), description="how long post_promotion gates judge green"
    )
    keep_previous_for: Duration | None = Field(
        default=None,
        description="keep blue ready this long after promotion: rollback is then one flip",
    )
    check_every: Duration = timedelta(minutes=1)
    pre_promotion: Annotated[list[str] | None, BeforeValidator(_gate_names)] = Field(
        default=None, description="gates judged during the preview (default: all)"
    )
    post_promotion: Annotated[list[str] | None, BeforeValidator(_gate_names)] = Field(
        default=None,
        description="gates judged after promotion (default: those that do not compare)",
    )
    preview_url: str | None = Field(
        default=None, description="where people reach green before promotion (shown in status)"
    )

    @field_validator(
        "preview",
        "auto_promote_after",
        "auto_abort_after",
        "post_promotion_for",
        "keep_previous_for",
        "check_every",
    )
    @classmethod
    def _positive(cls, v: timedelta | None) -> timedelta | None:
        # 0 never means "forever" here: leave the field out to turn it off.
        if v is not None and v <= timedelta(0):
            raise ValueError(
                f"{format_duration(v)} is not a duration: give a positive one, or leave the"
                " field out to turn it off"
            )
        return v

    @field_validator("preview_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"{text.quote(v)}: write the preview URL as http(s)://HOST:PORT/...")
        return v

    @model_validator(mode="after")
    def _timeline(self) -> BlueGreen:
        problems = []
        if self.auto_promote_after is not None and self.auto_promote_after < self.preview:
            problems.append(
                f"auto_promote_after {format_duration(self.auto_promote_after)} is shorter than"
                f" the preview {format_duration(self.preview)}: green would be promoted before"
                " its pre-promotion gates had their look; lengthen it or shorten preview"
            )
        if self.auto_abort_after is not None and self.auto_abort_after <= self.preview_bake:
            problems.append(
                f"auto_abort_after {format_duration(self.auto_abort_after)} is not longer than"
                f" the preview's {format_duration(self.preview_bake)}: the preview would be"
                " aborted before anyone could promote it"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def preview_bake(self) -> timedelta:
        return self.auto_promote_after or self.preview

    def stages(self, gates: list[Gate]) -> list[Stage]:
        """Preview at 0%, post-promotion at 100%, then blue kept ready (when asked for)."""
        post = self.post_promotion
        if post is None:
            post = [g.name for g in gates if not g.compares]
        stages = [
            Stage(
                name=PREVIEW,
                weight=0,
                bake=self.preview_bake,
                check_every=self.check_every,
                approval=self.auto_promote_after is None,
                gates=self.pre_promotion,
                abort_after=self.auto_abort_after,
            ),
            Stage(
                name=POST_PROMOTION,
                weight=100,
                bake=self.post_promotion_for,
                check_every=self.check_every,
                gates=post,
            ),
        ]
        if self.keep_previous_for is not None:
            stages.append(
                Stage(
                    name=KEEP_BLUE,
                    weight=100,
                    bake=self.keep_previous_for,
                    check_every=self.check_every,
                    gates=[],
                )
            )
        return stages

    def problems(self, gates: list[Gate]) -> list[str]:
        """Gate names this section cannot use: unknown, or comparing after promotion."""
        problems = []
        known = {g.name: g for g in gates}
        listed = text.some(list(known), 10) or "none defined"
        for field, names in (
            ("pre_promotion", self.pre_promotion),
            ("post_promotion", self.post_promotion),
        ):
            for name in names or []:
                gate = known.get(name)
                if gate is None:
                    problems.append(
                        f"blue_green.{field}: unknown gate {text.quote(name)} (gates: {listed})"
                    )
                elif field == "post_promotion" and gate.compares:
                    problems.append(
                        f"blue_green.post_promotion: {gate.kind} gate {name!r} compares green"
                        " with blue, which gets no traffic after promotion: list threshold"
                        " gates here"
                    )
        return problems
