"""Prometheus and Alertmanager configurations and the demo's alert rule, for both stacks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from demo.configs import BACKEND, CANARY_SERVER, HEADER, SERVICE


def prometheus_config(
    targets: Mapping[str, Sequence[str]],
    *,
    scrape_interval: str = "1s",
    metrics_paths: Mapping[str, str] | None = None,
    rule_files: Sequence[str] = (),
    alertmanagers: Sequence[str] = (),
) -> str:
    """prometheus.yml scraping each job's ``host:port`` targets at ``scrape_interval``.

    A job in ``metrics_paths`` is scraped at that path instead of /metrics (Envoy's
    ``/stats/prometheus``). With ``rule_files`` and ``alertmanagers`` (``host:port`` each)
    it evaluates those alerting rules and sends what fires to those Alertmanagers.
    """
    paths = metrics_paths or {}
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "scrape_configs": [
            {
                "job_name": job,
                **({"metrics_path": paths[job]} if job in paths else {}),
                "static_configs": [{"targets": list(addresses)}],
            }
            for job, addresses in targets.items()
            if addresses
        ],
    }
    if rule_files:
        config["rule_files"] = list(rule_files)
    if alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    return HEADER + yaml.safe_dump(config, sort_keys=False)


# The canary's share of 5xx answers in HAProxy, over a short window: the alert the demo's
# Alertmanager routes to the rollout receiver.
ALERT_NAME = "CanaryErrorRateHigh"
ALERT_WINDOW = "10s"
ALERT_MAX_ERROR_RATE = 0.05


def alert_rules(*, service: str = SERVICE, for_: str = "2s") -> str:
    """A Prometheus rule file: the canary's error rate above 5% for ``for_`` fires, critical.

    Its ``service`` label names the rollout it is about; ``severity: critical`` is what the
    receiver's default rule rolls back on.
    """
    responses = f'haproxy_server_http_responses_total{{proxy="{BACKEND}",server="{CANARY_SERVER}"'
    expr = (
        f'sum(rate({responses},code="5xx"}}[{ALERT_WINDOW}]))'
        f" / sum(rate({responses}}}[{ALERT_WINDOW}])) > {ALERT_MAX_ERROR_RATE}"
    )
    rule = {
        "alert": ALERT_NAME,
        "expr": expr,
        "for": for_,
        "labels": {"severity": "critical", "service": service},
        "annotations": {
            "summary": f"{service} canary answers {{{{ $value | humanizePercentage }}}} of its"
            f" requests with a 5xx (limit {ALERT_MAX_ERROR_RATE:.0%})",
        },
    }
    config = {"groups": [{"name": "rollouts", "rules": [rule]}]}
    return HEADER + yaml.safe_dump(config, sort_keys=False, width=200)


def alertmanager_config(
    receiver_url: str,
    *,
    token: str | None = None,
    token_file: str | None = None,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> str:
    """alertmanager.yml: every alert goes to the rollout receiver, with its bearer token.

    The token is either written in (``token``) or read by Alertmanager from ``token_file``.
    Short waits suit a dev stack; in production group_wait is typically 10-30s.
    """
    authorization: dict[str, str] = {"type": "Bearer"}
    if token_file is not None:
        authorization["credentials_file"] = token_file
    elif token is not None:
        authorization["credentials"] = token
    config = {
        "route": {
            "receiver": "rollouts",
            "group_by": ["alertname", "service"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "rollouts",
                "webhook_configs": [
                    {
                        "url": receiver_url,
                        "send_resolved": False,
                        "http_config": {"authorization": authorization},
                    }
                ],
            }
        ],
    }
    return HEADER + yaml.safe_dump(config, sort_keys=False)
