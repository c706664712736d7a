"""Giving a working copy or home to a Space's uid: the whole tree once, then nothing to walk while it stays so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spaces.runtime.sandbox import own_tree

UID = 31_990  # a uid no account on the machine has

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


def _tree(root: Path) -> Path:
    top = root / "home"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "model.bin").write_bytes(b"x")
    (top / "top.txt").write_text("y")
    return top


def _owners(top: Path) -> set[int]:
    return {p.lstat().st_uid for p in [top, *top.rglob("*")]}


def test_the_whole_tree_is_given_away_and_the_top_locked(tmp_path: Path) -> None:
    top = _tree(tmp_path)
    own_tree(top, UID, UID)
    assert _owners(top) == {UID}
    assert top.stat().st_mode & 0o777 == 0o700


def test_a_tree_given_away_before_is_not_walked_again(tmp_path: Path) -> None:
    top = _tree(tmp_path)
    own_tree(top, UID, UID)
    marker = top / "a" / "root-owned"  # only root could put it there; a second call must not even look
    marker.write_text("z")
    own_tree(top, UID, UID)
    assert marker.lstat().st_uid == 0


def test_an_interrupted_walk_is_redone(tmp_path: Path) -> None:
    top = _tree(tmp_path)
    os.lchown(top / "a" / "b" / "model.bin", UID, UID)  # a walk that stopped after one file: the top is still root's
    own_tree(top, UID, UID)
    assert _owners(top) == {UID}


def test_another_uid_or_a_loosened_top_is_walked_again(tmp_path: Path) -> None:
    top = _tree(tmp_path)
    own_tree(top, UID, UID)
    own_tree(top, UID + 1, UID + 1)  # the uid changed (state lost): everything follows
    assert _owners(top) == {UID + 1}
    top.chmod(0o755)
    (top / "new").write_text("root's")
    own_tree(top, UID + 1, UID + 1)
    assert _owners(top) == {UID + 1} and top.stat().st_mode & 0o777 == 0o700
