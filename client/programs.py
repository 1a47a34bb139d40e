"""Running OpenSSH's programs (ssh-keygen, ssh-add) with a bound, for the worker and the CLI."""

from __future__ import annotations

import asyncio


async def run_bounded(
    *argv: str, stdin: bytes | None = None, timeout_s: float
) -> tuple[int, str, str]:
    """Run ``argv``; its exit code, standard output and standard error.

    Raises FileNotFoundError when the program is not installed, and TimeoutError (the
    program killed) when it takes longer than ``timeout_s``.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin or b""), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    code = process.returncode if process.returncode is not None else -1
    return code, out.decode(errors="replace"), err.decode(errors="replace")
