"""Assemble what an instance runs with: its working copy, its environment and its limits.

The environment is exactly what Hugging Face gives an app (``SPACE_ID``, ``SPACE_HOST``, ``SPACE_AUTHOR_NAME``,
``SPACE_REPO_NAME``, ``SPACE_TITLE``, ``SPACE_CREATOR_USER_ID``, ``CPU_CORES``, ``MEMORY``, ``ACCELERATOR``,
``SYSTEM=spaces`` for Gradio) plus the Space's variables and secrets; nothing of the platform's own environment.
``HF_ENDPOINT`` names this hub (the Hub's Spaces need none: huggingface.co is the default), so unchanged demo code
(``hf_hub_download("alice/tiny-model", ...)``) loads from here. No token is given: a Space that reads private repos
does what it does on the Hub, a secret ``HF_TOKEN`` set by its owner (huggingface_hub reads it by itself); the
owner's access is never lent to an app silently.
One exception, for the operator's sake: the SDKs' usage telemetry to their vendors (``TELEMETRY_OFF``) is off
unless the operator allows it (``runtime.sdk_telemetry``) or the Space sets the variable itself.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from spaces.builder.plan import Artifact
from spaces.db.models import Space, SpaceSecret, SpaceVariable
from spaces.domain import hardware as hw
from spaces.runtime.contracts import LABEL_MANAGED, LABEL_SHA, LABEL_SPACE, InstanceSpec, Limits
from spaces.storage.gitrepo import GitRepo

DEFAULT_PORTS = {"gradio": 7860, "streamlit": 8501, "docker": 7860, "static": 8000}
#: what turns off each SDK's usage telemetry: Gradio's reports to huggingface.co at every launch (two threads that
#: race the app's start-up for the CPU), Streamlit's browser-side usage statistics
TELEMETRY_OFF = {"gradio": {"GRADIO_ANALYTICS_ENABLED": "False"},
                 "streamlit": {"STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}}


def variables_and_secrets(s: Session, space: Space) -> tuple[dict[str, str], dict[str, str]]:
    from sqlalchemy import select

    variables = {v.key: v.value for v in s.scalars(select(SpaceVariable).where(SpaceVariable.space_id == space.id))}
    secrets = {v.key: v.value for v in s.scalars(select(SpaceSecret).where(SpaceSecret.space_id == space.id))}
    return variables, secrets


def app_env(s: Session, space: Space, app_host: str, flavor: hw.Flavor, *,
            telemetry: bool = False, hub_endpoint: str | None = None) -> dict[str, str]:
    variables, secrets = variables_and_secrets(s, space)
    card = space.card_data or {}
    env = {**({} if telemetry else TELEMETRY_OFF.get(space.sdk or "", {})),
           **({"HF_ENDPOINT": hub_endpoint} if hub_endpoint else {}),  # a Space's own variable wins
           **variables, **secrets}
    env.update({
        "SPACE_ID": space.repo_id,
        "SPACE_AUTHOR_NAME": space.owner.name,
        "SPACE_REPO_NAME": space.name,
        "SPACE_TITLE": str(card.get("title") or space.name),
        "SPACE_HOST": app_host.split("://", 1)[-1],
        "SPACE_CREATOR_USER_ID": space.created_by or space.owner_id,
        "CPU_CORES": str(int(flavor.cpu) if float(flavor.cpu).is_integer() else flavor.cpu),
        "MEMORY": f"{int(flavor.memory_gb)}Gi",
        "ACCELERATOR": flavor.name if flavor.gpu_count else "none",
    })
    if space.sdk == "gradio":
        env["SYSTEM"] = "spaces"
    return env


def workdir_for(root: Path, repo: GitRepo, space_id: str, sha: str) -> Path:
    """A checkout of ``sha`` for the instance (made once per revision; an interrupted export is redone)."""
    path = root / space_id / sha
    if not (path / ".spaces-complete").exists():
        tmp = root / space_id / f".{sha}.tmp"
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(path, ignore_errors=True)
        repo.export(sha, tmp)
        (tmp / ".spaces-complete").touch()
        tmp.rename(path)
    return path


def instance_spec(s: Session, space: Space, artifact: Artifact, *, app_host: str, workdir: Path,
                  limits: Limits, node: str, startup_timeout: float, telemetry: bool = False,
                  hub_endpoint: str | None = None) -> InstanceSpec:
    flavor = hw.get_flavor(space.hardware)
    card = space.card_data or {}
    sdk = space.sdk or "gradio"
    port = app_port(sdk, card)
    app_file = card.get("app_file") or {"gradio": "app.py", "streamlit": "app.py", "static": "index.html"}.get(sdk)
    env = app_env(s, space, app_host, flavor, telemetry=telemetry, hub_endpoint=hub_endpoint)
    if limits.cpu < flavor.cpu:  # clamped to the node (flavors.fit_limits): the app sees what it really has
        env["CPU_CORES"] = f"{limits.cpu:g}"
    if limits.memory_mb < int(flavor.memory_gb * 1024):
        env["MEMORY"] = f"{limits.memory_mb}Mi"
    return InstanceSpec(
        space_id=space.id, repo_id=space.repo_id, sha=artifact.sha, sdk=sdk, artifact=artifact,
        workdir=str(workdir), app_file=app_file, port=port,
        env=env, limits=limits,
        node=node, flavor=flavor.name, startup_timeout=startup_timeout,
        labels={LABEL_MANAGED: "true", LABEL_SPACE: space.id, LABEL_SHA: artifact.sha})


def app_port(sdk: str | None, card: dict | None) -> int:
    """The port the app is expected to open: README ``app_port`` (Docker Spaces), else its SDK's."""
    card, sdk = card or {}, sdk or "gradio"
    if sdk == "docker" and isinstance(card.get("app_port"), int):
        return card["app_port"]
    return DEFAULT_PORTS.get(sdk, 7860)


def startup_timeout(card: dict | None, default: float = 1800.0) -> float:
    """README's ``startup_duration_timeout`` ("30m", "1h") in seconds; ``default`` when unset or unreadable."""
    value = (card or {}).get("startup_duration_timeout")
    if value in (None, ""):
        return default
    from spaces.domain.cardconfig import parse_duration

    try:
        return float(parse_duration(str(value)))
    except Exception:  # a bad value is reported as a config problem on commit; here the default applies
        return default
