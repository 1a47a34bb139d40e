"""FlagdFile on real files; the split it writes, evaluated by flagd's real OpenFeature provider."""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activities.errors import RouterRefused, RouterUnreachable
from activities.rollout import read_traffic
from activities.routers import FlagdFile, router_for
from demo.configs import FLAG
from demo.example_plans import flag_definition
from demo.flags import FlagReader, write_flag_file
from plans import FlagdRouter, PlanError, RequestMatch, ShiftRequest, TrafficSplit, parse_plan

USERS = [f"user-{i}" for i in range(4000)]
WAIT = 30.0  # generous: the provider polls every 50 ms here


def split(percent: int) -> TrafficSplit:
    return TrafficSplit.canary_percent(percent)


def other_flag() -> dict[str, Any]:
    return {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", "off"]},
        "metadata": {"owner": "search-team"},
    }


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    """A flag file with the rollout's flag between two flags that belong to others."""
    document = flag_definition()
    flags = {"new-search": other_flag(), FLAG: document["flags"][FLAG], "zz-last": other_flag()}
    document["flags"] = flags
    document["metadata"] = {"version": "7"}
    path = tmp_path / "flags.json"
    write_flag_file(path, document)
    return path


def router(path: Path, flag: str = FLAG) -> FlagdFile:
    built = router_for(FlagdRouter(file=str(path), flag=flag, timeout="2s"))
    assert isinstance(built, FlagdFile)
    return built


def edit(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document["flags"][FLAG])
    write_flag_file(path, document)


def test_set_and_get_split_on_a_real_file(flag_file: Path) -> None:
    file = router(flag_file)
    assert file.get_split("stable", "canary") == split(0)
    assert file.set_split("stable", "canary", split(10)) == split(10)
    assert router(flag_file).get_split("stable", "canary") == split(10)
    targeting = json.loads(flag_file.read_text())["flags"][FLAG]["targeting"]
    assert targeting == {"fractional": [["canary", 10], ["stable", 90]]}
    assert file.set_split("stable", "canary", split(100)) == split(100)
    assert file.set_split("stable", "canary", split(0)) == split(0)


def test_read_traffic_activity_reads_the_file(flag_file: Path) -> None:
    router(flag_file).set_split("stable", "canary", split(25))
    request = ShiftRequest(
        router=FlagdRouter(file=str(flag_file), flag=FLAG),
        stable="stable",
        canary="canary",
        split=split(0),
    )
    assert read_traffic(request) == split(25)


def test_rewrite_keeps_other_flags_and_fields_untouched(flag_file: Path) -> None:
    before = json.loads(flag_file.read_text())
    router(flag_file).set_split("stable", "canary", split(50))
    after = json.loads(flag_file.read_text())
    assert after["flags"]["new-search"] == before["flags"]["new-search"]
    assert after["flags"]["zz-last"] == before["flags"]["zz-last"]
    assert list(after["flags"]) == ["new-search", FLAG, "zz-last"]
    assert list(after) == list(before)
    assert after["metadata"] == {"version": "7"} and after["$schema"] == before["$schema"]
    mine_before, mine_after = before["flags"][FLAG], after["flags"][FLAG]
    assert {k: v for k, v in mine_after.items() if k != "targeting"} == {
        k: v for k, v in mine_before.items() if k != "targeting"
    }


def test_replace_is_atomic_and_keeps_mode(flag_file: Path) -> None:
    os.chmod(flag_file, 0o640)
    inode = flag_file.stat().st_ino
    router(flag_file).set_split("stable", "canary", split(30))
    # A new file renamed over the old one: readers hold either the old or the new inode.
    assert flag_file.stat().st_ino != inode
    assert flag_file.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in flag_file.parent.iterdir()] == ["flags.json"]


def test_readers_never_see_half_a_file(flag_file: Path) -> None:
    file = router(flag_file)
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(flag_file.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for percent in range(1, 101):
            file.set_split("stable", "canary", split(percent))
    finally:
        stop.set()
        reader.join()
    assert seen
    for text in seen:
        json.loads(text)  # every read was a whole file


def test_unwritable_file_is_a_retryable_error_and_left_whole(flag_file: Path) -> None:
    file = router(flag_file)
    file.set_split("stable", "canary", split(10))
    before = flag_file.read_text()
    os.chmod(flag_file, 0o444)
    with pytest.raises(RouterUnreachable, match=r"flags.json is not writable \(mode 0444\)"):
        file.set_split("stable", "canary", split(25))
    assert RouterUnreachable.retryable
    assert flag_file.read_text() == before
    assert [p.name for p in flag_file.parent.iterdir()] == ["flags.json"]
    # Reading still works, and once writable again the same shift goes through.
    assert file.get_split("stable", "canary") == split(10)
    os.chmod(flag_file, 0o644)
    assert file.set_split("stable", "canary", split(25)) == split(25)


def test_missing_flag_is_refused_naming_the_flags(flag_file: Path) -> None:
    with pytest.raises(RouterRefused) as error:
        router(flag_file, "checkout").set_split("stable", "canary", split(10))
    text = str(error.value)
    assert "has no flag 'checkout' (its flags: demo-version, new-search, zz-last)" in text
    assert "fix router.flag" in text


def test_missing_file_and_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RouterRefused, match=r"no flag file at .*: create it"):
        router(tmp_path / "none.json").get_split("stable", "canary")
    with pytest.raises(RouterRefused, match="no folder"):
        router(tmp_path / "nope" / "f.json").set_split("stable", "canary", split(5))


