"""In the real browser: the admin page's actions (pause, restart, sleep, delete, grant quota; builds and queue
shown), the quota box in words and the hardware this server cannot run greyed with why; at desktop and phone
width, with screenshots (``test-artifacts/screenshots/5x-*``)."""

from __future__ import annotations

import re

from harness import Server, unique
from pagekit import Web, sign_up


def _no_sideways_scroll(page, width: int) -> None:  # noqa: ANN001
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_admin_actions_in_the_browser(pages_server: Server, new_page, shot) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    owner_page = new_page()
    owner = sign_up(owner_page, pages_server)
    web = Web(pages_server)
    assert web.sign_in(owner).status_code == 303
    api = web.api()
    web.close()
    repo_id = f"{owner}/{unique('adm')}"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio")

    page = new_page()
    admin = sign_up(page, pages_server)
    pages_server.user(admin, admin=True)
    page.goto(f"{pages_server.url}/admin?q={owner}")
    assert "Hook:" not in page.locator("main").inner_text()
    row = page.locator(f'tr[data-space="{repo_id}"]')
    shot(page, "50-admin-desktop")

    row.get_by_role("button", name="Pause").click()
    expect(page.locator(".flash.success")).to_contain_text(f"{repo_id}: paused")
    assert api.get_space_runtime(repo_id).stage == "PAUSED"
    page.goto(f"{pages_server.url}/admin?q={owner}")
    expect(row.locator(".badge")).to_contain_text(re.compile("paused", re.I))
    row.get_by_role("button", name="Restart").click()
    expect(page.locator(".flash.success")).to_contain_text(f"{repo_id}: restarting")
    assert api.get_space_runtime(repo_id).stage != "PAUSED"
    page.goto(f"{pages_server.url}/admin?q={owner}")
    row.get_by_role("button", name="Sleep now").click()
    expect(page.locator(".flash.success")).to_contain_text(f"{repo_id}: going to sleep")

    # grant the owner cpu-upgrade: their settings then offer it instead of greying it out
    settings = f"{pages_server.url}/spaces/{repo_id}/settings"
    owner_page.goto(settings)
    expect(owner_page.locator('input[value="cpu-upgrade"]')).to_be_disabled()
    page.goto(f"{pages_server.url}/admin#grants")
    grants = page.locator("#grants")
    grants.get_by_label("Account").fill(owner)
    grants.get_by_label("Quota").select_option("running:cpu-upgrade")
    grants.get_by_label("Limit").fill("1")
    grants.get_by_role("button", name="Grant").click()
    expect(page.locator(".flash.success")).to_contain_text(f"{owner}: running:cpu-upgrade = 1.")
    expect(page.locator("#grant-list")).to_contain_text(owner)
    owner_page.goto(settings)
    expect(owner_page.locator('input[value="cpu-upgrade"]')).to_be_enabled()
    expect(owner_page.locator("#quota")).to_contain_text("Running CPU Upgrade Spaces")
    expect(owner_page.locator('label.flavor.off:has(input[value="t4-small"])')).to_contain_text(
        "This server has no GPU")
    shot(owner_page, "51-settings-hardware-desktop")

    # phone width: the admin page and the settings fit, and delete works there
    phone = new_page(width=390, height=844)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{pages_server.url}/admin?q={owner}")
    _no_sideways_scroll(phone, 390)
    shot(phone, "52-admin-phone")
    prow = phone.locator(f'tr[data-space="{repo_id}"]')
    prow.locator("summary", has_text="Delete").click()
    button = prow.get_by_role("button", name="Delete", exact=True)
    expect(button).to_be_disabled()
    prow.get_by_label(f"Type {repo_id} to confirm").fill(repo_id)
    button.click()
    expect(phone.locator(".flash.success")).to_contain_text(f"{repo_id}: deleted")
    assert not api.repo_exists(repo_id, repo_type="space")
    shot(phone, "53-admin-phone-deleted")

    phone_owner = new_page(width=390, height=844)
    phone_owner.context.add_cookies(owner_page.context.cookies())
    other = f"{owner}/{unique('hw')}"
    api.create_repo(other, repo_type="space", space_sdk="gradio")
    phone_owner.goto(f"{pages_server.url}/spaces/{other}/settings")
    _no_sideways_scroll(phone_owner, 390)
    shot(phone_owner, "54-settings-hardware-phone")
