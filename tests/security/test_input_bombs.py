"""Input that cannot be bombed, against a live server: YAML alias and nesting bombs in README front matter (by API
commit and by git push), nested JSON and out-of-range numbers in bodies and commit lines, control bytes in URLs.

Each attack must fail cleanly: a clear 4xx or a CONFIG_ERROR stage naming the limit, git and the database agreeing
on the tip afterwards, and the server's memory (RSS from /proc) where it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from e2e.helpers import (
    assert_error, clone, commit_all, file_line, git, git_url, header_line, ndjson, post_commit, runtime_json,
)

try:
    from security.input_helpers import MiB, assert_agree, rss
except ImportError:  # tests/security is not a package
    from input_helpers import MiB, assert_agree, rss

pytestmark = pytest.mark.timeout(240)


def alias_bomb(levels: int = 10) -> str:
    """~1 KB of front matter that stands for 9**levels strings once its aliases are expanded."""
    lines = ["sdk: gradio", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "---\n" + "\n".join(lines) + "\n---\n\n# bomb\n"


def bracket_bomb(depth: int = 5000) -> str:
    return "---\nsdk: gradio\nx: " + "[" * depth + "]" * depth + "\n---\n"


BOMBS = {
    "alias-bomb": (alias_bomb(), "values once its aliases are"),
    "bracket-bomb": (bracket_bomb(), "nested deeper than 32 levels"),
    "recursive-alias": ("---\nsdk: gradio\na: &a [*a]\n---\n", "recursive alias"),
    "huge-front-matter": ("---\nsdk: gradio\ntitle: " + "x" * 70_000 + "\n---\n", "larger than 64 KiB"),
    "binary-value": ("---\nsdk: gradio\nblob: !!binary aGVsbG8=\n---\n", "cannot be used"),
    "nan-value": ("---\nsdk: gradio\nx: .nan\n---\n", "nan and infinite"),
    # PyYAML's own timestamp constructor crashed on this (found by tests/security/test_input_fuzz.py)
    "bad-timestamp": ("---\nsdk: gradio\nd: !!timestamp 2020-01-0x\n---\n", "`!!timestamp` values are not"),
}


def assert_config_error(server, repo_id: str, token: str, words: str) -> None:
    rt = runtime_json(server, repo_id, token)
    assert rt["stage"] == "CONFIG_ERROR", rt
    assert words in rt["errorMessage"] and "README.md" in rt["errorMessage"], rt


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_front_matter_bomb_by_commit_is_a_config_error(server, alice, make_space, bomb):
    readme, words = BOMBS[bomb]
    repo_id = make_space(alice)
    before = rss(server)
    with alice.http() as client:
        r = post_commit(client, repo_id, ndjson(header_line("bomb"), file_line("README.md", readme.encode())))
    assert r.status_code == 200, r.text
    assert server.alive()
    assert_config_error(server, repo_id, alice.token, words)
    assert assert_agree(server, repo_id, alice.token) == r.json()["commitOid"]
    assert rss(server) - before < 64 * MiB, f"server grew by {(rss(server) - before) / MiB:.0f} MiB"
    # the API still serves the Space (cardData came through JSON)
    assert alice.api.space_info(repo_id).sha == r.json()["commitOid"]


@pytest.mark.parametrize("bomb", ["alias-bomb", "bracket-bomb"])
def test_front_matter_bomb_by_git_push_is_a_config_error(server, tmp_path, alice, make_space, bomb):
    readme, words = BOMBS[bomb]
    repo_id = make_space(alice)
    dest = tmp_path / "c"
    clone(server, repo_id, dest, token=alice.token)
    (dest / "README.md").write_text(readme)
    local = commit_all(dest, "bomb")
    before = rss(server)
    res = git("push", git_url(server, repo_id, alice.token), "HEAD:main", cwd=dest, check=False)
    assert res.returncode == 0, res.stderr
    assert_config_error(server, repo_id, alice.token, words)
    assert assert_agree(server, repo_id, alice.token) == local
    assert rss(server) - before < 64 * MiB


def test_validate_yaml_refuses_the_bombs(server, alice):
    with alice.http() as client:
        for readme, words in BOMBS.values():
            r = client.post("/api/validate-yaml", json={"content": readme, "repoType": "space"})
            assert r.status_code == 400, r.text  # what the Hub answers for a README with errors
            assert any(words in e["message"] for e in r.json()["errors"]), r.json()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nested_json_in_a_commit_line_is_400_and_nothing_moves(server, alice, make_space):
    repo_id = make_space(alice)
    before = assert_agree(server, repo_id, alice.token)
    deep_line = ('{"key": "file", "value": {"path": "a.txt", "encoding": "base64", "content": "YQ==", "x": '
                 + nested(5000) + "}}")
    bodies = [
        ndjson(header_line()) + deep_line.encode() + b"\n",
        nested(100_000).encode() + b"\n",
        b'{"key": "header", "value": {"summary": "x", "n": ' + b"9" * 40 + b"}}\n",
        b'{"key": "header", "value": {"summary": "x", "n": NaN}}\n',
        b'{"key": "header", "value": {"summary": "x", "n": 1e999}}\n',
    ]
    with alice.http() as client:
        for body in bodies:
            r = post_commit(client, repo_id, body)
            assert_error(r, 400)
    assert assert_agree(server, repo_id, alice.token) == before


def test_nested_and_out_of_range_json_bodies_are_400(server, alice, make_space):
    repo_id = make_space(alice)
    with alice.http() as client:
        deep = '{"name": "x", "type": "space", "sdk": "gradio", "x": ' + nested(5000) + "}"
        for path in ("/api/repos/create", f"/api/spaces/{repo_id}/sleeptime", f"/api/spaces/{repo_id}/hardware",
                     f"/api/spaces/{repo_id}/variables", f"/api/spaces/{repo_id}/preupload/main"):
            r = client.post(path, content=deep, headers={"content-type": "application/json"})
            assert_error(r, 400)
            assert "nested deeper" in r.json()["error"], r.text
        # sleep times: 10**30 overflowed the SQL column (500); ints beyond 64 bits are refused by the parser
        for seconds in (10**30, 2**62, 2**31, -5):
            r = client.post(f"/api/spaces/{repo_id}/sleeptime", content=json.dumps({"seconds": seconds}))
            assert_error(r, 400)
        r = client.post(f"/api/spaces/{repo_id}/hardware", json={"flavor": "cpu-basic", "sleepTimeSeconds": 10**12})
        assert_error(r, 400)
        r = client.post("/api/repos/create", json={"name": "too-sleepy", "type": "space", "sdk": "gradio",
                                                   "sleepTimeSeconds": 10**30})
        assert_error(r, 400)
        r = client.post(f"/api/spaces/{repo_id}/sleeptime", json={"seconds": 3600})
        assert r.status_code == 200, r.text


CONTROL_URLS = [
    "/api/spaces/{owner}/victim%00", "/api/spaces/{owner}/vic%0atim", "/api/spaces/{owner}/victim%1b",
    "/api/spaces/{repo}/tree/main/a%00b", "/api/spaces/{repo}/resolve/main/README.md%00",
    "/spaces/{repo}/resolve/main/README%7f.md", "/spaces/{owner}/victim%00/info/refs?service=git-upload-pack",
    "/api/spaces/{repo}/tree/main?cursor=%00", "/{owner}%00",
]


@pytest.mark.parametrize("private", [False, True])
def test_control_bytes_in_urls_are_400_for_existing_private_and_missing(server, alice, anon, make_space, private):
    repo_id = make_space(alice, private=private)
    missing = f"{alice.name}/no-such-space-x"
    for who in (alice, anon):
        with who.http() as client:
            for template in CONTROL_URLS:
                answers = []
                for repo in (repo_id, missing):
                    r = client.get(template.format(owner=alice.name, repo=repo))
                    assert_error(r, 400)
                    assert "control character" in r.json()["error"], r.text
                    answers.append(r.json()["error"].replace(repo, "REPO"))
                assert answers[0] == answers[1], "a private Space must be indistinguishable from a missing one"


def test_out_of_range_query_integers_are_400(server, alice, make_space):
    repo_id = make_space(alice)
    huge, digits = str(10**30), "9" * 5000
    urls = [f"/api/spaces/{repo_id}/tree/main?cursor={digits}", f"/api/spaces/{repo_id}/tree/main?cursor={huge}",
            f"/api/spaces/{repo_id}/commits/main?p={huge}", f"/api/spaces/{repo_id}/commits/main?limit={digits}",
            f"/api/spaces?offset={huge}", f"/api/spaces?limit={huge}",
            f"/api/spaces/{repo_id}/logs/build?tail={digits}"]
    with alice.http() as client:
        for url in urls:
            assert_error(client.get(url), 400)
        assert client.get(f"/api/spaces/{repo_id}/commits/main?limit=5000").status_code == 200  # clamped, as before
