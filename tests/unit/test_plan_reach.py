"""What a plan may reach: the worker's variables (the allowlist) and addresses (the policy).

The rules are pure (``plans.addresses``, ``plans.variables``); the policy's resolution is
tested here with a resolver that answers what a hostile DNS server would, and end to end
against real servers in tests/activities/test_outbound.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from activities.outbound import (
    HostAllowlist,
    OutboundPolicy,
    OutboundRefused,
    OutboundUnreachable,
    excerpt,
)
from plans.addresses import address_refusal, host_refusal, literal_address, url_refusal
from plans.variables import VariableAllowlist, named_variables, refused_everywhere
from tests.unit.test_cli import VALID_PLAN

METADATA_FORMS = [
    "169.254.169.254",
    "[::ffff:169.254.169.254]",
    "::ffff:a9fe:a9fe",
    "fd00:ec2::254",
    "[fd00:ec2::254]",
    "100.100.100.200",
    "2852039166",  # 169.254.169.254 as one number, as inet_aton and curl read it
    "0xa9.0xfe.0xa9.0xfe",
    "0251.0376.0251.0376",
    "169.254.43518",
    "64:ff9b::a9fe:a9fe",  # NAT64
    "2002:a9fe:a9fe::",  # 6to4
    "::169.254.169.254",  # IPv4-compatible
    "fe80::1",
    "fe80::1%eth0",
    "169.254.1.1",
    "metadata.google.internal",
    "METADATA.google.internal.",
    "metadata",
]


@pytest.mark.parametrize("host", METADATA_FORMS)
def test_metadata_and_link_local_hosts_are_refused_in_every_form(host: str) -> None:
    found = host_refusal(host)
    assert found is not None and ("metadata" in found or "link-local" in found)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "::1", "localhost", "10.0.0.7", "prometheus.internal", "192.168.1.2"]
)
def test_loopback_private_and_plain_names_pass(host: str) -> None:
    assert host_refusal(host) is None


def test_literal_forms_are_read_as_a_resolver_reads_them() -> None:
    assert literal_address("127.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("4294967295") == ipaddress.ip_address("255.255.255.255")
    for name in ("1.2.3.256", "08.1.1.1", "-1", "1e3", "example.com", "4294967296"):
        assert literal_address(name) is None, name


def test_a_mapped_address_is_named_with_what_it_stands_for() -> None:
    said = address_refusal(ipaddress.ip_address("::ffff:169.254.169.254"))
    assert said == "::ffff:a9fe:a9fe (169.254.169.254) is a cloud instance metadata address"


def test_urls_are_judged_by_their_written_host_only() -> None:
    assert url_refusal("http://[::ffff:169.254.169.254]:80/latest") is not None
    assert url_refusal("https://metadata.google.internal/computeMetadata/v1/") is not None
    assert url_refusal("http://$target:8080/stats") is None  # filled in by the worker
    assert url_refusal("http://127.0.0.1:9090") is None


# -- the policy, with a resolver that says what a hostile DNS server would ---------------------


def resolving(*addresses: str) -> OutboundPolicy:
    def resolve(host: str, port: int) -> Sequence[str]:
        return addresses

    return OutboundPolicy(resolve=resolve)


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "fe80::1%2"]
)
def test_a_name_that_resolves_to_metadata_is_refused(address: str) -> None:
    with pytest.raises(OutboundRefused, match=r"gates\.example resolves where the worker sends no"):
        resolving(address).addresses("gates.example", 80)


def test_one_bad_address_among_good_ones_refuses_the_name() -> None:
    with pytest.raises(OutboundRefused, match=r"169\.254\.169\.254"):
        resolving("10.0.0.5", "169.254.169.254").addresses("gates.example", 80)


def test_good_addresses_are_the_ones_connected_to() -> None:
    found = resolving("10.0.0.5", "::1").addresses("gates.example", 80)
    assert [str(a) for a in found] == ["10.0.0.5", "::1"]


def test_a_name_that_does_not_resolve_is_unreachable_not_refused() -> None:
    def resolve(host: str, port: int) -> Sequence[str]:
        raise OSError(-2, "Name or service not known")

    with pytest.raises(OutboundUnreachable, match=r"cannot resolve gone\.example") as caught:
        OutboundPolicy(resolve=resolve).addresses("gone.example", 80)
    assert caught.value.retryable


def test_the_host_allowlist_takes_names_domains_and_ranges() -> None:
    hosts = HostAllowlist.parse("prometheus.internal, *.corp.example, 10.1.0.0/16, 127.0.0.1")
    policy = OutboundPolicy(hosts=hosts, resolve=lambda h, p: ["10.9.9.9"])
    assert policy.addresses("prometheus.internal", 9090)  # listed by name
    assert policy.addresses("gates.corp.example", 443)
    inside = OutboundPolicy(hosts=hosts, resolve=lambda h, p: ["10.1.2.3"])
    assert inside.addresses("anything.example", 80)  # every address inside a listed range
    with pytest.raises(OutboundRefused, match=r"ROLLOUT_OUTBOUND_HOSTS=prometheus\.internal"):
        policy.addresses("attacker.example", 80)
    with pytest.raises(OutboundRefused, match="not among the hosts"):
        policy.check_name("corp.example")  # the domain itself is not under *.corp.example


def test_the_allowlist_never_lets_metadata_through() -> None:
    policy = OutboundPolicy(
        hosts=HostAllowlist.parse("169.254.0.0/16,*.internal"),
        resolve=lambda h, p: ["169.254.169.254"],
    )
    with pytest.raises(OutboundRefused, match="metadata"):
        policy.addresses("169.254.169.254", 80)
    with pytest.raises(OutboundRefused, match="metadata"):
        policy.addresses("metadata.google.internal", 80)


def test_a_malformed_allowlist_says_what_to_fix() -> None:
    with pytest.raises(OutboundRefused, match="ROLLOUT_OUTBOUND_HOSTS holds 'http://x'"):
        HostAllowlist.parse("ok.example,http://x")


def test_an_excerpt_is_short_and_has_no_control_characters() -> None:
    shown = excerpt("\x1b[2J\x1b]0;owned\x07line one\r\nline\u202etwo\x00" + "z" * 500)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\n" not in shown and "\x00" not in shown
    assert shown.startswith("[2J ]0;owned line one line two")
    assert len(shown) == 200 and shown.endswith("\u2026")


# -- the variables a plan may name -------------------------------------------------------------


def test_temporal_and_the_workers_own_settings_are_refused_everywhere() -> None:
    for name in ("TEMPORAL_API_KEY", "TEMPORAL_TLS_CLIENT_KEY_DATA", "ROLLOUT_ALERT_TOKEN"):
        assert refused_everywhere(name) is not None, name
    assert refused_everywhere("ROLLOUT_SLACK_URL") is None
    assert refused_everywhere("HOME") is None  # refused by the default allowlist, not always


def test_without_a_setting_only_rollout_variables_pass() -> None:
    rules = VariableAllowlist.parse(None)
    assert rules.allows("ROLLOUT_PROMETHEUS_TOKEN")
    for name in ("HOME", "AWS_SECRET_ACCESS_KEY", "PROMETHEUS_TOKEN", "TEMPORAL_API_KEY"):
        assert not rules.allows(name), name
    said = rules.refusal("AWS_SECRET_ACCESS_KEY", "metrics.bearer_token_env")
    assert said is not None
    assert said.startswith(
        "metrics.bearer_token_env names the environment variable AWS_SECRET_ACCESS_KEY,"
        " which this worker does not give plans (ROLLOUT_PLAN_SECRETS is unset"
    )
    assert "ROLLOUT_PLAN_SECRETS=ROLLOUT_*,AWS_SECRET_ACCESS_KEY" in said


def test_a_setting_lists_names_and_prefixes_and_replaces_the_default() -> None:
    rules = VariableAllowlist.parse(" PROMETHEUS_TOKEN , SLACK_* ,")
    assert rules.allows("PROMETHEUS_TOKEN") and rules.allows("SLACK_TEAM_URL")
    assert not rules.allows("PROMETHEUS_TOKEN_2") and not rules.allows("ROLLOUT_SLACK_URL")
    assert not VariableAllowlist.parse("TEMPORAL_*").allows("TEMPORAL_API_KEY")
    said = rules.refusal("HOME", "hooks.0.headers_env.Authorization")
    assert said is not None and "ROLLOUT_PLAN_SECRETS=PROMETHEUS_TOKEN,SLACK_*,HOME" in said


def test_every_variable_a_plan_names_is_found_with_its_field() -> None:
    from plans import parse_plan

    plan = parse_plan(
        {
            **VALID_PLAN,
            "metrics": {**VALID_PLAN["metrics"], "bearer_token_env": "A_TOKEN"},
            "sources": {
                "tasks": {
                    "kind": "web",
                    "url": "http://127.0.0.1:8080/stats?v=$target",
                    "secret_headers": {"X-Key": "B_KEY"},
                }
            },
            "hooks": [
                {
                    "name": "cab",
                    "on": "before_rollout",
                    "url": "http://127.0.0.1:8081/cab",
                    "headers_env": {"Authorization": "C_TOKEN"},
                    "secret_env": "D_SECRET",
                }
            ],
            "smoke": {"url": "http://127.0.0.1:8082/", "headers_env": {"X-Smoke": "E_SMOKE"}},
            "notify": {
                "webhook_url_env": "F_HOOK",
                "channels": [{"name": "team", "url_env": "G_TEAM"}],
            },
        }
    )
    assert sorted(named_variables(plan)) == [
        ("hooks.0.headers_env.Authorization", "C_TOKEN"),
        ("hooks.0.secret_env", "D_SECRET"),
        ("metrics.bearer_token_env", "A_TOKEN"),
        ("notify.channels.0.url_env", "G_TEAM"),
        ("notify.webhook_url_env", "F_HOOK"),
        ("smoke.headers_env.X-Smoke", "E_SMOKE"),
        ("sources.tasks.secret_headers.X-Key", "B_KEY"),
    ]


@pytest.mark.parametrize("setting", ["PROMETHEUS-TOKEN", "A B", "SLACK_*_URL", "$HOME"])
def test_a_malformed_variable_allowlist_says_how_to_write_it(setting: str) -> None:
    with pytest.raises(ValueError, match=r"list variable names .* and prefixes ending in"):
        VariableAllowlist.parse(f"ROLLOUT_TOKEN,{setting}")


def test_the_claim_refuses_what_the_workers_policy_does_not_give_plans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from activities.admission import refusals
    from plans import TargetClaim, parse_plan
    from plans.plan import written_hosts

    plan = parse_plan(
        {
            **VALID_PLAN,
            "metrics": {"kind": "prometheus", "url": "http://prometheus.internal:9090"},
            "hooks": [{"name": "cab", "on": "before_rollout", "url": "http://10.2.3.4/cab"}],
            "sources": {"tasks": {"kind": "web", "url": "http://$target:8080/s"}},  # filled in
            "notify": {
                "webhook_url_env": "HOME",
                "channels": [{"name": "t", "url_env": "ROLLOUT_T"}],
            },
        }
    )
    assert written_hosts(plan) == [
        ("metrics.url", "prometheus.internal"),
        ("hooks.0.url", "10.2.3.4"),
    ]
    claim = TargetClaim(
        lease_id="target-x",
        target="t",
        owner="rollout-shop",
        service="shop",
        variables=named_variables(plan),
        hosts=written_hosts(plan),
    )
    monkeypatch.delenv("ROLLOUT_PLAN_SECRETS", raising=False)
    monkeypatch.setenv("ROLLOUT_OUTBOUND_HOSTS", "prometheus.internal")
    found = refusals(claim)
    assert len(found) == 2
    assert found[0].startswith("notify.webhook_url_env names the environment variable HOME,")
    assert found[1].startswith("hooks.0.url: 10.2.3.4 is not among the hosts this worker")
    monkeypatch.setenv("ROLLOUT_PLAN_SECRETS", "ROLLOUT_*,HOME")
    monkeypatch.setenv("ROLLOUT_OUTBOUND_HOSTS", "prometheus.internal,10.0.0.0/8")
    assert refusals(claim) == []
