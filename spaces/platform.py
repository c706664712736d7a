"""The composition root: one process runs the hub, the builder, the reconciler, the sleeper and the proxy.

``spaces serve`` builds a :class:`Platform` and runs it: uvicorn serves the hub on a unix socket inside the data
dir, and the proxy, the only public listener, routes ``{subdomain}.{apps domain}`` to running Spaces and
everything else to that socket. Workers (builds, reconcile, sleep) are threads; the proxy and the hub share the
event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import socket
from pathlib import Path

from spaces.builder.detect import plan_checkout
from spaces.builder.errors import BuildFailed
from spaces.builder.plan import Artifact, BuildPlan
from spaces.db.models import Account, Space
from spaces.errors import SpacesError
from spaces.hub.app import build_hub, create_app
from spaces.hub.tickets import TicketExchange
from spaces.proxy.routes import MemoryRouteTable, Route
from spaces.proxy.server import ProxyServer
from spaces.runtime import tenancy
from spaces.runtime.capacity import Capacity, placement_json
from spaces.runtime.contracts import LABEL_PLATFORM, Handle, Limits
from spaces.runtime.flavors import FlavorCatalog
from spaces.runtime.nodes import detect_local_node, node_from_config
from spaces.runtime.reconciler import Reconciler, RouteUpdate
from spaces.runtime.sleeper import Sleeper
from spaces.runtime.specs import instance_spec, startup_timeout, variables_and_secrets, workdir_for
from spaces.runtime.static_site import StaticSites
from spaces.services import accounts
from spaces.services.builds import BuildService
from spaces.services.wake import WakeService
from spaces.settings import Settings
from spaces.storage.gitrepo import sweep_temporaries

log = logging.getLogger("spaces")


class LocalArtifacts:
    """The local backend's builder: uv environments (shared by content address); static Spaces need none."""

    def __init__(self, settings: Settings) -> None:
        from spaces.builder.localenv import LocalEnvBuilder

        self.envs = LocalEnvBuilder(settings.local_build, data_dir=settings.data_path)

    def build(self, plan: BuildPlan, *, space_id: str, sha: str, context: Path, variables: dict, secrets: dict,
              log, factory: bool) -> Artifact:  # noqa: ANN001
        if plan.sdk == "static":
            log("built", "Static Space: no environment to build; files are served as they are")
            return Artifact("static", "", plan.env_digest, sha)
        if plan.sdk == "docker":
            raise BuildFailed("Docker Spaces need the docker backend: run the server with "
                              "SPACES_RUNTIME__BACKEND=docker (see the README), or use sdk: gradio / streamlit.")
        return self.envs.build(plan, sha, log)


def make_backend(settings: Settings):  # noqa: ANN201
    kind = settings.runtime.backend
    if kind == "docker":
        from spaces.runtime.backends.docker import DockerBackend

        return DockerBackend(settings.docker)
    if kind == "kubernetes":
        from spaces.runtime.backends.kubernetes import KubernetesBackend

        return KubernetesBackend(settings.kubernetes, FlavorCatalog(settings.flavors))
    from spaces.runtime import netguard
    from spaces.runtime.backends.local import LocalBackend

    local = settings.local
    netguard.install(local.uid_min, local.uid_max, allow_ports=[settings.port], outbound=local.outbound)
    return LocalBackend(local, holes=netguard.OwnPortHoles(local.uid_min))


def make_builder(settings: Settings):  # noqa: ANN201
    if settings.runtime.backend in ("docker", "kubernetes"):
        from spaces.builder.image import DockerImageBuilder

        return DockerImageBuilder(settings.docker_build)
    return LocalArtifacts(settings)


def make_routes(settings: Settings):  # noqa: ANN201
    if settings.redis_url:
        from spaces.proxy.redis_routes import RedisRouteTable

        return RedisRouteTable(settings.redis_url)
    return MemoryRouteTable()


