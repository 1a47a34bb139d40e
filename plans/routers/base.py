"""What every router's plan model tells the rest of the rollout about itself."""

from __future__ import annotations

from abc import abstractmethod
from datetime import timedelta
from typing import ClassVar

from plans.match import RequestMatch
from plans.text import Strict


class RouterModel(Strict):
    """A plan's ``router`` section: where traffic moves, and the router's own limits.

    Each kind of router subclasses this with its fields and a ``kind`` literal; the workflow
    and the activities read only what is declared here.
    """

    max_weight: ClassVar[int]
    """The largest weight the router takes for one server."""

    supports_match: ClassVar[bool] = False
    """Whether the router can send requests by header or cookie to the canary (a stage's
    ``match``); a router that can sets it True, routes ``TrafficSplit.match`` in its
    ``set_split`` and reads it back in ``get_split``."""

    def match_problems(self) -> list[str]:
        """What this router's section lacks for stages with ``match`` (none: it can route them)."""
        return []

    def match_refusal(self, match: RequestMatch) -> str:
        """Why this router cannot route this particular match, or '' when it can."""
        return ""

    @abstractmethod
    def describe(self) -> str:
        """The router in a few words, for people (``haproxy app via unix:///...``)."""

    @abstractmethod
    def target_key(self) -> str:
        """What a rollout owns here: two rollouts with the same key would fight over it."""

    @abstractmethod
    def placeholders(self) -> dict[str, str]:
        """Values this router gives a gate's queries (HAProxy's ``$backend``)."""

    @property
    @abstractmethod
    def shift_timeout(self) -> timedelta:
        """How long one shift (read, set, read back) may take before it is tried again."""

    @property
    @abstractmethod
    def read_timeout(self) -> timedelta:
        """How long reading the current split may take."""
