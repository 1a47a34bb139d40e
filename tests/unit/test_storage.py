"""The worker's folders: made 0750, refused when another user owns them or may write in them
(with what to do about it); files written whole through a rename, never through a link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from activities.storage import StoreRefused, owned_folder, state_home, write_whole

SETTING = "ROLLOUT_REPORT_DIR"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_missing_folders_are_made_0750(tmp_path: Path) -> None:
    root = tmp_path / "store"
    run = root / "checkout" / "01a2"
    assert owned_folder(run, SETTING, within=root) == run
    for made in (root, root / "checkout", run):
        assert made.is_dir() and mode(made) == 0o750, made


def test_a_file_is_written_whole_0640_and_a_planted_link_is_replaced_not_followed(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    folder = owned_folder(tmp_path / "store", SETTING)
    target = folder / "report.json"
    target.symlink_to(victim)
    write_whole(target, b'{"state": "promoted"}\n')
    assert victim.read_text() == "untouched"
    assert not target.is_symlink() and target.read_bytes() == b'{"state": "promoted"}\n'
    assert mode(target) == 0o640
    assert [p.name for p in folder.iterdir()] == ["report.json"]


def test_a_folder_others_may_write_is_refused_with_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    folder.chmod(0o770)
    with pytest.raises(StoreRefused, match=rf"mode 770\): run `chmod go-w {folder}` or point"):
        owned_folder(folder, SETTING)


def test_a_shared_folder_like_tmp_is_refused_without_advice_to_close_it(tmp_path: Path) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(StoreRefused, match="everyone may write in") as refused:
        owned_folder(shared, SETTING)
    assert "chmod" not in str(refused.value) and SETTING in str(refused.value)


def test_a_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        folder = tmp_path / "theirs"
        folder.mkdir(mode=0o750)
        os.chown(folder, 65534, 65534)
        owner = 65534
    else:
        folder, owner = Path("/"), os.stat("/").st_uid  # root's, and not this user's
    with pytest.raises(StoreRefused, match=rf"belongs to uid {owner}, not to this process's"):
        owned_folder(folder, SETTING)


def test_a_folder_inside_one_others_may_write_is_refused(tmp_path: Path) -> None:
    # Whoever may write the parent may rename the worker's folder away and put theirs there.
    parent = tmp_path / "open"
    parent.mkdir()
    parent.chmod(0o777)
    with pytest.raises(StoreRefused, match=rf"{parent}, a parent of .* may be written by others"):
        owned_folder(parent / "reports", SETTING)


def test_a_link_below_the_configured_folder_is_refused(tmp_path: Path) -> None:
    root = owned_folder(tmp_path / "store", SETTING)
    elsewhere = owned_folder(tmp_path / "elsewhere", SETTING)
    (root / "checkout").symlink_to(elsewhere)
    with pytest.raises(StoreRefused, match="is a link"):
        owned_folder(root / "checkout" / "01a2", SETTING, within=root)
    assert list(elsewhere.iterdir()) == []


def test_the_state_folder_follows_xdg_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert state_home(SETTING) == tmp_path / "state" / "durable-rollouts"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state_home(SETTING) == tmp_path / ".local" / "state" / "durable-rollouts"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", "/nonexistent")
    with pytest.raises(StoreRefused, match=f"no home folder.*set {SETTING}, or XDG_STATE_HOME"):
        state_home(SETTING)
