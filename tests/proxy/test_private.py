"""Private Spaces through the real proxy: tokens, gradio_client's header, the browser cookie, the 404 for others."""

from __future__ import annotations

import pytest


@pytest.fixture
def private(proxy, upstreams):
    proxy.put("secret", "alice/secret", upstreams["app-a"].addr, private=True)
    proxy.controls.tokens.add("hf_good")
    proxy.controls.cookies.add("ticket-ok")
    return proxy


def _headers(answer: dict) -> dict[str, str]:
    return {k: v for k, v in answer["headers"]}


def test_no_or_wrong_credentials_look_exactly_like_an_unknown_space(private):
    with private.client("secret") as c, private.client("nobody") as unknown:
        for headers in ({}, {"Authorization": "Bearer hf_bad"}, {"Cookie": "spaces_app_auth=forged"}):
            for accept in ("application/json", "text/html"):
                mine = c.get("/headers", headers={**headers, "Accept": accept})
                none = unknown.get("/headers", headers={**headers, "Accept": accept})
                assert mine.status_code == none.status_code == 404
                assert mine.content == none.content


@pytest.mark.parametrize("header", ["Authorization", "x-hf-authorization"])
def test_a_members_token_gets_through_and_is_not_forwarded(private, header):
    with private.client("secret") as c:
        r = c.get("/headers", headers={header: "Bearer hf_good"})
    assert r.status_code == 200
    seen = _headers(r.json())
    assert "authorization" not in seen and "x-hf-authorization" not in seen


def test_authorize_is_cached(private):
    with private.client("secret") as c:
        for _ in range(5):
            assert c.get("/headers", headers={"Authorization": "Bearer hf_good"}).status_code == 200
    assert private.controls.auth_calls == [("alice/secret", "hf_good", None)]


def test_browser_ticket_sets_the_cookie_and_the_cookie_is_not_forwarded(private):
    with private.client("secret", follow_redirects=False) as c:
        r = c.get("/__spaces/auth?ticket=ticket-ok&next=/headers%3Fx%3D1")
        assert r.status_code == 303
        assert r.headers["location"] == "/headers?x=1"
        assert "spaces_app_auth=ticket-ok" in r.headers["set-cookie"]
        assert "HttpOnly" in r.headers["set-cookie"]
        r = c.get("/headers", headers={"Cookie": "theme=dark; spaces_app_auth=ticket-ok; lang=en"})
    assert r.status_code == 200
    assert _headers(r.json())["cookie"] == "theme=dark; lang=en"


def test_ticket_endpoint_refuses_bad_tickets_and_open_redirects(private):
    with private.client("secret", follow_redirects=False) as c:
        assert c.get("/__spaces/auth?ticket=nope&next=/").status_code == 404
        r = c.get("/__spaces/auth?ticket=ticket-ok&next=//evil.example/")
        assert r.headers["location"] == "/"


def test_status_endpoint_of_a_private_space_needs_credentials(private):
    with private.client("secret") as c:
        assert c.get("/__spaces/status").status_code == 404
        ok = c.get("/__spaces/status", headers={"Authorization": "Bearer hf_good"})
    assert ok.status_code == 200 and ok.json()["state"] == "running"


def test_auth_redirect_sends_browsers_to_the_hub(make_proxy, upstreams):
    proxy = make_proxy(auth_redirect_url="http://localhost:8000/spaces-auth")
    proxy.put("secret", "alice/secret", upstreams["app-a"].addr, private=True)
    with proxy.client("secret", follow_redirects=False) as c:
        r = c.get("/app?x=1", headers={"Accept": "text/html"})
        api = c.get("/app")
    assert r.status_code == 302
    assert r.headers["location"] == ("http://localhost:8000/spaces-auth?next="
                                     f"http%3A%2F%2Fsecret.localhost%3A{proxy.port}%2Fapp%3Fx%3D1")
    assert api.status_code == 404


# ---- the platform's ticket exchange (spaces.hub.tickets): one use, a cookie of its own, partitioned -------------
KEY = "test-signing-key"


@pytest.fixture
def exchanging(make_proxy, upstreams):
    from spaces.hub.tickets import TicketExchange

    proxy = make_proxy(exchange=TicketExchange(KEY).redeem)
    proxy.put("secret", "space-1", upstreams["app-a"].addr, private=True)
    return proxy


def _cookie(set_cookie: str) -> tuple[str, set[str]]:
    pair, *attributes = [part.strip() for part in set_cookie.split(";")]
    return pair.partition("=")[2], {a.lower() for a in attributes}


def test_a_url_ticket_is_exchanged_once_for_a_partitioned_cookie_of_its_own(exchanging):
    from spaces.hub.tickets import mint_ticket, verify_ticket

    ticket = mint_ticket(KEY, "user-1", "space-1")
    with exchanging.client("secret", follow_redirects=False) as c:
        r = c.get(f"/__spaces/auth?ticket={ticket}&next=/headers")
        assert r.status_code == 303 and r.headers["location"] == "/headers"
        assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
        value, attributes = _cookie(r.headers["set-cookie"])
        # *.localhost over http is a secure context: the cookie survives blocked third-party cookies (CHIPS)
        assert {"httponly", "samesite=none", "secure", "partitioned", "path=/"} <= attributes
        assert value != ticket and verify_ticket(KEY, value, "space-1") == "user-1"
        assert verify_ticket(KEY, ticket, "space-1") is None, "a URL ticket is no cookie"
        exchanging.controls.cookies.add(value)
        assert c.get("/headers", headers={"Cookie": f"spaces_app_auth={value}"}).status_code == 200

        # the same ticket again: refused without the cookie, a plain redirect with it (a reloaded frame)
        again = c.get(f"/__spaces/auth?ticket={ticket}&next=/")
        assert again.status_code == 404
        reload = c.get(f"/__spaces/auth?ticket={ticket}&next=/", headers={"Cookie": f"spaces_app_auth={value}"})
        assert reload.status_code == 303 and "set-cookie" not in reload.headers


def test_a_ticket_for_another_space_or_kind_is_refused(exchanging):
    from spaces.hub.tickets import mint_session, mint_ticket

    with exchanging.client("secret", follow_redirects=False) as c:
        for ticket in (mint_ticket(KEY, "user-1", "space-2"), mint_session(KEY, "user-1", "space-1"),
                       mint_ticket("another-key", "user-1", "space-1")):
            assert c.get(f"/__spaces/auth?ticket={ticket}&next=/").status_code == 404
        assert not exchanging.controls.cookies


def test_the_cookie_is_lax_on_plain_http_outside_localhost():
    from spaces.proxy.gate import Gate
    from spaces.proxy.routes import MemoryRouteTable
    from spaces.proxy.settings import ProxySettings

    class Head:
        def __init__(self, host: bytes) -> None:
            self.hostname = host

    def gate(proto: str) -> Gate:
        return Gate(routes=MemoryRouteTable(), apps_domain="spaces.example", hub_upstream=("127.0.0.1", 9),
                    waker=None, authorize=None, on_upstream_dead=lambda _: None,  # type: ignore[arg-type]
                    settings=ProxySettings(forwarded_proto=proto))

    plain = gate("http")._app_cookie(Head(b"alice-x.spaces.example"), "v")  # type: ignore[arg-type]
    assert plain.endswith("; SameSite=Lax") and "Secure" not in plain and "Partitioned" not in plain
    tls = gate("https")._app_cookie(Head(b"alice-x.spaces.example"), "v")  # type: ignore[arg-type]
    assert tls.endswith("; SameSite=None; Secure; Partitioned")
