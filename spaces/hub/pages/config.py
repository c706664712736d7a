"""Settings of the web pages. The lead nests this model into ``spaces.settings.Settings`` as ``pages``
(``SPACES_PAGES__SESSION_DAYS=7``); until then the defaults apply."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PagesSettings(BaseModel):
    """Knobs of the browser UI. Sign-up itself is ``Settings.signup_enabled``."""

    session_days: int = Field(30, ge=1, description="days a browser stays signed in without activity")
    explore_page_size: int = Field(24, ge=1, le=200, description="Space cards per page on the explore page")
    cookie_name: str = Field("spaces_session", description="name of the signed session cookie")
    min_password_length: int = Field(8, ge=6, description="shortest password accepted at sign-up")


def pages_settings(settings: object) -> PagesSettings:
    found = getattr(settings, "pages", None)
    return found if isinstance(found, PagesSettings) else PagesSettings()
