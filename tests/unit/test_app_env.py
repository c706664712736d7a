"""What an app's environment holds: Hugging Face's variables, the Space's own, and SDK telemetry off by default."""

from __future__ import annotations

from spaces.db.models import Account, Space, SpaceVariable
from spaces.db.session import Database
from spaces.domain import hardware as hw
from spaces.runtime.specs import app_env


def _env(db: Database, sdk: str, variables: dict[str, str], *, telemetry: bool = False,
         hub_endpoint: str | None = None) -> dict[str, str]:
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
        return app_env(s, space, "http://u-demo.apps.test", hw.get_flavor("cpu-basic"), telemetry=telemetry,
                       hub_endpoint=hub_endpoint)


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


def test_hf_endpoint_names_this_hub_and_no_token_is_lent(db: Database) -> None:
    env = _env(db, "gradio", {}, hub_endpoint="http://hub.test:8000")
    assert env["HF_ENDPOINT"] == "http://hub.test:8000"
    assert not [k for k in env if "TOKEN" in k], sorted(env)  # only a secret HF_TOKEN the owner sets
    assert _env(db, "docker", {"HF_ENDPOINT": "https://huggingface.co"},
                hub_endpoint="http://hub.test:8000")["HF_ENDPOINT"] == "https://huggingface.co"


def test_the_hub_endpoint_defaults_to_the_public_url() -> None:
    from spaces.settings import RuntimeSettings, Settings

    assert Settings(port=8123).space_hub_endpoint == "http://localhost:8123"
    assert Settings(public_url="https://hub.example/").space_hub_endpoint == "https://hub.example"
    assert Settings(runtime=RuntimeSettings(hub_endpoint="http://10.0.0.1:8000")).space_hub_endpoint == \
        "http://10.0.0.1:8000"
