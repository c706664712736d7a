"""BuildPlan -> Dockerfile text: pure functions, one Dockerfile per SDK.

Layer order is the point (as in repo2docker): system packages, then *only* the dependency files
(``pre-requirements.txt``, ``requirements.txt``) are copied and installed together with the SDK pin, and only
then is the app code copied. A code-only push changes nothing above ``COPY . /home/user/app``, so the dependency
layers come from the build cache and the rebuild takes seconds.

What the generated images assume of the base image (``spaces/base-python:3.11`` from ``infra/images/build-base.sh``
provides all of it): Debian with apt, a virtual environment at ``/opt/venv`` on ``PATH`` owned by user ``user``
(uid 1000, ``HOME=/home/user``, as on Hugging Face Spaces), and ``uv`` in it (plain ``pip`` is used when it lacks uv).

Two optional BuildKit secrets are mounted into the install steps, never stored in a layer:

* ``spaces_ca``: a CA bundle that pip and uv trust instead of their default (for a TLS-inspecting egress proxy);
* ``spaces_index_url``: the package index URL (it may carry credentials, so it is not a build arg).

Absent secrets simply leave the defaults in place, so one Dockerfile works with or without them. The user's own
secrets reach a ``docker``-SDK Dockerfile the way Hugging Face documents it
(``RUN --mount=type=secret,id=NAME,mode=0444,required=true``) and variables as ``--build-arg``; see ``image.py``.

No ``# syntax=`` line: it would make BuildKit pull a frontend image, and no registry is reachable here; the
frontend built into Docker 20.10+ already understands ``RUN --mount``.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field

from spaces.builder import hooks
from spaces.builder.plan import BuildPlan

APP_DIR = "/home/user/app"
VENV_PYTHON = "/opt/venv/bin/python"
CA_SECRET = "spaces_ca"
INDEX_SECRET = "spaces_index_url"
DEFAULT_BASE_IMAGES = {"3.11": "spaces/base-python:3.11"}

_PKG = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(:[a-z0-9]+)?(=[A-Za-z0-9.+~:\-]+)?$")


@dataclass(frozen=True)
class DockerfileOptions:
    """What besides the plan shapes a generated Dockerfile (from the builder's settings)."""

    base_images: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_BASE_IMAGES))
    default_python: str = "3.11"


@dataclass(frozen=True)
class Rendered:
    """A Dockerfile and the notes the build log should show (e.g. a Python version substituted)."""

    text: str
    base_image: str | None
    notes: tuple[str, ...] = ()


class DockerfileError(ValueError):
    """The plan cannot be turned into a Dockerfile (e.g. a bad package name in packages.txt)."""


def choose_base(python_version: str, options: DockerfileOptions) -> tuple[str, str | None]:
    """Pick the base image for a Python version: exact, then same major.minor, else the default with a note."""
    images = options.base_images
    wanted = python_version.strip()
    if wanted in images:
        return images[wanted], None
    minor = ".".join(wanted.split(".")[:2])
    if minor in images:
        return images[minor], None
    fallback = images.get(options.default_python) or next(iter(images.values()))
    have = ", ".join(sorted(images))
    note = (f"python_version {wanted} is not available as a base image here (available: {have}); "
            f"building on {fallback} instead.") if wanted else None
    return fallback, note


def system_packages(plan: BuildPlan) -> list[str]:
    """packages.txt lines, checked: a name that could inject shell is refused with the offending line."""
    pkgs = []
    for raw in plan.system_packages:
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        if not _PKG.match(name):
            raise DockerfileError(f"packages.txt: {raw.strip()!r} is not a valid Debian package name.")
        pkgs.append(name)
    return pkgs


def _install(args: str) -> str:
    """One RUN that installs Python packages with uv (pip as fallback), optional CA / index secrets mounted."""
    mounts = (f"--mount=type=secret,id={CA_SECRET},uid=1000 --mount=type=secret,id={INDEX_SECRET},uid=1000 "
              "--mount=type=cache,target=/home/user/.cache/uv,uid=1000,gid=1000")
    return (f"RUN {mounts} \\\n"
            f"    if [ -s /run/secrets/{CA_SECRET} ]; then export SSL_CERT_FILE=/run/secrets/{CA_SECRET} "
            f"PIP_CERT=/run/secrets/{CA_SECRET}; fi; \\\n"
            f"    if [ -s /run/secrets/{INDEX_SECRET} ]; then export UV_INDEX_URL=\"$(cat /run/secrets/{INDEX_SECRET})\" "
            f"PIP_INDEX_URL=\"$(cat /run/secrets/{INDEX_SECRET})\"; fi; \\\n"
            f"    if command -v uv >/dev/null; then UV_LINK_MODE=copy uv pip install --python {VENV_PYTHON} "
            f"--compile-bytecode {args}; \\\n"
            f"    else {VENV_PYTHON} -m pip install --no-cache-dir {args}; fi")


