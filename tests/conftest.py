"""The order the suite runs in: the modules that wait longest on real servers first.

With two pytest workers taking whole modules (scripts/test.sh), a long fault module left
for last would keep one worker busy while the other has nothing to do; the quick unit and
workflow modules at the end fill in instead. Each module keeps its own order.
"""

from __future__ import annotations

import pytest

FIRST = ("faults", "integration", "stack")


def _rank(item: pytest.Item) -> int:
    parts = item.path.parts
    for rank, folder in enumerate(FIRST):
        if folder in parts:
            return rank
    return len(FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: each module's tests keep their order
