"""An experiment's shares in a real flag file, evaluated by flagd's OpenFeature provider."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.errors import RouterError, RouterRefused
from activities.experiment import read_variant_shares, set_variant_shares
from activities.routers import FlagdFile, router_for
from activities.routers.shares import percents, write_order
from demo.flags import FlagReader, write_flag_file
from plans import FlagdRouter, TrafficSplit
from plans.runtime.shares import SharesRequest, VariantShares

FLAG = "checkout"
USERS = [f"user-{i}" for i in range(4000)]
WAIT = 30.0  # generous: the provider polls every 50 ms here


def document(targeting: Any = None) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {"control": "control", "b": "b", "c": "c"},
        "defaultVariant": "control",
    }
    if targeting is not None:
        flag["targeting"] = targeting
    other = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    return {"flags": {"search": other, FLAG: flag}, "metadata": {"version": "3"}}


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    write_flag_file(path, document())
    return path


@pytest.fixture
def reader(flag_file: Path) -> Iterator[FlagReader]:
    flags = FlagReader(str(flag_file), FLAG, poll_ms=50)
    yield flags
    flags.close()


def file(path: Path) -> FlagdFile:
    built = router_for(FlagdRouter(file=str(path), flag=FLAG, timeout="2s"))
    assert isinstance(built, FlagdFile)
    return built


def shares(**named: int) -> VariantShares:
    return VariantShares(shares=named)


def set_and_wait(path: Path, reader: FlagReader, wanted: VariantShares) -> dict[str, set[str]]:
    """Set the shares, wait until the provider reloaded the file; the users of each variant."""
    seen = reader.changes
    assert file(path).set_shares(wanted) == wanted
    assert reader.wait_change(seen, WAIT), "the provider never reloaded the flag file"
    users: dict[str, set[str]] = {}
    for user in USERS:
        users.setdefault(reader.variant(user, default="control"), set()).add(user)
    return users


def within(users: dict[str, set[str]], wanted: VariantShares) -> bool:
    """Each variant's share of 4,000 users within 5 sigma of its share."""
    for name, share in wanted.shares.items():
        p = share / 100
        sigma = (p * (1 - p) / len(USERS)) ** 0.5
        if abs(len(users.get(name, ())) / len(USERS) - p) > 5 * sigma + 1e-9:
            return False
    return True


def test_three_variants_split_the_users_by_share(flag_file: Path, reader: FlagReader) -> None:
    assert {reader.variant(u, default="control") for u in USERS[:50]} == {"control"}
    assert file(flag_file).get_shares(["control", "b", "c"]) == shares(control=100, b=0, c=0)
    even = shares(control=34, b=33, c=33)
    users = set_and_wait(flag_file, reader, even)
    assert within(users, even), {name: len(group) for name, group in users.items()}
    flag = json.loads(flag_file.read_text())["flags"][FLAG]
    assert flag["targeting"] == {"fractional": [["control", 34], ["b", 33], ["c", 33]]}
    # c taken out: nobody gets it any more, and the first variant's users keep theirs.
    out = shares(control=50, b=50, c=0)
    after = set_and_wait(flag_file, reader, out)
    assert "c" not in after and within(after, out)
    assert users["control"] <= after["control"]
    # b rolled forward: everyone on b.
    assert set(set_and_wait(flag_file, reader, shares(control=0, b=100, c=0))) == {"b"}


def test_other_flags_and_fields_stay(flag_file: Path) -> None:
    file(flag_file).set_shares(shares(control=50, b=25, c=25))
    written = json.loads(flag_file.read_text())
    assert written["flags"]["search"] == document()["flags"]["search"]
    assert written["metadata"] == {"version": "3"}
    assert list(written["flags"]) == ["search", FLAG]


