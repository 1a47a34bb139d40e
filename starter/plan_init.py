"""`rollout init`: a plan file written from a template, with a comment on every field."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from rich.markup import escape

from plans import PlanError, RolloutError, parse_plan, text
from plans.routers import ROUTER_KINDS
from plans.templates import TEMPLATES, Template, describe, template_named
from starter.console import out

# The ``router`` section of a new plan, per kind, as commented YAML lines ({service} filled
# in). A router kind that ``rollout init`` should offer adds its lines here.
ROUTER_EXAMPLES: dict[str, list[str]] = {
    "haproxy": [
        "router:",
        "  kind: haproxy",
        "  # HAProxy's runtime API at admin level ('stats socket ... level admin' in its",
        "  # global section): unix:///path/admin.sock, or tcp://127.0.0.1:9999",
        "  runtime_api: unix:///run/haproxy/admin.sock",
        "  backend: {service}   # the backend holding both servers ('balance roundrobin')",
        "  timeout: 5s   # per runtime API command",
        "  # For stages with match: the map file the backend's use-server rule reads (see",
        "  # docs/routers.md, HAProxy).",
        "  # match_map: /etc/haproxy/{service}-canary.map",
    ],
    "envoy": [
        "router:",
        "  kind: envoy",
        "  # Envoy's admin API, on this machine (127.0.0.1), with an admin_layer in its",
        "  # layered_runtime; the route splits between weighted_clusters named as stable and",
        "  # canary below, with this runtime_key_prefix (see docs/routers.md, Envoy).",
        "  admin: http://127.0.0.1:9901",
        "  runtime_key_prefix: routing.{service}",
        "  timeout: 5s   # per admin request",
    ],
    "flagd": [
        "router:",
        "  kind: flagd",
        "  # A flagd flag-definition file the worker can write (flagd and the OpenFeature",
        "  # providers in file mode read it); the rollout owns this flag's fractional split",
        "  # between the variants named as stable and canary above (see",
        "  # docs/routers.md, flagd). The gates below read the demo service's metrics,",
        "  # counted per variant in a version label:",
        "  # point their queries at your application's own.",
        "  file: /etc/flagd/{service}.flagd.json",
        "  flag: {service}-release",
        "  timeout: 5s   # per file operation",
    ],
}

# A stage sending chosen users to the canary first, for routers that can route by a header
# or cookie (``supports_match``): shown commented out, to copy into ``stages``.
_MATCH_EXAMPLE = [
    "  # Internal users first: put a stage like this one first. At weight 0 only the",
    "  # requests whose header matches reach the canary (header: or cookie:, and exact:,",
    "  # prefix: or regex:); later stages without match send plain weights. The router",
    "  # may need more for it (HAProxy: match_map above). Its gates see only the matched",
    "  # requests: with few of them, list fewer gates there or lower their min_samples.",
    "  # - {name: internal, weight: 0, bake: 1d, check_every: 5m,"
    " match: {header: x-user-group, exact: internal}}",
]


def _flow(data: dict[str, Any]) -> str:
    """One mapping on one line, ``{name: canary-5, weight: 5, ...}``."""
    return yaml.safe_dump(data, default_flow_style=True, sort_keys=False, width=1000).strip()


def render_plan(template: Template, service: str, router: str) -> str:
    """A whole plan from ``template``, commented field by field, for the user to edit."""
    total = describe(template)
    lines = [
        f"# Rollout plan for {service}, from the {template.name!r} template:",
        f"#   {total}",
        "# Edit it, check it with `rollout validate FILE`, run it with `rollout start FILE`.",
        f"# (A plan may also say `template: {template.name}` and write only the fields it",
        "# changes: each field it writes replaces the template's whole field.)",
        "",
        _commented(f"service: {service}", f"the rollout's workflow id is rollout-{service}"),
        _commented("version: v2", "the new version's label, for people"),
        _commented(
            f"stable: {_server(service, 'stable')}", "the stable server, as the router names it"
        ),
        _commented(
            f"canary: {_server(service, 'canary')}", "the canary server, as the router names it"
        ),
        "",
        *(line.format(service=service) for line in ROUTER_EXAMPLES[router]),
        "",
        "# Where gates read their numbers. bearer_token_env: NAME makes the worker send the",
        "# variable's value as a bearer token (ROLLOUT_* names, or those its",
        "# ROLLOUT_PLAN_SECRETS allows).",
        "metrics:",
        "  kind: prometheus",
        "  url: http://prometheus:9090",
        "",
        "# notify:",
        "#   webhook_url_env: ROLLOUT_WEBHOOK   # Slack-compatible; the worker reads the variable",
        "",
        "# Gates are checked every check_every of a stage. A preset fills the query; window is",
        "# the span each check reads, failure_limit how many failing checks in a row roll back",
        "# (min_samples: fewer requests than that in the window is inconclusive, never a pass).",
        "gates:",
    ]
    for why, gate in template.gates_for(router):
        lines += [f"  # {line}" for line in why.splitlines()] + [f"  - {_flow(gate)}"]
    lines += [
        "",
        "# weight: the canary's share of traffic in percent, going up stage by stage. bake: how",
        "# long the stage runs; check_every: how often its gates are checked. approval: true",
        "# waits for `rollout approve` after the bake. gates: the gates checked there (default",
        "# all; at 100% only thresholds, since the stable gets no traffic to compare with).",
        "stages:",
    ]
    if _routes_by_match(router):
        lines += _MATCH_EXAMPLE
    for why, stage in template.stages:
        lines += [f"  # {why}", f"  - {_flow(stage)}"]
    return "\n".join(lines) + "\n"


def _commented(line: str, comment: str) -> str:
    return f"{line.ljust(31)} # {comment}"


def _server(service: str, role: str) -> str:
    """``checkout-stable``, or just the role where the service's name is too long for that."""
    name = f"{service}-{role}"
    return name if text.SAFE_NAME.fullmatch(name) else role


def _routes_by_match(router: str) -> bool:
    return bool(getattr(ROUTER_KINDS[router], "supports_match", False))


def cmd_init(args: argparse.Namespace) -> int:
    """Write a plan from a template; refuse to overwrite a file unless --force."""
    try:
        service = text.check_name(args.service, "service name")
        template = template_named(args.template)
    except ValueError as error:
        raise PlanError([str(error)], "rollout init") from None
    path = Path(args.out or f"{service}.yaml")
    if path.exists() and not args.force:
        raise RolloutError(f"{path} exists: choose another --out, or add --force to replace it")
    rendered = render_plan(template, service, args.router)
    parse_plan(yaml.safe_load(rendered), str(path))  # what we write must load
    try:
        path.write_text(rendered, encoding="utf-8")
    except OSError as error:
        raise RolloutError(
            f"cannot write {path} ({error.strerror or error}): choose another --out"
        ) from None
    if args.json:
        from starter.answers import Written, dump

        summary = describe(template)
        print(
            dump(
                Written(
                    file=str(path),
                    service=service,
                    template=template.name,
                    router=args.router,
                    summary=summary,
                )
            )
        )
        return 0
    out.print(f"wrote {escape(str(path))}: {escape(describe(template))}")
    out.print(f"edit it, then: rollout validate {escape(str(path))}")
    return 0


TEMPLATE_HELP = "templates:\n" + "\n".join(
    f"  {t.name:<10} {t.summary}" for t in TEMPLATES.values()
)
