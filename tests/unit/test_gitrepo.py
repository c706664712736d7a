"""GitRepo against the real git binary: API commits and git CLI clones/pushes must see the same repository."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timezone
from pathlib import Path

import pytest

from spaces.errors import (
    BadRequest,
    Conflict,
    EntryNotFound,
    GitError,
    InvalidPath,
    PreconditionFailed,
    RepoExists,
    RevisionNotFound,
)
from spaces.storage import Addition, GitRepo, TreeEntry, blob_oid, gitrepo

AUTHOR = {"author_name": "Alice Example", "author_email": "alice@example.org"}


def cli(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    """The plain git CLI, as a user would run it, isolated from the developer's own git config."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd or "/nonexistent"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Cli User",
        "GIT_AUTHOR_EMAIL": "cli@example.org",
        "GIT_COMMITTER_NAME": "Cli User",
        "GIT_COMMITTER_EMAIL": "cli@example.org",
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, input=input, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().strip()


def commit(repo: GitRepo, title: str, files: dict[str, bytes] | None = None, **kw) -> str:
    adds = [Addition(p, c) for p, c in (files or {}).items()]
    return repo.commit(additions=adds, message=title, **AUTHOR, **kw)


def snapshot(repo: GitRepo, rev: str = "main") -> dict[str, bytes]:
    return {e.path: repo.read_blob(rev, e.path) for e in repo.list_tree(rev, recursive=True) if e.type == "file"}


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo.init_bare(tmp_path / "repos" / "alice" / "demo.git")


@pytest.fixture
def base(repo: GitRepo) -> GitRepo:
    """main: README.md, app.py, src/a.py, src/lib/b.py (one commit)."""
    files = {"README.md": b"# demo\n", "app.py": b"print(1)\n", "src/a.py": b"a\n", "src/lib/b.py": b"b\n"}
    commit(repo, "initial", files)
    return repo


# -- commits -----------------------------------------------------------------------------------------------------


def test_root_commit_then_second_commit(repo: GitRepo) -> None:
    assert repo.head() is None
    with pytest.raises(RevisionNotFound):
        repo.list_tree("main")
    first = commit(repo, "first", {"a.txt": b"1"})
    assert repo.head() == first and repo.count_commits("main") == 1
    assert cli("--git-dir", str(repo.path), "rev-list", "--parents", "-n1", first).split() == [first]  # no parent
    second = commit(repo, "second", {"b.txt": b"2"})
    assert cli("--git-dir", str(repo.path), "rev-parse", f"{second}^") == first
    assert snapshot(repo) == {"a.txt": b"1", "b.txt": b"2"}
    assert snapshot(repo, first) == {"a.txt": b"1"}


BASE = {"README.md": b"# demo\n", "app.py": b"print(1)\n", "src/a.py": b"a\n", "src/lib/b.py": b"b\n"}


