"""Configuration: one pydantic-settings ``Settings`` read from ``SPACES_*`` environment variables.

Nested models group a subsystem's settings; set them with a double underscore, e.g.
``SPACES_LIMITS__MAX_COMMIT_BYTES=1048576``. Every setting has a default that makes ``spaces serve`` work on one
machine with nothing else installed: SQLite and git repositories under ``data_dir``.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from spaces.builder.image import DockerBuildSettings
from spaces.builder.localconfig import LocalBuildSettings
from spaces.hub.pages.config import PagesSettings
from spaces.proxy.settings import ProxySettings
from spaces.runtime.backends.docker import DockerBackendSettings
from spaces.runtime.backends.kubernetes import KubernetesSettings
from spaces.runtime.backends.local import LocalBackendSettings
from spaces.runtime.flavors import FlavorSettings
from spaces.runtime.nodes import NodesSettings
from spaces.runtime.quota import QuotaSettings
from spaces.runtime.scheduler import SchedulerSettings
from spaces.services.buckets import StorageSettings


def default_data_dir() -> Path:
    # Space processes run as their own uids and must traverse to their environments and working copies, which
    # /root (0700) forbids: as root the platform lives under /var/lib/spaces.
    return Path("/var/lib/spaces") if os.geteuid() == 0 else Path("~/.spaces")


class Limits(BaseModel):
    """Input limits (a request over one of these is refused with 413 before anything is written) and what is stored."""

    max_commit_bytes: int = Field(512 * 1024 * 1024, description="largest NDJSON commit body accepted")
    max_json_bytes: int = Field(1024 * 1024, description="largest plain JSON request body accepted")
    body_memory: int = Field(
        64 * 1024 * 1024, ge=8 * 1024 * 1024, description="memory the hub lends to request bodies being read, "
        "all requests together (a JSON body takes its size, a streamed commit at most about 8 MiB); a body that "
        "does not fit waits its turn (body_wait)")
    body_wait: float = Field(30.0, gt=0, description="seconds a body waits for room in body_memory; then 503 "
                             "with Retry-After")
    page_size: int = Field(1000, description="items per page for listings (trees, Spaces, commits)")
    log_lines: int = Field(10_000, ge=10, description="stored log lines per Space and kind (build, run); older "
                           "lines are dropped as new ones come (live readers see every line)")


class LargeFileSettings(BaseModel):
    """Large files: Git LFS objects, stored once by sha256 under ``data_dir/lfs/objects`` (see
    ``spaces.storage.objects``). Objects that no repository uses any more stay on disk until ``spaces gc``."""

    max_object_bytes: int = Field(50 * 1024**3, ge=1, description="largest LFS object one upload may send")
    preupload_lfs: bool = Field(
        True, description="preupload answers 'lfs' for files of lfs_threshold bytes or more and for paths the "
        "repository's .gitattributes stores with filter=lfs: the default huggingface_hub (with hf_xet) then uploads "
        "them through this hub's Xet service (spaces.xet), clients with HF_HUB_DISABLE_XET=1 through the LFS batch "
        "API. Off: every file travels inside the commit (regular)")
    lfs_threshold: int = Field(10 * 1024 * 1024, ge=0, description="with preupload_lfs: files this large or "
                               "larger are uploaded as LFS objects")


class RuntimeSettings(BaseModel):
    """How Spaces are built and run."""

    backend: Literal["local", "docker", "kubernetes"] = Field(
        "local", description="where Spaces run: sandboxed local processes, Docker engines or Kubernetes")
    docker_spaces: bool = Field(
        True, description="local backend: run `sdk: docker` Spaces as containers on the Docker engine of "
        "SPACES_DOCKER__ENGINES (default: the local socket or DOCKER_HOST) beside the sandboxed Python Spaces, "
        "when that engine answers; off, or with no engine, creating a Docker Space is refused saying why")
    build_workers: int = Field(2, ge=1, description="builds that run at the same time (per builder process)")
    build_lease: float = Field(30.0, ge=2, description="seconds a running build stays its builder's without a sign "
                               "of life; then any builder takes it again (a builder renews it every sixth of it)")
    sweep_seconds: float = Field(5.0, gt=0, description="the reconciler looks at every Space this often")
    sleep_sweep_seconds: float = Field(10.0, gt=0, description="the sleeper checks for idle Spaces this often")
    stop_frozen_after: float = Field(
        21600.0, ge=0, description="a Space asleep (frozen) this long is stopped to give its memory back (a "
        "Streamlit Space on the local backend then leaves a frozen standby server, which holds no capacity); "
        "sooner under memory pressure (min_available_memory)")
    stop_standby_after: float = Field(
        604800.0, ge=0, description="a Space asleep this long gets no standby and its standby is stopped: a Space "
        "nobody visits any more holds no memory (0: no standbys at all)")
    min_available_memory: float = Field(
        0.15, ge=0, le=1.0, description="local backend: while less than this fraction of the machine's memory is "
        "available, a sleeping Space is stopped at each sweep, the longest-asleep first and standbys last "
        "(1.0: always, 0: never)")
    crash_backoff: float = Field(2.0, gt=0, description="seconds before a crashed app is started again after its "
                                 "first crash; doubled per crash in a row, at most 300")
    max_crashes: int = Field(5, ge=1, description="failures in a row (crashes, and start-up timeouts: the app not "
                             "opening its port within startup_duration_timeout) after which a Space stays stopped in "
                             "RUNTIME_ERROR, holding no capacity, until a push or a restart; a new revision failing "
                             "while the previous one serves leaves that one serving")
    crash_reset_after: float = Field(600.0, gt=0, description="seconds an app must have answered on its port before "
                                     "its count of failures is forgotten (Kubernetes resets CrashLoopBackOff after "
                                     "10 minutes): an app that answers, then crashes within this, counts toward "
                                     "max_crashes")
    default_startup_timeout: float = Field(1800.0, gt=0, description="when README has no startup_duration_timeout")
    backstop_seconds: float = Field(
        30.0, gt=0, description="the leading controller looks this often for instances and routes no Space owns any "
        "more (a deleted Space whose message the bus lost) and removes them")
    sdk_telemetry: bool = Field(
        False, description="let Gradio and Streamlit send their usage telemetry to their vendors; off by default "
        "(GRADIO_ANALYTICS_ENABLED=False, STREAMLIT_BROWSER_GATHER_USAGE_STATS=false), a Space's own variable wins")
    hub_endpoint: str | None = Field(
        None, description="the hub's URL as a Space's process reaches it, given to every Space as HF_ENDPOINT so "
        "that huggingface_hub in the app loads models and datasets from this hub (default: public_url, or "
        "http://localhost:PORT; the default set-up's Docker Spaces get http://host.docker.internal:PORT, which the "
        "proxy answers on the apps network's gateway; set it where the apps run elsewhere, e.g. on other engines or "
        "in pods)")


class Settings(BaseSettings):
    """Every knob of the platform. See the configuration table in the README."""

    model_config = SettingsConfigDict(env_prefix="SPACES_", env_nested_delimiter="__", extra="ignore")

    host: str = Field("127.0.0.1", description="address the server listens on (0.0.0.0 for all interfaces)")
    port: int = Field(8000, description="port the server listens on")
    data_dir: Path = Field(default_factory=default_data_dir,
                           description="repositories, database, environments (default /var/lib/spaces as root)")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite in data_dir, e.g. postgresql+psycopg://user@host/db"
    )
    public_url: str | None = Field(
        None, description="the hub's base URL as users reach it (absolute URLs in answers); default http://localhost:PORT"
    )
    apps_domain: str | None = Field(
        None, description="Spaces are served at http://{subdomain}.{apps_domain}; default localhost:PORT"
    )
    apps_scheme: str = Field("http", description="scheme of app URLs (https behind a TLS terminator)")
    secret_key: str | None = Field(None, description="signs cookies; default a random key kept in data_dir")
    signup_enabled: bool = Field(True, description="allow anyone to create an account from the web page")
    redis_url: str | None = Field(None, description="Redis for the route table shared by several proxy processes; "
                                  "required when the roles run in separate processes (bus, routes, activity)")
    redis_prefix: str = Field("spaces:", description="prefix of every Redis key and channel of this instance")
    roles: str = Field("hub,proxy,builder,controller", description="what this process runs (spaces serve --roles): "
                       "any of hub, proxy, builder, controller, comma separated")
    hub_upstream: str | None = Field(None, description="a proxy without the hub in its process sends non-app hosts "
                                     "here (host:port, e.g. a hub load balancer); unset: they get a 404")
    ops_port: int | None = Field(None, description="a process without the hub serves /healthz, /readyz and /metrics "
                                 "on this port (the hub serves them on its own)")
    metrics_token: SecretStr | None = Field(None, description="Bearer token Prometheus sends to scrape the hub's "
                                            "/metrics (administrators' tokens work too; anyone else gets 401/403)")
    gc_freeze: bool = Field(True, description="after start-up, keep the start-up heap out of Python's cyclic "
                            "collector (gc.freeze): a full collection then stalls the proxy far less. Off only to "
                            "measure it (bench/gc_freeze.py)")
    webhooks_private_targets: bool = Field(
        False, description="let webhooks POST to loopback, private and link-local addresses (off: the hub is no "
        "way to reach the services beside it; on for a receiver on the same network)")
    limits: Limits = Field(default_factory=Limits)
    large_files: LargeFileSettings = Field(default_factory=LargeFileSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    local: LocalBackendSettings = Field(default_factory=LocalBackendSettings)
    local_build: LocalBuildSettings = Field(default_factory=LocalBuildSettings)
    docker: DockerBackendSettings = Field(default_factory=DockerBackendSettings)
    docker_build: DockerBuildSettings = Field(default_factory=DockerBuildSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    flavors: FlavorSettings = Field(default_factory=FlavorSettings)
    nodes: NodesSettings = Field(default_factory=NodesSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    pages: PagesSettings = Field(default_factory=PagesSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def repos_path(self) -> Path:
        return self.data_path / "repos"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'spaces.db'}"

    @property
    def hub_url(self) -> str:
        return (self.public_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def space_hub_endpoint(self) -> str:
        """``HF_ENDPOINT`` in every Space: where an app's huggingface_hub finds this hub."""
        return (self.runtime.hub_endpoint or self.hub_url).rstrip("/")

    @property
    def apps_base_domain(self) -> str:
        return self.apps_domain or f"localhost:{self.port}"

    def app_host(self, subdomain: str) -> str:
        """The public origin of a Space's app: never a path on the hub's origin."""
        return f"{self.apps_scheme}://{subdomain}.{self.apps_base_domain}"

    @cached_property
    def signing_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.data_path / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()
