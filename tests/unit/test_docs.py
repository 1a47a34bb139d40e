"""The docs cannot drift from the product: every plan they show is valid, every command line
they show parses, and every link between pages leads somewhere.

Pages: README.md, docs/**/*.md and benchmarks/README.md. A ```yaml block with a top-level
``service`` is a whole plan (a release when it names targets and waves, an experiment
when it has ``experiment``) and must pass the
product's own validation; one marked ``<!-- fragment -->`` on the line before it is part of
a plan and must pass inside a small whole plan; one marked ``<!-- not a plan: ... -->`` must
only be YAML. Every ``rollout`` and ``rollout-worker`` line of a bash, sh, shell or console
block goes through the CLI's own argparse parser, never run; ``[--opt]`` and ``[--a|--b]``
are optional, and each way of writing the line is parsed.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import shlex
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from plans.errors import PlanError
from plans.experiment import is_experiment_plan, parse_experiment_plan
from plans.loading import parse_plan
from plans.release_plan import is_release_plan, parse_release_plan
from starter.arguments import parser as rollout_parser
from worker.main import parser as worker_parser

ROOT = Path(__file__).parents[2]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    ROOT / "benchmarks" / "README.md",
]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*).*$")
_MARKER = re.compile(r"^<!--\s*(?P<text>.*?)\s*-->$")
_SHELLS = {"bash", "sh", "shell", "console"}


@dataclass(frozen=True)
class Block:
    """A fenced code block of a page: its language, text (dedented) and the marker before it."""

    page: Path
    line: int
    lang: str
    text: str
    marker: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> Iterator[Block]:
    """Every fenced block of ``page``, with the HTML comment on the line before it, if any."""
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        before = next((s.strip() for s in reversed(lines[:i]) if s.strip()), "")
        marker = _MARKER.match(before)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            line = lines[j]
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            j += 1
        yield Block(page, i + 1, opening["lang"], "\n".join(body), marker["text"] if marker else "")
        i = j + 1


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]

# Fragments are validated inside this plan: their top-level fields replace its own. Its
# stages end below 100% (comparing gates may judge every stage) and include ``full``.
FRAGMENT_BASE: dict[str, Any] = {
    "service": "docs",
    "version": "v2",
    "stable": "stable",
    "canary": "canary",
    "router": {
        "kind": "haproxy",
        "runtime_api": "tcp://127.0.0.1:9999",
        "backend": "app",
        "match_map": "/etc/haproxy/canary.map",
    },
    "metrics": {"kind": "prometheus", "url": "http://prometheus:9090"},
    "gates": [{"name": "error-rate", "query": 'errors{server="$canary"}', "max": 0.01}],
    "stages": [
        {"name": "canary", "weight": 10, "bake": "1h", "check_every": "1m"},
        {"name": "full", "weight": 50, "bake": "1h", "check_every": "1m"},
    ],
}


def yaml_blocks() -> list[Block]:
    return [b for b in ALL_BLOCKS if b.lang in ("yaml", "yml")]


@pytest.mark.parametrize("block", yaml_blocks(), ids=lambda b: b.where)
def test_every_yaml_block_is_a_valid_plan_or_says_what_it_is(block: Block) -> None:
    data = yaml.safe_load(block.text)
    if block.marker.startswith("not a plan"):
        return  # an Envoy, Prometheus or Alertmanager config: valid YAML is all we ask
    if block.marker == "fragment":
        assert isinstance(data, dict), f"{block.where}: a fragment is a mapping of plan fields"
        assert "service" not in data, f"{block.where}: a whole plan needs no fragment marker"
        data = {**FRAGMENT_BASE, **data}
    else:
        assert not block.marker, f"{block.where}: unknown marker <!-- {block.marker} -->"
        assert isinstance(data, dict) and "service" in data, (
            f"{block.where}: a YAML block without service: is not a whole plan; mark it"
            " <!-- fragment --> (part of a plan) or <!-- not a plan: what it is -->"
        )
    try:
        if is_experiment_plan(data):
            parse_experiment_plan(data, block.where)
        elif is_release_plan(data):
            parse_release_plan(data, block.where)
        else:
            parse_plan(data, block.where)
    except PlanError as error:
        pytest.fail(f"{block.where}: the plan shown is not valid: {error}")


def test_the_docs_show_plans_and_mark_the_rest() -> None:
    whole = [b for b in yaml_blocks() if not b.marker]
    fragments = [b for b in yaml_blocks() if b.marker == "fragment"]
    assert len(whole) >= 6 and len(fragments) >= 5
    assert any(b.page.name == "README.md" and b.page.parent == ROOT for b in whole)


# ``[--follow]``, ``[--watch|--json]``, ``[--router haproxy|envoy]``: an optional part.
_OPTIONAL = re.compile(r"\[(-[^\[\]]*)\]")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PROGRAMS = {
    "rollout": rollout_parser,
    ".venv/bin/rollout": rollout_parser,
    "rollout-worker": worker_parser,
    ".venv/bin/rollout-worker": worker_parser,
}


def _choices(group: str) -> list[str]:
    parts = [p.strip() for p in group.split("|")]
    if all(p.startswith("-") for p in parts):
        return ["", *parts]
    option = parts[0].split()[0]  # --router haproxy|envoy: one option, its values
    return ["", parts[0], *(f"{option} {p}" for p in parts[1:])]


def spellings(line: str) -> list[str]:
    """The line with each optional part left out or written in each of its ways."""
    groups = _OPTIONAL.findall(line)
    pieces = _OPTIONAL.split(line)
    texts = pieces[::2]
    found = []
    for chosen in itertools.product(*(_choices(g) for g in groups)):
        parts = [texts[0]]
        for choice, text in zip(chosen, texts[1:], strict=True):
            parts += [choice, text]
        found.append("".join(parts))
    return found


@dataclass(frozen=True)
class Command:
    where: str
    line: str


def command_lines() -> list[Command]:
    """Every line of a shell block that runs `rollout` or `rollout-worker`."""
    found = []
    for block in ALL_BLOCKS:
        if block.lang not in _SHELLS:
            continue
        logical: list[tuple[int, str]] = []
        pending = ""
        for offset, raw in enumerate(block.text.splitlines(), start=1):
            line = raw.strip()
            if block.lang == "console":
                if not pending and not line.startswith("$ "):
                    continue
                line = line.removeprefix("$ ")
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            logical.append((offset, pending + line))
            pending = ""
        for offset, line in logical:
            words = line.split()
            while words and _ENV.match(words[0]):
                words.pop(0)
            if words and words[0] in PROGRAMS:
                found.append(Command(f"{block.where}+{offset}", " ".join(words)))
    return found


@pytest.mark.parametrize("command", command_lines(), ids=lambda c: f"{c.where} {c.line[:50]}")
def test_every_command_line_shown_parses(command: Command) -> None:
    for spelling in spellings(command.line):
        program, *argv = shell_command(spelling)
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
                PROGRAMS[program]().parse_args(argv)
        except SystemExit as stop:
            if stop.code == 0 and "--help" in argv:
                continue
            pytest.fail(f"{command.where}: `{spelling}` does not parse: {errors.getvalue()}")


SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "2>", "<"}


def shell_command(line: str) -> list[str]:
    """The words of the line's first command: up to a pipe, a redirection or a `;`."""
    words = shlex.split(line, comments=True)
    ends = [i for i, word in enumerate(words) if word in SHELL_OPERATORS]
    return words[: ends[0]] if ends else words


