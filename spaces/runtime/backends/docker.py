"""The docker backend: one labelled container per running revision of a Space.

Lifecycle (the Backend contract in ``runtime/contracts.py``):

* ``start(spec)``: create and start a container from ``spec.artifact.ref`` (an image made by
  ``builder/image.py``) on the engine named by ``spec.node``; labelled ``spaces.managed``, ``spaces.space-id`` and
  ``spaces.sha``; CPU and memory limits from ``spec.limits`` (memory+swap = memory: no swapping past the limit);
  GPUs as a device request for exactly the assigned indices; the app port published on ``publish_host`` with a
  random host port, which is the address the proxy connects to. Returns at once; readiness is ``poll``'s job.
* ``poll(handle)``: container state -> Phase. A running container is RUNNING only when its app *answers* on the
  published port: a bare TCP connect is not enough, because docker-proxy accepts on the host port even while
  nothing listens inside, so the probe sends a tiny HTTP request and wants any bytes back. The probe is for start-up
  only: once a start of the container has answered, it stays RUNNING while the container runs (the app is its
  PID 1: if the app dies, so does the container). Probing on every poll rendered a page of every running app at
  every reconciler sweep, and once more on each wake from ``docker pause``.
  Exited / dead -> EXITED with the exit code and the tail of the log (and "out of memory" when OOM-killed).
* ``stop(handle)``: stop (SIGTERM, then SIGKILL after ``stop_timeout_s``) and remove; 404 / 409 are success.
* ``list(labels)``: managed containers carrying ``labels``, on every engine: how a restarted control plane
  re-adopts what runs (the handle is rebuilt from the container's labels and published port).
* ``logs(handle, follow)``: the container's stdout and stderr as lines.
* ``freeze`` / ``thaw``: ``docker pause`` / ``unpause`` (cgroup freezer); idempotent.

Isolation: every app joins one bridge network (``spaces-apps``) created with inter-container communication off,
so a Space cannot open connections to another Space's container (one network per Space would hit Docker's
default limit of about 30 bridge networks). Containers run with ``no-new-privileges`` and a pid limit.

Engines: ``engines`` maps node names to engine URLs (``None`` = the local socket / DOCKER_HOST, ``tcp://``,
``ssh://``). The docker SDK is imported lazily, only when an engine is first used.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, Field

from spaces.runtime.contracts import (LABEL_MANAGED, LABEL_SHA, LABEL_SPACE, Handle, InstanceSpec, Observed, Phase,
                                      StartFailed)
from spaces.runtime.volumes import give_to

log = logging.getLogger(__name__)

LABEL_PORT = "spaces.port"  # the app's port inside the container, to find its published port again


#: the uid Docker Spaces run as (the Hub's Dockerfile convention): a read-write volume's files are given to it
DOCKER_SPACE_UID = 1000


class DockerEngine(BaseModel):
    """One Docker engine (a node). ``url`` None means the local default (DOCKER_HOST or the unix socket)."""

    url: str | None = Field(None, description="unix:///var/run/docker.sock, tcp://host:2376, ssh://user@host")
    publish_host: str | None = Field(
        None, description="host interface app ports are published on; default 127.0.0.1 for a local engine, "
                          "0.0.0.0 for a remote one (put it on a private network)")
    address_host: str | None = Field(
        None, description="host name the proxy uses to reach published ports; default 127.0.0.1 or the URL's host")

    def bind_ip(self) -> str:
        return self.publish_host or ("127.0.0.1" if self._local() else "0.0.0.0")

    def reach_host(self) -> str:
        if self.address_host:
            return self.address_host
        if self._local():
            return "127.0.0.1"
        return urlparse(self.url).hostname or "127.0.0.1"

    def _local(self) -> bool:
        return self.url is None or self.url.startswith(("unix://", "npipe://"))


class DockerBackendSettings(BaseModel):
    """Settings of the docker backend (nested as ``Settings.docker``, env ``SPACES_DOCKER__*``)."""

    engines: dict[str, DockerEngine] = Field(default_factory=lambda: {"local": DockerEngine()},
                                             description="node name -> Docker engine")
    network: str = Field("spaces-apps", description="bridge network for apps, created with inter-container "
                                                    "communication disabled")
    stop_timeout_s: int = Field(10, description="seconds between SIGTERM and SIGKILL on stop")
    pids_limit: int = Field(4096, description="most processes one app container may run")
    probe_timeout_s: float = Field(2.0, description="how long poll waits for the app's first bytes")
    log_tail_lines: int = Field(30, description="log lines quoted in the message of an exited app")
    cgroup_parent: str | None = Field(
        None, description="cgroup the containers run under (docker --cgroup-parent), on engines with the cgroupfs "
        "driver; on the default set-up the local backend's cgroup root, so that containers and sandboxed Spaces "
        "keep to one memory cap together (SPACES_LOCAL__SPACES_MEMORY_MB)")


def _gone(exc: Exception) -> bool:
    """404 (no such container) and 409 (removal already in progress) both mean 'already gone'."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status in (404, 409) or type(exc).__name__ == "NotFound"