def test_an_order_and_bucketing_found_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    by_email = {"var": "email"}
    write_flag_file(path, document({"fractional": [by_email, ["c", 10], ["control", 90]]}))
    assert file(path).get_shares(["control", "b", "c"]) == shares(control=90, b=0, c=10)
    assert file(path).set_shares(shares(control=40, b=30, c=30)) == shares(control=40, b=30, c=30)
    targeting = json.loads(path.read_text())["flags"][FLAG]["targeting"]
    assert targeting == {"fractional": [by_email, ["c", 30], ["control", 40], ["b", 30]]}


def test_a_rollouts_split_is_taken_over(tmp_path: Path) -> None:
    """A flag a rollout moved (two variants) can run an experiment next."""
    path = tmp_path / "flags.json"
    write_flag_file(path, document())
    rollout = FlagdFile(FlagdRouter(file=str(path), flag=FLAG))
    rollout.set_split("control", "b", TrafficSplit.canary_percent(20))
    assert file(path).get_shares(["control", "b"]) == shares(control=80, b=20)
    # A variant outside the experiment still holds its users: the named ones have less.
    assert file(path).get_shares(["control", "c"]) == shares(control=80, c=0)
    assert file(path).set_shares(shares(control=50, c=50)) == shares(control=50, c=50)


def test_targeting_nobody_wrote_for_an_experiment_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    rule = {"if": [{"==": [{"var": "country"}, "fr"]}, "b", "control"]}
    write_flag_file(path, document(rule))
    with pytest.raises(RouterRefused, match="an experiment owns its flag's targeting"):
        file(path).set_shares(shares(control=50, b=50))
    assert json.loads(path.read_text())["flags"][FLAG]["targeting"] == rule


def test_a_variant_the_flag_lacks_is_refused_by_name(flag_file: Path) -> None:
    request = SharesRequest(
        router=FlagdRouter(file=str(flag_file), flag=FLAG),
        shares=shares(control=50, d=50),
    )
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(set_variant_shares, request)
    assert caught.value.non_retryable and caught.value.type == "RouterRefused"
    assert "has no variant 'd'" in str(caught.value)


def test_activities_set_and_read_the_file(flag_file: Path) -> None:
    router = FlagdRouter(file=str(flag_file), flag=FLAG)
    wanted = shares(control=60, b=20, c=20)
    env = ActivityEnvironment()
    assert env.run(set_variant_shares, SharesRequest(router=router, shares=wanted)) == wanted
    asked = SharesRequest(router=router, shares=shares(b=0, c=0))
    assert env.run(read_variant_shares, asked) == shares(b=20, c=20)


class Meddled(FlagdFile):
    def get_shares(self, names: list[str]) -> VariantShares:
        return VariantShares(shares=dict.fromkeys(names, 0) | {names[0]: 100})


def test_read_back_mismatch_is_retryable(flag_file: Path) -> None:
    meddled = Meddled(FlagdRouter(file=str(flag_file), flag=FLAG))
    with pytest.raises(RouterError) as caught:
        meddled.set_shares(shares(control=50, b=50))
    assert type(caught.value) is RouterError and caught.value.retryable


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"a": 1, "b": 1, "c": 1}, {"a": 34, "b": 33, "c": 33}),
        ({"a": 2, "b": 1}, {"a": 67, "b": 33}),
        ({"a": 50, "b": 30, "c": 20}, {"a": 50, "b": 30, "c": 20}),
        ({"a": 1, "b": 1, "c": 1, "d": 3}, {"a": 17, "b": 17, "c": 16, "d": 50}),
        ({"a": 0, "b": 0}, {"a": 0, "b": 0}),
    ],
)
def test_percents_add_up_to_100(weights: dict[str, int], expected: dict[str, int]) -> None:
    assert percents(weights) == expected
    assert sum(expected.values()) in (0, 100)


def test_weights_rise_before_others_fall() -> None:
    before = {"control": 100, "b": 0, "c": 0}
    assert write_order(before, {"control": 0, "b": 50, "c": 50}) == ["b", "c", "control"]
    assert sorted(write_order(before, before)) == sorted(before)