@pytest.mark.parametrize(
    ("adds", "dels", "folders", "expected"),
    [
        pytest.param({"app.py": b"print(2)\n"}, [], [], {**BASE, "app.py": b"print(2)\n"}, id="overwrite"),
        pytest.param({"new/deep/x.txt": b"x"}, [], [], {**BASE, "new/deep/x.txt": b"x"}, id="add-nested"),
        pytest.param({}, ["app.py"], [], {k: v for k, v in BASE.items() if k != "app.py"}, id="delete-file"),
        pytest.param({}, [], ["src"], {"README.md": BASE["README.md"], "app.py": BASE["app.py"]}, id="delete-folder"),
        pytest.param({}, [], ["src/lib/"], {k: v for k, v in BASE.items() if k != "src/lib/b.py"}, id="folder-slash"),
        pytest.param({"src": b"now a file"}, [], ["src"], {"README.md": BASE["README.md"], "app.py": BASE["app.py"],
                     "src": b"now a file"}, id="file-replaces-folder"),  # fmt: skip
        pytest.param({"app.py/x": b"x"}, ["app.py"], [], {**{k: v for k, v in BASE.items() if k != "app.py"},
                     "app.py/x": b"x"}, id="folder-replaces-file"),  # fmt: skip
        pytest.param({"src/a.py": b"A"}, ["src/a.py"], [], {**BASE, "src/a.py": b"A"}, id="delete-then-add"),
        pytest.param({}, [], [], BASE, id="empty-commit"),
    ],
)
def test_commit_operations(base: GitRepo, adds, dels, folders, expected) -> None:
    before = base.head()
    sha = base.commit(
        additions=[Addition(p, c) for p, c in adds.items()], deletions=dels, deleted_folders=folders,
        message="change", **AUTHOR,
    )  # fmt: skip
    assert sha == base.head() != before
    assert cli("--git-dir", str(base.path), "rev-parse", f"{sha}^") == before
    assert snapshot(base) == expected
    assert snapshot(base, before) == BASE  # history is untouched


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"deletions": ["nope.txt"]}, EntryNotFound, "nope.txt"),
        ({"deletions": ["src"]}, EntryNotFound, "src"),  # a folder is not a file
        ({"deleted_folders": ["nope"]}, EntryNotFound, "nope"),
        ({"deleted_folders": ["app.py"]}, EntryNotFound, "app.py"),  # a file is not a folder
        ({"deletions": ["app.py"], "deleted_folders": ["missing/"]}, EntryNotFound, "missing"),
        ({"additions": [Addition("src", b"x")]}, BadRequest, "folder with that name"),
        ({"additions": [Addition("app.py/inner", b"x")]}, BadRequest, "'app.py' is a file"),
        ({"additions": [Addition("z", b"1"), Addition("z/y", b"2")]}, BadRequest, "'z'"),
        ({"additions": [Addition("../etc/passwd", b"x")]}, InvalidPath, ".."),
        ({"additions": [Addition("/abs", b"x")]}, InvalidPath, "leading"),
        ({"additions": [Addition("a//b", b"x")]}, InvalidPath, "empty"),
        ({"additions": [Addition("x/.git/config", b"x")]}, InvalidPath, ".git"),
        ({"additions": [Addition(".GIT/hooks/x", b"x")]}, InvalidPath, ".git"),
        ({"additions": [Addition("a\0b", b"x")]}, InvalidPath, "NUL"),
        ({"additions": [Addition("a\nb", b"x")]}, InvalidPath, "control"),
        ({"deletions": ["src/../app.py"]}, InvalidPath, ".."),
        ({"branch": "--upload-pack=x"}, BadRequest, "branch"),
        ({"branch": "refs/tags/v1"}, BadRequest, "branch"),
        ({"expected_parent": "xyz"}, BadRequest, "parent"),
    ],
)
def test_commit_errors_leave_ref_unchanged(base: GitRepo, kwargs, error, needle) -> None:
    before = base.head()
    with pytest.raises(error) as info:
        base.commit(message="bad", **AUTHOR, **kwargs)
    assert needle in info.value.message
    assert base.head() == before and base.count_commits("main") == 1


def test_expected_parent(base: GitRepo) -> None:
    tip = base.head()
    child = commit(base, "ok", {"x": b"1"}, expected_parent=tip[:7])  # a prefix is enough
    with pytest.raises(PreconditionFailed):
        commit(base, "stale", {"y": b"2"}, expected_parent=tip)
    assert base.head() == child
    assert commit(base, "full sha", {"y": b"2"}, expected_parent=child.upper()) == base.head()


def test_expected_parent_on_empty_branch_fails(repo: GitRepo) -> None:
    with pytest.raises(PreconditionFailed):
        commit(repo, "first", {"a": b"1"}, expected_parent="abcdef1")
    assert repo.head() is None


def test_concurrent_commits_from_threads_all_land(repo: GitRepo) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                commit(repo, f"t{n}-{i}", {f"t{n}/{i}.txt": f"{n}-{i}".encode()})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert repo.count_commits("main") == 40
    files = snapshot(repo)
    assert len(files) == 40 and files["t3/4.txt"] == b"3-4"
    assert len({c.title for c in repo.log("main", limit=100)}) == 40


