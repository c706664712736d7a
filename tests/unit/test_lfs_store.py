"""The content-addressed object store, LFS pointer parsing, ``.gitattributes`` LFS rules and the ``lfsFile`` commit
line (spaces.storage.objects, spaces.domain.lfs, spaces.hub.ndjson)."""

from __future__ import annotations

import hashlib
import json
import os
import threading

import pytest

from spaces.domain.lfs import (
    HUB_DATASET_GITATTRIBUTES,
    HUB_GITATTRIBUTES,
    Pointer,
    default_gitattributes,
    lfs_matcher,
    parse_pointer,
    with_tracked,
)
from spaces.errors import BadRequest, LfsObjectMissing
from spaces.hub.ndjson import parse_ndjson
from spaces.storage.objects import LocalObjectStore, RepoObjects, put


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_stores_once_by_sha256_and_reads_ranges(tmp_path):  # noqa: ANN001
    store = LocalObjectStore(tmp_path / "objects")
    data = os.urandom(3 * (1 << 20) + 7)
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    assert put(store, sha(data), len(data), chunks) is True
    assert put(store, sha(data), len(data), chunks) is False  # verified, not written again
    assert store.exists(sha(data)) and store.size(sha(data)) == len(data)
    assert b"".join(store.open(sha(data))) == data
    assert b"".join(store.open(sha(data), 10, 1_500_000)) == data[10:1_500_001]
    assert b"".join(store.open(sha(data), len(data) - 1)) == data[-1:]
    assert [p.name for p in (tmp_path / "objects").rglob("*") if p.is_file()] == [sha(data)]


@pytest.mark.parametrize("case", ["hash", "short", "long", "bad-oid"])
def test_a_bad_upload_stores_nothing(tmp_path, case):  # noqa: ANN001
    store = LocalObjectStore(tmp_path / "objects")
    data = b"x" * 1000
    oid, size, body = {"hash": (sha(b"y" * 1000), 1000, data), "short": (sha(data), 1001, data),
                       "long": (sha(data), 999, data), "bad-oid": ("../../etc/passwd", 1000, data)}[case]
    with pytest.raises(BadRequest):
        put(store, oid, size, [body[:500], body[500:]])
    assert not [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]


