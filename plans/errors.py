"""The project's own exceptions: each message says what to fix."""


class RolloutError(Exception):
    """Base of every error a user of Durable Rollouts can cause."""


class PlanError(RolloutError):
    """A plan that cannot be run; ``problems`` lists each wrong field."""

    def __init__(self, problems: list[str], source: str = "plan") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is not valid ({len(problems)} problem(s)):\n{lines}")