def test_half_written_file_is_retryable(flag_file: Path) -> None:
    flag_file.write_text('{"flags": {"demo-version": {"sta')
    with pytest.raises(RouterUnreachable, match="is not valid JSON"):
        router(flag_file).get_split("stable", "canary")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.update(state="DISABLED"), "in state 'DISABLED'"),
        (lambda f: f["variants"].pop("canary"), "has no variant 'canary'"),
        (lambda f: f.update(defaultVariant="canary"), "defaults to the canary"),
        (
            lambda f: f.update(targeting={"if": [{"var": "beta"}, "stable", "canary"]}),
            "has targeting the rollout did not write",
        ),
        (
            lambda f: f.update(targeting={"fractional": [["canary", 5], ["blue", 95]]}),
            "not between its variants 'stable' and 'canary'",
        ),
        (
            lambda f: f.update(targeting={"fractional": [["canary", 0.5], ["stable", 99.5]]}),
            "with whole weights",
        ),
    ],
)
def test_flags_the_rollout_cannot_move_are_refused(
    flag_file: Path, change: Any, message: str
) -> None:
    edit(flag_file, change)
    before = flag_file.read_text()
    with pytest.raises(RouterRefused, match=message):
        router(flag_file).set_split("stable", "canary", split(10))
    assert flag_file.read_text() == before


def test_no_targeting_reads_as_all_stable_and_gets_the_rollout_shape(flag_file: Path) -> None:
    edit(flag_file, lambda f: f.pop("targeting"))
    file = router(flag_file)
    assert file.get_split("stable", "canary") == split(0)
    file.set_split("stable", "canary", split(5))
    targeting = json.loads(flag_file.read_text())["flags"][FLAG]["targeting"]
    assert targeting == {"fractional": [["canary", 5], ["stable", 95]]}


def test_order_and_bucketing_are_kept(flag_file: Path) -> None:
    fractional = [{"var": "email"}, ["stable", 90], ["canary", 10]]
    edit(flag_file, lambda f: f.update(targeting={"fractional": fractional}))
    file = router(flag_file)
    assert file.get_split("stable", "canary") == split(10)
    file.set_split("stable", "canary", split(40))
    targeting = json.loads(flag_file.read_text())["flags"][FLAG]["targeting"]
    assert targeting == {"fractional": [{"var": "email"}, ["stable", 60], ["canary", 40]]}


def test_no_weights_at_all_is_refused(flag_file: Path) -> None:
    with pytest.raises(RouterRefused, match="weights 0 and 0"):
        router(flag_file).set_split(
            "stable", "canary", TrafficSplit(stable_weight=0, canary_weight=0)
        )


