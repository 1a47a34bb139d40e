"""The linear readers behind the plan's limits agree with the plain definitions they replace.

- ``range_windows`` scans a query instead of matching the regexes it used to (which backtrack
  for seconds on a few thousand brackets or spaces): same windows for any text.
- The YAML shape check counts each use of an alias in full from the parser's events, without
  building anything: the same count and depth as walking the loaded data, alias by alias.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plans.loading
from plans import PlanError
from plans.sources.promql import range_windows

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")) * 2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# The definition range_windows keeps: drop string literals, then take each range selector's
# window (before any subquery resolution), spaces stripped.
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
RANGE = re.compile(r"\[\s*([^\]:]*?)\s*(?::[^\]]*)?\]")


def by_regex(query: str) -> list[str]:
    return [m.group(1) for m in RANGE.finditer(STRINGS.sub('""', query)) if m.group(1)]


promql_like = st.text(alphabet="\"'`\\[]: \t\n{}=~am15$", max_size=60)


@FUZZ
@given(st.one_of(promql_like, st.text(max_size=40)))
def test_range_windows_agrees_with_the_regexes(query: str) -> None:
    assert range_windows(query) == by_regex(query)


# -- YAML: values and depth counted from events, against the loaded data ---------------------


def expanded(value: Any) -> tuple[int, int]:
    """(values, depth) of loaded YAML walked as a tree: shared objects count every time."""
    if isinstance(value, dict):
        children = [part for pair in value.items() for part in pair]
    elif isinstance(value, list):
        children = value
    else:
        return 1, 1
    sizes = [expanded(child) for child in children]
    return 1 + sum(s for s, _ in sizes), 1 + max((d for _, d in sizes), default=0)


@st.composite
def shared_documents(draw: st.DrawFn) -> Any:
    """Nested lists and mappings that reuse earlier parts (safe_dump writes those as aliases)."""
    made: list[Any] = []

    def node(depth: int) -> Any:
        choice = draw(st.integers(0, 5 if depth < 6 else 1))
        if choice == 0 or (choice == 1 and not made):
            return draw(st.integers(0, 9))
        if choice == 1:
            return made[draw(st.integers(0, len(made) - 1))]
        items = [node(depth + 1) for _ in range(draw(st.integers(0, 4)))]
        built: Any = items if choice % 2 else {f"k{i}": v for i, v in enumerate(items)}
        made.append(built)
        return built

    return node(0)


@FUZZ
@given(shared_documents(), st.integers(1, 60), st.integers(1, 8))
def test_the_yaml_shape_check_counts_like_a_walk_of_the_data(
    document: Any, max_values: int, max_depth: int
) -> None:
    text = yaml.safe_dump(document)
    values, depth = expanded(yaml.safe_load(text))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plans.loading, "MAX_YAML_VALUES", max_values)
        patch.setattr(plans.loading, "MAX_YAML_DEPTH", max_depth)
        try:
            plans.loading._load_yaml(text, "plan")
            refused = False
        except PlanError:
            refused = True
    assert refused == (values > max_values or depth > max_depth)
