"""The proxy's waiting page (what the App tab's frame shows until the app answers) says what the hub's pages say
around it: its headline, badge, stage and message, and those of ``/__spaces/status`` that its script polls, are
the status the hub derives (``spaces.hub.status``, through ``spaces.domain.status``) from the Space record the
route was published with (issue 24: the frame said "waking up" under a page that said "sleeping"). The live
browser check of the frame is tests/platform/test_platform_status_browser.py."""

from __future__ import annotations

import html
import re

import pytest

from spaces.db.models import Space
from spaces.hub.status import card_status
from spaces.runtime.decide import ASLEEP_MESSAGE, STARTING_MESSAGE

QUEUED = "Waiting for cpu-basic capacity: 2 Spaces ahead of this one (every node that fits it is full)."

#: (route state, stage, reason, message), as the reconciler publishes a route and records the stage
CASES = [
    ("sleeping", "SLEEPING", "idle", ASLEEP_MESSAGE),
    ("sleeping", "STOPPED", "idle", ASLEEP_MESSAGE),
    ("starting", "APP_STARTING", "starting", STARTING_MESSAGE),
    ("starting", "APP_STARTING", "waiting_for_capacity", QUEUED),
    ("starting", "BUILDING", "build_queued", "Build of 1a2b3c4 is queued."),
]


def page_status(text: str) -> dict[str, str]:
    """What the waiting page shows, read from the same markers the hub's pages carry."""
    def one(pattern: str) -> str:
        found = re.search(pattern, text, re.S)
        assert found, f"{pattern} not on the page: {text[:600]}"
        return html.unescape(found.group(1))
    return {"headline": one(r"<p id=\"hd\" data-status-headline>(.*?)</p>"),
            "label": one(r"data-stage-badge data-stage=\"[^\"]*\">(.*?)</span>"),
            "stage": one(r"data-stage-badge data-stage=\"([^\"]*)\""),
            "message": one(r"<p id=\"msg\" data-stage-message>(.*?)</p>")}


def hub_status(stage: str, reason: str, message: str) -> dict[str, str]:
    """What the Space's page says for the same record once the visit's wake is written down (asleep: False)."""
    st = card_status(Space(stage=stage, stage_reason=reason, stage_message=message, asleep=False,
                           hardware="cpu-basic", sleep_time=None))
    return {"headline": st.headline, "label": st.label, "stage": st.stage, "message": st.message}


@pytest.mark.parametrize("state,stage,reason,message", CASES)
def test_the_waiting_page_says_what_the_spaces_page_says(proxy, state: str, stage: str, reason: str,  # noqa: ANN001
                                                         message: str) -> None:
    proxy.controls.wake_delay = 30  # the wake stays under way while we look
    proxy.put("s", "alice/s", None, state, title="alice/s", stage=stage, reason=reason, message=message)
    with proxy.client("s", headers={"Accept": "text/html"}) as c:
        shown = page_status(c.get("/").text)
        polled = c.get("/__spaces/status").json()
    expected = hub_status(stage, reason, message)
    assert shown == expected
    assert {k: polled[k] for k in expected} == expected
    if state == "sleeping":  # the page opened it: both say it wakes, neither that it sleeps
        assert expected["headline"] == "This Space is waking up" and "sleep" not in expected["message"].lower()
    if reason == "waiting_for_capacity":
        assert expected["headline"] == "This Space is waiting for room on the server" and polled["queued"] is True


def test_a_route_without_its_reason_still_says_it_waits_for_room(proxy) -> None:  # noqa: ANN001
    """Routes kept in Redis by an older version carry no reason: the capacity message still says it."""
    proxy.put("q", "alice/q", None, "starting", title="alice/q", stage="APP_STARTING", message=QUEUED)
    with proxy.client("q", headers={"Accept": "text/html"}) as c:
        shown = page_status(c.get("/").text)
    assert shown == hub_status("APP_STARTING", "waiting_for_capacity", QUEUED)


def test_a_failed_wake_is_a_note_beside_the_status(proxy) -> None:  # noqa: ANN001
    proxy.controls.wake_ok, proxy.controls.wake_delay = False, 0
    proxy.controls.wake_message = "The Space is taking long to start; try again in a moment."
    proxy.put("f", "alice/f", None, "sleeping", title="alice/f", stage="SLEEPING", reason="idle",
              message=ASLEEP_MESSAGE)
    with proxy.client("f") as c:
        c.get("/")  # an API client's wake fails
        status = c.get("/__spaces/status").json()
        page = c.get("/", headers={"Accept": "text/html"}).text
    assert status["note"] == "The Space is taking long to start; try again in a moment."
    assert '<p id="nt">The Space is taking long to start' in page
    assert {k: status[k] for k in ("stage", "label")} == {"stage": "SLEEPING", "label": "Waking up"}
