"""Raw HTTP against the server: malformed input, traversal, limits, auth and privacy. Bad input gets a clear 4xx
with ``X-Error-Code`` and changes nothing."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest
from harness import TEST_MAX_COMMIT_BYTES, unique

from e2e.helpers import assert_error, current_sha, file_line, header_line, ndjson, post_commit

pytestmark = pytest.mark.timeout(180)

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def files_of(server, repo_id: str, token: str | None) -> set[str]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{server.url}/api/spaces/{repo_id}/tree/main", params={"recursive": "true"}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return {e["path"] for e in r.json() if e["type"] == "file"}


# ---------------------------------------------------------------------------------------------------------------
# malformed commits


MALFORMED = {
    "not-json": b"this is not json\n",
    "header-missing": ndjson(file_line("a.txt", b"a")),
    "header-not-first": ndjson(file_line("a.txt", b"a"), header_line()),
    "unknown-key": ndjson(header_line(), {"key": "frobnicate", "value": {"path": "a.txt"}}),
    "bad-base64": ndjson(header_line(), {"key": "file", "value": {"path": "a.txt", "encoding": "base64", "content": "!!not base64@@"}}),
    "file-without-path": ndjson(header_line(), {"key": "file", "value": {"encoding": "base64", "content": "YQ=="}}),
    "empty-body": b"",
    "json-array-line": b"[1, 2, 3]\n",
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_ndjson_is_rejected_and_nothing_committed(server, alice, make_space, case):
    repo_id = make_space(alice)
    before = current_sha(server, repo_id, alice.token)
    with alice.http() as client:
        r = post_commit(client, repo_id, MALFORMED[case])
    assert_error(r, 400)
    assert current_sha(server, repo_id, alice.token) == before
    assert "a.txt" not in files_of(server, repo_id, alice.token)


TRAVERSAL = ["../x", "../../x", "/tmp/{probe}", ".git/config", "a/.git/x", ".git", "a//b", "a/../b", "./a", "a/./b",
             "x\x00y", "", "dir/"]


@pytest.mark.parametrize("path", TRAVERSAL, ids=lambda p: repr(p))
def test_path_traversal_in_commit_is_rejected(server, alice, make_space, path):
    repo_id = make_space(alice)
    probe = f"spaces-e2e-probe-{unique('p')}"
    path = path.format(probe=probe)
    before = current_sha(server, repo_id, alice.token)
    with alice.http() as client:
        r = post_commit(client, repo_id, ndjson(header_line(), file_line(path, b"owned\n")))
        assert_error(r, 400)
        # the same paths are refused for deletes too
        r = post_commit(client, repo_id, ndjson(header_line(), {"key": "deletedFile", "value": {"path": path}}))
        assert 400 <= r.status_code < 500, r.text
    assert current_sha(server, repo_id, alice.token) == before
    assert not Path(f"/tmp/{probe}").exists()
    assert files_of(server, repo_id, alice.token) == {"README.md", ".gitattributes"}


def test_oversized_commit_is_413_and_nothing_committed(server, alice, make_space):
    repo_id = make_space(alice)
    before = current_sha(server, repo_id, alice.token)
    body = ndjson(header_line(), file_line("big.bin", os.urandom(2 * TEST_MAX_COMMIT_BYTES)))
    with alice.http() as client:
        r = post_commit(client, repo_id, body)
    assert_error(r, 413)
    assert current_sha(server, repo_id, alice.token) == before
    # just under the limit is fine
    small = ndjson(header_line(), file_line("ok.bin", os.urandom(TEST_MAX_COMMIT_BYTES // 2)))
    with alice.http() as client:
        r = post_commit(client, repo_id, small)
    assert r.status_code == 200, r.text
    assert "ok.bin" in files_of(server, repo_id, alice.token)


# ---------------------------------------------------------------------------------------------------------------
# names


BAD_NAMES = ["a--b", "x.git", "-x", "a" * 97, "naïve", "a..b", "with space", "", ".", "..", "a/b", "x?y", "x#y"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n[:20]))
def test_invalid_repo_names_are_rejected(server, alice, name):
    with alice.http() as client:
        r = client.post("/api/repos/create", json={"name": name, "organization": None, "type": "space", "sdk": "gradio"})
    assert_error(r, 400)


def test_invalid_sdk_and_hardware_are_rejected(server, alice):
    with alice.http() as client:
        for extra in ({"sdk": "cobol"}, {"sdk": "gradio", "hardware": "potato-xl"}, {"sdk": "gradio", "visibility": "secret"}):
            name = unique("bad")
            r = client.post("/api/repos/create", json={"name": name, "organization": None, "type": "space", **extra})
            assert_error(r, 400)
            assert client.get(f"/api/spaces/alice/{name}").status_code == 404


def test_create_in_a_foreign_namespace_is_refused(server, alice, bob, make_org):
    org = make_org("bob")
    with alice.http() as client:
        for ns in ("bob", org):
            name = unique("foreign")
            r = client.post("/api/repos/create", json={"name": name, "organization": ns, "type": "space", "sdk": "gradio"})
            assert_error(r, (403, 404))
            assert client.get(f"/api/spaces/{ns}/{name}").status_code == 404


def test_reserved_fixed_routes_are_not_captured(server, anon):
    with anon.http() as client:
        r = client.get("/api/spaces/hardware")
        assert r.status_code == 200, r.text
        flavors = r.json()
        assert isinstance(flavors, list) and "cpu-basic" in {f["name"] for f in flavors}
        for f in flavors:
            assert {"name", "prettyName", "cpu", "ram", "unitCostMicroUSD", "unitCostUSD", "unitLabel"} <= set(f), f
        r = client.get("/api/spaces/templates")
        assert r.status_code == 200, r.text
        templates = r.json()["templates"]
        assert isinstance(templates, list)
        for t in templates:
            assert {"name", "repoId", "sdk", "preferredPrivate"} <= set(t), t
    names = {h.name for h in anon.api.list_spaces_hardware()}
    assert "cpu-basic" in names


# ---------------------------------------------------------------------------------------------------------------
# credentials


def test_wrong_token_is_401_invalid_credentials(server, alice, make_space):
    repo_id = make_space(alice)
    before = current_sha(server, repo_id, alice.token)
    with httpx.Client(base_url=server.url, headers={"authorization": "Bearer not-a-real-token"}, timeout=30) as c:
        for r in (
            c.get("/api/whoami-v2"),
            c.get(f"/api/spaces/{repo_id}"),
            post_commit(c, repo_id, ndjson(header_line(), file_line("a.txt", b"a"))),
        ):
            assert r.status_code == 401, (r.request.url, r.status_code, r.text)
            assert r.headers.get("x-error-message") == INVALID_CREDENTIALS, r.headers
            assert r.headers.get("x-error-code")
            assert r.json().get("error")
    assert current_sha(server, repo_id, alice.token) == before


def test_whoami_without_token_is_401(server):
    r = httpx.get(f"{server.url}/api/whoami-v2", timeout=30)
    assert_error(r, 401)


def _write_calls(repo_id: str) -> list[tuple[str, str, dict]]:
    return [
        ("POST", f"/api/spaces/{repo_id}/commit/main",
         {"content": ndjson(header_line(), file_line("pwned.txt", b"x")), "headers": {"content-type": "application/x-ndjson"}}),
        ("DELETE", "/api/repos/delete", {"json": {"name": repo_id.split("/")[1], "organization": repo_id.split("/")[0], "type": "space"}}),
        ("POST", f"/api/spaces/{repo_id}/secrets", {"json": {"key": "PWNED", "value": "x"}}),
        ("DELETE", f"/api/spaces/{repo_id}/secrets", {"json": {"key": "KEEP_SECRET"}}),
        ("POST", f"/api/spaces/{repo_id}/variables", {"json": {"key": "PWNED", "value": "x"}}),
        ("DELETE", f"/api/spaces/{repo_id}/variables", {"json": {"key": "KEEP"}}),
        ("POST", f"/api/spaces/{repo_id}/pause", {}),
        ("POST", f"/api/spaces/{repo_id}/restart", {}),
        ("POST", f"/api/spaces/{repo_id}/hardware", {"json": {"flavor": "cpu-upgrade"}}),
        ("POST", f"/api/spaces/{repo_id}/sleeptime", {"json": {"seconds": 60}}),
        ("PUT", f"/api/spaces/{repo_id}/settings", {"json": {"visibility": "private"}}),
    ]


def _snapshot(server, alice, repo_id: str) -> dict:
    info = alice.api.space_info(repo_id)
    rt = alice.api.get_space_runtime(repo_id)
    return {
        "sha": info.sha,
        "private": info.private,
        "stage": rt.stage,
        "requested": rt.requested_hardware,
        "sleep": rt.sleep_time,
        "variables": {k: v.value for k, v in alice.api.get_space_variables(repo_id).items()},
        "secrets": set(alice.api.get_space_secrets(repo_id)),
    }


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
def test_other_users_cannot_write(server, alice, bob, alice_read, anon, make_space, private):
    repo_id = make_space(alice, private=private, space_variables=[{"key": "KEEP", "value": "v"}],
                         space_secrets=[{"key": "KEEP_SECRET", "value": "s"}])
    before = _snapshot(server, alice, repo_id)
    for who, allowed in ((bob, (404,) if private else (403, 404)), (alice_read, (403,)), (anon, (401, 404) if private else (401,))):
        with who.http() as client:
            for method, path, kwargs in _write_calls(repo_id):
                r = client.request(method, path, **kwargs)
                label = f"{who.name or 'anonymous'}{' (read token)' if who is alice_read else ''}: {method} {path}"
                assert r.status_code in allowed, f"{label} -> {r.status_code} {r.text[:300]}"
                assert r.headers.get("x-error-code"), f"{label}: no X-Error-Code"
                if private and who is bob:
                    assert r.headers.get("x-error-code") == "RepoNotFound", label
    assert _snapshot(server, alice, repo_id) == before
    assert alice.api.repo_exists(repo_id, repo_type="space")


# ---------------------------------------------------------------------------------------------------------------
# privacy on every surface


#: surfaces that need a token even for public Spaces: anonymous callers may get 401 there, as for a missing Space
OWNER_ONLY = ("/variables", "/secrets")


def _read_surfaces(repo_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/spaces/{repo_id}"),
        ("GET", f"/api/spaces/{repo_id}/revision/main"),
        ("GET", f"/api/spaces/{repo_id}/runtime"),
        ("GET", f"/api/spaces/{repo_id}/tree/main"),
        ("GET", f"/api/spaces/{repo_id}/tree/main?recursive=true"),
        ("GET", f"/api/spaces/{repo_id}/commits/main"),
        ("GET", f"/api/spaces/{repo_id}/refs"),
        ("GET", f"/api/spaces/{repo_id}/variables"),
        ("GET", f"/api/spaces/{repo_id}/logs/build"),
        ("HEAD", f"/spaces/{repo_id}/resolve/main/README.md"),
        ("GET", f"/spaces/{repo_id}/resolve/main/README.md"),
    ]


def fetch(client: httpx.Client, method: str, path: str) -> httpx.Response:
    """Send a request; read the body unless it is a successful (possibly endless) log stream."""
    r = client.send(client.build_request(method, path), stream=True)
    try:
        if not (r.status_code == 200 and "/logs/" in path):
            r.read()
    finally:
        r.close()
    return r


def test_private_space_is_hidden_everywhere(server, alice, bob, anon, carol, make_org, make_space):
    org = make_org("alice", "carol")
    tag = unique("hid")
    mine = make_space(alice, f"{tag}-own", private=True)
    org_space = make_space(alice, f"{tag}-org", namespace=org, private=True)
    missing = f"alice/{tag}-missing"

    for repo_id, readers in ((mine, [alice]), (org_space, [alice, carol])):
        for method, path in _read_surfaces(repo_id):
            for who in readers:
                with who.http() as c:
                    r = fetch(c, method, path)
                assert r.status_code == 200, f"{who.name} (has access): {method} {path} -> {r.status_code} {r.text[:200]}"
            for who in (anon, bob):
                with who.http() as c:
                    r = fetch(c, method, path)
                    if who is anon and path.endswith(OWNER_ONLY):
                        assert_error(r, (401, 404))
                    else:
                        assert_error(r, 404, "RepoNotFound")
                    # indistinguishable from a Space that does not exist
                    r_missing = fetch(c, method, path.replace(repo_id, missing))
                    assert r_missing.status_code == r.status_code, (method, path, r_missing.status_code)
                    assert r_missing.headers.get("x-error-code") == r.headers.get("x-error-code")

    def listed(who, **params) -> set[str]:
        with who.http() as c:
            r = c.get("/api/spaces", params={"search": tag, **params})
        assert r.status_code == 200, r.text
        return {s["id"] for s in r.json()}

    assert listed(anon) == set() and listed(bob) == set()
    assert listed(bob, author="alice") == set() and listed(bob, author=org) == set()
    assert listed(alice) == {mine, org_space}
    assert listed(carol) == {org_space}


def test_private_space_git_access_is_hidden(server, alice, bob, make_space):
    """git needs a 401 challenge before it sends credentials, so anonymous access to a private Space must be the
    same answer as to a missing one (a 401 with WWW-Authenticate), and a wrong user gets what a missing repo gets."""
    repo_id = make_space(alice, private=True)
    missing = f"alice/{unique('missing')}"
    path = "/spaces/{}/info/refs?service=git-upload-pack"

    anon_priv = httpx.get(server.url + path.format(repo_id), timeout=30)
    anon_missing = httpx.get(server.url + path.format(missing), timeout=30)
    assert anon_priv.status_code == 401, anon_priv.text
    assert anon_priv.headers.get("www-authenticate", "").lower().startswith("basic")
    assert anon_missing.status_code == anon_priv.status_code

    def basic(token: str) -> dict[str, str]:
        return {"authorization": "Basic " + base64.b64encode(f"user:{token}".encode()).decode()}

    bob_priv = httpx.get(server.url + path.format(repo_id), headers=basic(bob.token), timeout=30)
    bob_missing = httpx.get(server.url + path.format(missing), headers=basic(bob.token), timeout=30)
    assert bob_priv.status_code in (403, 404), bob_priv.text
    assert bob_missing.status_code == bob_priv.status_code
    assert "refs/heads/main" not in bob_priv.text

    ok = httpx.get(server.url + path.format(repo_id), headers=basic(alice.token), timeout=30)
    assert ok.status_code == 200
    assert "refs/heads/main" in ok.text

    wrong = httpx.get(server.url + path.format(repo_id), headers=basic("not-a-token"), timeout=30)
    assert wrong.status_code == 401