#: the name a container reaches the machine that runs it by (Docker Desktop's own name for it)
HOST_ALIAS = "host.docker.internal"


def run_options(spec: InstanceSpec, settings: DockerBackendSettings, network: str,
                gateway: str | None = None, cgroup_parent: str | None = None) -> dict[str, Any]:
    """Keyword arguments of ``containers.run`` for one instance (pure, so it is tested as a dict). ``gateway``:
    the apps network's gateway on the host, which ``HOST_ALIAS`` names inside the container (not Docker's
    ``host-gateway``, the default bridge's address: the hub listens for containers on this network's only)."""
    from docker.types import DeviceRequest, LogConfig

    env = dict(spec.env)
    # inside the container the assigned GPUs are renumbered from 0; host indices would point at nothing
    env.pop("CUDA_VISIBLE_DEVICES", None)
    memory = f"{spec.limits.memory_mb}m"
    slug = re.sub(r"[^a-zA-Z0-9_.-]+", "-", spec.space_id).strip("-.")[:60] or "space"
    engine = settings.engines.get(spec.node) or DockerEngine()
    return {
        "name": f"spaces-{slug}-{spec.sha[:7]}-{secrets.token_hex(3)}",
        "labels": {**spec.labels, LABEL_MANAGED: "true", LABEL_SPACE: spec.space_id, LABEL_SHA: spec.sha,
                   LABEL_PORT: str(spec.port)},
        "environment": env,
        "network": network,
        "ports": {f"{spec.port}/tcp": (engine.bind_ip(), None)},  # None: a random free host port
        "nano_cpus": int(spec.limits.cpu * 1e9),
        "mem_limit": memory,
        "memswap_limit": memory,
        "pids_limit": settings.pids_limit,
        "device_requests": ([DeviceRequest(device_ids=[str(i) for i in spec.limits.gpus], capabilities=[["gpu"]])]
                            if spec.limits.gpus else None),
        "init": True,
        "security_opt": ["no-new-privileges"],
        "log_config": LogConfig(type="json-file", config={"max-size": "10m", "max-file": "2"}),
        **({"extra_hosts": {HOST_ALIAS: gateway}} if gateway else {}),
        **({"cgroup_parent": cgroup_parent} if cgroup_parent else {}),
        **({"volumes": {m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in spec.mounts}}
           if spec.mounts else {}),
    }


def load_client() -> None:
    """Import the docker SDK now, when it is installed (``spaces.platform.preload_backend``): the backend imports
    it lazily, as an optional extra, and a controller elected later should not wait for it."""
    import contextlib

    with contextlib.suppress(ImportError):
        import docker  # noqa: F401


