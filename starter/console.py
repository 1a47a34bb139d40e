"""Where `rollout` prints: results to standard output, notes and errors to standard error.

Apart from the views (``starter.render``), so that a command printing a line or an error
loads rich's console only.
"""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False)
"""Where results go: standard output."""
err = Console(stderr=True, highlight=False)
"""Where notes and errors go: standard error."""
