"""A web gate's plain JSONPath is accepted without the parser, and means what the parser reads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from plans.sources.web import _PLAIN_PATH, compiled_path

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
STEPS = st.lists(
    st.one_of(NAMES.map(lambda n: f".{n}"), st.integers(0, 99).map(lambda i: f"[{i}]")),
    min_size=1,
    max_size=5,
)


@given(STEPS)
def test_every_path_taken_as_plain_is_one_the_parser_reads(steps: list[str]) -> None:
    path = "$" + "".join(steps)
    if _PLAIN_PATH.match(path):
        document = _document_for(steps)
        found = [m.value for m in compiled_path(path).find(document)]
        assert found == ["here"], path


def test_the_parsers_own_words_and_anything_else_go_to_the_parser() -> None:
    for path in ("$.where", "$.a.wherenot", "$..x", "$.tasks[?(@.v>1)]", "$.", "$", "x.y"):
        assert not _PLAIN_PATH.match(path), path
    for path in ("$.tasks", "$.data[0].rate", "$.whereabouts", "$[3]"):
        assert _PLAIN_PATH.match(path), path


def _document_for(steps: list[str]) -> object:
    """A document in which the path leads to one value, "here"."""
    value: object = "here"
    for step in reversed(steps):
        if step.startswith("["):
            index = int(step[1:-1])
            value = [None] * index + [value]
        else:
            value = {step[1:]: value}
    return value
