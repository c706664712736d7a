"""Sleeping, starting, paused and failed Spaces through the real proxy: waking, holding, pages."""

from __future__ import annotations

import asyncio

import httpx


def _sleeping(proxy, upstreams, label="sleepy", space_id="alice/sleepy", **kwargs):
    proxy.put(label, space_id, None, "sleeping", **kwargs)
    proxy.controls.wake_to[space_id] = (label, upstreams["app-a"].addr)


def test_wake_storm_one_waker_call_all_answered(proxy, upstreams):
    _sleeping(proxy, upstreams)
    proxy.controls.wake_delay = 0.5

    async def storm() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=proxy.url("sleepy", ""), limits=limits, timeout=30) as c:
            return await asyncio.gather(*(c.get(f"/headers?i={i}") for i in range(100)))

    answers = asyncio.run(storm())
    assert [r.status_code for r in answers] == [200] * 100
    assert {r.json()["upstream"] for r in answers} == {"app-a"}
    assert proxy.controls.wake_calls == ["alice/sleepy"]
    assert proxy.proxy.wake_calls == 1


def test_api_client_is_held_until_ready(proxy, upstreams):
    _sleeping(proxy, upstreams)
    with proxy.client("sleepy") as c:
        r = c.post("/upload", content=b"x" * 1000)  # a body waits with the request
    assert r.status_code == 200 and r.json()["size"] == 1000
    assert proxy.controls.wake_calls == ["alice/sleepy"]


def test_browser_gets_the_waiting_page_then_the_app(proxy, upstreams):
    _sleeping(proxy, upstreams, title="alice/sleepy")
    proxy.controls.wake_delay = 1.0
    with proxy.client("sleepy", headers={"Accept": "text/html,application/xhtml+xml"}) as c:
        page = c.get("/")
        assert page.status_code == 200
        assert "alice/sleepy" in page.text and "/__spaces/status" in page.text
        assert page.headers["cache-control"] == "no-store"
        status = c.get("/__spaces/status").json()
        assert status["state"] == "sleeping" and status["waking"] is True
        states = [status["state"]]
        while states[-1] != "running":  # what the page's script does
            states.append(c.get("/__spaces/status").json()["state"])
        app = c.get("/headers")
    assert app.json()["upstream"] == "app-a"
    assert proxy.controls.wake_calls == ["alice/sleepy"]


def test_hold_times_out_with_503_and_retry_after(make_proxy, upstreams):
    proxy = make_proxy(wake_timeout=0.5, retry_after=7)
    _sleeping(proxy, upstreams)
    proxy.controls.wake_delay = 5
    with proxy.client("sleepy") as c:
        r = c.get("/headers")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "7"
    assert r.headers["x-error-code"] == "SpaceNotReady"


def test_failed_wake_is_reported(proxy, upstreams):
    _sleeping(proxy, upstreams)
    proxy.controls.wake_ok = False
    proxy.controls.wake_message = "Quota exceeded: 2 of 2 CPU Spaces running."
    proxy.controls.wake_delay = 0
    with proxy.client("sleepy") as c:
        r = c.get("/headers")
        status = c.get("/__spaces/status").json()
    assert r.status_code == 503 and "Quota exceeded" in r.json()["error"]
    assert "Quota exceeded" in status["note"]  # beside the status the pages show, not instead of it


def test_paused_space_does_not_wake(proxy):
    proxy.put("held", "alice/held", None, "paused", message="Paused by its owner.", stage="PAUSED")
    with proxy.client("held") as c:
        api = c.get("/")
        page = c.get("/", headers={"Accept": "text/html"})
    assert api.status_code == 503 and api.headers["x-error-code"] == "SpacePaused"
    assert api.json() == {"error": "Paused by its owner.", "state": "paused", "stage": "PAUSED"}
    assert page.status_code == 503 and "Paused by its owner." in page.text
    assert proxy.controls.wake_calls == []


def test_error_stage_shows_stage_and_message(proxy):
    proxy.put("broken", "alice/broken", None, "error", stage="BUILD_ERROR",
              message="pip could not find a version that satisfies gradio==0.0.0")
    with proxy.client("broken") as c:
        api = c.get("/")
        page = c.get("/", headers={"Accept": "text/html"})
    assert api.status_code == 503 and api.json()["stage"] == "BUILD_ERROR"
    assert "gradio==0.0.0" in api.json()["error"]
    assert "BUILD_ERROR" in page.text and "gradio==0.0.0" in page.text
    assert proxy.controls.wake_calls == []


def test_starting_space_holds_api_clients(proxy, upstreams):
    proxy.put("boot", "alice/boot", None, "starting")
    proxy.controls.wake_to["alice/boot"] = ("boot", upstreams["app-b"].addr)
    with proxy.client("boot") as c:
        assert c.get("/headers").json()["upstream"] == "app-b"