def _python_image(plan: BuildPlan, options: DockerfileOptions, sdk_pin: str, env: dict[str, str],
                  cmd: list[str]) -> Rendered:
    base, note = choose_base(plan.python_version, options)
    lines = [f"FROM {base}", "USER root"]
    pkgs = system_packages(plan)
    if pkgs:
        lines.append("RUN apt-get update \\\n && apt-get install -y --no-install-recommends "
                     + " ".join(pkgs) + " \\\n && rm -rf /var/lib/apt/lists/*")
    lines += ["USER user", f"WORKDIR {APP_DIR}"]
    hook = hooks.dockerfile_step(plan.sdk, VENV_PYTHON)
    if hook:  # first: it changes least often, so every layer below keeps its cache
        lines += ["# the platform's start-up hook (spaces/builder/venv_hook.py): no Spaces hot-reload server, the "
                  "SDK import frozen for the collector", hook]
    # dependency files only: their content (not the code's) keys the cache of the install layers below
    if plan.pre_requirements.strip():
        lines.append("COPY --chown=user pre-requirements.txt /tmp/deps/pre-requirements.txt")
        lines.append(_install("-r /tmp/deps/pre-requirements.txt"))
    req = ""
    if plan.requirements.strip():
        lines.append("COPY --chown=user requirements.txt /tmp/deps/requirements.txt")
        req = "-r /tmp/deps/requirements.txt "
    if req or sdk_pin:
        lines.append(_install(f"{req}{sdk_pin}".strip()))
    lines.append(f"COPY --chown=user . {APP_DIR}")
    lines.append("ENV " + " \\\n    ".join(f"{k}={json.dumps(v)}" for k, v in env.items()))
    lines.append(f"EXPOSE {plan.app_port}")
    lines.append("CMD " + json.dumps(cmd))
    return Rendered("\n".join(lines) + "\n", base, (note,) if note else ())


def _pin(package: str, version: str | None) -> str:
    return f'"{package}=={version}"' if version else package


def render_gradio(plan: BuildPlan, options: DockerfileOptions) -> Rendered:
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(plan.app_port), "SYSTEM": "spaces",
           "HOME": "/home/user", "PYTHONUNBUFFERED": "1"}
    # like Hugging Face's images: the `spaces` package next to gradio (its Spaces integration imports it)
    return _python_image(plan, options, _pin("gradio", plan.sdk_version) + " spaces", env,
                         ["python", plan.app_file or "app.py"])


def render_streamlit(plan: BuildPlan, options: DockerfileOptions) -> Rendered:
    # usage statistics: the instance's environment decides (runtime.sdk_telemetry, spaces/runtime/specs.py)
    env = {"STREAMLIT_SERVER_HEADLESS": "true", "HOME": "/home/user", "PYTHONUNBUFFERED": "1"}
    cmd = ["streamlit", "run", plan.app_file or "app.py", "--server.port", str(plan.app_port),
           "--server.address", "0.0.0.0", "--server.headless", "true",
           # embedded in the Space page from another origin, as on Hugging Face
           "--server.enableCORS", "false", "--server.enableXsrfProtection", "false"]
    return _python_image(plan, options, _pin("streamlit", plan.sdk_version), env, cmd)


def render_static(plan: BuildPlan, options: DockerfileOptions) -> Rendered:
    """Static files served by the standard library's http.server from the app file's folder (no dependencies)."""
    base, _ = choose_base(options.default_python, options)
    folder = posixpath.dirname(plan.app_file or "index.html")
    root = posixpath.join(APP_DIR, folder) if folder else APP_DIR
    text = "\n".join([
        f"FROM {base}", "USER user", f"WORKDIR {APP_DIR}", f"COPY --chown=user . {APP_DIR}",
        f"EXPOSE {plan.app_port}",
        "CMD " + json.dumps(["python3", "-m", "http.server", str(plan.app_port), "--bind", "0.0.0.0",
                             "--directory", root]),
    ]) + "\n"
    return Rendered(text, base)


def render_docker(plan: BuildPlan, options: DockerfileOptions) -> Rendered:
    """The repo's own Dockerfile, as it is: the author owns every layer."""
    if not plan.dockerfile or not plan.dockerfile.strip():
        raise DockerfileError("This Space uses the docker SDK but its repository has no Dockerfile.")
    return Rendered(plan.dockerfile, None)


_RENDERERS = {"gradio": render_gradio, "streamlit": render_streamlit, "static": render_static,
              "docker": render_docker}


def render(plan: BuildPlan, options: DockerfileOptions | None = None) -> Rendered:
    """The Dockerfile for ``plan``. Raises :class:`DockerfileError` for an unknown SDK or unusable input."""
    try:
        renderer = _RENDERERS[plan.sdk]
    except KeyError:
        raise DockerfileError(f"Unknown SDK {plan.sdk!r}; expected one of {', '.join(_RENDERERS)}.") from None
    return renderer(plan, options or DockerfileOptions())


#: where huggingface_hub looks by default in an image (HOME=/home/user, uid 1000, as on Hugging Face Spaces)
PRELOAD_CACHE = "/home/user/.cache/huggingface/hub"


def with_preload(text: str, sdk: str, image: str) -> str:
    """``text`` with the preloaded files (``builder/preload.py``, packed as ``image``) copied into the app user's
    Hugging Face cache: before the code in the images rendered here (a code-only push keeps the layer); at the end
    of a docker-SDK Space's own Dockerfile, whose last stage is the one that runs."""
    line = f"COPY --from={image} --chown=1000:1000 / {PRELOAD_CACHE}/"
    code = f"COPY --chown=user . {APP_DIR}"
    if sdk != "docker" and code in text:
        return text.replace(code, f"{line}\n{code}", 1)
    return text.rstrip("\n") + "\n" + line + "\n"
