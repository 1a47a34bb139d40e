"""`rollout`: validate plans, start rollouts, watch and steer them, and run the dev stack.

Every run of the program ends through ``main``, with one of the exit codes in EPILOG.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from client.connection import end_process
from plans.errors import PlanError, RolloutError
from starter.arguments import parser
from starter.exits import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_INVALID

# Only what every command needs is imported here: rich and the Temporal SDK load with the
# commands that use them (an error's message loads rich; see starter.parsing).


def main(argv: list[str] | None = None) -> NoReturn:
    """Run one command and end with its exit code (the table is in EPILOG).

    As the `rollout` program (``argv`` None) the process ends through ``end_process``:
    output flushed, then ``os._exit``, never interpreter finalization, which races the
    Temporal SDK's Rust threads and could turn any exit code into SIGABRT or SIGSEGV.
    Called with ``argv`` (tests, other Python code) it raises SystemExit like sys.exit.
    """
    code = run_command(argv)
    if argv is None:
        end_process(code)
    sys.exit(code)


def run_command(argv: list[str] | None) -> int:
    """Parse argv, run the command, report any error; the exit code, for every outcome."""
    try:
        words = sys.argv[1:] if argv is None else argv
        first = words[0] if words and not words[0].startswith("-") else None
        args = parser(first).parse_args(argv)
        run: Callable[[argparse.Namespace], int | Coroutine[Any, Any, int]] = args.run
        result = run(args)
        if isinstance(result, int):
            return result
        import asyncio

        return asyncio.run(result)
    except PlanError as error:
        error_line(str(error))
        return EXIT_INVALID
    except RolloutError as error:
        error_line(str(error))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`rollout list | head`): nothing more can be shown.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except SystemExit as exit_:
        # argparse ends --help with 0 and a usage error with 2.
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:
        if said := temporal_said(error):
            error_line(f"Temporal said: {said}")
        else:
            import traceback

            traceback.print_exc()
        return EXIT_ERROR


def error_line(message: str) -> None:
    """``error: MESSAGE`` on standard error, red on a terminal."""
    from rich.markup import escape

    from starter.console import err

    err.print(f"[red]error[/]: {escape(message)}")


def temporal_said(error: Exception) -> str | None:
    """The server's message when ``error`` is the SDK's RPCError, else None."""
    service = sys.modules.get("temporalio.service")  # not loaded: no call was made
    if service is not None and isinstance(error, service.RPCError):
        message: str = error.message
        return message
    return None


if __name__ == "__main__":
    main()
