"""Local environments: one BuildPlan -> one uv virtual environment, content-addressed and shared.

Lifecycle of ``LocalEnvBuilder.build(plan, sha, log)`` (thread-safe; called from the build service's pool):

1. ``resolving``: pick the interpreter for ``plan.python_version`` (a WARNING line when the host lacks it), check
   packages.txt against the host (``dpkg-query``), and compute the environment's address: a hash of
   ``plan.env_digest``, the interpreter's exact version and the SDK requirement actually installed.
2. ``{envs_dir}/{address}`` exists with a valid marker -> reuse it at once (``built``: "reusing ..."). A code-only
   push and a second Space with the same inputs both end here and install nothing.
3. Otherwise take the address's lock (a thread lock plus an ``flock``, so two builds of the same address in one or
   several processes never both install: the second waits, then reuses) and a build slot (a semaphore of
   ``max_concurrent``; ``queued`` while waiting).
4. ``installing``: ``uv venv --relocatable`` in ``{envs_dir}/.tmp-{address}-...`` next to the final path, then
   ``uv pip install --compile-bytecode`` of pre-requirements.txt, then requirements.txt with the SDK pinned
   (``gradio=={sdk_version}`` as an *override*, so it wins over a pin in requirements.txt as on Hugging Face; with
   no sdk_version, the version the platform itself has, else whatever requirements.txt says, else the latest).
   Bytecode is compiled here, once, so no start or wake ever compiles. A Gradio environment also gets the
   platform's start-up hook (``hooks.py``: no Spaces hot-reload server, the SDK import frozen for the collector).
5. Write the marker (the inputs, as JSON) and ``os.rename`` the folder to its final path: atomic, so an env is
   either complete and trusted or absent. Any failure or interruption removes the temp folder; one left by a killed
   process is removed when a builder starts (only when no live build holds its lock).

Failures raise :class:`BuildFailed` whose message carries uv's most informative line ("No solution found ...:
Because x was not found in the package registry ...").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from spaces.builder import hooks
from spaces.builder.errors import BuildConfigError, BuildFailed
from spaces.builder.localconfig import LocalBuildSettings
from spaces.builder.plan import Artifact, BuildPlan
from spaces.builder.pythons import Interpreter, choose, discover
from spaces.builder.syspkgs import missing_packages
from spaces.builder.uvrun import explain, find_uv, run_streaming

Log = Callable[[str, str], None]
MARKER = ".spaces-env.json"
MARKER_VERSION = 1
_DROP_ENV = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONPATH", "UV_PYTHON", "UV_SYSTEM_PYTHON",
             "UV_PROJECT_ENVIRONMENT")


#: what Hugging Face installs next to the SDK in its images; gradio's Spaces integration (hot reload, ZeroGPU
#: decorators) imports the ``spaces`` package whenever SYSTEM=spaces, and logs a traceback without it
COMPANIONS = {"gradio": ("spaces",)}


def sdk_requirement(plan: BuildPlan) -> tuple[str | None, bool]:
    """(requirement, as_override) for the SDK package; requirement None when requirements.txt decides."""
    sdk = plan.sdk
    if plan.sdk_version:
        return f"{sdk}=={plan.sdk_version}", True
    if re.search(rf"^\s*{sdk}\s*(\[|[=<>~!;]|$)", plan.requirements, re.IGNORECASE | re.MULTILINE):
        return None, False
    try:
        return f"{sdk}=={importlib.metadata.version(sdk)}", False
    except importlib.metadata.PackageNotFoundError:
        return sdk, False


class LocalEnvBuilder:
    """Materialises BuildPlans as shared uv virtual environments (see the module docstring for the lifecycle)."""

    def __init__(self, settings: LocalBuildSettings, data_dir: Path | None = None) -> None:
        if settings.envs_dir is None and data_dir is None:
            raise ValueError("LocalEnvBuilder needs settings.envs_dir or a data_dir")
        self.settings = settings
        self.root = Path(settings.envs_dir or Path(data_dir) / "envs").expanduser().resolve()  # type: ignore[arg-type]
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".locks").mkdir(exist_ok=True)
        self._slots = threading.BoundedSemaphore(settings.max_concurrent)
        self._guard = threading.Lock()
        self._interp_guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._uv: str | None = None
        self._interpreters: list[Interpreter] | None = None
        self._asked_uv = False
        self.clean_stale()

    # -- public ------------------------------------------------------------------------------------------------

    def build(self, plan: BuildPlan, sha: str, log: Log, **_context: object) -> Artifact:
        """The environment for ``plan`` (reused or built). Extra keywords from the build service are ignored."""
        if plan.sdk == "static":
            log("built", "static Space: the files are served as they are; no environment to build")
            return Artifact("static", "", plan.env_digest, sha)
        if plan.sdk not in ("gradio", "streamlit"):
            raise BuildConfigError(f"{plan.sdk} Spaces are built as container images; this server runs Spaces as "
                                   "local processes. Ask the operator to enable the docker backend.",
                                   reason="unsupported_sdk")
        interp, warning = self._interpreter(plan.python_version)
        if warning:
            log("resolving", warning)
        self._check_system_packages(plan, log)
        requirement, override = sdk_requirement(plan)
        key = self.address(plan, interp, requirement)
        final = self.root / key
        artifact = Artifact("venv", str(final), plan.env_digest, sha)
        if self._trusted(final, key):
            return self._reuse(final, artifact, log, "same interpreter, SDK and dependency files")
        with self._address_lock(key, log):
            if self._trusted(final, key):  # another build made it while we waited
                return self._reuse(final, artifact, log, "built meanwhile by another build with the same inputs")
            self._discard(key, final)
            if not self._slots.acquire(blocking=False):
                log("queued", f"waiting for a build slot ({self.settings.max_concurrent} environment builds at "
                              "a time)")
                self._slots.acquire()
            try:
                started = time.monotonic()
                self._materialise(plan, interp, requirement, override, key, final, log)
            finally:
                self._slots.release()
        log("built", f"environment ready in {time.monotonic() - started:.1f} s: Python {interp.text}, "
                     f"{requirement or plan.sdk + ' from requirements.txt'} ({key[:12]})")
        return artifact

    def locate(self, plan: BuildPlan) -> Path:
        """Where ``plan``'s environment lives on this host, built or not (no side effects besides discovery)."""
        return self.root / self.address(plan, self._interpreter(plan.python_version)[0], sdk_requirement(plan)[0])

    def address(self, plan: BuildPlan, interp: Interpreter, requirement: str | None) -> str:
        """Content address of the environment on this host."""
        basis = json.dumps([plan.env_digest, interp.text, requirement, COMPANIONS.get(plan.sdk, ()),
                            hooks.digest(plan.sdk)], sort_keys=True)
        return hashlib.sha256(basis.encode()).hexdigest()[:32]

    def clean_stale(self) -> None:
        """Remove temp and trash folders that no live build holds (left by a killed process)."""
        for entry in self.root.iterdir():
            if not entry.name.startswith((".tmp-", ".trash-")):
                continue
            key = entry.name.split("-", 2)[1]
            with self._flock(key, blocking=False) as held:
                if held:
                    shutil.rmtree(entry, ignore_errors=True)

    # -- steps -------------------------------------------------------------------------------------------------

    def _materialise(self, plan: BuildPlan, interp: Interpreter, requirement: str | None, override: bool,
                     key: str, final: Path, log: Log) -> None:
        tmp = self.root / f".tmp-{key}-{os.getpid()}-{secrets.token_hex(4)}"
        inputs = tmp.with_name(tmp.name + ".in")
        try:
            inputs.mkdir()
            log("resolving", f"creating a Python {interp.text} environment ({interp.path})")
            self._uv_run(["venv", "--relocatable", "--quiet", "--python", str(interp.path), str(tmp)],
                         "resolving", log, "Creating the virtual environment failed")
            python = str(tmp / "bin" / "python")
            if plan.pre_requirements.strip():
                (inputs / "pre-requirements.txt").write_text(plan.pre_requirements)
                log("installing", "installing pre-requirements.txt")
                self._uv_run(self._install(python, "-r", str(inputs / "pre-requirements.txt")), "installing", log,
                             "Installing pre-requirements.txt failed")
            args: list[str] = []
            if plan.requirements.strip():
                (inputs / "requirements.txt").write_text(plan.requirements)
                args += ["-r", str(inputs / "requirements.txt")]
            if requirement and override:
                (inputs / "sdk-override.txt").write_text(requirement + "\n")
                args += [requirement, "--override", str(inputs / "sdk-override.txt")]
            elif requirement:
                args.append(requirement)
            args += COMPANIONS.get(plan.sdk, ())
            what = "requirements.txt and " if plan.requirements.strip() else ""
            log("installing", f"installing {what}{requirement or plan.sdk}")
            self._uv_run(self._install(python, *args), "installing", log, "Installing the requirements failed")
            hooks.install_into_venv(plan.sdk, python)
            marker = {"version": MARKER_VERSION, "key": key, "env_inputs": plan.env_inputs(),
                      "env_digest": plan.env_digest, "python": interp.text, "interpreter": str(interp.path),
                      "sdk_requirement": requirement, "built_at": time.time()}
            (tmp / MARKER).write_text(json.dumps(marker, indent=1))
            os.rename(tmp, final)  # the commit point: before it nothing is trusted, after it all is
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(inputs, ignore_errors=True)

    def _install(self, python: str, *args: str) -> list[str]:
        cmd = ["pip", "install", "--python", python, "--compile-bytecode"]
        if self.settings.index_url:
            cmd += ["--index-url", self.settings.index_url]
        for url in self.settings.extra_index_urls:
            cmd += ["--extra-index-url", url]
        return cmd + list(args)

    def _uv_run(self, args: list[str], phase: str, log: Log, failure: str) -> None:
        result = run_streaming([self._uv_bin(), *args], env=self._env(), cwd=self.root,
                               on_line=lambda line: log(phase, line), timeout=self.settings.install_timeout_s)
        if result.timed_out:
            raise BuildFailed(f"{failure}: it ran longer than {self.settings.install_timeout_s:.0f} s and was "
                              "stopped.", reason="build_timeout")
        if result.returncode != 0:
            line = explain(result.lines)
            log("failed", f"uv exited with status {result.returncode}")
            raise BuildFailed(f"{failure}: {line}" if line else f"{failure} (uv exit status {result.returncode}).",
                              log_line=line)

    def _check_system_packages(self, plan: BuildPlan, log: Log) -> None:
        if not plan.system_packages:
            return
        missing = missing_packages(plan.system_packages)
        if missing is None:
            log("resolving", "WARNING: packages.txt cannot be checked: this host has no dpkg-query.")
            return
        if not missing:
            log("resolving", f"packages.txt: all {len(plan.system_packages)} Debian packages are installed")
            return
        text = (f"packages.txt lists Debian packages that are not installed on this host: {', '.join(missing)}. "
                f"The operator can install them with `apt-get install -y {' '.join(missing)}`.")
        if self.settings.missing_system_packages == "warn":
            log("resolving", "WARNING: " + text + " Building anyway (missing_system_packages=warn).")
            return
        log("failed", text)
        raise BuildFailed(text, reason="missing_system_packages", log_line=text)

    # -- helpers -----------------------------------------------------------------------------------------------

    def _reuse(self, final: Path, artifact: Artifact, log: Log, why: str) -> Artifact:
        with contextlib.suppress(OSError):
            os.utime(final / MARKER)  # last use, for a future clean-up of unused environments
        log("built", f"reusing environment {final.name[:12]} ({why}); nothing to install")
        return artifact

    def _trusted(self, final: Path, key: str) -> bool:
        try:
            marker = json.loads((final / MARKER).read_text())
        except (OSError, ValueError):
            return False
        return (marker.get("version") == MARKER_VERSION and marker.get("key") == key
                and (final / "bin" / "python").exists())

    def _discard(self, key: str, final: Path) -> None:
        """Under the address lock: drop temp folders of this address and an untrusted final folder."""
        for entry in self.root.glob(f".tmp-{key}-*"):
            shutil.rmtree(entry, ignore_errors=True)
        if final.exists():
            trash = self.root / f".trash-{key}-{secrets.token_hex(4)}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def _address_lock(self, key: str, log: Log) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(blocking=False):
            log("queued", "another build is making the same environment; waiting for it")
            lock.acquire()
        try:
            with self._flock(key, blocking=True):
                yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def _flock(self, key: str, blocking: bool) -> Iterator[bool]:
        fd = os.open(self.root / ".locks" / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the flock

    def _uv_bin(self) -> str:
        if self._uv is None:
            self._uv = find_uv(self.settings.uv_path)
        return self._uv

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
        env.update(UV_PYTHON_DOWNLOADS="never", NO_COLOR="1", UV_NO_PROGRESS="1")
        if self.settings.uv_cache_dir:
            env["UV_CACHE_DIR"] = str(Path(self.settings.uv_cache_dir).expanduser())
        if self.settings.ca_bundle:
            env["SSL_CERT_FILE"] = str(Path(self.settings.ca_bundle).expanduser())
        if self.settings.native_tls:
            env["UV_NATIVE_TLS"] = "1"
        return env

    def _interpreter(self, wanted: str) -> tuple[Interpreter, str | None]:
        """The interpreter for ``wanted`` ("" = the default). Cheap sources first; uv's list (slow) only when
        they lack the version, so a code-only push never waits for interpreter discovery."""
        with self._interp_guard:
            if self._interpreters is None or not all(i.path.exists() for i in self._interpreters):
                self._interpreters = discover(None, {}, list(self.settings.pythons), self.settings.search_pyenv,
                                              shared=self.settings.shared_interpreters)
                self._asked_uv = False
            available = list(self._interpreters)
            default = self.settings.default_python or ("%d.%d" % available[0].version[:2] if available else "3")
            found = choose(wanted or default, available) if available else None
            if (found is None or found[1] is not None) and not self._asked_uv:
                self._interpreters = discover(self._uv_bin(), self._env(), list(self.settings.pythons),
                                              self.settings.search_pyenv, shared=self.settings.shared_interpreters)
                self._asked_uv = True
                available = list(self._interpreters)
                found = choose(wanted or default, available) if available else None
        if found is None:
            raise BuildFailed("No Python 3 interpreter is available on this host for building environments.",
                              reason="no_python")
        return found
