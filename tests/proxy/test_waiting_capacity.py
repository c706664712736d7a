"""A Space waiting for capacity says so on the proxy's waiting page and its status, never "waking up"."""

from __future__ import annotations

from spaces.proxy import pages

QUEUED = ("Waiting for cpu-basic capacity: 2 Spaces ahead of this one (every node that fits it is full; it needs "
          "0.1 core and 96 MB). It starts by itself as soon as a running Space sleeps, stops or is paused.")


def test_the_waiting_page_of_a_queued_space_says_it_waits_for_room(proxy) -> None:  # noqa: ANN001
    proxy.put("queued", "alice/queued", None, "starting", title="alice/queued", message=QUEUED, stage="APP_STARTING")
    with proxy.client("queued", headers={"Accept": "text/html"}) as c:
        page = c.get("/").text
        status = c.get("/__spaces/status").json()
    assert "waiting for room on the server" in page and "waking up" not in page
    assert "2 Spaces ahead of this one" in page and "pause" in page
    assert status["queued"] is True and status["message"] == QUEUED
    assert status["headline"].startswith("This Space is waiting for room")


def test_only_a_capacity_message_counts_as_waiting_for_room() -> None:
    assert pages.waiting_for_capacity(QUEUED)
    assert not pages.waiting_for_capacity("Waiting for the builder")
