"""An application's own JSON endpoint as a metrics source, and JSONPath as its query language.

Business gates (success rate of tasks, complaints, cost per task) often live behind an
HTTP endpoint rather than in Prometheus. The source says where to ask and how (URL, method,
body, headers, timeout); each gate's ``query`` is a JSONPath that picks the value from the
answer, ``samples_query`` one that picks how many samples it rests on. The URL and body
take the same placeholders as any query: ``$target`` is the canary, then the stable, for
gates that compare the two, and ``$window`` the gate's window in whole seconds.
"""

from __future__ import annotations

import functools
import re
import sys
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from plans import text
from plans.durations import Duration, format_duration
from plans.sources.base import GateQueries, QueryLanguage, SourceModel

_URL = re.compile(r"https?://([A-Za-z0-9._$:{}-]+|\[[0-9A-Fa-f:]+\])(?::(\d{1,5}))?(/\S*)?")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
MAX_HEADERS = 20
MAX_BODY_CHARS = 4_000


class JSONPath:
    """Queries that pick values out of a JSON answer: ``$.success_rate``, ``$.steps[*].tasks``."""

    name = "JSONPath"
    placeholders: tuple[str, ...] = ("target", "window")

    def duration(self, window: timedelta) -> str:
        return str(int(window.total_seconds()))

    def windows(self, query: str, window: timedelta) -> list[tuple[str | None, float]]:
        # The path reads no data of its own; the URL says which span the endpoint sums.
        return []


def _header_name(v: str) -> str:
    if not _HEADER.match(v):
        raise ValueError(f"{text.quote(v)} is not an HTTP header name: use letters, digits and -")
    return v


HeaderName = Annotated[str, AfterValidator(_header_name)]


class WebSource(SourceModel):
    """An HTTP endpoint answering JSON; gates pick their values from it with JSONPath."""

    language: ClassVar[QueryLanguage] = JSONPath()

    kind: Literal["web"] = "web"
    url: Annotated[
        str, text.short_text("a URL may have", "write it as http(s)://host:port/path?query")
    ] = Field(description="http(s)://host:port/path?query; placeholders are filled per version")
    method: Literal["GET", "POST"] = "GET"
    body: str | None = Field(default=None, description="POST only; placeholders are filled in")
    headers: dict[HeaderName, str] = Field(
        default_factory=dict, description="sent as they are; no secrets here"
    )
    secret_headers: dict[HeaderName, text.EnvName] = Field(
        default_factory=dict,
        description="header -> environment variable holding its value, read by the worker",
    )
    timeout: Duration = timedelta(seconds=5)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return text.check_url(v, _URL, "write the URL as http(s)://host:port/path?query")

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_HEADERS:
            raise ValueError(f"{len(v)} headers is more than the {MAX_HEADERS} a source may send")
        for name, value in v.items():
            if len(value) > text.MAX_TEXT_CHARS or "\n" in value or "\r" in value:
                raise ValueError(f"header {name}: write one line of at most 1,000 characters")
            if name.lower() in ("authorization", "cookie", "x-api-key"):
                raise ValueError(
                    f"header {name} carries a secret: name the environment variable holding"
                    f" it under secret_headers ({name}: SOME_VARIABLE), so that it stays out"
                    " of the plan and of the rollout's history"
                )
        return v

    @field_validator("body")
    @classmethod
    def _body(cls, v: str | None) -> str | None:
        if v is not None and len(v) > MAX_BODY_CHARS:
            raise ValueError(f"a body may have at most {MAX_BODY_CHARS:,} characters")
        return v

    @model_validator(mode="after")
    def _body_with_post(self) -> WebSource:
        if self.body is not None and self.method != "POST":
            raise ValueError("body: only a POST sends a body; add method: POST or drop the body")
        return self

    def secret_variables(self) -> tuple[str, ...]:
        return tuple(self.secret_headers.values())

    def render(
        self, query: str, values: dict[str, str], *, window: timedelta, target: str | None = None
    ) -> str:
        """The request for one version: URL and body filled in, and the JSONPath to apply."""
        filled = self.filled(values, window=window, target=target)
        return WebRequest(
            method=self.method,
            url=text.fill(self.url, filled),
            body=None if self.body is None else text.fill(self.body, filled),
            path=query,
        ).text()

    def query_problems(self, gate: GateQueries, given: list[str]) -> list[tuple[str, str]]:
        problems = super().query_problems(gate, given)
        for field, query in (("query", gate.query), ("samples_query", gate.samples_query)):
            # The parser builds its tables through sys.modules, which a workflow's sandbox
            # does not show it; a plan a workflow decodes was checked when it was loaded.
            if query is None or not query.strip() or _in_workflow() or _PLAIN_PATH.match(query):
                continue
            try:
                compiled_path(query)
            except Exception as error:  # the parser raises plain Exceptions, with the position
                problems.append(
                    (
                        field,
                        f"{text.quote(query)} is not a JSONPath ({text.clip(str(error), 200)}):"
                        " write it like $.success_rate",
                    )
                )
        allowed = [*given, *self.language.placeholders]
        for where, template in (("url", self.url), ("body", self.body or "")):
            unknown = sorted(text.placeholders_in(template) - set(allowed))
            if unknown:
                named = text.some(["$" + u[:40] for u in unknown])
                shown = ", ".join("$" + p for p in allowed)
                problems.append(
                    (
                        "query",
                        f"the web source's {where} names unknown placeholder(s) {named}:"
                        f" use {shown}",
                    )
                )
        return problems

    def version_problems(self, gate: GateQueries) -> list[str]:
        """A gate comparing versions asks the endpoint for each: ``$target`` in URL or body."""
        named = text.placeholders_in(self.url + (self.body or ""))
        if "target" in named:
            return []
        return [
            f"source: a {gate.kind} gate asks its web source for each version, so the source's"
            " url or body must name it with $target (filled with the canary, then the stable)"
        ]

    def windows(self, gate: GateQueries) -> list[tuple[str, str, float]]:
        """The gate's window, when the URL or body asks the endpoint for it (``$window``)."""
        asked = "window" in text.placeholders_in(self.url + (self.body or ""))
        if not asked:
            return []
        return [("window", format_duration(gate.window), gate.window.total_seconds())]


# A path of names and indexes only ($.tasks, $.data[0].rate) is a JSONPath as written, so
# checking a plan needs no parser for it (importing one takes longer than the rest of the
# check); `where` and `wherenot` are the parser's words, not names, and go to the parser.
_PLAIN_PATH = re.compile(r"^\$(\.(?!(?:where|wherenot)\b)[A-Za-z_][A-Za-z0-9_]*|\[\d+\])+$")


@functools.lru_cache(maxsize=256)
def compiled_path(path: str) -> Any:
    """A JSONPath parsed once: the parser builds tables, too slow to run at every check."""
    from jsonpath_ng.ext.parser import parse as parse_jsonpath

    return parse_jsonpath(path)


def _in_workflow() -> bool:
    """Whether this runs inside a workflow; never where Temporal's SDK was not even loaded."""
    workflow = sys.modules.get("temporalio.workflow")
    return workflow is not None and bool(workflow.in_workflow())


class WebRequest(BaseModel):
    """One rendered request of a web gate, as the provider receives it (and people see it)."""

    model_config = ConfigDict(defer_build=True)

    method: str
    url: str
    body: str | None = None
    path: str

    def text(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def parse(cls, request: str) -> WebRequest:
        return cls.model_validate_json(request)
