"""The demo's feature flag: a flagd flag file, evaluated with OpenFeature per user.

This is what an application does when a rollout moves a ``flagd`` router: it reads the
same file through flagd's OpenFeature provider (in-process, file mode) and asks for the
flag with the user's id as the targeting key. The provider looks at the file's
modification time every ``poll_ms`` and reloads it when it changed, so a shift takes
effect within that interval.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

try:
    from openfeature import api
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.event import EventDetails, ProviderEvent
except ImportError as missing:  # a production install: the demo service is an extra
    raise ImportError(
        f"{missing.name} is not installed: the demo service's flags need the demo extra:"
        " pip install 'durable-rollouts[demo]'"
    ) from missing

from demo.configs import CANARY_SERVER, FLAG, STABLE_SERVER
from demo.example_plans import flag_definition, flag_json

# flagd's provider (0.6) polls a flag file at its `deadline_ms`; FLAGD_OFFLINE_POLL_MS is not
# read in file mode. Half a second keeps a shift's effect quick and costs one stat() each.
POLL_MS = 500


def write_flag_file(path: Path, document: dict[str, Any]) -> None:
    """Write a flag file whole (temporary file, then rename), as any writer of it should."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as file:
        file.write(flag_json(document))
    os.chmod(temp, 0o644)
    os.replace(temp, path)


class FlagReader:
    """An OpenFeature client on flagd's provider reading ``path``: ``variant(user)``."""

    def __init__(self, path: str, flag: str = FLAG, *, poll_ms: int = POLL_MS) -> None:
        self.path = path
        self.flag = flag
        self.poll_ms = poll_ms
        # A domain of its own, so several readers (tests) do not replace each other's provider.
        self.domain = f"flag-{uuid.uuid4().hex[:8]}"
        self.provider = FlagdProvider(
            resolver_type=ResolverType.FILE, offline_flag_source_path=path, deadline_ms=poll_ms
        )
        self.client = api.get_client(domain=self.domain)
        self._changes = 0
        self._changed = threading.Condition()
        self.client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, self._on_change)
        api.set_provider_and_wait(self.provider, domain=self.domain)
        # Loading the file at start is a change too, and its event may come after the wait:
        # counted first, so that `changes` counts reloads after a reader is ready.
        self.wait_change(0, timeout=10.0)

    def variant(
        self,
        user: str | None,
        default: str = STABLE_SERVER,
        attributes: dict[str, Any] | None = None,
    ) -> str:
        """The variant this user gets now; the default when the flag cannot be evaluated.

        ``attributes`` is the rest of the evaluation context: the request's headers under
        ``header`` (lower-case names) and its cookies under ``cookie``, which a stage's
        match rule reads.
        """
        context = EvaluationContext(targeting_key=user, attributes=attributes or {})
        details = self.client.get_string_details(self.flag, default, context)
        return details.variant or details.value

    @property
    def changes(self) -> int:
        """How many times the provider reloaded a changed file."""
        with self._changed:
            return self._changes

    def wait_change(self, after: int, timeout: float) -> bool:
        """Wait until the provider has reloaded more than ``after`` times; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._changes > after, timeout=timeout)

    def close(self) -> None:
        self.provider.shutdown()

    def _on_change(self, details: EventDetails) -> None:
        with self._changed:
            self._changes += 1
            self._changed.notify_all()


__all__ = [
    "CANARY_SERVER",
    "FLAG",
    "POLL_MS",
    "STABLE_SERVER",
    "FlagReader",
    "flag_definition",
    "write_flag_file",
]