class DockerBackend:
    name = "docker"

    def __init__(self, settings: DockerBackendSettings | None = None) -> None:
        self.settings = settings or DockerBackendSettings()
        self._clients: dict[str, Any] = {}
        self._networks: dict[tuple[str, str], str | None] = {}  # (node, network) -> its IPv4 gateway
        self._lock = threading.Lock()
        self._answered: dict[str, str] = {}  # container id -> State.StartedAt of the run whose app answered
        self._parents: dict[str, str | None] = {}  # node -> the cgroup parent its containers get

    # ---- engines ------------------------------------------------------------------------------------------
    def client(self, node: str) -> Any:
        """The docker SDK client for a node (created on first use)."""
        with self._lock:
            if node not in self._clients:
                engine = self.settings.engines.get(node)
                if engine is None:
                    raise StartFailed(f"No Docker engine is configured for node {node!r} "
                                      f"(known: {', '.join(self.settings.engines) or 'none'}).")
                import docker  # lazily: the docker SDK is an optional extra

                try:
                    if engine.url is None:
                        self._clients[node] = docker.from_env()
                    else:
                        # ssh:// through the system ssh client, so paramiko is not needed
                        self._clients[node] = docker.DockerClient(base_url=engine.url,
                                                                  use_ssh_client=engine.url.startswith("ssh://"))
                except docker.errors.DockerException as exc:
                    where = engine.url or os.environ.get("DOCKER_HOST") or "the default socket"
                    raise StartFailed(f"Cannot reach the Docker engine of node {node!r} at {where}: {exc}. Start "
                                      "dockerd (infra/docker/setup-engine.sh) or set SPACES_DOCKER__ENGINES.") from None
            return self._clients[node]

    def _network(self, node: str) -> str:
        name = self.settings.network
        if (node, name) in self._networks:
            return name
        client = self.client(node)
        import docker

        try:
            network = client.networks.get(name)
        except docker.errors.NotFound:
            try:
                client.networks.create(name, driver="bridge", labels={LABEL_MANAGED: "true"},
                                       options={"com.docker.network.bridge.enable_icc": "false"})
            except docker.errors.APIError as exc:  # created concurrently by another start
                if getattr(exc.response, "status_code", None) != 409:
                    raise
            network = client.networks.get(name)
        configs = (network.attrs.get("IPAM") or {}).get("Config") or []
        self._networks[(node, name)] = next((c["Gateway"] for c in configs
                                             if c.get("Gateway") and ":" not in c["Gateway"]), None)
        return name

    def gateway(self, node: str) -> str | None:
        """The host's IPv4 address on the apps network of ``node`` (made if missing): the address containers
        reach this machine by, where the platform lets them reach its hub (``platform.HubForContainers``)."""
        name = self._network(node)
        return self._networks.get((node, name))

    # ---- contract -----------------------------------------------------------------------------------------
    def start(self, spec: InstanceSpec) -> Handle:
        import docker

        client = self.client(spec.node)
        image = spec.artifact.ref
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            raise StartFailed(f"The image {image} for {spec.sha[:7]} is not on node {spec.node}; rebuild the "
                              "Space to make it again.") from None
        network = self._network(spec.node)
        options = run_options(spec, self.settings, network, self._networks.get((spec.node, network)),
                              self._cgroup_parent(spec.node))
        if spec.mounts:
            self._prepare_mounts(spec)
        try:
            container = client.containers.run(image, detach=True, **options)
            container.reload()
        except docker.errors.APIError as exc:
            raise StartFailed(f"Docker could not start {image}: {exc.explanation or exc}") from None
        return self._handle(spec.node, container)

    def _cgroup_parent(self, node: str) -> str | None:
        """``settings.cgroup_parent`` where the engine places containers by cgroup path (the cgroupfs driver); the
        systemd driver wants a slice, which the local backend's root is not: there the containers keep only their
        own limits (said once in the log)."""
        if not self.settings.cgroup_parent:
            return None
        if node not in self._parents:
            driver = self.client(node).info().get("CgroupDriver", "")
            self._parents[node] = self.settings.cgroup_parent if driver == "cgroupfs" else None
            if driver != "cgroupfs":
                log.warning("node %s's Docker engine uses the %s cgroup driver: its containers are not under %s "
                            "(the cap of all Spaces' memory together)", node, driver, self.settings.cgroup_parent)
        return self._parents[node]

    def _prepare_mounts(self, spec: InstanceSpec) -> None:
        """Volumes are directories of this machine: an engine elsewhere cannot see them. A read-write bucket's
        files go to uid 1000, the user Docker Spaces run as (the Hub's convention, ``useradd -m -u 1000 user``)."""
        engine = self.settings.engines.get(spec.node) or DockerEngine()
        if not engine._local():
            raise StartFailed(f"node {spec.node}'s Docker engine is on another machine: it cannot mount this "
                              "Space's volumes (they live in the platform's data dir)")
        for m in spec.mounts:
            if not m.read_only:
                give_to(Path(m.source), DOCKER_SPACE_UID)

    def poll(self, handle: Handle) -> Observed:
        import docker

        try:
            container = self.client(handle.node).containers.get(handle.ref)
        except docker.errors.NotFound:
            self._answered.pop(handle.ref, None)
            return Observed(Phase.GONE)
        state = container.attrs.get("State", {})
        status = state.get("Status", container.status)
        address = self._address(handle.node, container)
        if status == "paused":
            return Observed(Phase.FROZEN, address)
        if status in ("exited", "dead"):
            code = state.get("ExitCode")
            tail = self._tail(container)
            why = f"out of memory (limit {container.attrs['HostConfig'].get('Memory', 0) // 2**20} MB); " \
                if state.get("OOMKilled") else ""
            return Observed(Phase.EXITED, None, code, f"{why}exit code {code}\n{tail}".strip())
        if status == "running" and address:
            started = state.get("StartedAt", "")
            if self._answered.get(handle.ref) == started or self._answers(address):
                self._answered[handle.ref] = started
                return Observed(Phase.RUNNING, address)
        return Observed(Phase.STARTING, address)

    def stop(self, handle: Handle) -> None:
        import docker

        self._answered.pop(handle.ref, None)
        try:
            container = self.client(handle.node).containers.get(handle.ref)
            if container.status == "paused":  # a frozen app cannot take SIGTERM; it is going away anyway
                container.remove(force=True)
                return
            container.stop(timeout=self.settings.stop_timeout_s)
            container.remove(force=True)
        except docker.errors.APIError as exc:
            if not _gone(exc):
                raise

    def list(self, labels: dict[str, str]) -> list[Handle]:
        wanted = {**labels, LABEL_MANAGED: "true"}
        filters = {"label": [f"{k}={v}" for k, v in wanted.items()]}
        handles = []
        for node in self.settings.engines:
            for container in self.client(node).containers.list(all=True, filters=filters):
                handles.append(self._handle(node, container))
        return handles

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        import docker

        try:
            container = self.client(handle.node).containers.get(handle.ref)
            chunks = container.logs(stream=True, follow=follow)
        except docker.errors.NotFound:
            return
        pending = ""
        for chunk in chunks:
            pending += chunk.decode("utf-8", "replace")
            *lines, pending = pending.split("\n")
            yield from lines
        if pending:
            yield pending

    def freeze(self, handle: Handle) -> None:
        self._pause(handle, True)

    def thaw(self, handle: Handle) -> None:
        self._pause(handle, False)

    # ---- helpers ------------------------------------------------------------------------------------------
    def _pause(self, handle: Handle, pause: bool) -> None:
        import docker

        client = self.client(handle.node)
        try:  # one call, no inspect first: each costs ~10 ms on the wake path
            client.api.pause(handle.ref) if pause else client.api.unpause(handle.ref)
        except docker.errors.APIError as exc:
            if getattr(exc.response, "status_code", None) == 409:  # already paused, or not running
                return
            # some engines answer "is not paused" with 500: already in the asked state is success
            if (client.containers.get(handle.ref).status == "paused") != pause:
                raise

    def _handle(self, node: str, container: Any) -> Handle:
        address = self._address(node, container)
        data: dict[str, Any] = {"name": container.name,
                                "space_id": container.labels.get(LABEL_SPACE, ""),
                                "sha": container.labels.get(LABEL_SHA, "")}
        if address:
            data["host"], data["port"] = address
        return Handle(backend=self.name, ref=container.id, node=node, data=data)

    def _address(self, node: str, container: Any) -> tuple[str, int] | None:
        port = container.labels.get(LABEL_PORT)
        ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        bindings = ports.get(f"{port}/tcp") or []
        for binding in bindings:
            if binding.get("HostPort"):
                return self.settings.engines[node].reach_host(), int(binding["HostPort"])
        return None

    def _answers(self, address: tuple[str, int]) -> bool:
        try:
            with socket.create_connection(address, timeout=self.settings.probe_timeout_s) as sock:
                sock.sendall(b"HEAD / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                return bool(sock.recv(1))
        except OSError:
            return False

    def _tail(self, container: Any) -> str:
        try:
            text = container.logs(tail=self.settings.log_tail_lines).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - the message is a courtesy; never fail a poll over it
            return ""
        return text[-3000:].strip()


def engine_problem(engine: DockerEngine, timeout: float = 3.0) -> str:
    """"" when ``engine`` answers a ping, else why not in one short sentence (for the pages, the API, the log)."""
    try:
        import docker
    except ImportError:
        return "the docker Python package is not installed (pip install 'spaces[docker]')"
    where = engine.url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if where.startswith("unix://") and not Path(where[len("unix://"):]).exists():
        return f"no Docker engine listens at {where}"
    try:
        client = (docker.from_env(timeout=timeout) if engine.url is None else
                  docker.DockerClient(base_url=engine.url, timeout=timeout,
                                      use_ssh_client=engine.url.startswith("ssh://")))
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means the same to the caller: no engine to use
        detail = " ".join(str(exc).split())[:200]
        return f"the Docker engine at {where} does not answer ({detail})"
    return ""


class EngineProbe:
    """Is the Docker engine of a node reachable now? Asked for every New Space form and every Docker Space
    created, so the answer is kept ``ttl`` seconds (an engine started later is seen within that time)."""

    def __init__(self, engine: DockerEngine, ttl: float = 15.0, check=engine_problem) -> None:  # noqa: ANN001
        self.engine, self.ttl, self._check = engine, ttl, check
        self._lock = threading.Lock()
        self._answer: tuple[float, str] | None = None

    def problem(self) -> str:
        """"" when the engine answers, else why not."""
        with self._lock:
            if self._answer is not None and time.monotonic() - self._answer[0] < self.ttl:
                return self._answer[1]
        found = self._check(self.engine)
        with self._lock:
            self._answer = (time.monotonic(), found)
        return found
