"""More in the real browser: the tokens page against huggingface_hub, a private Space for a stranger, the phone
layout and the dark theme (screenshots to look at)."""

from __future__ import annotations

import re

from harness import Server, unique
from huggingface_hub import HfApi

from pagekit import sign_up


def test_tokens_page_makes_a_working_token(pages_server: Server, new_page, shot) -> None:  # noqa: ANN001
    page = new_page()
    user = sign_up(page, pages_server)
    page.goto(pages_server.url + "/settings/tokens")
    page.fill("#token-name", "laptop")
    page.select_option("#token-role", "write")
    page.click("form[action='/settings/tokens'] button[type=submit]")
    token = page.locator("#new-token").inner_text().strip()
    assert re.fullmatch(r"hf_[A-Za-z0-9]+", token)
    shot(page, "20-token-created")
    assert HfApi(endpoint=pages_server.url, token=token).whoami()["name"] == user
    page.goto(pages_server.url + "/settings/tokens")
    assert page.locator("#new-token").count() == 0  # shown once
    assert "laptop" in page.locator("#token-list").inner_text()
    page.click("#token-list button:text('Revoke')")
    page.wait_for_selector(".flash.success")
    assert "No tokens yet" in page.locator("#token-list").inner_text()


def test_private_space_is_not_found_for_a_stranger(pages_server: Server, new_page, shot) -> None:  # noqa: ANN001
    owner_page = new_page()
    owner = sign_up(owner_page, pages_server)
    name = unique("hidden")
    owner_page.fill("#name", name)
    owner_page.check("input[name=visibility][value=private]")
    owner_page.click("form[action='/new'] button[type=submit]")
    owner_page.wait_for_url(re.compile(rf"/spaces/{owner}/{name}"))
    assert owner_page.locator(".chip.private").count() == 1
    stranger = new_page()
    sign_up(stranger, pages_server)
    response = stranger.goto(f"{pages_server.url}/spaces/{owner}/{name}")
    assert response is not None and response.status == 404
    assert name not in stranger.content()
    shot(stranger, "21-private-404")


def test_phone_and_dark_layouts(pages_server: Server, new_page, shot) -> None:  # noqa: ANN001
    desk = new_page()
    user = sign_up(desk, pages_server)
    desk.fill("#name", "phone-demo")
    desk.click("form[action='/new'] button[type=submit]")
    desk.wait_for_url(re.compile(r"/spaces/.+/phone-demo"))
    cookies = desk.context.cookies()

    phone = new_page(width=390, height=844)
    phone.context.add_cookies(cookies)
    phone.goto(pages_server.url + "/")
    # nothing overflows sideways on a phone
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "30-phone-home")
    phone.goto(f"{pages_server.url}/spaces/{user}/phone-demo/settings")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "31-phone-settings")

    dark = new_page(dark=True)
    dark.context.add_cookies(cookies)
    dark.goto(pages_server.url + "/")
    bg = dark.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg != "rgb(248, 247, 252)"  # the dark palette applies
    shot(dark, "32-dark-home")
    dark.goto(f"{pages_server.url}/spaces/{user}/phone-demo/settings")
    shot(dark, "33-dark-settings")
    dark.goto(f"{pages_server.url}/spaces/{user}/phone-demo/logs")
    # nothing is building: the stored build log is shown and the stream says it is over (no reconnect loop)
    dark.wait_for_selector("#build-logs[data-state=done]")
    dark.wait_for_timeout(4000)  # longer than EventSource's reconnect delay: it must stay closed
    assert dark.get_attribute("#build-logs", "data-state") == "done"
    assert dark.get_attribute("#run-logs", "data-state") in ("live", "connecting")
    shot(dark, "34-dark-logs")


def test_usage_and_admin_pages(pages_server: Server, new_page, shot) -> None:  # noqa: ANN001
    page = new_page()
    user = sign_up(page, pages_server)
    page.goto(pages_server.url + "/settings/usage")
    assert user in page.locator("main").inner_text()
    shot(page, "40-usage")
    response = page.goto(pages_server.url + "/admin")
    assert response is not None and response.status == 404
    pages_server.user(user, admin=True)
    page.goto(pages_server.url + "/admin")
    for section in ("#nodes", "#queue", "#builds", "#spaces", "#grants"):
        assert page.locator(section).count() == 1
    shot(page, "41-admin")


def test_standalone_duplicate_page_keeps_its_content_off_the_card_edge(pages_server: Server, new_page,  # noqa: ANN001
                                                                       shot) -> None:
    desk = new_page()
    user = sign_up(desk, pages_server)
    desk.fill("#name", "dup-source")
    desk.click("form[action='/new'] button[type=submit]")
    desk.wait_for_url(re.compile(r"/spaces/.+/dup-source"))
    phone = new_page(width=390, height=844)
    phone.context.add_cookies(desk.context.cookies())
    for page, name in ((desk, "34-duplicate-page"), (phone, "35-phone-duplicate-page")):
        page.goto(f"{pages_server.url}/spaces/{user}/dup-source/duplicate")
        card = page.locator(".panel.dialog-page").bounding_box()
        assert card is not None and card["x"] >= 12, f"{name}: the card touches the window's edge"
        # not the App tab: that one reloads itself when the stage changes, which would wipe what is typed here
        assert page.get_attribute(".space-head", "data-reload") == "0"
        for selector in ("#dup-title", "#dup-name", "button[type=submit]"):
            box = page.locator(f".panel.dialog-page {selector}").bounding_box()
            assert box is not None, selector
            inset = min(box["x"] - card["x"], card["x"] + card["width"] - box["x"] - box["width"])
            assert inset >= 16, f"{name}: {selector} is {inset:.0f} px from the card's edge"
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
        shot(page, name)
