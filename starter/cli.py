"""`rollout`: validate plans, start rollouts, watch and steer them, and run the dev stack.

Every run of the program ends through ``main``, with one of the exit codes in EPILOG.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from rich.markup import escape
from temporalio.service import RPCError

from client.connection import end_process
from plans import PlanError, RolloutError
from starter.arguments import parser
from starter.exits import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_INVALID
from starter.render import err


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
        args = parser().parse_args(argv)
        run: Callable[[argparse.Namespace], int | Coroutine[Any, Any, int]] = args.run
        result = run(args)
        return result if isinstance(result, int) else asyncio.run(result)
    except PlanError as error:
        err.print(f"[red]error[/]: {escape(str(error))}")
        return EXIT_INVALID
    except RolloutError as error:
        err.print(f"[red]error[/]: {escape(str(error))}")
        return EXIT_ERROR
    except RPCError as error:
        err.print(f"[red]error[/]: Temporal said: {escape(error.message)}")
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
    except Exception:
        traceback.print_exc()
        return EXIT_ERROR


if __name__ == "__main__":
    main()
