"""The pages over plain HTTP (httpx with a cookie jar, like a browser without JavaScript): status codes, error
pages, session cookie, CSRF, who may see what, and each settings form doing what it says."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest
from harness import Server, unique
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from pagekit import PASSWORD, Web, start_pages_server


def cards(html: str) -> list[str]:
    return re.findall(r'<a class="card" href="/spaces/([^"]+)"', html)


def runtime(server: Server, repo_id: str, api: HfApi) -> dict:
    r = httpx.get(f"{server.url}/api/spaces/{repo_id}/runtime", headers={"authorization": f"Bearer {api.token}"})
    r.raise_for_status()
    return r.json()


# ---- anonymous visitors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, status", [
    ("/", 200), ("/spaces", 200), ("/login", 200), ("/join", 200), ("/spaces?sort=likes&sdk=gradio", 200),
    ("/spaces?p=notanumber&sort=bogus", 200), ("/static/spaces.css", 200), ("/static/spaces.js", 200),
])
def test_public_pages_answer(web, path: str, status: int) -> None:  # noqa: ANN001
    r = web().get(path)
    assert r.status_code == status


@pytest.mark.parametrize("path", ["/new", "/settings/tokens", "/settings/usage", "/admin"])
def test_signed_in_pages_redirect_to_login(web, path: str) -> None:  # noqa: ANN001
    r = web().get(path)
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next={path}"


def test_errors_are_pages_for_browsers_and_json_for_api(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    for path in ("/spaces/nobody/nothing", f"/{unique('nobody')}", "/spaces/nobody/nothing/tree/main"):
        r = w.get(path)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")
        assert "<h1>Not found</h1>" in r.text and "Traceback" not in r.text
    api = httpx.get(f"{pages_server.url}/api/spaces/nobody/nothing", headers={"accept": "text/html"})
    assert api.status_code == 404 and api.headers["x-error-code"] == "RepoNotFound"
    assert api.json()["error"]
    resolve = httpx.get(f"{pages_server.url}/spaces/nobody/nothing/resolve/main/README.md")
    assert resolve.status_code == 404 and resolve.headers["x-error-code"] == "RepoNotFound"


# ---- accounts and session ----------------------------------------------------------------------------------------
def test_sign_up_sets_a_host_only_httponly_lax_cookie(web) -> None:  # noqa: ANN001
    w = web()
    token = w.csrf("/join")
    r = w.post("/join", {"username": unique("c"), "password": PASSWORD}, token=token)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
    assert not any(a.startswith("domain") for a in attrs)  # never shared with the apps' subdomains
    assert w.get("/settings/tokens").status_code == 200


def test_sign_in_and_out(web) -> None:  # noqa: ANN001
    first = web()
    name = first.sign_up()
    w = web()
    bad = w.sign_in(name, "wrong password!")
    assert bad.status_code == 400 and "Wrong username or password" in bad.text
    assert w.get("/settings/tokens").status_code == 303
    ok = w.sign_in(name)
    assert ok.status_code == 303
    assert w.get("/settings/tokens").status_code == 200
    assert w.post("/logout", token=None).status_code == 403  # sign-out is a form too: CSRF applies
    assert w.get("/settings/tokens").status_code == 200
    assert w.post("/logout").status_code == 303
    assert w.get("/settings/tokens").status_code == 303


def test_sign_up_refuses_bad_input_and_taken_names(web) -> None:  # noqa: ANN001
    w = web()
    name = w.sign_up()
    other = web()
    for data, message in (({"username": name, "password": PASSWORD}, "already taken"),
                          ({"username": "bad name!", "password": PASSWORD}, "contains"),
                          ({"username": unique("s"), "password": "short"}, "at least"),
                          ({"username": "admin", "password": PASSWORD}, "reserved")):
        r = other.post("/join", data, token=other.csrf("/join"))
        assert r.status_code in (400, 409), (data, r.status_code)
        assert message in r.text, (data, r.text[:300])
    assert other.get("/settings/tokens").status_code == 303  # none of them signed in


def test_next_is_only_followed_to_local_paths(web) -> None:  # noqa: ANN001
    w = web()
    name = w.sign_up()
    w2 = web()
    r = w2.post("/login", {"username": name, "password": PASSWORD, "next": "https://evil.example/"},
                token=w2.csrf("/login"))
    assert r.headers["location"] == "/"
    w3 = web()
    r = w3.post("/login", {"username": name, "password": PASSWORD, "next": "/settings/tokens"},
                token=w3.csrf("/login"))
    assert r.headers["location"] == "/settings/tokens"


def test_signup_can_be_turned_off() -> None:
    server = start_pages_server("sqlite", extra_env={"SPACES_SIGNUP_ENABLED": "false"})
    try:
        w = Web(server)
        page = w.get("/join")
        assert page.status_code == 403 and "Sign-up is closed" in page.text
        r = w.post("/join", {"username": unique("x"), "password": PASSWORD}, token=w.csrf("/login"))
        assert r.status_code == 403
        assert 'href="/join"' not in w.get("/").text
        w.close()
    finally:
        server.stop()


# ---- CSRF and the session on the API -------------------------------------------------------------------------------
def test_posts_without_the_csrf_token_are_refused(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    api = w.api()
    repo_id = f"{w.name}/{unique('c')}"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    before = runtime(pages_server, repo_id, api)["gcTimeout"]
    for token in (None, "forged-token"):
        r = w.post(f"/spaces/{repo_id}/settings/sleep", {"seconds": "3600"}, token=token)
        assert r.status_code == 403, r.status_code
        assert "expired" in r.text
    assert w.post(f"/spaces/{repo_id}/settings/delete", {"confirm": repo_id}, token=None).status_code == 403
    assert w.post("/new", {"owner": w.name, "name": unique("n"), "sdk": "gradio"}, token=None).status_code == 403
    assert runtime(pages_server, repo_id, api)["gcTimeout"] == before
    assert api.repo_exists(repo_id, repo_type="space")
    # another session's token is worthless too
    other = web()
    other.sign_up()
    stolen = other.csrf()
    assert w.post(f"/spaces/{repo_id}/settings/sleep", {"seconds": "3600"}, token=stolen).status_code == 403
    ok = w.post(f"/spaces/{repo_id}/settings/sleep", {"seconds": "3600"})
    assert ok.status_code == 303
    assert runtime(pages_server, repo_id, api)["gcTimeout"] == 3600


def test_session_cookie_authenticates_api_reads_but_not_writes_without_the_header(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    api = w.api()
    repo_id = f"{w.name}/{unique('p')}"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=True)
    http = w.http
    assert http.get("/api/whoami-v2").json()["name"] == w.name
    logs = http.get(f"/api/spaces/{repo_id}/logs/build?follow=0")
    assert logs.status_code == 200 and logs.headers["content-type"].startswith("text/event-stream")
    assert httpx.get(f"{pages_server.url}/api/spaces/{repo_id}/logs/build?follow=0").status_code == 404
    # a same-site page (an app on a sibling subdomain) could POST with the cookie; without the header it is anonymous
    refused = http.post(f"/api/spaces/{repo_id}/like", headers={"content-type": "text/plain"})
    assert refused.status_code in (401, 404)
    token = w.csrf()
    liked = http.post(f"/api/spaces/{repo_id}/like", headers={"x-csrf-token": token})
    assert liked.status_code == 200 and liked.json()["likes"] == 1


# ---- who may see what -----------------------------------------------------------------------------------------------
def test_private_space_is_404_for_others_everywhere(web, pages_server: Server) -> None:  # noqa: ANN001
    owner = web()
    owner.sign_up()
    api = owner.api()
    name = unique("secret")
    repo_id = f"{owner.name}/{name}"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=True)
    tabs = ["", "/tree/main", "/blob/main/README.md", "/commits/main", "/logs", "/settings", "/duplicate"]
    for path in tabs:
        assert owner.get(f"/spaces/{repo_id}{path}").status_code == 200, path
    stranger = web()
    stranger.sign_up()
    anon = web()
    for who in (stranger, anon):
        for path in tabs:
            r = who.get(f"/spaces/{repo_id}{path}")
            if who is anon and path in ("/duplicate",):
                assert r.status_code == 303  # sign in first; the Space is still not revealed
                continue
            assert r.status_code == 404, (path, r.status_code)
            assert name not in r.text  # not even its name leaks
        assert cards(who.get(f"/spaces?q={name}").text) == []
        assert name not in who.get(f"/{owner.name}").text
    assert cards(owner.get(f"/spaces?q={name}").text) == [repo_id]


def test_settings_are_for_owners_only(web) -> None:  # noqa: ANN001
    owner = web()
    owner.sign_up()
    repo_id = f"{owner.name}/{unique('pub')}"
    owner.api().create_repo(repo_id, repo_type="space", space_sdk="static")
    stranger = web()
    stranger.sign_up()
    assert stranger.get(f"/spaces/{repo_id}").status_code == 200
    assert 'href="/spaces/' + repo_id + '/settings"' not in stranger.get(f"/spaces/{repo_id}").text
    assert stranger.get(f"/spaces/{repo_id}/settings").status_code == 403
    r = stranger.post(f"/spaces/{repo_id}/settings/delete", {"confirm": repo_id})
    assert r.status_code == 403
    assert web().get(f"/spaces/{repo_id}/settings").status_code == 303  # anonymous: sign in first
    assert owner.get(f"/spaces/{repo_id}").status_code == 200


# ---- the forms do what they say -------------------------------------------------------------------------------------
def test_new_space_form(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    bad = w.post("/new", {"owner": w.name, "name": "no spaces allowed", "sdk": "gradio", "visibility": "public"})
    assert bad.status_code == 400 and 'id="form-error"' in bad.text
    taken = unique("n")
    r = w.post("/new", {"owner": w.name, "name": taken, "sdk": "streamlit", "hardware": "cpu-upgrade",
                        "visibility": "private"})
    assert r.status_code == 303 and r.headers["location"] == f"/spaces/{w.name}/{taken}?new=1"
    page = w.get(r.headers["location"])
    assert f"git clone {pages_server.url}/spaces/{w.name}/{taken}" in page.text
    info = w.api().space_info(f"{w.name}/{taken}")
    assert info.private and info.sdk == "streamlit" and info.runtime.requested_hardware == "cpu-upgrade"
    again = w.post("/new", {"owner": w.name, "name": taken, "sdk": "gradio", "visibility": "public"})
    assert again.status_code == 409 and "already" in again.text
    stranger_org = w.post("/new", {"owner": "someone-else", "name": unique("n"), "sdk": "gradio"})
    assert stranger_org.status_code == 403


def test_settings_forms(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    api = w.api()
    repo_id = f"{w.name}/{unique('set')}"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    base = f"/spaces/{repo_id}/settings"

    assert w.post(f"{base}/hardware", {"flavor": "t4-small"}).status_code == 303
    assert api.get_space_runtime(repo_id).requested_hardware == "t4-small"
    r = w.post(f"{base}/hardware", {"flavor": "quantum-9000"})
    assert r.status_code == 303 and "Unknown hardware flavor" in w.get(base).text
    assert api.get_space_runtime(repo_id).requested_hardware == "t4-small"

    w.post(f"{base}/sleep", {"seconds": "10"})
    assert "at least 60 seconds" in w.get(base).text

    w.post(f"{base}/variable", {"key": "MODEL_NAME", "value": "tiny-llama"})
    assert api.get_space_variables(repo_id)["MODEL_NAME"].value == "tiny-llama"
    w.post(f"{base}/variable", {"key": "SPACE_ID", "value": "x"})
    assert "reserved" in w.get(base).text
    w.post(f"{base}/secret", {"key": "API_KEY", "value": "s3cr3t-value"})
    page = w.get(base).text
    assert "API_KEY" in page and "s3cr3t-value" not in page  # write-only
    w.post(f"{base}/secret-delete", {"key": "API_KEY"})
    assert "API_KEY" not in w.get(base).text
    w.post(f"{base}/variable-delete", {"key": "MODEL_NAME"})
    assert "MODEL_NAME" not in api.get_space_variables(repo_id)

    w.post(f"{base}/visibility", {"visibility": "private"})
    assert api.space_info(repo_id).private
    assert httpx.get(f"{pages_server.url}/spaces/{repo_id}", headers={"accept": "text/html"}).status_code == 404
    w.post(f"{base}/visibility", {"visibility": "public"})
    assert not api.space_info(repo_id).private

    w.post(f"{base}/pause")
    assert api.get_space_runtime(repo_id).stage == "PAUSED"
    assert "paused" in w.get(f"/spaces/{repo_id}").text.lower()
    w.post(f"{base}/restart")
    assert api.get_space_runtime(repo_id).stage != "PAUSED"

    wrong = w.post(f"{base}/delete", {"confirm": "not-the-name"})
    assert wrong.status_code == 303 and api.repo_exists(repo_id, repo_type="space")
    gone = w.post(f"{base}/delete", {"confirm": repo_id})
    assert gone.status_code == 303 and gone.headers["location"] == f"/{w.name}"
    assert not api.repo_exists(repo_id, repo_type="space")


def test_duplicate_with_secrets_to_re_enter(web) -> None:  # noqa: ANN001
    owner = web()
    owner.sign_up()
    owner_api = owner.api()
    src = f"{owner.name}/{unique('src')}"
    owner_api.create_repo(src, repo_type="space", space_sdk="gradio",
                          space_secrets=[{"key": "OPENAI_KEY", "value": "owner-only"}],
                          space_variables=[{"key": "THEME", "value": "dark"}])
    visitor = web()
    visitor.sign_up()
    page = visitor.get(f"/spaces/{src}").text
    assert 'id="duplicate-dialog"' in page and 'name="secret__OPENAI_KEY"' in page
    assert "owner-only" not in page
    target = unique("copy")
    r = visitor.post(f"/spaces/{src}/duplicate", {"owner": visitor.name, "name": target, "visibility": "private",
                                                   "hardware": "cpu-basic", "secret__OPENAI_KEY": "mine"})
    assert r.status_code == 303 and r.headers["location"] == f"/spaces/{visitor.name}/{target}"
    api = visitor.api()
    info = api.space_info(f"{visitor.name}/{target}")
    assert info.private
    assert api.get_space_variables(f"{visitor.name}/{target}")["THEME"].value == "dark"
    secrets = httpx.get(f"{visitor.server.url}/api/spaces/{visitor.name}/{target}/secrets",
                        headers={"authorization": f"Bearer {api.token}"}).json()
    assert list(secrets) == ["OPENAI_KEY"]
    again = visitor.post(f"/spaces/{src}/duplicate", {"owner": visitor.name, "name": target})
    assert again.status_code == 303 and again.headers["location"].endswith("/duplicate")
    assert "already" in visitor.get(again.headers["location"]).text


def test_duplicate_form_defaults_to_the_sources_visibility(web) -> None:  # noqa: ANN001
    import re

    owner = web()
    owner.sign_up()
    api = owner.api()
    checked = re.compile(r'name="visibility" value="(\w+)" checked')
    for private in (False, True):
        src = f"{owner.name}/{unique('vis')}"
        api.create_repo(src, repo_type="space", space_sdk="gradio", private=private)
        assert set(checked.findall(owner.get(f"/spaces/{src}/duplicate").text)) == {"private" if private else "public"}
        target = unique("copy")
        r = owner.post(f"/spaces/{src}/duplicate", {"owner": owner.name, "name": target})  # no visibility sent
        assert r.status_code == 303, r.text[:300]
        assert api.space_info(f"{owner.name}/{target}").private is private


def test_like_without_javascript(web) -> None:  # noqa: ANN001
    owner = web()
    owner.sign_up()
    repo_id = f"{owner.name}/{unique('l')}"
    owner.api().create_repo(repo_id, repo_type="space", space_sdk="static")
    anon = web()
    r = anon.post(f"/spaces/{repo_id}/like", {"like": "1"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    fan = web()
    fan.sign_up()
    assert fan.post(f"/spaces/{repo_id}/like", {"like": "1"}).status_code == 303
    assert fan.post(f"/spaces/{repo_id}/like", {"like": "1"}).status_code == 303  # idempotent
    assert 'aria-pressed="true"' in fan.get(f"/spaces/{repo_id}").text
    assert owner.api().space_info(repo_id).likes == 1
    fan.post(f"/spaces/{repo_id}/like", {"like": "0"})
    assert owner.api().space_info(repo_id).likes == 0


def test_explore_search_filter_sort(web) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    api = w.api()
    tag = unique("ex")
    a, b, c = f"{w.name}/{tag}-a", f"{w.name}/{tag}-b", f"{w.name}/{tag}-c"
    api.create_repo(a, repo_type="space", space_sdk="gradio")
    api.create_repo(b, repo_type="space", space_sdk="streamlit", space_hardware="t4-small")
    api.create_repo(c, repo_type="space", space_sdk="gradio", private=True)
    w.post(f"/spaces/{b}/like", {"like": "1"})
    assert set(cards(w.get(f"/spaces?q={tag}").text)) == {a, b, c}  # the owner sees their private one
    assert set(cards(web().get(f"/spaces?q={tag}").text)) == {a, b}  # others do not
    assert set(cards(w.get(f"/spaces?q={tag}&sdk=gradio").text)) == {a, c}
    assert cards(w.get(f"/spaces?q={tag}&hardware=t4-small").text) == [b]
    assert cards(w.get(f"/spaces?q={tag}&sort=likes").text)[0] == b
    assert cards(w.get(f"/spaces?q={tag}&sort=trending").text)[0] == b
    assert cards(w.get(f"/spaces?q={tag}&sort=created").text)[0] == c
    assert cards(w.get(f"/spaces?q={tag}-a").text) == [a]
    assert cards(w.get(f"/spaces?q=zz{tag}zz").text) == []


def test_profiles_of_users_and_orgs(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    org = pages_server.org(unique("org"), [w.name])
    api = w.api()
    repo_id = f"{org}/{unique('o')}"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    page = web().get(f"/{org}").text
    assert repo_id in page and "Organization" in page and w.name in page
    me = w.get(f"/{w.name}").text
    assert org in me
    # the New Space form offers the org as an owner
    assert f'<option value="{org}"' in w.get("/new").text


def test_tokens_page(web) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    token = w.create_token(role="read", name="ci")
    listing = w.get("/settings/tokens").text
    assert "ci" in listing and token not in listing  # shown once, never again
    assert HfApi(endpoint=w.server.url, token=token).whoami()["name"] == w.name
    token_id = re.search(r'/settings/tokens/([0-9a-f]+)/delete', listing).group(1)
    assert w.post(f"/settings/tokens/{token_id}/delete").status_code == 303
    with pytest.raises(HfHubHTTPError):
        HfApi(endpoint=w.server.url, token=token).whoami()


def test_usage_and_admin_pages(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    usage = w.get("/settings/usage")
    assert usage.status_code == 200
    assert usage.text.count('id="by-flavor"') == 1 and w.name in usage.text
    assert w.get("/admin").status_code == 404  # not an admin: the page does not exist for them
    pages_server.user(w.name, admin=True)
    admin = w.get("/admin")
    assert admin.status_code == 200
    for section in ("nodes", "queue", "builds", "spaces", "grants"):
        assert f'id="{section}"' in admin.text
    assert "Hook:" not in admin.text and "PageHooks" not in admin.text, "no placeholder labels"


def test_admin_actions_pause_sleep_restart_delete_and_grant(web, pages_server: Server) -> None:  # noqa: ANN001
    owner, admin, other = web(), web(), web()
    owner.sign_up()
    admin.sign_up()
    other.sign_up()
    pages_server.user(admin.name, admin=True)
    api = owner.api()
    repo_id = f"{owner.name}/{unique('adm')}"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=True)
    assert f'data-space="{repo_id}"' in admin.get(f"/admin?q={owner.name}").text, "admins see private Spaces too"

    # nobody else can act, and for them the action does not exist
    assert other.post(f"/admin/spaces/{repo_id}/pause").status_code == 404
    assert api.get_space_runtime(repo_id).stage != "PAUSED"

    r = admin.post(f"/admin/spaces/{repo_id}/pause")
    assert r.status_code == 303 and r.headers["location"] == "/admin#spaces"
    assert api.get_space_runtime(repo_id).stage == "PAUSED"
    assert "paused" in admin.get("/admin").text
    assert admin.post(f"/admin/spaces/{repo_id}/restart").status_code == 303
    assert api.get_space_runtime(repo_id).stage != "PAUSED"
    assert admin.post(f"/admin/spaces/{repo_id}/sleep").status_code == 303

    # deleting needs the name typed; a wrong one changes nothing and says why
    assert admin.post(f"/admin/spaces/{repo_id}/delete", {"confirm": "nope"}).status_code == 303
    assert f"Type {repo_id} to confirm" in admin.get("/admin").text
    assert api.repo_exists(repo_id, repo_type="space")
    assert admin.post(f"/admin/spaces/{repo_id}/delete", {"confirm": repo_id}).status_code == 303
    assert not api.repo_exists(repo_id, repo_type="space")

    # grants: a bad key or value is refused with the reason; a good one shows in the list and the owner's quota
    assert other.post("/admin/grants", {"account": owner.name, "key": "gpu_minutes", "value": "5"}).status_code == 404
    admin.post("/admin/grants", {"account": owner.name, "key": "running:nope", "value": "1"})
    assert "Could not grant" in admin.get("/admin").text
    admin.post("/admin/grants", {"account": owner.name, "key": "gpu_minutes", "value": "many"})
    assert "whole number" in admin.get("/admin").text
    r = admin.post("/admin/grants", {"account": owner.name, "key": "running:cpu-upgrade", "value": "2"})
    assert r.status_code == 303
    page = admin.get("/admin").text
    assert f"{owner.name}: running:cpu-upgrade = 2." in page and "<code>running:cpu-upgrade</code>" in page
    usage = owner.get("/settings/usage").text
    assert 'data-key="running:cpu-upgrade"><td>Running CPU Upgrade Spaces</td><td>0</td><td>2</td>' in usage


def test_quota_and_hardware_in_words(web, pages_server: Server) -> None:  # noqa: ANN001
    """No stored keys or None in the quota box; flavors this server cannot run are disabled with the reason."""
    owner = web()
    owner.sign_up()
    repo_id = f"{owner.name}/{unique('hw')}"
    owner.api().create_repo(repo_id, repo_type="space", space_sdk="gradio")
    page = owner.get(f"/spaces/{repo_id}/settings").text
    quota = page[page.index('id="quota"'):page.index('action="/spaces/' + repo_id + '/settings/hardware"')]
    shown = re.sub(r"<[^>]+>", " ", quota)  # what the reader sees
    assert "None" not in shown and "credits_micro_usd" not in shown and "gpu_minutes" not in shown
    assert "Compute credits this month" in quota and "GPU minutes this month" in quota
    assert "Running CPU Basic Spaces" in quota
    # this machine has no GPU: every GPU flavor is disabled and says so; a free account cannot take cpu-upgrade
    t4 = re.search(r'<label class="flavor off" title="([^"]+)">\s*<span class="flavor-head">\s*'
                   r'<input type="radio" name="flavor" value="t4-small" disabled>', page)
    assert t4 and "This server has no GPU" in t4.group(1), page[page.index('value="t4-small"') - 400:][:600]
    assert re.search(r'value="cpu-upgrade" disabled>', page) and "quota allows none" in page
    assert re.search(r'value="cpu-basic" checked>', page)
    new = owner.get("/new").text
    assert re.search(r'<option value="t4-small" disabled data-why="This server has no GPU[^"]*">', new)
    assert re.search(r'<option value="cpu-basic" selected>', new)


def test_git_and_downloads_are_not_shadowed_by_pages(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    repo_id = f"{w.name}/{unique('g')}"
    w.api().create_repo(repo_id, repo_type="space", space_sdk="static")
    out = subprocess.run(["git", "ls-remote", f"{pages_server.url}/spaces/{repo_id}"], capture_output=True,
                         text=True, timeout=30, env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "refs/heads/main" in out.stdout, out.stderr
    raw = httpx.get(f"{pages_server.url}/spaces/{repo_id}/resolve/main/README.md")
    assert raw.status_code == 200 and raw.text.startswith("---")
    assert w.get(f"/spaces/{repo_id}.git").headers["location"] == f"/spaces/{repo_id}"


def test_tokens_page_says_when_a_token_was_last_used(web, pages_server: Server) -> None:  # noqa: ANN001
    """A token's use is recorded (the tokens page stops saying "never"), at most once a minute: a busy client
    costs no database write per request."""
    from sqlalchemy import select, update

    from pagekit import server_db
    from spaces.db.models import Token

    w = web()
    w.sign_up()
    token = w.create_token(name="used")

    def last_used() -> str:
        row = re.search(r"<b>used</b>.*?</tr>", w.get("/settings/tokens").text, re.S)
        assert row, "the token is not listed"
        return re.findall(r'<td class="muted">([^<]*)</td>', row.group(0))[-1]

    assert last_used() == "never"
    api = HfApi(endpoint=pages_server.url, token=token)
    api.whoami()
    assert last_used() == "just now"
    db = server_db(pages_server)
    try:
        with db.session() as s:
            first = s.scalar(select(Token.last_used_at).where(Token.name == "used"))
        api.whoami()
        with db.session() as s:
            assert s.scalar(select(Token.last_used_at).where(Token.name == "used")) == first  # throttled
            s.execute(update(Token).where(Token.name == "used").values(last_used_at=first.replace(year=first.year - 1)))
        api.whoami()
        with db.session() as s:  # a year-old mark is stale: this use is recorded again
            assert s.scalar(select(Token.last_used_at).where(Token.name == "used")) > first
    finally:
        db.engine.dispose()
    assert last_used() == "just now"


def test_new_space_form_takes_a_license_and_a_short_description(web) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    api = w.api()
    for template in ("", "gradio"):
        name = unique("lic")
        r = w.post("/new", {"owner": w.name, "name": name, "sdk": "gradio", "template": template,
                            "hardware": "cpu-basic", "visibility": "public", "license": "mit",
                            "description": "  Says hello,\n in one line  "})
        assert r.status_code == 303, r.text[:500]
        readme = httpx.get(f"{w.server.url}/spaces/{w.name}/{name}/resolve/main/README.md").text
        front = readme.split("---")[1]
        assert 'license: "mit"' in front and 'short_description: "Says hello, in one line"' in front, readme
        assert api.space_info(f"{w.name}/{name}").card_data.get("license") == "mit"
        assert "Says hello, in one line" in w.get(f"/spaces/{w.name}/{name}").text
        if template:
            assert "sdk: gradio" in front and "app_file: app.py" in front
    for bad in ({"license": "wtfpl-9"}, {"description": "x" * 61}):
        name = unique("bad")
        r = w.post("/new", {"owner": w.name, "name": name, "sdk": "gradio", "visibility": "public", **bad})
        assert r.status_code == 400 and 'id="form-error"' in r.text
        assert not api.repo_exists(f"{w.name}/{name}", repo_type="space")
