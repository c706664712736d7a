"""The preload folder (``builder/preload.py``) in the cache layout the real huggingface_hub reads offline, from a
real git repository; its address follows the commit; ``link_into`` gives a writable cache the same files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spaces.builder.errors import BuildFailed
from spaces.builder.preload import PreloadFile, PreloadStore, ResolvedRepo, link_into, preload_failed
from spaces.domain.cardconfig import Preload
from spaces.storage.gitrepo import Addition, GitRepo


class GitSource:
    """A PreloadSource over one bare repository named ``alice/tiny`` (the hub's own source needs a database)."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self.opened: list[str] = []

    def resolve(self, space_id: str, item: Preload) -> ResolvedRepo:
        if item.repo_id != "alice/tiny":
            raise preload_failed(f"preload_from_hub: the model {item.repo_id} does not exist on this hub.")
        commit = self.repo.resolve(item.revision or "main")
        files = [e for e in self.repo.list_tree(commit, recursive=True)
                 if e.type == "file" and (not item.files or e.path in item.files)]
        return ResolvedRepo(item.repo_type, item.repo_id, item.revision or "main", commit,
                            tuple(PreloadFile(e.path, e.oid, e.size) for e in files))

    def open(self, repo: ResolvedRepo, path: str):  # noqa: ANN201
        self.opened.append(path)
        return iter([self.repo.read_blob(repo.commit, path)])


def _commit(repo: GitRepo, files: dict[str, bytes]) -> str:
    return repo.commit(additions=[Addition(p, c) for p, c in files.items()], message="c", author_name="a",
                       author_email="a@x")


def _offline_read(cache: Path, filename: str) -> str:
    """The real client, in a process of its own with HF_HUB_OFFLINE=1, as an app would call it."""
    code = ("import sys; from huggingface_hub import hf_hub_download\n"
            "try: print(open(hf_hub_download('alice/tiny', sys.argv[1])).read(), end='')\n"
            "except Exception as e: print('failed:', type(e).__name__, end='')")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, "-c", code, filename], env=env, capture_output=True, text=True,
                          timeout=60).stdout


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo.init_bare(tmp_path / "tiny.git")


def test_preloaded_files_are_found_offline_by_huggingface_hub(tmp_path: Path, repo: GitRepo) -> None:
    _commit(repo, {"weights/model.bin": b"\x00v1", "config.json": b"{}", "other.txt": b"x"})
    source = GitSource(repo)
    store = PreloadStore(tmp_path / "preloads", source)
    lines: list[str] = []
    folder = store.prepare("sp1", ("alice/tiny weights/model.bin,config.json",), lambda _p, line: lines.append(line))
    assert Path(folder).parent == tmp_path / "preloads"
    assert sorted(source.opened) == ["config.json", "weights/model.bin"]
    assert _offline_read(Path(folder), "weights/model.bin") == "\x00v1"
    assert _offline_read(Path(folder), "other.txt") == "failed: LocalEntryNotFoundError"  # not listed
    assert any("2 file(s)" in line for line in lines), lines

    # the same commit and files: the folder is reused, nothing is read again
    source.opened.clear()
    assert store.prepare("sp2", ("alice/tiny weights/model.bin,config.json",), lambda *_: None) == folder
    assert source.opened == []

    # the model moves on: a new folder with the new files, the old one untouched
    _commit(repo, {"weights/model.bin": b"\x00v2"})
    newer = store.prepare("sp1", ("alice/tiny weights/model.bin,config.json",), lambda *_: None)
    assert newer != folder
    assert _offline_read(Path(newer), "weights/model.bin") == "\x00v2"
    assert _offline_read(Path(folder), "weights/model.bin") == "\x00v1"


def test_a_missing_repository_fails_the_build_naming_it(tmp_path: Path, repo: GitRepo) -> None:
    _commit(repo, {"a": b"1"})
    store = PreloadStore(tmp_path / "preloads", GitSource(repo))
    with pytest.raises(BuildFailed, match="bob/nothing"):
        store.prepare("sp", ("alice/tiny", "bob/nothing"), lambda *_: None)
    assert not any((tmp_path / "preloads").glob("*"))  # nothing half-made is left


def test_link_into_gives_a_writable_cache_the_preloaded_files(tmp_path: Path, repo: GitRepo) -> None:
    _commit(repo, {"weights/model.bin": b"w", "config.json": b"{}"})
    folder = PreloadStore(tmp_path / "preloads", GitSource(repo)).prepare("sp", ("alice/tiny",), lambda *_: None)
    home = tmp_path / "home"
    cache = home / ".cache" / "huggingface" / "hub"
    home.mkdir()
    uid = os.getuid()
    link_into(folder, home, uid)
    assert _offline_read(cache, "weights/model.bin") == "w"
    assert _offline_read(cache, "config.json") == "{}"
    # the cache stays the app's own: its folders are real (it may download more files into them)
    snapshot = next((cache / "models--alice--tiny" / "snapshots").iterdir())
    assert snapshot.is_dir() and not snapshot.is_symlink()
    assert (snapshot / "weights").is_dir() and not (snapshot / "weights").is_symlink()
    (snapshot / "new.txt").write_text("downloaded later")
    # a second start finds its marker: nothing is linked again (the app's change stays)
    (snapshot / "config.json").unlink()
    link_into(folder, home, uid)
    assert not (snapshot / "config.json").exists()


def test_link_into_follows_no_link_the_app_planted(tmp_path: Path, repo: GitRepo) -> None:
    """The app owns its home and may replace a folder of its cache by a link to anywhere: root's linking, at the
    next start with new files, must write inside the home and nowhere else."""
    _commit(repo, {"w.bin": b"w"})
    folder = PreloadStore(tmp_path / "preloads", GitSource(repo)).prepare("sp", ("alice/tiny",), lambda *_: None)
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (home / ".cache" / "huggingface" / "hub").mkdir(parents=True)
    elsewhere.mkdir()
    (home / ".cache" / "huggingface" / "hub" / "models--alice--tiny").symlink_to(elsewhere)
    link_into(folder, home, os.getuid())
    assert list(elsewhere.iterdir()) == []
    assert _offline_read(home / ".cache" / "huggingface" / "hub", "w.bin") == "w"