def test_two_rollouts_on_two_flags_of_one_file_lose_nothing(flag_file: Path) -> None:
    document = json.loads(flag_file.read_text())
    second = copy.deepcopy(document["flags"][FLAG])
    document["flags"]["other-version"] = second
    write_flag_file(flag_file, document)
    first, other = router(flag_file), router(flag_file, "other-version")
    errors: list[BaseException] = []

    def move(file: FlagdFile) -> None:
        try:
            for percent in range(1, 41):
                file.set_split("stable", "canary", split(percent))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=move, args=(f,)) for f in (first, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert first.get_split("stable", "canary") == split(40)
    assert other.get_split("stable", "canary") == split(40)


# -- through the real OpenFeature SDK and flagd provider (file mode) ----------------------------


@pytest.fixture
def reader(flag_file: Path) -> Iterator[FlagReader]:
    flags = FlagReader(str(flag_file), poll_ms=50)
    yield flags
    flags.close()


def shift_and_wait(file: FlagdFile, reader: FlagReader, percent: int) -> set[str]:
    """Shift, wait until the provider reloaded the file, and return the users on the canary."""
    seen = reader.changes
    file.set_split("stable", "canary", split(percent))
    assert reader.wait_change(seen, WAIT), "the provider never reloaded the flag file"
    return {user for user in USERS if reader.variant(user) == "canary"}


def test_raising_the_share_only_adds_users(flag_file: Path, reader: FlagReader) -> None:
    file = router(flag_file)
    assert not {u for u in USERS if reader.variant(u) == "canary"}
    at_10 = shift_and_wait(file, reader, 10)
    at_25 = shift_and_wait(file, reader, 25)
    # Everyone who saw the new variant at 10% still sees it at 25%.
    assert at_10 <= at_25
    # And the shares are what was asked, within sampling noise of 4,000 users (±5 sigma).
    assert 0.10 - 0.025 < len(at_10) / len(USERS) < 0.10 + 0.025
    assert 0.25 - 0.035 < len(at_25) / len(USERS) < 0.25 + 0.035
    at_50 = shift_and_wait(file, reader, 50)
    assert at_25 <= at_50
    # Rollback: every user, and a request without a user id, gets the stable again.
    assert shift_and_wait(file, reader, 0) == set()
    assert reader.variant(None) == "stable"


def test_a_user_keeps_a_variant_across_reloads(flag_file: Path, reader: FlagReader) -> None:
    file = router(flag_file)
    at_20 = shift_and_wait(file, reader, 20)
    # Another flag in the file changes; the rollout's flag does not: nobody moves.
    seen = reader.changes
    document = json.loads(flag_file.read_text())
    document["flags"]["new-search"]["defaultVariant"] = "on"
    write_flag_file(flag_file, document)
    assert reader.wait_change(seen, WAIT)
    assert {u for u in USERS if reader.variant(u) == "canary"} == at_20


def test_a_symlinked_flag_file_stays_a_symlink(flag_file: Path, tmp_path: Path) -> None:
    link = tmp_path / "current.json"
    link.symlink_to(flag_file)
    router(link).set_split("stable", "canary", split(15))
    assert link.is_symlink() and link.resolve() == flag_file
    assert router(flag_file).get_split("stable", "canary") == split(15)


def test_a_header_match_sends_every_matching_user_to_the_new_variant(
    flag_file: Path, reader: FlagReader
) -> None:
    file = router(flag_file)
    internal = RequestMatch(header="X-User-Group", exact="internal")
    seen = reader.changes
    written = file.set_split("stable", "canary", TrafficSplit.canary_percent(0, internal))
    assert reader.wait_change(seen, WAIT)
    # Kept as applications pass header names: in lower case.
    assert written.match == RequestMatch(header="x-user-group", exact="internal")
    rule = json.loads(flag_file.read_text())["flags"][FLAG]["targeting"]["if"][0]
    assert rule == {"==": [{"var": "header.x-user-group"}, "internal"]}
    group = {"header": {"x-user-group": "internal"}}
    assert {reader.variant(u, attributes=group) for u in USERS[:500]} == {"canary"}
    assert {reader.variant(u, attributes={"header": {}}) for u in USERS[:500]} == {"stable"}
    others = {"header": {"x-user-group": "customers"}}
    assert {reader.variant(u, attributes=others) for u in USERS[:500]} == {"stable"}


def test_a_cookie_prefix_match_goes_ahead_of_the_split_and_a_later_stage_clears_it(
    flag_file: Path, reader: FlagReader
) -> None:
    file = router(flag_file)
    beta = RequestMatch(cookie="plan", prefix="beta")
    seen = reader.changes
    file.set_split("stable", "canary", TrafficSplit.canary_percent(20, beta))
    assert reader.wait_change(seen, WAIT)
    assert file.get_split("stable", "canary").match == beta
    cookies = {"cookie": {"plan": "beta-2"}}
    assert {reader.variant(u, attributes=cookies) for u in USERS[:500]} == {"canary"}
    by_weight = [reader.variant(u) for u in USERS]
    assert 0.15 < by_weight.count("canary") / len(USERS) < 0.25
    # The next stage has no match: the rule goes, the split stays the rollout's.
    seen = reader.changes
    after = file.set_split("stable", "canary", split(50))
    assert reader.wait_change(seen, WAIT)
    assert after.match is None
    targeting = json.loads(flag_file.read_text())["flags"][FLAG]["targeting"]
    assert set(targeting) == {"fractional"}
    assert {reader.variant(u, attributes=cookies) for u in USERS[:200]} != {"canary"}


def test_a_rule_the_rollout_did_not_write_is_refused(flag_file: Path) -> None:
    def foreign_rule(flag: dict[str, Any]) -> None:
        flag["targeting"] = {
            "if": [{"in": ["@example.com", {"var": "email"}]}, "canary", flag["targeting"]]
        }

    edit(flag_file, foreign_rule)
    with pytest.raises(RouterRefused, match="has a rule the rollout did not write"):
        router(flag_file).get_split("stable", "canary")


def test_a_regex_match_or_a_dotted_name_is_refused_when_the_plan_is_read() -> None:
    plan = {
        "service": "checkout",
        "stable": "stable",
        "canary": "canary",
        "router": {"kind": "flagd", "file": "/etc/flagd/flags.json", "flag": "checkout"},
        "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
        "stages": [
            {"name": "alpha", "weight": 0, "match": {"header": "x-group", "regex": "int.*"}},
            {"name": "beta", "weight": 10, "match": {"cookie": "a.b", "exact": "1"}},
            {"name": "all", "weight": 100},
        ],
    }
    with pytest.raises(PlanError) as error:
        parse_plan(plan)
    text = str(error.value)
    assert "stages.0.match: flagd's targeting has no regular expressions" in text
    assert "stages.1.match: 'a.b': flagd reads the evaluation context by dotted paths" in text