class Platform:
    def __init__(self, settings: Settings) -> None:
        if "root" not in settings.local.model_fields_set:
            settings.local = settings.local.model_copy(update={"root": settings.data_path / "local"})
        self.settings = settings
        if settings.runtime.backend == "local" and Path("/tmp") in [settings.data_path, *settings.data_path.parents]:
            raise SpacesError(f"The data dir {settings.data_path} is under /tmp, which every Space replaces with a "
                              "private /tmp of its own; use another place (e.g. /var/lib/spaces or /var/tmp/...).")
        # host-wide names (uids, ports, cgroup root, firewall chain) are this instance's alone: see runtime.tenancy
        self.instance_id = tenancy.instance_id(settings.data_path)
        if settings.runtime.backend == "local":
            settings.local, claim = tenancy.claim_local(settings.local, settings.data_path)
            log.info("platform instance %s: Space uids %d-%d, app ports %d-%d, cgroup %s", claim.id, claim.uid_min,
                     claim.uid_max, claim.port_min, claim.port_max, claim.cgroup_root)
        self.hub = hub = build_hub(settings)
        # what a killed server left (push quarantines, commits' temporary dirs); not in build_hub: the CLI builds a
        # hub too, while this server may be in the middle of a push
        sweep_temporaries(settings.repos_path)
        nodes = [node_from_config(n) for n in settings.nodes.nodes]
        if settings.nodes.detect_local:
            local_node = detect_local_node(labels=settings.nodes.local_labels, reserved_cpu=settings.nodes.reserved_cpu,
                                           reserved_memory_mb=settings.nodes.reserved_memory_mb)
            nodes.insert(0, local_node)
            if settings.runtime.backend == "local" and "spaces_memory_mb" not in settings.local.model_fields_set:
                # all Spaces together keep to what the machine leaves them, as each one does to its own limit
                settings.local = settings.local.model_copy(update={"spaces_memory_mb": local_node.space_memory_mb})
        self.backend = make_backend(settings)
        self.routes = make_routes(settings)
        self.catalog = FlavorCatalog(settings.flavors)
        self.capacity = Capacity(self.catalog, nodes, settings.quotas, settings.scheduler.policy())
        self.work_root = settings.data_path / "work"
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.static = StaticSites(settings.apps_base_domain)
        self._static_addr: tuple[str, int] | None = None
        self.reconciler = Reconciler(hub.db, self.backend, hub.logs, start_instance=self._start_instance,
                                     publish_route=self._publish_route, sweep_seconds=settings.runtime.sweep_seconds,
                                     stop_frozen_after=settings.runtime.stop_frozen_after,
                                     memory_pressure=self._memory_pressure(),
                                     start_standby=self._start_standby,
                                     stop_standby_after=settings.runtime.stop_standby_after,
                                     reserve=lambda s, space: placement_json(self.capacity.reserve(s, space)),
                                     own_labels={LABEL_PLATFORM: self.instance_id})
        self.builds = BuildService(hub.db, hub.logs, repo_for=hub.spaces.repo, builder=make_builder(settings),
                                   planner=plan_checkout, workers=settings.runtime.build_workers,
                                   on_built=self.reconciler.nudge, env_for=variables_and_secrets)
        hub.spaces.on_revision = self.builds.submit
        hub.spaces.on_change = self.reconciler.nudge
        hub.spaces.on_deleted = self._stop_deleted
        hub.spaces.on_moved = self._drop_old_route
        #: space id -> the subdomain its route was last published on (a rename moves it)
        self._route_hosts: dict[str, str] = {}
        hub.spaces.check_quota = self.capacity.check_quota
        hub.capacity = self.capacity
        self.wake = WakeService(hub.db, self.reconciler, timeout=settings.proxy.wake_timeout)
        self.hub_socket = settings.data_path / "run" / "hub.sock"
        self.proxy = ProxyServer(routes=self.routes, apps_domain=settings.apps_base_domain,
                                 hub_upstream=str(self.hub_socket), waker=self.wake.wake,
                                 authorize=self._authorize, on_upstream_dead=self.reconciler.nudge,
                                 settings=settings.proxy, exchange=TicketExchange(settings.signing_key).redeem)
        self.sleeper = Sleeper(hub.db, last_seen=self.proxy.activity.last_seen, nudge=self.reconciler.nudge,
                               interval=settings.runtime.sleep_sweep_seconds)
        self.app = create_app(settings, hub)

    def _memory_pressure(self):  # noqa: ANN202
        """The local backend's machine is this one: its memory decides when sleeping Spaces give theirs back."""
        if self.settings.runtime.backend != "local":
            return None
        from spaces.runtime.pressure import low_memory

        threshold = self.settings.runtime.min_available_memory
        return lambda: low_memory(threshold)

    # ---- glue called by the reconciler --------------------------------------------------------------------
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
                             startup_timeout=startup_timeout(space.card_data,
                                                             self.settings.runtime.default_startup_timeout))
        spec = dataclasses.replace(spec, labels={**spec.labels, LABEL_PLATFORM: self.instance_id})
        return self.backend.start(spec)

    def _publish_route(self, update: RouteUpdate) -> None:
        old = self._route_hosts.get(update.space_id)
        if old is not None and old != update.subdomain:
            # a step that read the name before a rename published it after the rename dropped it: drop it again
            self._drop_old_route(update.space_id, old)
        self._route_hosts[update.space_id] = update.subdomain
        upstream = update.upstream
        if update.static_root:
            self.static.roots[update.subdomain] = (Path(update.static_root), update.app_file or "index.html")
            upstream = self._static_addr
        elif update.subdomain in self.static.roots and update.state != "running":
            self.static.roots.pop(update.subdomain, None)
        self.routes.put(update.subdomain, Route(update.space_id, upstream, update.state, update.private,
                                                update.owner_id, update.message, update.title, update.stage))

    def _drop_old_route(self, space_id: str, subdomain: str) -> None:
        """After a rename: the old subdomain answers 404 at once; the reconciler publishes the new one."""
        self.routes.delete(subdomain)
        self.static.roots.pop(subdomain, None)
        self.reconciler.nudge(space_id)

    def _stop_deleted(self, space_id: str, subdomain: str, instance: dict) -> None:
        self._route_hosts.pop(space_id, None)
        self.routes.delete(subdomain)
        self.static.roots.pop(subdomain, None)
        self.proxy.activity.forget(space_id)
        for key in ("current", "previous"):
            if instance.get(key):
                try:
                    self.backend.stop(Handle.from_json(instance[key]))
                except Exception:
                    log.exception("stopping a deleted Space's instance failed")
        # nothing of it stays: its working copies, then what the backend keeps of it (home, logs, uid)
        shutil.rmtree(self.work_root / space_id, ignore_errors=True)
        forget = getattr(self.backend, "forget", None)
        if forget is not None:
            try:
                forget(space_id)
            except Exception:
                log.exception("removing what a deleted Space left failed")

    async def _authorize(self, space_id: str, token: str | None, ticket: str | None) -> bool:
        """May this token (or browser ticket from the hub) see this private Space?"""
        def check() -> bool:
            with self.hub.db.session() as s:
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
            with self.hub.db.session() as s:
                repaired = self.hub.spaces.repair(s)
        except Exception:  # a Space that cannot be read now is read again by its next commit or push
            log.exception("bringing the database up to the git refs failed")
            return
        if repaired:
            log.warning("brought %d Space(s) up to their git tip after an interrupted update: %s", len(repaired),
                        ", ".join(repaired[:20]))

    # ---- running ------------------------------------------------------------------------------------------
    async def serve(self) -> None:
        import uvicorn

        self.hub_socket.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.hub_socket.parent, 0o700)  # no Space uid may reach the hub's socket directly
        if self.hub_socket.exists():
            self.hub_socket.unlink()
        hub_server = uvicorn.Server(uvicorn.Config(self.app, uds=str(self.hub_socket), log_level="warning",
                                                   proxy_headers=True, forwarded_allow_ips="*", date_header=False,
                                                   timeout_graceful_shutdown=5))
        static_sock = socket.socket()
        static_sock.bind(("127.0.0.1", 0))
        self._static_addr = static_sock.getsockname()
        static_server = uvicorn.Server(uvicorn.Config(self.static, log_level="warning"))
        self._repair()
        self.builds.start()
        self.reconciler.start()
        self.sleeper.start()
        await self.proxy.start(self.settings.host, self.settings.port)
        static_task = asyncio.create_task(static_server.serve(sockets=[static_sock]))
        freeze_task = asyncio.create_task(_freeze_heap_once_started(hub_server, self.settings.gc_freeze))
        try:
            await hub_server.serve()
        finally:
            static_server.should_exit = True
            await self.proxy.close()
            self.sleeper.stop()
            self.reconciler.stop()
            self.builds.stop()
            freeze_task.cancel()
            await asyncio.wait([static_task], timeout=5)


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