def test_concurrent_commits_from_processes_all_land(repo: GitRepo) -> None:
    """Separate worker processes share no Python lock: the file lock and the ref compare-and-swap must hold."""
    script = (
        "import sys; from pathlib import Path; from spaces.storage import GitRepo, Addition\n"
        "r = GitRepo(Path(sys.argv[1]))\n"
        "for i in range(5):\n"
        "    r.commit(additions=[Addition(f'p{sys.argv[2]}/{i}', b'x')], message='m',\n"
        "             author_name='a', author_email='e')\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(repo.path), str(n)], cwd=Path(__file__).parents[2])
        for n in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    assert repo.count_commits("main") == 20 and len(snapshot(repo)) == 20


def _race(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make a 'git push' land between reading the tip and moving the ref, once."""
    racer: list[str] = []
    real = gitrepo.write_tree

    def write_tree(git_dir, entries, index):
        tree = real(git_dir, entries, index)
        if not racer:
            gd = ["--git-dir", str(repo.path)]
            blob = cli(*gd, "hash-object", "-w", "--stdin", input=b"pushed")
            tip = cli(*gd, "rev-parse", "refs/heads/main")
            listing = cli(*gd, "ls-tree", tip) + f"\n100644 blob {blob}\tpushed.txt\n"
            side_tree = cli(*gd, "mktree", input=listing.encode())
            racer.append(cli(*gd, "commit-tree", side_tree, "-p", tip, "-m", "pushed meanwhile"))
            cli(*gd, "update-ref", "refs/heads/main", racer[0], tip)
        return tree

    monkeypatch.setattr(gitrepo, "write_tree", write_tree)
    return racer


def test_lost_cas_race_is_retried_on_new_tip(base: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    racer = _race(base, monkeypatch)
    sha = commit(base, "api", {"api.txt": b"api"})
    assert [c.title for c in base.log("main")] == ["api", "pushed meanwhile", "initial"]
    assert cli("--git-dir", str(base.path), "rev-parse", f"{sha}^") == racer[0]
    assert base.read_blob("main", "api.txt") == b"api"


def test_lost_cas_race_with_expected_parent_fails(base: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    racer = _race(base, monkeypatch)
    with pytest.raises(PreconditionFailed):
        commit(base, "api", {"api.txt": b"api"}, expected_parent=base.head())
    assert base.head() == racer[0]


def test_commit_message_author_and_large_file_addition(repo: GitRepo, tmp_path: Path) -> None:
    big = tmp_path / "upload.bin"
    big.write_bytes(os.urandom(300_000))
    sha = repo.commit(
        additions=[Addition("weights.bin", file=big)], message="Add weights", description="Long\ntext",
        author_name="Bob <b>", author_email="bob@example.org",
    )  # fmt: skip
    raw = cli("--git-dir", str(repo.path), "cat-file", "commit", sha)
    assert "author Bob b <bob@example.org>" in raw and "committer Bob b <bob@example.org>" in raw
    assert raw.endswith("Add weights\n\nLong\ntext")
    (info,) = repo.log("main")
    assert (info.id, info.title, info.message) == (sha, "Add weights", "Long\ntext")
    assert (info.author_name, info.author_email) == ("Bob b", "bob@example.org")
    assert info.date.tzinfo == timezone.utc
    assert repo.read_blob("main", "weights.bin") == big.read_bytes()
    assert repo.stat("main", "weights.bin").oid == blob_oid(big.read_bytes())


# -- revisions ---------------------------------------------------------------------------------------------------


@pytest.fixture
def tagged(base: GitRepo) -> tuple[GitRepo, str, str]:
    first = base.head()
    second = commit(base, "second", {"x": b"x"})
    gd = ["--git-dir", str(base.path)]
    cli(*gd, "tag", "v1", first)
    cli(*gd, "tag", "-a", "-m", "annotated", "v2", second)
    cli(*gd, "branch", "dev", first)
    cli(*gd, "update-ref", "refs/pr/1", first)
    return base, first, second


@pytest.mark.parametrize(
    ("rev", "want"),
    [
        ("main", "second"), ("refs/heads/main", "second"), ("dev", "first"), ("refs/heads/dev", "first"),
        ("v1", "first"), ("v2", "second"), ("refs/tags/v2", "second"), ("refs/pr/1", "first"),
        pytest.param(lambda s: s["first"], "first", id="full-sha"),
        pytest.param(lambda s: s["second"][:8], "second", id="sha-prefix"),
        pytest.param(lambda s: s["second"].upper(), "second", id="uppercase-sha"),
        pytest.param(lambda s: s["second"][:3], None, id="prefix-too-short"),
        ("nope", None), ("refs/heads/nope", None), ("0" * 40, None), ("abc", None),
        ("--output=/tmp/x", None), ("-h", None), ("main~1", None), ("main^", None), ("main..dev", None),
        ("main:README.md", None), ("main@{0}", None), ("@", None), ("HEAD@{1}", None), ("ma*n", None),
        ("main ", None), ("", None), ("main\nv1", None),
    ],
)  # fmt: skip
def test_resolve(tagged, rev, want: str | None) -> None:
    repo, first, second = tagged
    shas = {"first": first, "second": second}
    if callable(rev):
        rev = rev(shas)
    assert repo.resolve(rev) == (shas[want] if want else None)


def test_injection_revs_never_reach_git_as_options(base: GitRepo, tmp_path: Path) -> None:
    target = tmp_path / "x"
    for rev in (f"--output={target}", "-o" + str(target)):
        for call in (
            lambda: base.list_tree(rev), lambda: base.log(rev), lambda: base.count_commits(rev),
            lambda: base.read_blob(rev, "README.md"), lambda: base.stat(rev, "README.md"),
            lambda: base.last_commits(rev, ["README.md"]),
        ):  # fmt: skip
            with pytest.raises(RevisionNotFound):
                call()
    assert not target.exists()


def test_branches_and_tags(tagged) -> None:
    repo, first, second = tagged
    assert repo.branches() == {"main": second, "dev": first}
    assert repo.tags() == {"v1": first, "v2": second}  # the annotated tag names its commit
    assert repo.head("dev") == first and repo.head("nope") is None and repo.head("-x") is None


def test_commit_to_other_branch(tagged) -> None:
    repo, first, second = tagged
    sha = commit(repo, "on dev", {"dev.txt": b"d"}, branch="dev")
    assert repo.head("dev") == sha and repo.head("main") == second
    assert "dev.txt" in snapshot(repo, "dev") and "dev.txt" not in snapshot(repo, "main")


# -- reading -----------------------------------------------------------------------------------------------------


def test_list_tree(base: GitRepo) -> None:
    def shape(entries: list[TreeEntry]) -> list[tuple[str, str]]:
        return [(e.type, e.path) for e in entries]

    assert shape(base.list_tree("main")) == [("file", "README.md"), ("file", "app.py"), ("directory", "src")]
    assert shape(base.list_tree("main", recursive=True)) == [
        ("file", "README.md"), ("file", "app.py"), ("directory", "src"), ("file", "src/a.py"),
        ("directory", "src/lib"), ("file", "src/lib/b.py"),
    ]  # fmt: skip
    assert shape(base.list_tree("main", "src")) == [("file", "src/a.py"), ("directory", "src/lib")]
    assert shape(base.list_tree("main", "src/", recursive=True)) == [
        ("file", "src/a.py"), ("directory", "src/lib"), ("file", "src/lib/b.py"),
    ]  # fmt: skip
    (app,) = base.list_tree("main", "app.py")
    assert app == TreeEntry("file", "app.py", blob_oid(b"print(1)\n"), len(b"print(1)\n"))
    src = base.stat("main", "src")
    assert src.type == "directory" and src.size == 0
    assert src.oid == cli("--git-dir", str(base.path), "rev-parse", "main:src")
    assert base.stat("main", "").type == "directory"
    with pytest.raises(EntryNotFound):
        base.list_tree("main", "missing")
    with pytest.raises(EntryNotFound):
        base.stat("main", "src/nope.py")
    with pytest.raises(RevisionNotFound):
        base.list_tree("nope")
    with pytest.raises(InvalidPath):
        base.list_tree("main", "src/../..")


def test_read_and_stream_blob(base: GitRepo) -> None:
    assert base.read_blob("main", "src/lib/b.py") == b"b\n"
    with pytest.raises(EntryNotFound):
        base.read_blob("main", "src")  # a directory
    with pytest.raises(EntryNotFound):
        base.read_blob("main", "missing.txt")
    data = bytes(range(256)) * 5000
    commit(base, "big", {"big.bin": data})
    entry, chunks = base.open_blob("main", "big.bin", chunk_size=100_000)
    assert entry.size == len(data) and entry.oid == blob_oid(data)
    parts = list(chunks)
    assert len(parts) > 1 and b"".join(parts) == data
    _, early = base.open_blob("main", "big.bin", chunk_size=10)
    assert next(early) == data[:10]
    early.close()  # kills the git process without reading the rest
    with pytest.raises(EntryNotFound):
        base.open_blob("main", "src")


def test_non_ascii_and_space_paths(repo: GitRepo) -> None:
    names = {"dossier é/naïve file.txt": b"1", "日本語/テスト.md": b"2", "with space.txt": b"3", "a*[b]?.txt": b"4"}
    sha = commit(repo, "unicode", names)
    assert snapshot(repo) == names
    assert repo.stat("main", "日本語").type == "directory"
    assert [e.path for e in repo.list_tree("main", "dossier é")] == ["dossier é/naïve file.txt"]
    assert set(repo.last_commits("main", ["日本語", "with space.txt"])) == {"日本語", "with space.txt"}
    commit(repo, "rm", deletions=["a*[b]?.txt"])  # a glob-looking name is deleted literally, alone
    assert set(snapshot(repo)) == set(names) - {"a*[b]?.txt"}
    assert [c.id for c in repo.log("main", path="with space.txt")] == [sha]


def test_log_order_skip_limit_and_path(repo: GitRepo) -> None:
    shas = [commit(repo, f"c{i}", {f"f{i % 2}.txt": str(i).encode()}) for i in range(6)]
    assert [c.id for c in repo.log("main")] == shas[::-1]
    assert [c.title for c in repo.log("main", limit=2, skip=1)] == ["c4", "c3"]
    assert [c.title for c in repo.log("main", skip=10)] == []
    assert [c.title for c in repo.log(shas[2])] == ["c2", "c1", "c0"]
    assert [c.title for c in repo.log("main", path="f1.txt")] == ["c5", "c3", "c1"]
    assert repo.count_commits("main") == 6 and repo.count_commits(shas[1][:6]) == 2


def test_last_commits(repo: GitRepo) -> None:
    c0 = commit(repo, "c0", {"a.txt": b"0", "d/x": b"0", "d/e/y": b"0", "keep": b"0"})
    c1 = commit(repo, "c1", {"d/e/y": b"1"})
    c2 = commit(repo, "c2", {"a.txt": b"2"})
    got = repo.last_commits("main", ["a.txt", "d", "d/x", "keep", "missing"])
    assert {p: c.id for p, c in got.items()} == {"a.txt": c2, "d": c1, "d/x": c0, "keep": c0}
    assert {p: c.title for p, c in repo.last_commits(c1, ["a.txt", "d"]).items()} == {"a.txt": "c0", "d": "c1"}
    assert repo.last_commits("main", []) == {}


# -- interop with the git CLI ------------------------------------------------------------------------------------


def test_git_clone_sees_api_commits(base: GitRepo, tmp_path: Path) -> None:
    sha = commit(base, "more", {"é.txt": b"e"})
    cli("clone", "--quiet", base.path.as_uri(), str(tmp_path / "work"))
    work = tmp_path / "work"
    assert cli("rev-parse", "HEAD", cwd=work) == sha
    assert (work / "é.txt").read_bytes() == b"e" and (work / "src/lib/b.py").read_bytes() == b"b\n"
    assert cli("log", "--format=%s", cwd=work).splitlines() == ["more", "initial"]
    assert cli("--git-dir", str(base.path), "fsck", "--strict", "--no-progress") == ""


def test_git_push_is_visible_to_api(repo: GitRepo, tmp_path: Path) -> None:
    commit(repo, "api", {"a.txt": b"api"})
    work = tmp_path / "work"
    cli("clone", "--quiet", repo.path.as_uri(), str(work))
    (work / "pushed dir").mkdir()
    (work / "pushed dir" / "run.sh").write_bytes(b"#!/bin/sh\n")
    (work / "pushed dir" / "run.sh").chmod(0o755)
    cli("add", "-A", cwd=work)
    cli("commit", "--quiet", "-m", "from cli", cwd=work)
    cli("push", "--quiet", "origin", "main", cwd=work)
    pushed = cli("rev-parse", "HEAD", cwd=work)
    assert repo.head() == pushed and repo.log("main")[0].title == "from cli"
    assert repo.read_blob("main", "pushed dir/run.sh") == b"#!/bin/sh\n"
    assert [e.path for e in repo.list_tree("main", "pushed dir")] == ["pushed dir/run.sh"]
    commit(repo, "api edit", {"pushed dir/run.sh": b"#!/bin/sh\necho\n"})
    mode = cli("--git-dir", str(repo.path), "ls-tree", "main", "pushed dir/run.sh").split()[0]
    assert mode == "100755"  # an API overwrite keeps the executable bit
    cli("pull", "--quiet", "--ff-only", cwd=work)
    assert (work / "pushed dir" / "run.sh").read_bytes() == b"#!/bin/sh\necho\n"


def test_user_git_config_and_environment_do_not_leak(base: GitRepo, tmp_path, monkeypatch) -> None:
    hooks = tmp_path / "evil-hooks"
    hooks.mkdir()
    marker = tmp_path / "hook-ran"
    (hooks / "reference-transaction").write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    (hooks / "reference-transaction").chmod(0o755)
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f"[core]\n\thooksPath = {hooks}\n[user]\n\tname = Leaked\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Leaked")
    sha = commit(base, "clean", {"c.txt": b"c"})
    assert not marker.exists()
    assert base.log("main")[0].author_name == "Alice Example" and base.head() == sha


# -- lifecycle ---------------------------------------------------------------------------------------------------


def test_init_bare_config_and_existing(repo: GitRepo) -> None:
    gd = ["--git-dir", str(repo.path)]
    assert repo.exists()
    assert cli(*gd, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert cli(*gd, "config", "--bool", "http.receivepack") == "true"
    assert cli(*gd, "config", "--bool", "uploadpack.allowAnySHA1InWant") == "true"
    assert cli(*gd, "config", "--bool", "uploadpack.allowReachableSHA1InWant") == "true"
    with pytest.raises(RepoExists):
        GitRepo.init_bare(repo.path)
    assert not GitRepo(repo.path.parent / "nope.git").exists()
    empty = repo.size_bytes()
    commit(repo, "data", {"blob.bin": os.urandom(50_000)})
    assert repo.size_bytes() > empty + 40_000  # random data does not compress


def test_copy_to_keeps_history_and_is_independent(tagged, tmp_path: Path) -> None:
    repo, first, second = tagged
    copy = repo.copy_to(tmp_path / "copies" / "bob" / "demo.git")
    assert copy.branches() == repo.branches() and copy.tags() == repo.tags()
    assert copy.resolve("refs/pr/1") == first
    assert [c.id for c in copy.log("main")] == [c.id for c in repo.log("main")]
    new = commit(copy, "only in copy", {"copy.txt": b"c"})
    assert copy.head() == new and repo.head() == second and repo.resolve(new) is None
    assert "remote" not in (copy.path / "config").read_text()  # no link back to the source
    assert all(f.stat().st_nlink == 1 for f in (copy.path / "objects").rglob("*") if f.is_file())  # no hard links
    repo.delete()
    assert copy.read_blob("main", "README.md") == b"# demo\n" and copy.count_commits("main") == 3


def test_delete(base: GitRepo) -> None:
    base.delete()
    assert not base.path.exists() and not base.exists()
    assert [p.name for p in base.path.parent.iterdir()] == []  # nothing left aside
    base.delete()  # missing is fine
    with pytest.raises(GitError):
        commit(base, "gone", {"a": b"1"})


def test_blob_oid_matches_git(repo: GitRepo) -> None:
    for data in (b"", b"hello\n", bytes(range(256))):
        assert blob_oid(data) == cli("hash-object", "--stdin", input=data)


def test_create_ref_is_create_only_and_one_of_concurrent_creates_wins(base: GitRepo) -> None:
    tip = base.head()
    results: list[str] = []

    def create() -> None:
        try:
            base.create_ref("refs/heads/race", tip)
            results.append("won")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 7 + ["won"]
    with pytest.raises(Conflict, match="folder of refs"):
        base.create_ref("refs/heads/race/sub", tip)
    assert base.branches() == {"main": tip, "race": tip}
    assert base.delete_ref("refs/heads/race") == tip
    with pytest.raises(RevisionNotFound):
        base.delete_ref("refs/heads/race")


def test_commit_to_a_branch_that_must_exist_creates_nothing(base: GitRepo) -> None:
    with pytest.raises(RevisionNotFound):
        commit(base, "x", {"x.txt": b"x"}, branch="gone", must_exist=True)
    assert set(base.branches()) == {"main"}


def test_annotated_tag_object_names_its_commit(base: GitRepo) -> None:
    tip = base.head()
    base.create_ref("refs/tags/v1", base.make_tag_object("v1", tip, "release\n", tagger_name="a",
                                                         tagger_email="a@x"))
    assert base.tags() == {"v1": tip}
    assert base.resolve("v1") == tip
    assert base.check_ref_format("refs/tags/v1") and not base.check_ref_format("refs/tags/a..b")


def test_merge_fast_forwards_merges_and_refuses_conflicts(base: GitRepo) -> None:
    tip = base.head()
    base.create_ref("refs/pr/1", tip)
    pr1 = commit(base, "pr edit", {"app.py": b"print(2)\n"}, branch="refs/pr/1", must_exist=True)
    assert base.merge("main", pr1, message="m", **AUTHOR) == pr1  # main had not moved: a fast-forward
    base.create_ref("refs/pr/2", pr1)
    pr2 = commit(base, "pr adds", {"new.txt": b"n\n"}, branch="refs/pr/2", must_exist=True)
    base.create_ref("refs/pr/3", pr1)
    pr3 = commit(base, "pr clashes", {"README.md": b"# theirs\n"}, branch="refs/pr/3", must_exist=True)
    mine = commit(base, "main moves", {"README.md": b"# mine\n"})
    merged = base.merge("main", pr2, message="Merge #2", **AUTHOR)
    assert cli("rev-list", "--parents", "-n", "1", merged, cwd=base.path).split()[1:] == [mine, pr2]
    assert snapshot(base)["new.txt"] == b"n\n" and snapshot(base)["README.md"] == b"# mine\n"
    with pytest.raises(Conflict, match="README.md"):
        base.merge("main", pr3, message="Merge #3", **AUTHOR)
    assert base.head() == merged
    assert base.merge("main", pr2, message="again", **AUTHOR) == merged  # already in: nothing to do


@pytest.mark.parametrize("filters", [True, False], ids=["tarfile-filters", "python-without-filters"])
def test_export_refuses_a_link_leaving_the_tree_with_or_without_tarfile_filters(tmp_path, monkeypatch,
                                                                                filters) -> None:
    """Debian bookworm's Python 3.11.2 (the platform image's) has no tarfile extraction filters: export checks
    each member itself there, with the same answer."""
    import tarfile

    if not filters:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    cli("init", "-q", "-b", "main", cwd=work)
    (work / "app.py").write_text("print('hi')\n")
    (work / "sub").mkdir()
    os.symlink("../app.py", work / "sub" / "inside")
    cli("add", "-A", cwd=work)
    cli("commit", "-q", "-m", "ok", cwd=work)
    good = cli("rev-parse", "HEAD", cwd=work).strip()
    os.symlink("../../etc/passwd", work / "sub" / "out")
    cli("add", "-A", cwd=work)
    cli("commit", "-q", "-m", "out", cwd=work)
    bad = cli("rev-parse", "HEAD", cwd=work).strip()
    repo = GitRepo(work / ".git")
    dest = repo.export(good, tmp_path / "good")
    assert (dest / "app.py").read_text() == "print('hi')\n" and os.readlink(dest / "sub" / "inside") == "../app.py"
    with pytest.raises(InvalidPath, match="`sub/out` cannot be checked out: it is a symlink pointing outside"):
        repo.export(bad, tmp_path / "bad")