def test_a_command_line_ends_at_a_pipe_or_a_redirection() -> None:
    assert shell_command("rollout list --json | jq -r '.rollouts[]'") == [
        "rollout",
        "list",
        "--json",
    ]
    assert shell_command("rollout completion zsh > ~/.zfunc/_rollout  # note") == [
        "rollout", "completion", "zsh"
    ]  # fmt: skip


def test_the_docs_show_commands() -> None:
    shown = {c.line.split()[1] for c in command_lines() if len(c.line.split()) > 1}
    for command in ("start", "status", "pause", "rollback", "approve", "override", "dev"):
        assert command in shown, f"no page shows `rollout {command}`"


def test_the_optional_parts_of_a_command_line() -> None:
    assert spellings("rollout status s [--watch|--json]") == [
        "rollout status s ",
        "rollout status s --watch",
        "rollout status s --json",
    ]
    assert spellings("rollout init s [--router haproxy|envoy]")[1:] == [
        "rollout init s --router haproxy",
        "rollout init s --router envoy",
    ]


# [text](target) and ![alt](target), outside code; a target may carry a "title".
_LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE_SPAN = re.compile(r"`+[^`]*`+")
_HEADING = re.compile(r"^#{1,6}\s+(?P<text>.+?)\s*#*\s*$")


def prose(page: Path, *, code_spans: bool = False) -> list[str]:
    """The page's lines outside fenced blocks, inline code taken out unless ``code_spans``."""
    kept, fence = [], ""
    for line in page.read_text(encoding="utf-8").splitlines():
        opening = _FENCE.match(line)
        if opening is not None and (not fence or line.strip() == fence):
            fence = "" if fence else opening["fence"]
            continue
        if not fence:
            kept.append(line if code_spans else _CODE_SPAN.sub("", line))
    return kept


def slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) and GitHub give a heading like ours."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    found = set()
    for line in prose(page, code_spans=True):
        heading = _HEADING.match(line)
        if heading is not None:
            found.add(slug(heading["text"]))
    return found


def links() -> list[Any]:
    return [
        pytest.param(page, match["target"], id=f"{page.relative_to(ROOT)} {match['target']}")
        for page in PAGES
        for line in prose(page)
        for match in _LINK.finditer(line)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", match["target"])  # http:, https:, mailto:
    ]


@pytest.mark.parametrize("page,target", links())
def test_every_link_between_pages_leads_somewhere(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    where = (page.parent / path).resolve() if path else page
    shown = f"{page.relative_to(ROOT)} links to {target}"
    assert where.is_relative_to(ROOT), f"{shown}, outside the repository"
    assert where.exists(), f"{shown}, which does not exist"
    if anchor:
        assert where.suffix == ".md", f"{shown}: an anchor into a file that is not a page"
        assert anchor in anchors(where), f"{shown}: no heading there has that anchor"


def test_every_docs_page_is_in_the_site_navigation() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def named(entries: Any) -> Iterator[str]:
        for entry in entries:
            for value in entry.values() if isinstance(entry, dict) else [entry]:
                yield from named(value) if isinstance(value, list) else [value]

    in_nav = set(named(config["nav"]))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == in_nav


def test_the_readme_starts_short_with_its_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    first = next(b for b in blocks(ROOT / "README.md"))
    commands = [line.split("#")[0].strip() for line in first.text.splitlines()]
    assert commands[:2] == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
