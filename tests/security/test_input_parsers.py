"""The bounded parsers and the undo steps on their own (no server): front matter limits, JSON limits, which
symlinks leave a repository, a git ref moved back, a database transaction's after_rollback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from spaces.db.session import Database, after_commit, after_rollback
from spaces.domain import cardconfig
from spaces.domain.links import escapes
from spaces.errors import BadRequest
from spaces.hub import jsonlimits
from spaces.storage import Addition, GitRepo

AUTHOR = {"author_name": "a", "author_email": "a@example.org"}


def fm(body: str) -> cardconfig.Evaluation:
    return cardconfig.evaluate(f"---\nsdk: gradio\n{body}\n---\n", {"app.py"}, "t")


@pytest.mark.parametrize(("body", "words"), [
    ("x: " + "[" * 33 + "]" * 33, "nested deeper than 32 levels"),
    ("x:\n" + "".join("  " * i + "-\n" for i in range(1, 40)), "nested deeper than 32 levels"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join(['*a' if i == 1 else f'*a{i - 1}'] * 10)}]\n" for i in range(1, 6)),
     "values once its aliases"),
    ("a: &a " + "y" * 30_000 + "\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]", "characters once its aliases"),
    ("a: &a [*a]", "recursive alias"),
    ("a: !!binary aGVsbG8=", "cannot be used"),
    ("a: .inf", "nan and infinite"),
    ("a: !!timestamp 2020-01-01", "`!!timestamp` values are not supported"),
])
def test_front_matter_limits_are_config_errors_naming_them(body, words):
    ev = fm(body)
    assert ev.stage is not None and ev.stage.value == "CONFIG_ERROR", ev
    assert words in ev.message and ev.message.startswith("README.md line "), ev.message
    assert ev.card == {}


def test_ordinary_front_matter_with_aliases_and_merges_still_works():
    ev = fm("base: &b {title: T, emoji: x}\nother:\n  <<: *b\ntags: &t [a, b]\nmore: *t\n1: numeric key")
    assert ev.stage is None or ev.stage.value != "CONFIG_ERROR", ev.message
    assert ev.card["other"] == {"title": "T", "emoji": "x"} and ev.card["more"] == ["a", "b"]
    assert ev.card["1"] == "numeric key"  # keys become strings, as JSON stores them
    json.dumps(ev.card, allow_nan=False)


def test_front_matter_over_the_size_limit_is_refused_before_parsing():
    ev = fm("title: " + "x" * cardconfig.MAX_FRONT_MATTER_BYTES)
    assert "larger than 64 KiB" in ev.message


@pytest.mark.parametrize(("raw", "words"), [
    (b"[" * 33 + b"]" * 33, "nested deeper than 32"),
    (b"[" * 100_000, "nested deeper than 32"),
    (b'{"a": 9223372036854775808}', "out of range"),
    (b'{"a": -9223372036854775809}', "out of range"),
    (b'{"a": 1e999}', "out of range"),
    (b'{"a": NaN}', "not a JSON value"),
    (b'{"a": -Infinity}', "not a JSON value"),
    (b"{", "not valid JSON"),
    (b"\xff", "not valid JSON"),
])
def test_json_limits(raw, words):
    with pytest.raises(BadRequest) as err:
        jsonlimits.loads(raw)
    assert words in err.value.message


def test_json_within_limits_parses_and_brackets_in_strings_do_not_count():
    assert jsonlimits.loads(b'{"a": "' + b"[" * 1000 + b'", "b": [[1, 2.5, -9223372036854775808]]}') == {
        "a": "[" * 1000, "b": [[1, 2.5, -(2**63)]]}
    assert jsonlimits.loads(b"[" * 32 + b"]" * 32) is not None


@pytest.mark.parametrize(("path", "target", "links", "out"), [
    ("a", "/etc/passwd", {}, True), ("a", "../x", {}, True), ("d/a", "../x", {}, False),
    ("d/a", "../../x", {}, True), ("a", "b/../../x", {}, True), ("a", "b/../c", {}, False), ("a", "", {}, True),
    ("d/e/a", "../../f", {}, False),
    ("l2", "d1/d2/l1/..", {"d1/d2/l1": "../.."}, True),  # fine alone, climbs out through another link
    ("l2", "d1/d2/l1/x", {"d1/d2/l1": "../.."}, False),
    ("loop", "loop2", {"loop": "loop2", "loop2": "loop"}, True),
])
def test_which_links_leave_the_repository(path, target, links, out):
    assert escapes(path, target, links) is out


def test_undo_commit_and_restore_tip(tmp_path: Path):
    repo = GitRepo.init_bare(tmp_path / "r.git")
    first = repo.commit(additions=[Addition("a", b"1")], message="1", **AUTHOR)
    second = repo.commit(additions=[Addition("a", b"2")], message="2", **AUTHOR)
    assert repo.undo_commit(second) and repo.head() == first
    assert not repo.undo_commit(second), "a branch that is not at the sha is left alone"
    assert repo.head() == first
    assert repo.undo_commit(first) and repo.head() is None  # a root commit: the branch goes
    third = repo.commit(additions=[Addition("b", b"3")], message="3", **AUTHOR)
    assert repo.restore_tip(third, None) and repo.head() is None


def test_commit_refuses_a_tree_with_a_link_leaving_it(tmp_path: Path):
    repo = GitRepo.init_bare(tmp_path / "r.git")
    repo.commit(additions=[Addition("a", b"1")], message="1", **AUTHOR)
    work = tmp_path / "w"
    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(["git", "clone", "-q", str(repo.path), str(work)], check=True, env=env)
    (work / "out").symlink_to("/etc/passwd")
    for args in (["add", "-A"], ["commit", "-qm", "link"], ["push", "-q", "origin", "HEAD:main"]):
        subprocess.run(["git", *args], cwd=work, check=True, env=env)
    tip = repo.head()
    with pytest.raises(BadRequest, match="`out` points outside the repository"):
        repo.commit(additions=[Addition("b", b"2")], message="2", **AUTHOR)
    assert repo.head() == tip


def test_after_rollback_runs_only_when_the_transaction_does_not_commit(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    seen: list[str] = []
    with db.session() as s:
        after_rollback(s, lambda: seen.append("undo"))
        after_commit(s, lambda: seen.append("committed"))
    assert seen == ["committed"]
    with pytest.raises(RuntimeError), db.session() as s:
        after_rollback(s, lambda: seen.append("undo 1"))
        after_rollback(s, lambda: seen.append("undo 2"))
        after_commit(s, lambda: seen.append("never"))
        raise RuntimeError("boom")
    assert seen == ["committed", "undo 2", "undo 1"]  # undone in reverse order
