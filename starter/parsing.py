"""How `rollout`'s parser names what it runs, without importing it.

Building the parser imports only this and the standard library: a command's modules (the
Temporal SDK, the plan's models, rich) load when that command runs, so `rollout --help` and
`rollout validate` do not wait for the others. Choices and help that come from those modules
(the templates, the routers) are read when they are shown or checked.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, overload

Result = int | Coroutine[Any, Any, int]


class Command:
    """A command's function, named as ``module:function`` and imported when it runs."""

    def __init__(self, target: str) -> None:
        self.module, _, self.function = target.partition(":")

    def __call__(self, args: argparse.Namespace) -> Result:
        run: Callable[[argparse.Namespace], Result] = getattr(
            importlib.import_module(self.module), self.function
        )
        return run(args)

    def __repr__(self) -> str:
        return f"Command({self.module}:{self.function})"


class LazyChoices(Sequence[str]):
    """Choices read from a module when argparse first checks or shows them."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load
        self._names: tuple[str, ...] | None = None

    def names(self) -> tuple[str, ...]:
        if self._names is None:
            self._names = tuple(self._load())
        return self._names

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self.names()[index]

    def __len__(self) -> int:
        return len(self.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, value: object) -> bool:
        return value in self.names()


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog may come from a function, called when the help is shown."""

    epilog_from: Callable[[], str] | None = None

    def format_help(self) -> str:
        if self.epilog_from is not None:
            self.epilog = self.epilog_from()
        return super().format_help()


def help_page(help: str) -> dict[str, Any]:
    """Keyword arguments for add_parser: the same sentence in the list and on the page."""
    return {"help": help, "description": help[0].upper() + help[1:] + "."}


def add_json(p: argparse.ArgumentParser, what: str) -> None:
    """``--json``: the command prints one JSON object (its schema: docs/json.md)."""
    p.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as one JSON object, for scripts (schema: docs/json.md)",
    )


class OneCommand:
    """`rollout`'s subparsers when the command line names its command first: that command's
    parser is built, the others' are not (building every command's options took about a
    twentieth of `rollout validate`). ``found`` says whether the command was among them; the
    help and the errors of the command are its own parser's, the same as when all are built.
    """

    def __init__(self, sub: Any, command: str) -> None:
        self._sub = sub
        self._command = command
        self.found = False

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self._command or self._command in kwargs.get("aliases", ()):
            self.found = True
            return self._sub.add_parser(name, **kwargs)
        return _UNBUILT


class _Unbuilt:
    """A command's parser that is not built: whatever is added to it is dropped."""

    def __getattr__(self, name: str) -> Callable[..., _Unbuilt]:
        return lambda *args, **kwargs: self

    def __setattr__(self, name: str, value: object) -> None:
        pass


_UNBUILT = _Unbuilt()
