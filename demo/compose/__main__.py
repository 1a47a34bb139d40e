"""``python -m demo.compose [--check]``: regenerate (or check) docker-compose's config files."""

from __future__ import annotations

import argparse
import sys

from demo.compose import FOLDER, stale, write


def main(argv: list[str] | None = None) -> int:
    """Write the files, or with --check report the stale ones and return 1."""
    parser = argparse.ArgumentParser(prog="python -m demo.compose", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report files that differ")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        for name in names:
            print(f"{FOLDER / name} is stale: run `python -m demo.compose`", file=sys.stderr)
        return 1 if names else 0
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
