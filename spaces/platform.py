"""The composition root: ``spaces serve --roles ...`` assembles the roles a process runs from what each needs.

Roles (``ROLES``; default all four in one process, as ``spaces serve`` always ran):

* **hub** - API, git, web pages. With the proxy in the same process uvicorn serves it on a unix socket inside the
  data dir behind the proxy (the one public listener); alone, it listens on ``--host``/``--port`` itself. It
  tells the others through the bus (``spaces.bus``): a new revision is a build row in the database plus
  ``builds``; a change is ``nudge``; a delete is ``deleted`` (with the instance record); a rename drops the old
  name's route from the shared table, then ``nudge``.
* **proxy** - public URLs on ``--host``/``--port``: Spaces' apps by the route table, every other host to the hub
  (in the process, or ``SPACES_HUB_UPSTREAM``, else a 404). Wakes mark the Space awake in the database and wait
  for ``ready`` (or the route turning running); activity stamps go to Redis once a second. Static Spaces are
  served by the proxy process itself, from the working copy the route names.
* **builder** - the build workers (``BuildService``), woken by ``builds``.
* **controller** - the reconciler, the sleeper and the scheduler, behind leader election
  (``spaces.runtime.leader``): only the leader constructs the backend, adopts what runs and acts; it listens to
  ``nudge`` and ``deleted`` and publishes ``ready`` when a Space turns running. A backstop sweep stops instances
  and drops routes no Space owns any more, for the ``deleted`` message the bus may lose.

Roles in separate processes need ``SPACES_REDIS_URL`` (bus, route table, activity). Every process answers
``/healthz``, ``/readyz`` and ``/metrics`` (``spaces.ops``): the hub on its own port, the others on ``--ops-port``.
Collaborators are passed to constructors (``SpaceHooks``, ``build_hub(capacity=...)``); nothing is wired by
assigning attributes afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import threading
from pathlib import Path

from spaces.builder.detect import plan_checkout
from spaces.builder.errors import BuildFailed
from spaces.builder.plan import Artifact, BuildPlan
from spaces.builder.preload import PreloadStore
from spaces.bus import Bus, MemoryBus, RedisBus, make_bus
from spaces.db.models import Account, Space
from spaces.errors import SpacesError
from spaces.hub.app import build_hub, create_app
from spaces.hub.tickets import TicketExchange
from spaces.ops import Health, ops_app
from spaces.proxy.activity import ActivityFlusher, SharedActivity
from spaces.proxy.routes import MemoryRouteTable, Route
from spaces.proxy.server import ProxyServer
from spaces.proxy.static_routes import StaticRoutes
from spaces.runtime import tenancy
from spaces.runtime.capacity import Capacity, placement_json
from spaces.runtime.contracts import LABEL_PLATFORM, Handle, HoldsClaims, Limits
from spaces.runtime.flavors import FlavorCatalog
from spaces.runtime.leader import Leadership, make_lock
from spaces.runtime.nodes import detect_local_node, node_from_config
from spaces.runtime.reconciler import Reconciler, RouteUpdate
from spaces.runtime.sleeper import Sleeper
from spaces.runtime.specs import instance_spec, startup_timeout, variables_and_secrets, workdir_for
from spaces.runtime.static_site import StaticSites
from spaces.runtime.volumes import Volumes, forget_deleted_buckets
from spaces.services import accounts
from spaces.services import templates
from spaces.services.builds import BuildService
from spaces.services.preloads import HubPreloadSource
from spaces.services.spaces import SpaceHooks
from spaces.services.wake import BusReadiness, WakeService
from spaces.settings import Settings
from spaces.storage.gitrepo import sweep_temporaries
from spaces.templates_catalog import list_templates

log = logging.getLogger("spaces")


class DockerSpaces:
    """Can the default (local) set-up run ``sdk: docker`` Spaces now? On the Docker engine of the local node,
    when ``SPACES_RUNTIME__DOCKER_SPACES`` is on and that engine answers (asked again every few seconds)."""

    OFF = ("Docker Spaces are turned off on this server (SPACES_RUNTIME__DOCKER_SPACES=false); use sdk: gradio, "
           "streamlit or static, or ask its operator to turn them on.")

    def __init__(self, settings: Settings) -> None:
        from spaces.runtime.backends.docker import DockerEngine, EngineProbe

        self.enabled = settings.runtime.docker_spaces
        engines = settings.docker.engines
        self.probe = EngineProbe(engines.get("local") or next(iter(engines.values()), DockerEngine()))

    def problem(self) -> str:
        """"" when Docker Spaces can run here, else why not and what to do (for the form, the API, the build)."""
        if not self.enabled:
            return self.OFF
        why = self.probe.problem()
        if why:
            return (f"Docker Spaces need a Docker engine and this server reaches none: {why}. Its operator can "
                    "start one (infra/docker/setup-engine.sh, see the README); meanwhile use sdk: gradio, "
                    "streamlit or static.")
        return ""


class LocalArtifacts:
    """The local backend's builder: uv environments (shared by content address); static Spaces need none;
    Docker Spaces an image on the local Docker engine (``DockerSpaces``), which the docker backend runs."""

    def __init__(self, settings: Settings, docker: DockerSpaces | None = None) -> None:
        from spaces.builder.localenv import LocalEnvBuilder

        self.envs = LocalEnvBuilder(settings.local_build, data_dir=settings.data_path)
        self.docker = docker
        self._images = None
        self._image_settings = settings.docker_build

    def build(self, plan: BuildPlan, *, space_id: str, sha: str, context: Path, variables: dict, secrets: dict,
              log, factory: bool, preload: str = "") -> Artifact:  # noqa: ANN001
        if plan.sdk == "static":
            log("built", "Static Space: no environment to build; files are served as they are")
            return Artifact("static", "", plan.env_digest, sha)
        if plan.sdk == "docker":  # the preloaded files go into the image
            return self._image(plan, space_id=space_id, sha=sha, context=context, variables=variables,
                               secrets=secrets, log=log, factory=factory, **({"preload": preload} if preload else {}))
        artifact = self.envs.build(plan, sha, log)  # the environment is shared: the start links the files in
        return dataclasses.replace(artifact, preload=preload) if preload else artifact

    def _image(self, plan: BuildPlan, **build) -> Artifact:  # noqa: ANN003
        why = self.docker.problem() if self.docker is not None else DockerSpaces.OFF
        if why:
            raise BuildFailed(why)
        if self._images is None:
            from spaces.builder.image import DockerImageBuilder

            self._images = DockerImageBuilder(self._image_settings)
        return self._images.build(plan, **build)


def make_backend(settings: Settings, catalog: FlavorCatalog | None = None):  # noqa: ANN201
    kind = settings.runtime.backend
    if kind == "docker":
        from spaces.runtime.backends.docker import DockerBackend

        return DockerBackend(settings.docker)
    if kind == "kubernetes":
        from spaces.runtime.backends.kubernetes import KubernetesBackend

        return KubernetesBackend(settings.kubernetes, catalog or FlavorCatalog(settings.flavors))
    from spaces.runtime import netguard
    from spaces.runtime.backends.local import LocalBackend

    local = settings.local
    netguard.install(local.uid_min, local.uid_max, allow_ports=[settings.port], outbound=local.outbound)
    backend = LocalBackend(local, holes=netguard.OwnPortHoles(local.uid_min),
                           shared_env={"HF_ENDPOINT": settings.space_hub_endpoint})
    if not settings.runtime.docker_spaces:
        return _retiring_docker(settings, backend)
    # Docker Spaces beside the sandboxed ones, each instance on the backend that started it (see per_sdk); the
    # engine is reached at its first use, so one started after the server is used too
    from spaces.runtime.backends.docker import DockerBackend
    from spaces.runtime.backends.per_sdk import PerSdkBackend

    docker = settings.docker
    if "cgroup_parent" not in docker.model_fields_set:  # under the cap of all Spaces together, as the local ones
        docker = docker.model_copy(update={"cgroup_parent": f"/{local.cgroup_root}"})
    return PerSdkBackend(backend, {"docker": DockerBackend(docker)})


def _retiring_docker(settings: Settings, backend):  # noqa: ANN001, ANN202
    """Docker Spaces turned off: the containers that ran while they were on are stopped when the controller
    sees them (see per_sdk's retired parts), if the engine still answers; without one there is nothing to stop."""
    from spaces.runtime.backends.docker import DockerBackend, DockerEngine, engine_problem
    from spaces.runtime.backends.per_sdk import PerSdkBackend

    engines = settings.docker.engines
    if engine_problem(engines.get("local") or next(iter(engines.values()), DockerEngine())):
        return backend
    return PerSdkBackend(backend, {}, retired=[DockerBackend(settings.docker)], refused={"docker": DockerSpaces.OFF})


#: the module of each backend (make_backend imports it when elected)
BACKEND_MODULES = {
    "kubernetes": "spaces.runtime.backends.kubernetes",
    "docker": "spaces.runtime.backends.docker",
    "local": "spaces.runtime.backends.local",
}


def preload_backend(settings: Settings) -> None:
    """Import the backend's module and, through its ``load_client()``, what its client library loads lazily, without
    constructing it (no connection, no side effect). A controller does this before it stands by, so that once
    elected it spends its takeover adopting and acting, not importing: the Kubernetes client's API classes and
    their models took 10-20 s to load on a loaded 2-core node, and every failover waited for them
    (bench/k8s.py)."""
    import importlib

    module = importlib.import_module(BACKEND_MODULES[settings.runtime.backend])
    if hasattr(module, "load_client"):
        module.load_client()


def make_builder(settings: Settings, docker: DockerSpaces | None = None):  # noqa: ANN201
    if settings.runtime.backend in ("docker", "kubernetes"):
        from spaces.builder.image import DockerImageBuilder

        return DockerImageBuilder(settings.docker_build)
    return LocalArtifacts(settings, docker)


def make_routes(settings: Settings):  # noqa: ANN201
    if settings.redis_url:
        from spaces.proxy.redis_routes import RedisRouteTable

        return RedisRouteTable(settings.redis_url, prefix=settings.redis_prefix)
    return MemoryRouteTable()


ROLES = ("hub", "proxy", "builder", "controller")
#: seconds a stopping proxy gives the requests it is answering to finish
GRACE_S = 5.0
#: a controller that lost its leadership lock exits with this status, for its supervisor to restart it (standby)
EXIT_FENCED = 75


def parse_roles(text: str | list[str] | tuple[str, ...]) -> frozenset[str]:
    """``"hub,proxy"`` -> the roles; an unknown or empty list is a SpacesError naming the choices."""
    names = [r.strip().lower() for r in (text.split(",") if isinstance(text, str) else text) if r.strip()]
    unknown = [r for r in names if r not in ROLES]
    if unknown or not names:
        raise SpacesError(f"unknown role(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(ROLES)} "
                          "(comma separated), e.g. --roles hub,proxy")
    return frozenset(names)


def _address(text: str) -> tuple[str, int] | str:
    """``host:port`` -> (host, port); anything else is a unix socket path."""
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and "/" not in text:
        return host.strip("[]") or "127.0.0.1", int(port)
    return text


class OpsRoutes:
    """The hub's ASGI app with ``/healthz`` and ``/readyz`` (``spaces.ops``) in front of it."""

    #: not /metrics: the hub's own route answers it, to the metrics token or an admin only (spaces.hub.metrics)
    PATHS = frozenset({"/healthz", "/readyz"})

    def __init__(self, app, health: Health) -> None:  # noqa: ANN001
        self.app = app
        self.ops = ops_app(health)

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "http" and scope.get("path") in self.PATHS:
            return await self.ops(scope, receive, send)
        return await self.app(scope, receive, send)


class Platform:
    def __init__(self, settings: Settings, roles: frozenset[str] | tuple[str, ...] = ROLES) -> None:
        self.roles = frozenset(roles)
        self.split = self.roles != frozenset(ROLES)
        if "root" not in settings.local.model_fields_set:
            settings.local = settings.local.model_copy(update={"root": settings.data_path / "local"})
        self.settings = settings
        if self.split and not settings.redis_url:
            raise SpacesError(f"running only some roles ({', '.join(sorted(self.roles))}) needs Redis, which carries "
                              "the bus, the route table and the activity stamps between processes: set "
                              "SPACES_REDIS_URL (e.g. redis://127.0.0.1:6379/0), or run all four roles in one process")
        if "controller" in self.roles and settings.runtime.backend == "local" and Path("/tmp") in [
                settings.data_path, *settings.data_path.parents]:
            raise SpacesError(f"The data dir {settings.data_path} is under /tmp, which every Space replaces with a "
                              "private /tmp of its own; use another place (e.g. /var/lib/spaces or /var/tmp/...).")
        # host-wide names (uids, ports, cgroup root, firewall chain) are this instance's alone: see runtime.tenancy
        self.instance_id = tenancy.instance_id(settings.data_path)
        #: one process: calls in memory, as always; roles apart: Redis pub/sub (hints only, see spaces.bus)
        self.bus: Bus = make_bus(settings.redis_url, prefix=settings.redis_prefix) if self.split else MemoryBus()
        self.catalog = FlavorCatalog(settings.flavors)  # the one catalog: build_hub takes it for the API and pages
        self.nodes = [node_from_config(n) for n in settings.nodes.nodes]
        self._local_node = None
        if settings.nodes.detect_local:
            self._local_node = detect_local_node(labels=settings.nodes.local_labels,
                                                 reserved_cpu=settings.nodes.reserved_cpu,
                                                 reserved_memory_mb=settings.nodes.reserved_memory_mb)
            self.nodes.insert(0, self._local_node)
        self.capacity = Capacity(self.catalog, self.nodes, settings.quotas, settings.scheduler.policy())
        #: the route table this process writes or reads (the hub drops renamed/deleted names, the controller
        #: publishes, the proxy reads); None where no role here needs it
        self.routes = make_routes(settings) if (not self.split or self.roles & {"hub", "proxy", "controller"}) else None
        #: the default set-up runs Docker Spaces on a Docker engine when one answers (None: the backend runs all)
        self.docker_spaces = DockerSpaces(settings) if settings.runtime.backend == "local" else None
        hooks = SpaceHooks(on_revision=self._submit_build, on_change=self._nudge, on_deleted=self._deleted,
                           on_moved=self._moved, check_quota=self.capacity.check_quota,
                           sdk_unavailable=self._sdk_unavailable) if "hub" in self.roles else None
        self.hub = hub = build_hub(settings, hooks=hooks, capacity=self.capacity, flavors=self.catalog,
                                     bus=self.bus)
        self.db = hub.db
        hub.app_api.routes = self.routes  # the hub reads a running Gradio app's endpoints at its upstream
        self.health = Health()
        self.health.add("database", self._database_answers)
        if isinstance(self.bus, RedisBus):
            self.health.add("redis", lambda: self.bus.ping() or "Redis does not answer")
        if "hub" in self.roles:
            # what a killed server left (push quarantines, commits' temporary dirs); not in build_hub: the CLI
            # builds a hub too, while this server may be in the middle of a push
            sweep_temporaries(settings.repos_path)
        self.work_root = settings.data_path / "work"
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.volumes = Volumes(settings.data_path, repo_for=self._repo_for_volume,
                               claims=settings.runtime.backend == "kubernetes")
        # builds: the hub queues them (a row), builders run them
        self.builds = BuildService(hub.db, hub.logs, repo_for=hub.spaces.repo,
                                   builder=make_builder(settings, self.docker_spaces)
                                   if "builder" in self.roles else None,
                                   planner=plan_checkout, workers=settings.runtime.build_workers,
                                   on_built=self._nudge, env_for=variables_and_secrets, bus=self.bus,
                                   lease=settings.runtime.build_lease,
                                   preload=PreloadStore(settings.data_path / "preloads",
                                                        HubPreloadSource(hub.db, hub.store)))
        # the controller: nothing of the backend exists until this process leads
        self.backend = None
        self.reconciler: Reconciler | None = None
        self.sleeper: Sleeper | None = None
        self.leadership: Leadership | None = None
        #: HF_ENDPOINT of Docker Spaces when this process lets their containers reach its hub (``_hub_for_containers``)
        self._container_hub: str | None = None
        #: space id -> the subdomain its route was last published on (a rename moves it)
        self._route_hosts: dict[str, str] = {}
        #: space id -> the route state last published (``ready`` goes out when it turns running)
        self._route_states: dict[str, str] = {}
        self._backstop_stop = threading.Event()
        self._acting = False  # leads, and its loops run
        self._fatal: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit = None  # set by serve: ends it from any thread (through the loop)
        if "controller" in self.roles:
            self.leadership = Leadership(make_lock(settings.db_url, settings.data_path), on_elected=self._lead,
                                         on_lost=self._fenced, on_error=self._lead_failed)
            self.bus.subscribe("nudge", lambda m: self._nudge_local(m.get("space_id")))
            self.bus.subscribe("deleted", self._on_deleted_message)
            self.health.add("leader", self._leader_check)
        self.proxy: ProxyServer | None = None
        self.static: StaticSites | None = None
        self._activity_flusher: ActivityFlusher | None = None
        self._readiness: BusReadiness | None = None
        if "proxy" in self.roles:
            self._make_proxy()
        self.hub_socket = settings.data_path / "run" / "hub.sock"
        self.app = OpsRoutes(create_app(settings, hub), self.health) if "hub" in self.roles else None

    # ---- assembling the roles -----------------------------------------------------------------------------
    def _make_proxy(self) -> None:
        settings = self.settings
        self.static = StaticSites(settings.apps_base_domain)
        self.proxy_routes = StaticRoutes(self.routes, self.static.roots)
        if "hub" in self.roles:
            hub_upstream: tuple[str, int] | str | None = str(settings.data_path / "run" / "hub.sock")
        else:
            hub_upstream = _address(settings.hub_upstream) if settings.hub_upstream else None
        if self.split:
            self._readiness = BusReadiness(self.bus, self.routes)
            when_ready = self._readiness
        else:
            when_ready = self._when_ready_local
        self.wake = WakeService(self.db, when_ready, timeout=settings.proxy.wake_timeout)
        self.proxy = ProxyServer(routes=self.proxy_routes, apps_domain=settings.apps_base_domain,
                                 hub_upstream=hub_upstream, waker=self.wake.wake, authorize=self._authorize,
                                 on_upstream_dead=self._nudge, settings=settings.proxy,
                                 exchange=TicketExchange(settings.signing_key).redeem)
        if self.split:
            self._activity_flusher = ActivityFlusher(self.proxy.activity, settings.redis_url,
                                                     prefix=settings.redis_prefix)
            self.bus.subscribe("deleted", lambda m: self.proxy.activity.forget(str(m.get("space_id"))))

    def _sdk_unavailable(self) -> dict[str, str]:
        why = self.docker_spaces.problem() if self.docker_spaces is not None else ""
        return {"docker": why} if why else {}

    def _leader_check(self) -> bool | str:
        """Ready: it leads and its loops run (adoption done); a standby is alive but not ready."""
        if self.leadership is None or not self.leadership.leading:
            return "standby"
        return self._acting or "taking over"

    def _when_ready_local(self, space_id: str, callback) -> None:  # noqa: ANN001
        if self.reconciler is not None:
            self.reconciler.on_ready(space_id, callback)
        else:  # a standby controller in this process: the leader elsewhere cannot call back; the wake times out
            self._nudge(space_id)

    def _lead(self) -> None:
        """Elected: construct the backend, adopt what runs (nothing healthy restarted), start the loops."""
        settings = self.settings
        if settings.runtime.backend == "local":
            settings.local, claim = tenancy.claim_local(settings.local, settings.data_path)
            log.info("platform instance %s: Space uids %d-%d, app ports %d-%d, cgroup %s", claim.id, claim.uid_min,
                     claim.uid_max, claim.port_min, claim.port_max, claim.cgroup_root)
            if self._local_node is not None and "spaces_memory_mb" not in settings.local.model_fields_set:
                # all Spaces together keep to what the machine leaves them, as each one does to its own limit
                settings.local = settings.local.model_copy(update={"spaces_memory_mb":
                                                                   self._local_node.space_memory_mb})
        self.backend = make_backend(settings, self.catalog)
        self.reconciler = Reconciler(self.db, self.backend, self.hub.logs, start_instance=self._start_instance,
                                     publish_route=self._publish_route, sweep_seconds=settings.runtime.sweep_seconds,
                                     stop_frozen_after=settings.runtime.stop_frozen_after,
                                     memory_pressure=self._memory_pressure(),
                                     start_standby=self._start_standby,
                                     stop_standby_after=settings.runtime.stop_standby_after,
                                     reserve=lambda s, space, node=None: placement_json(
                                         self.capacity.reserve(s, space, node)),
                                     own_labels={LABEL_PLATFORM: self.instance_id},
                                     crash_backoff=settings.runtime.crash_backoff,
                                     max_crashes=settings.runtime.max_crashes,
                                     crash_reset_after=settings.runtime.crash_reset_after,
                                     default_startup_timeout=settings.runtime.default_startup_timeout)
        if self.split:
            last_seen = SharedActivity(settings.redis_url, prefix=settings.redis_prefix,
                                       local=self.proxy.activity if self.proxy else None).last_seen
        else:
            last_seen = self.proxy.activity.last_seen if self.proxy else (lambda _sid: None)
        self.sleeper = Sleeper(self.db, last_seen=last_seen, nudge=self.reconciler.nudge,
                               interval=settings.runtime.sleep_sweep_seconds)
        self.reconciler.start()
        self.sleeper.start()
        threading.Thread(target=self._backstop_loop, name="backstop", daemon=True).start()
        self._acting = True

    def _lead_failed(self, exc: BaseException) -> None:
        """Elected, but the controller could not start (e.g. the Docker engine cannot be reached): the process
        ends with that error, as when it cannot listen (``serve`` raises it once everything is stopped)."""
        if not isinstance(exc, SpacesError):
            log.error("starting the controller failed", exc_info=exc)
        self._fatal = exc
        self._request_exit()

    def _request_exit(self) -> None:
        loop, stop = self._loop, self._exit
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop)

    def _fenced(self) -> None:
        """The leadership lock is gone: another controller may lead now. Stop acting at once and exit non-zero
        (running Spaces keep running; a supervisor starts this process again, as a standby)."""
        self._stop_controller()
        log.critical("controller fenced: exiting with status %d", EXIT_FENCED)
        logging.shutdown()
        os._exit(EXIT_FENCED)

    def _stop_controller(self) -> None:
        self._acting = False
        self._backstop_stop.set()
        if self.sleeper is not None:
            self.sleeper.stop()
        if self.reconciler is not None:
            self.reconciler.stop()

    def _memory_pressure(self):  # noqa: ANN202
        """The local backend's machine is this one: its memory decides when sleeping Spaces give theirs back."""
        if self.settings.runtime.backend != "local":
            return None
        from spaces.runtime.pressure import low_memory

        threshold = self.settings.runtime.min_available_memory
        return lambda: low_memory(threshold)

    def _database_answers(self) -> bool | str:
        from sqlalchemy import text

        with self.db.engine.connect() as conn:
            conn.execute(text("select 1"))
        return True

    # ---- the hub's hooks: what it tells the other roles ------------------------------------------------------
    def _submit_build(self, s, space: Space, *, factory: bool = False) -> None:  # noqa: ANN001
        self.builds.submit(s, space, factory=factory)  # the row, in the caller's transaction; "builds" after it

    def _nudge(self, space_id: str | None = None) -> None:
        self.bus.publish("nudge", {"space_id": space_id})

    def _nudge_local(self, space_id: str | None) -> None:
        if self.reconciler is not None:
            self.reconciler.nudge(space_id)

    def _deleted(self, space_id: str, subdomain: str, instance: dict) -> None:
        if self.routes is not None:
            self.routes.delete(subdomain)  # the name answers 404 at once, wherever the controller is
        self.hub.app_api.forget(space_id)
        self.bus.publish("deleted", {"space_id": space_id, "subdomain": subdomain, "instance": instance})

    def _moved(self, space_id: str, subdomain: str) -> None:
        """After a rename: the old subdomain answers 404 at once; the controller publishes the new one."""
        if self.routes is not None:
            self.routes.delete(subdomain)
        self._nudge(space_id)

    # ---- glue called by the reconciler (the leading controller only) ------------------------------------------
    def _start_instance(self, s, space: Space, artifact: Artifact) -> tuple[Handle, dict]:  # noqa: ANN001
        placement = self.capacity.reserve(s, space)
        limits, note = self.capacity.limits_for(space.hardware, placement.node, placement.gpus)
        if note:
            log.info("space %s: %s", space.id, note)
        return self._start(s, space, artifact, limits, placement.node), placement_json(placement, limits, note)

    def _start_standby(self, s, space: Space, artifact: Artifact) -> Handle | None:  # noqa: ANN001
        """A standby for a Space stopped asleep (see spaces.runtime.reconciler), where the backend can run its SDK
        as one; never for a GPU flavor, whose devices only a placement assigns. No quota check and no placement:
        a standby holds neither until a visitor wakes it, and then it claims both as any start does."""
        flavor = self.catalog.get(space.hardware)
        if space.sdk not in getattr(self.backend, "standby_sdks", ()) or flavor.reservation.gpus:
            return None
        node = getattr(self.backend, "node", "local")
        return self._start(s, space, artifact, self.capacity.limits_for(space.hardware, node)[0], node)

    def _start(self, s, space: Space, artifact: Artifact, limits: Limits, node: str) -> Handle:  # noqa: ANN001
        workdir = workdir_for(self.work_root, self.hub.spaces.repo(space), space.id, artifact.sha)
        spec = instance_spec(s, space, artifact, app_host=self.settings.app_host(space.subdomain), workdir=workdir,
                             limits=limits, node=node, telemetry=self.settings.runtime.sdk_telemetry,
                             hub_endpoint=self._hub_endpoint(space.sdk),
                             startup_timeout=startup_timeout(space.card_data,
                                                             self.settings.runtime.default_startup_timeout))
        spec = dataclasses.replace(spec, labels={**spec.labels, LABEL_PLATFORM: self.instance_id},
                                   mounts=self.volumes.mounts(s, space))
        return self.backend.start(spec)

    def _hub_endpoint(self, sdk: str | None) -> str:
        """A sandboxed Space reaches the hub where the operator's browser does; a Docker Space cannot (localhost
        is its own container) and gets the gateway address ``_hub_for_containers`` listens on, unless the
        operator named the endpoint (``runtime.hub_endpoint``)."""
        if sdk == "docker" and self._container_hub is not None:
            return self._container_hub
        return self.settings.space_hub_endpoint

    async def _hub_for_containers(self) -> None:
        """Let the default set-up's Docker Spaces reach this hub: the proxy listens on the apps network's gateway
        too (only containers on that network and this machine reach that address; a sandboxed Space's firewall
        lets it reach the proxy's port on any local address already, and no other), and Docker Spaces get
        ``HF_ENDPOINT=http://host.docker.internal:PORT``, a name their containers resolve to that gateway.
        Not done where the operator said where the hub is (``runtime.hub_endpoint``, a public_url off this
        machine), nor without the proxy and the controller in this process; an engine that does not answer now
        leaves Docker Spaces the default endpoint (logged)."""
        from urllib.parse import urlparse

        from spaces.runtime.backends.docker import HOST_ALIAS, DockerBackend

        settings, docker = self.settings, self.docker_spaces
        if (docker is None or not docker.enabled or self.proxy is None or "controller" not in self.roles
                or settings.runtime.hub_endpoint):
            return
        if urlparse(settings.hub_url).hostname not in ("localhost", "127.0.0.1", "::1"):
            return  # the operator's public URL: containers reach it as anyone does
        why = await asyncio.to_thread(docker.probe.problem)
        if why:
            log.warning("Docker Spaces cannot reach this hub (HF_ENDPOINT): %s", why)
            return
        node = "local" if "local" in settings.docker.engines else next(iter(settings.docker.engines))
        try:
            gateway = await asyncio.to_thread(DockerBackend(settings.docker).gateway, node)
            if gateway is None:
                raise OSError(f"the network {settings.docker.network} has no IPv4 gateway")
            if settings.host not in ("0.0.0.0", "::", ""):  # listening on every address: on the gateway's too
                await self.proxy.also_listen(gateway, settings.port)
        except Exception as exc:  # noqa: BLE001 - the platform serves on; Docker Spaces miss the hub, as before
            log.warning("Docker Spaces cannot reach this hub (HF_ENDPOINT): %s", exc)
            return
        self._container_hub = f"http://{HOST_ALIAS}:{settings.port}"

    def _repo_for_volume(self, s, repo_type: str, repo_id: str):  # noqa: ANN001, ANN202
        store = self.hub.store(repo_type)
        row = store.find(s, repo_id)
        return store.repo(row) if row is not None else None

    def _publish_route(self, update: RouteUpdate) -> None:
        old = self._route_hosts.get(update.space_id)
        if old is not None and old != update.subdomain:
            # a step that read the name before a rename published it after the rename dropped it: drop it again
            self.routes.delete(old)
        self._route_hosts[update.space_id] = update.subdomain
        self.routes.put(update.subdomain, Route(update.space_id, update.upstream, update.state, update.private,
                                                update.owner_id, update.message, update.title, update.stage,
                                                static_root=update.static_root or "",
                                                app_file=update.app_file or "", reason=update.reason))
        if update.state == "running" and self._route_states.get(update.space_id) != "running":
            self.bus.publish("ready", {"space_id": update.space_id})  # wakes waiting in proxies elsewhere
        self._route_states[update.space_id] = update.state

    def _on_deleted_message(self, message: dict) -> None:
        if self.reconciler is None:
            return  # a standby: the leader stops it (or its backstop does)
        args = (str(message.get("space_id")), str(message.get("subdomain")), message.get("instance") or {})
        if self.split:  # on the bus's thread, which must not wait out an app's stop
            threading.Thread(target=self._stop_deleted, args=args, name="stop-deleted", daemon=True).start()
        else:  # in the hub's request, after its commit, as it always was
            self._stop_deleted(*args)

    def _stop_deleted(self, space_id: str, subdomain: str, instance: dict) -> None:
        self._route_hosts.pop(space_id, None)
        self._route_states.pop(space_id, None)
        self.routes.delete(subdomain)
        if self.proxy is not None:
            self.proxy.activity.forget(space_id)
        for key in ("current", "previous"):
            if instance.get(key):
                try:
                    self.backend.stop(Handle.from_json(instance[key]))
                except Exception:
                    log.exception("stopping a deleted Space's instance failed")
        self._forget_space(space_id)

    def _forget_space(self, space_id: str) -> None:
        # nothing of it stays: its working copies, then what the backend keeps of it (home, logs, uid)
        shutil.rmtree(self.work_root / space_id, ignore_errors=True)
        forget = getattr(self.backend, "forget", None)
        if forget is not None:
            try:
                forget(space_id)
            except Exception:
                log.exception("removing what a deleted Space left failed")

    # ---- the backstop: what a lost ``deleted`` message would leave ------------------------------------------
    def _backstop_loop(self) -> None:
        suspects: set[str] = set()
        while not self._backstop_stop.wait(self.settings.runtime.backstop_seconds):
            try:
                suspects = self.backstop(suspects)
            except Exception:
                log.exception("backstop sweep failed")

    def backstop(self, suspects: set[str]) -> set[str]:
        """Stop instances no Space row names (``Reconciler.adopt`` does so only at start) and drop routes of
        Spaces gone or renamed. An instance is stopped only when found unowned on two sweeps in a row: one just
        started is recorded on its row a moment after the backend starts it. Returns this sweep's suspects."""
        from sqlalchemy import select

        from spaces.runtime.contracts import LABEL_MANAGED

        running = self.backend.list({LABEL_MANAGED: "true", LABEL_PLATFORM: self.instance_id})
        with self.db.session() as s:
            rows = s.execute(select(Space.id, Space.subdomain, Space.instance)).all()
        known = {Handle.from_json(inst[k]).ref for _, _, inst in rows for k in ("current", "previous")
                 if inst and inst.get(k)}
        unowned = {h.ref for h in running if h.ref not in known}
        for handle in running:
            if handle.ref in unowned and handle.ref in suspects:
                log.warning("stopping %s: no Space owns it (deleted while no controller heard of it?)", handle.ref)
                try:
                    self.backend.stop(handle)
                except Exception:
                    log.exception("stopping %s failed", handle.ref)
        subdomains = {sid: sub for sid, sub, _ in rows}
        for host, route in self.routes.all().items():
            if subdomains.get(route.space_id) != host:
                self.routes.delete(host)
        for entry in self.work_root.iterdir() if self.work_root.is_dir() else ():
            if entry.is_dir() and entry.name not in subdomains:
                self._forget_space(entry.name)
        if isinstance(self.backend, HoldsClaims):
            forget_deleted_buckets(self.db, self.backend)
        return unowned

    async def _authorize(self, space_id: str, token: str | None, ticket: str | None) -> bool:
        """May this token (or browser ticket from the hub) see this private Space?"""
        def check() -> bool:
            with self.db.session() as s:
                space = s.get(Space, space_id)
                if space is None:
                    return False
                if token is not None:
                    try:
                        principal = accounts.authenticate(s, token)
                    except Exception:
                        return False
                    return accounts.may_read_namespace(s, principal, space.owner)
                if ticket is not None:
                    from spaces.hub.tickets import verify_ticket

                    user_id = verify_ticket(self.settings.signing_key, ticket, space_id)
                    user = s.get(Account, user_id) if user_id else None
                    # access is checked again now: a ticket outlives nothing its holder has lost since
                    return user is not None and accounts.may_read_namespace(
                        s, accounts.Principal(user, "read"), space.owner)
                return False
        return await asyncio.to_thread(check)

    def _repair(self) -> None:
        """Git's main is the truth (see spaces.services.spaces): a kill between a git update and the database
        commit is made good here, before builds and instances start, by reading every moved tip again."""
        try:
            with self.db.session() as s:
                repaired = self.hub.spaces.repair(s) + self.hub.models.repair(s) + self.hub.datasets.repair(s)
        except Exception:  # a Space that cannot be read now is read again by its next commit or push
            log.exception("bringing the database up to the git refs failed")
            return
        if repaired:
            log.warning("brought %d Space(s) up to their git tip after an interrupted update: %s", len(repaired),
                        ", ".join(repaired[:20]))
        # the template Spaces that /api/spaces/templates names
        seeded = templates.seed(self.db, self.hub.spaces, list_templates())
        if seeded:
            log.info("template Spaces seeded from templates/: %s", ", ".join(seeded))

    # ---- running ------------------------------------------------------------------------------------------
    async def serve(self) -> None:
        """Run this process's roles until SIGTERM/SIGINT: then in-flight requests finish, the controller stops
        acting and gives its leadership up, builders stop; running Spaces keep running."""
        import uvicorn

        settings = self.settings
        main: uvicorn.Server | None = None
        static_server = None
        tasks: list[asyncio.Task] = []
        if self.app is not None:
            if self.proxy is not None:
                self.hub_socket.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(self.hub_socket.parent, 0o700)  # no Space uid may reach the hub's socket directly
                if self.hub_socket.exists():
                    self.hub_socket.unlink()
                where = {"uds": str(self.hub_socket)}
            else:
                where = {"host": settings.host, "port": settings.port}
            main = uvicorn.Server(uvicorn.Config(self.app, **where, log_level="warning", proxy_headers=True,
                                                 forwarded_allow_ips="*", date_header=False,
                                                 timeout_graceful_shutdown=5))
        if settings.ops_port and self.app is None:
            main = uvicorn.Server(uvicorn.Config(ops_app(self.health), host=settings.host, port=settings.ops_port,
                                                 log_level="warning"))
        if self.proxy is not None:
            static_sock = socket.socket()
            static_sock.bind(("127.0.0.1", 0))
            self.proxy_routes.address = static_sock.getsockname()
            static_server = _side_server(uvicorn.Config(self.static, log_level="warning"))
            tasks.append(asyncio.create_task(static_server.serve(sockets=[static_sock])))
        if "hub" in self.roles:
            self._repair()
        if "builder" in self.roles:
            self.builds.start()
        await self._hub_for_containers()  # before the controller starts any Docker Space
        if self.leadership is not None:
            preload_backend(settings)  # a standby takes over without importing first
            # leading at once: what runs is adopted before anything is served, as a restarted server always did
            self.leadership.start(first_here=True)
        if self.proxy is not None:
            await self.proxy.start(settings.host, settings.port)
            if self._activity_flusher is not None:
                self._activity_flusher.start()
        freeze = (asyncio.create_task(_freeze_heap_once_started(main, settings.gc_freeze))
                  if main is not None and main.config.app is self.app else None)
        self._loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        if main is not None:
            self._exit = lambda: setattr(main, "should_exit", True)
        else:
            self._exit = stopped.set
        if self._fatal is not None:  # the controller failed before this point
            self._exit()
        try:
            if main is not None:
                await main.serve()
            else:
                await _until_signalled(stopped)
        finally:
            if self.proxy is not None:
                if self.split:  # in one process the hub's own graceful shutdown gave them that time already
                    await self.proxy.drain(GRACE_S)
                await self.proxy.close()
            if static_server is not None:
                static_server.should_exit = True
            if self._activity_flusher is not None:
                self._activity_flusher.close()
            if self._readiness is not None:
                self._readiness.close()
            self._stop_controller()
            if self.leadership is not None:
                self.leadership.stop()  # after the loops stopped: a standby may lead from here on
            if "builder" in self.roles:
                self.builds.stop()
            if freeze is not None:
                freeze.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            self.bus.close()
        if self._fatal is not None:
            raise self._fatal


def _side_server(config):  # noqa: ANN001, ANN202
    """A second uvicorn server in the process (the static files) that leaves SIGTERM to the main one: two chained
    handlers would re-raise the signal from inside this one's task, past the orderly shutdown."""
    import uvicorn

    class SideServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # noqa: ANN202
            yield

    return SideServer(config)


async def _until_signalled(stop: asyncio.Event) -> None:
    """For a process with no server of its own (a builder or controller without ``--ops-port``)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _freeze_heap_once_started(server, enabled: bool = True) -> None:  # noqa: ANN001
    """Move everything alive after start-up out of the cyclic collector's reach (``gc.freeze``).

    The hub and the proxy share this process and its event loop: a full collection walks every tracked object
    (about 130,000 after start-up: routes, models, templates), about 100 ms here, during which no proxied byte
    moves. Start-up objects live as long as the process, so walking them again finds nothing; frozen, they are
    never walked and a full collection only sees what was made since. Garbage is collected once first so that
    nothing dead is frozen."""
    import gc

    if not enabled:
        return
    while not server.started:
        await asyncio.sleep(0.05)
    gc.collect()
    gc.freeze()