def test_missing_object_and_concurrent_writers(tmp_path):  # noqa: ANN001
    store = LocalObjectStore(tmp_path)
    with pytest.raises(LfsObjectMissing):
        store.open(sha(b"nope"))
    assert store.size(sha(b"nope")) is None
    data = os.urandom(200_000)
    results = []
    threads = [threading.Thread(target=lambda: results.append(put(store, sha(data), len(data), [data])))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b"".join(store.open(sha(data))) == data and len(results) == 4


def test_repo_links_are_per_repository_and_copied_with_it(tmp_path):  # noqa: ANN001
    a, b = RepoObjects(tmp_path / "a.git"), RepoObjects(tmp_path / "b.git")
    oid = sha(b"x")
    a.link(oid)
    assert a.linked(oid) and not b.linked(oid)
    a.copy_to(tmp_path / "c.git")
    assert RepoObjects(tmp_path / "c.git").linked(oid)


def test_pointer_parsing_is_strict():
    p = Pointer(sha(b"x"), 1234)
    assert parse_pointer(p.text()) == p
    text = p.text()
    for bad in (text[:-1], text + b"\n", text.replace(b"sha256", b"sha1"), text.upper(),
                text.replace(b"size 1234", b"size -1"), text.replace(b"size 1234", b"size 01234"), b"hello\n",
                text + b"x" * 1100):
        assert parse_pointer(bad) is None, bad
    ext = text.replace(b"oid", b"ext-0-foo sha256:" + sha(b"y").encode() + b"\noid")
    assert parse_pointer(ext) == p


def test_gitattributes_lfs_rules():
    tracked = lfs_matcher("*.bin filter=lfs diff=lfs merge=lfs -text\n"
                          "# comment\n"
                          "data/** filter=lfs\n"
                          "data/keep.txt -filter\n"
                          "/root.safetensors filter=lfs\n"
                          "* text=auto eol=lf\n")
    assert tracked("w.bin") and tracked("deep/dir/w.bin")
    assert tracked("data/x/y.csv") and not tracked("data/keep.txt")
    assert tracked("root.safetensors") and not tracked("sub/root.safetensors")
    assert not tracked("README.md")
    assert lfs_matcher(None)("w.bin") is False


def _body(*lines: dict) -> bytes:
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


def test_hub_default_gitattributes_per_repo_type():
    """New repositories get the Hub's seed: weights and archives go through LFS, datasets' media too."""
    model, dataset = lfs_matcher(default_gitattributes("model")), lfs_matcher(default_gitattributes("dataset"))
    assert default_gitattributes("space") == HUB_GITATTRIBUTES
    for path in ("pytorch_model.bin", "w/model.safetensors", "ckpt.pt", "data.parquet", "a.tar.gz",
                 "saved_model/variables/v.index", "runs/events.out.tfevents.1.host"):
        assert model(path) and dataset(path), path
    assert dataset("img/a.png") and dataset("a.wav") and not model("img/a.png")
    assert not model("config.json") and not model("app.py") and not dataset("train.csv")
    assert HUB_DATASET_GITATTRIBUTES.startswith(HUB_GITATTRIBUTES)


@pytest.mark.parametrize("path", ["tokenizer.json", "dir/sub file.dat", "x[1]*?.txt", "#hash", "!bang", "a\tb"])
def test_with_tracked_adds_one_line_that_tracks_exactly_that_path(path):  # noqa: ANN001
    text = with_tracked(HUB_GITATTRIBUTES, [path, path])
    assert text is not None and text.startswith(HUB_GITATTRIBUTES)
    added = text[len(HUB_GITATTRIBUTES):]
    assert added.count("\n") == 1 and added.endswith(" filter=lfs diff=lfs merge=lfs -text\n")
    tracked = lfs_matcher(text)
    assert tracked(path) and not tracked("other.json") and not tracked("x1.txt")
    assert with_tracked(text, [path]) is None  # tracked now: nothing to add
    assert with_tracked(None, ["w.bin"]) == "w.bin filter=lfs diff=lfs merge=lfs -text\n"
    assert with_tracked("* text=auto", ["w.bin"]) == "* text=auto\nw.bin filter=lfs diff=lfs merge=lfs -text\n"


def test_to_pointers_tracks_what_goes_to_lfs_for_its_size(tmp_path):  # noqa: ANN001
    """A file that goes to LFS at a path .gitattributes does not track gets its line in the same commit; a tracked
    one, a small one, or no threshold at all leaves .gitattributes alone."""
    from spaces.storage import lfsfiles
    from spaces.storage.gitrepo import Addition, GitRepo

    store = LocalObjectStore(tmp_path / "objects")
    repo = GitRepo.init_bare(tmp_path / "r.git")
    tip = repo.commit(additions=[Addition(".gitattributes", b"*.bin filter=lfs diff=lfs merge=lfs -text\n")],
                      message="m", author_name="a", author_email="a@b.c")
    big, small, weights, sent = os.urandom(3000), b"small\n", os.urandom(2000), os.urandom(100)
    put(store, sha(sent), len(sent), [sent])
    RepoObjects(repo.path).link(sha(sent))
    adds = [Addition("tokenizer.json", big), Addition("notes.txt", small), Addition("w.bin", weights),
            Addition("up/loaded.dat", b"")]
    out = {a.path: a.content for a in lfsfiles.to_pointers(repo, store, tip, adds,
                                                           {"up/loaded.dat": Pointer(sha(sent), len(sent))}, 1000)}
    assert out["tokenizer.json"] == Pointer(sha(big), len(big)).text() and store.size(sha(big)) == len(big)
    assert out["w.bin"] == Pointer(sha(weights), len(weights)).text() and out["notes.txt"] == small
    assert out["up/loaded.dat"] == Pointer(sha(sent), len(sent)).text()
    assert out[".gitattributes"] == (b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
                                     b"tokenizer.json filter=lfs diff=lfs merge=lfs -text\n"
                                     b"up/loaded.dat filter=lfs diff=lfs merge=lfs -text\n")
    # the commit's own .gitattributes is the one extended; without a threshold only tracked paths convert
    mine = Addition(".gitattributes", b"*.json filter=lfs diff=lfs merge=lfs -text\n")
    out = {a.path: a.content for a in lfsfiles.to_pointers(repo, store, tip, [mine, *adds[:3]], {}, None)}
    assert out[".gitattributes"] == mine.content and out["w.bin"] == weights
    assert out["tokenizer.json"] == Pointer(sha(big), len(big)).text()
    out = {a.path: a.content for a in lfsfiles.to_pointers(repo, store, tip, adds[1:3], {}, None)}
    assert ".gitattributes" not in out and out["w.bin"] == Pointer(sha(weights), len(weights)).text()


def test_lfsfile_lines_are_parsed_and_checked():
    header = {"key": "header", "value": {"summary": "x"}}
    oid = sha(b"x")
    parsed = parse_ndjson(_body(header, {"key": "lfsFile", "value": {"path": "a/w.bin", "algo": "sha256",
                                                                      "oid": oid, "size": 1}},
                                {"key": "lfsFile", "value": {"path": "copy.bin", "algo": "sha256", "oid": oid}}))
    assert parsed.lfs == {"a/w.bin": (oid, 1), "copy.bin": (oid, None)}
    assert [a.path for a in parsed.additions] == ["a/w.bin", "copy.bin"]
    for value in ({"path": "w.bin", "oid": "abc", "size": 1}, {"path": "w.bin", "oid": oid, "size": -1},
                  {"path": "w.bin", "oid": oid, "size": "1"}, {"path": "../w.bin", "oid": oid, "size": 1},
                  {"path": "w.bin", "algo": "md5", "oid": oid, "size": 1}):
        with pytest.raises(BadRequest):
            parse_ndjson(_body(header, {"key": "lfsFile", "value": value}))


def test_export_checks_out_the_objects_a_repository_holds(tmp_path):  # noqa: ANN001
    """A Space's build context and working copy get the real files (example images, weights), not pointers."""
    from spaces.storage.gitrepo import Addition, GitRepo

    store = LocalObjectStore(tmp_path / "objects")
    repo = GitRepo.init_bare(tmp_path / "r.git")
    data, other = os.urandom(5000), os.urandom(300)
    put(store, sha(data), len(data), [data])
    put(store, sha(other), len(other), [other])  # in the store, but never given to this repository
    RepoObjects(repo.path).link(sha(data))
    missing, foreign = Pointer(sha(b"nope"), 4), Pointer(sha(other), len(other))
    repo.commit(additions=[Addition("img/a.png", Pointer(sha(data), len(data)).text()),
                           Addition("m.bin", missing.text()), Addition("f.bin", foreign.text()),
                           Addition("t.txt", b"x")], message="m", author_name="a", author_email="a@b.c")
    out = GitRepo(repo.path, store).export("main", tmp_path / "out")
    assert (out / "img" / "a.png").read_bytes() == data
    assert (out / "m.bin").read_bytes() == missing.text() and (out / "f.bin").read_bytes() == foreign.text()
    assert (out / "t.txt").read_bytes() == b"x"
    assert sorted(p.name for p in out.rglob("*")) == ["a.png", "f.bin", "img", "m.bin", "t.txt"]
    plain = GitRepo(repo.path).export("main", tmp_path / "plain")  # no store: pointers stay pointers
    assert (plain / "img" / "a.png").read_bytes().startswith(b"version https://git-lfs")


def test_sweep_removes_only_stale_partial_uploads(tmp_path):  # noqa: ANN001
    store = LocalObjectStore(tmp_path)
    w = store.writer(sha(b"abc"), 3)
    w.write(b"a")  # an upload in progress
    (tmp_path / "tmp" / "old.partial").write_bytes(b"x")
    os.utime(tmp_path / "tmp" / "old.partial", (1, 1))
    assert store.sweep(3600) == 1
    w.write(b"bc")
    assert w.commit() is True and b"".join(store.open(sha(b"abc"))) == b"abc"
