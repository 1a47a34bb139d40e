"""Which alerts do what to a rollout: rules matching an alert's labels to an action.

A rules file (``--rules``) lists rules; the first whose matchers all hold for an alert's
labels decides, and an alert no rule matches is only logged::

    rules:
      - match: {severity: critical}            # label = value, exactly
        action: rollback
      - match: {severity: warning}
        match_re: {alertname: "Canary.*"}      # label matches the whole regex
        action: pause
      - match: {team: payments}
        action: notify                         # log it (and post it, with --notify-webhook-env)

Without a file, one rule: ``severity="critical"`` rolls back.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plans.errors import PlanError
from plans.files import UnreadableFile, read_small_text
from plans.text import quote

MAX_RULES_BYTES = 64 * 1024
MAX_RULES = 100
MAX_MATCHERS = 20
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class RulesError(PlanError):
    """A rules file that cannot be used; each problem names the field and what to write."""


class AlertAction(StrEnum):
    """What an alert does to its service's rollout. ``notify`` leaves the rollout alone."""

    ROLLBACK = "rollback"
    PAUSE = "pause"
    NOTIFY = "notify"

    @property
    def weight(self) -> int:
        """How much the action changes: of two alerts for one rollout, the heavier acts first."""
        return {"rollback": 2, "pause": 1, "notify": 0}[self.value]


class Rule(BaseModel):
    """Labels an alert must have (``match``: equal; ``match_re``: the whole value matches)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    action: AlertAction

    @field_validator("match", "match_re")
    @classmethod
    def _label_names(cls, matchers: dict[str, str]) -> dict[str, str]:
        if len(matchers) > MAX_MATCHERS:
            raise ValueError(f"{len(matchers)} labels, more than {MAX_MATCHERS}: match fewer")
        for name in matchers:
            if not LABEL_NAME.fullmatch(name):
                raise ValueError(
                    f"{quote(name)} is not a Prometheus label name: use letters, digits and"
                    " '_', not starting with a digit"
                )
        return matchers

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, matchers: dict[str, str]) -> dict[str, str]:
        for name, pattern in matchers.items():
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(
                    f"{name}: {quote(pattern)} is not a regular expression ({error})"
                ) from None
        return matchers

    @model_validator(mode="after")
    def _matches_something(self) -> Rule:
        if not self.match and not self.match_re:
            raise ValueError(
                "a rule without match or match_re would act on every alert: name at least one"
                " label, e.g. match: {severity: critical}"
            )
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        """True when every matcher holds; a missing label is the empty string, as in PromQL."""
        if any(labels.get(name, "") != value for name, value in self.match.items()):
            return False
        return all(
            re.fullmatch(pattern, labels.get(name, "")) is not None
            for name, pattern in self.match_re.items()
        )

    def describe(self) -> str:
        matchers = [f'{name}="{value}"' for name, value in self.match.items()]
        matchers += [f'{name}=~"{value}"' for name, value in self.match_re.items()]
        return f"{{{', '.join(matchers)}}} -> {self.action.value}"


class Rules(BaseModel):
    """The rules, first match wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(min_length=1, max_length=MAX_RULES)

    def action_for(self, labels: dict[str, str]) -> tuple[AlertAction, Rule] | None:
        """The first matching rule's action and the rule, or None when no rule matches."""
        for rule in self.rules:
            if rule.matches(labels):
                return rule.action, rule
        return None


DEFAULT_RULES = Rules(rules=[Rule(match={"severity": "critical"}, action=AlertAction.ROLLBACK)])


def parse_rules(data: Any, source: str = "rules") -> Rules:
    """Rules from loaded YAML, or RulesError naming every wrong field."""
    if not isinstance(data, dict):
        raise RulesError(
            ["the file must be a mapping with a `rules:` list, e.g. rules: [{match:"
             " {severity: critical}, action: rollback}]"],
            source,
        )  # fmt: skip
    try:
        return Rules.model_validate(data)
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in problem["loc"]) or "the file"
            message = problem["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise RulesError(problems, source) from None


def load_rules(path: str | Path) -> Rules:
    """Read and check a rules file (YAML, at most MAX_RULES_BYTES, no aliases)."""
    path = Path(path)
    too_big = f"larger than {MAX_RULES_BYTES:,} bytes: a rules file needs a few lines"
    try:
        text = read_small_text(path, MAX_RULES_BYTES, too_big)
    except UnreadableFile as error:
        raise RulesError([str(error)], str(path)) from None
    try:
        # Aliases let a few bytes stand for a huge document; rules never need them.
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise RulesError(["aliases (*name) are not allowed: write the rules out"], str(path))
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RulesError([f"not valid YAML: {error}"], str(path)) from None
    return parse_rules(data, str(path))
