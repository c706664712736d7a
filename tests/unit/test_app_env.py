"""What an app's environment holds: Hugging Face's variables, the Space's own, and SDK telemetry off by default."""

from __future__ import annotations

from spaces.db.models import Account, Space, SpaceVariable
from spaces.db.session import Database
from spaces.domain import hardware as hw
from spaces.runtime.specs import app_env


def _env(db: Database, sdk: str, variables: dict[str, str], *, telemetry: bool = False) -> dict[str, str]:
    with db.session() as s:
        owner = s.query(Account).filter_by(key="u").one_or_none() or Account(name="u", key="u")
        s.add(owner)
        s.flush()
        space = Space(owner_id=owner.id, name=f"demo-{sdk}", repo_id=f"u/demo-{sdk}", key=f"u/demo-{sdk}",
                      subdomain=f"u-demo-{sdk}", sdk=sdk)
        s.add(space)
        s.flush()
        for key, value in variables.items():
            s.add(SpaceVariable(space_id=space.id, key=key, value=value))
        s.flush()
        return app_env(s, space, "http://u-demo.apps.test", hw.get_flavor("cpu-basic"), telemetry=telemetry)


def test_sdk_telemetry_is_off_by_default(db: Database) -> None:
    gradio = _env(db, "gradio", {})
    assert gradio["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert gradio["SYSTEM"] == "spaces" and gradio["SPACE_ID"] == "u/demo-gradio"


def test_streamlit_telemetry_is_off_too_and_docker_apps_get_nothing_extra(db: Database) -> None:
    assert _env(db, "streamlit", {})["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"
    docker = _env(db, "docker", {})
    assert not [k for k in docker if k.startswith(("GRADIO_", "STREAMLIT_"))], sorted(docker)


def test_a_spaces_own_variable_wins(db: Database) -> None:
    assert _env(db, "gradio", {"GRADIO_ANALYTICS_ENABLED": "True"})["GRADIO_ANALYTICS_ENABLED"] == "True"


def test_the_operator_can_allow_telemetry(db: Database) -> None:
    assert "GRADIO_ANALYTICS_ENABLED" not in _env(db, "gradio", {}, telemetry=True)
