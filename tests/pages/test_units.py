"""Pure parts of the pages: password hashing, the signed session, CSRF, redirect targets, template README titles,
listing helpers. No server."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from spaces.hub import session as sess
from spaces.templates_catalog import _retitle
from spaces.hub.pages.passwords import hash_password, verify_password
from spaces.hub.pages.render import duration, filesize, gradient, stage_info
from spaces.hub.pages.web import safe_next


def test_password_hashes_are_salted_and_verify() -> None:
    a, b = hash_password("hunter2hunter2"), hash_password("hunter2hunter2")
    assert a != b and a.startswith("scrypt$")
    assert verify_password("hunter2hunter2", a) and verify_password("hunter2hunter2", b)
    assert not verify_password("hunter3hunter3", a)
    for broken in (None, "", "plain", "scrypt$1$2", "md5$x$y$z$a$b", a.replace("scrypt", "bcrypt")):
        assert not verify_password("hunter2hunter2", broken)


def _app(max_age: int = 3600) -> FastAPI:
    app = FastAPI()
    app.add_middleware(sess.SessionMiddleware, secret_key="k" * 32, max_age=max_age)

    @app.get("/set")
    async def set_(request: Request) -> JSONResponse:
        sess.session_of(request)["uid"] = "u1"
        return JSONResponse({"csrf": sess.csrf_token(request)})

    @app.get("/get")
    async def get(request: Request) -> JSONResponse:
        return JSONResponse({"uid": sess.session_user_id(request),
                             "principal": callable(getattr(request.state, "session_principal", None))})

    @app.post("/post")
    async def post(request: Request) -> JSONResponse:
        return JSONResponse({"principal": callable(getattr(request.state, "session_principal", None))})

    return app


def test_session_round_trip_and_tampering() -> None:
    c = TestClient(_app())
    assert c.get("/get").json() == {"uid": None, "principal": False}
    csrf = c.get("/set").json()["csrf"]
    assert c.get("/get").json() == {"uid": "u1", "principal": True}
    # the principal on unsafe methods needs the CSRF header (apps on sibling subdomains are same-site)
    assert c.post("/post").json() == {"principal": False}
    assert c.post("/post", headers={"x-csrf-token": "nope"}).json() == {"principal": False}
    assert c.post("/post", headers={"x-csrf-token": csrf}).json() == {"principal": True}
    value = c.cookies["spaces_session"]
    payload, _, rest = value.partition(".")
    forged = TestClient(_app())
    forged.cookies.set("spaces_session", payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + rest)
    assert forged.get("/get").json()["uid"] is None  # a tampered cookie is an empty session
    wrong_key = FastAPI()
    wrong_key.add_middleware(sess.SessionMiddleware, secret_key="other" * 8, max_age=3600)

    @wrong_key.get("/uid")
    async def uid(request: Request) -> dict:
        return {"uid": sess.session_user_id(request)}

    w = TestClient(wrong_key)
    w.cookies.set("spaces_session", value)
    assert w.get("/uid").json()["uid"] is None
    other = TestClient(_app())
    other.cookies.set("spaces_session", value)
    assert other.get("/get").json()["uid"] == "u1"  # same key: valid anywhere the key is


def test_session_cookie_expires() -> None:
    c = TestClient(_app(max_age=1))
    c.get("/set")
    import time

    time.sleep(2.1)
    assert c.get("/get").json()["uid"] is None


def test_safe_next_keeps_only_local_paths() -> None:
    assert safe_next("/spaces/a/b") == "/spaces/a/b"
    for bad in ("https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)", "", None):
        assert safe_next(bad) == "/"


def test_template_readme_gets_the_new_title() -> None:
    readme = b"---\ntitle: Gradio starter\nemoji: x\nsdk: gradio\n---\n\ntitle: not front matter\n"
    out = _retitle(readme, "my-app").decode()
    assert out.startswith("---\ntitle: my-app\nemoji: x\n") and out.endswith("title: not front matter\n")
    assert _retitle(b"---\nsdk: gradio\n---\n", "x").decode().startswith("---\ntitle: x\nsdk: gradio")
    assert _retitle(b"no front matter", "x") == b"no front matter"


def test_display_helpers() -> None:
    assert stage_info("RUNNING")["serving"] and stage_info("BUILD_ERROR")["error"]
    assert stage_info("BUILDING")["busy"] and not stage_info("BUILDING")["serving"]
    assert stage_info("SOMETHING_NEW")["label"] == "Something new"
    assert duration(3600) == "1 hour" and duration(172800) == "2 days" and duration(-1) == "never"
    assert filesize(10) == "10 B" and filesize(2048) == "2.0 kB"
    assert "#f472b6" in gradient({"colorFrom": "pink", "colorTo": "nonsense"})
