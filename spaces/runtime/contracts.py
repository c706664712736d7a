"""The Backend plug-in contract, and the records that cross it.

Lifecycle, in the spirit of ``subprocess.Popen``:

* ``start(spec) -> Handle``: begin running one revision of one Space and return at once (do not wait for the
  app to answer: readiness is the reconciler's job, via ``poll`` and the app's port). Raise ``StartFailed`` with
  a user-facing message when it cannot even begin (image missing, no such node).
* ``poll(handle) -> Observed``: what the instance is doing now. Cheap; called on every reconcile sweep.
* ``stop(handle)``: make it gone. "Already gone" is success. Idempotent.
* ``list(labels) -> [Handle]``: every instance this backend runs whose labels include ``labels``; how a restarted
  control plane re-adopts what is running and finds orphans.
* ``logs(handle, follow) -> iterator of lines``: the app's stdout and stderr, oldest first.
* ``freeze(handle)`` / ``thaw(handle)``: optional first tier of sleep (cgroup freezer, ``docker pause``): the
  instance keeps its memory and resumes at once. Backends without it raise ``NotImplementedError``.
* ``standby_sdks``: optional attribute, the SDKs whose apps this backend may start as a *standby* (a fresh
  instance that the reconciler freezes before anyone uses it, in place of a Space stopped after a long sleep; see
  ``spaces.runtime.reconciler``). Only SDKs that run no app code before the first visitor qualify: their server
  waits, and the app's script runs per session. Absent means none.
* ``claims()`` / ``forget_claim(bucket_id)``: optional (``HoldsClaims``), for a backend that keeps buckets in
  storage of its own (a PersistentVolumeClaim each on Kubernetes) instead of mounting the platform's directories:
  the buckets it holds storage for, and giving one's storage back once its bucket is deleted.

A ``Handle`` is small, frozen and JSON-serialisable (stored on the Space row) so that a control plane killed
with SIGKILL can adopt the instance again after a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

from spaces.builder.plan import Artifact
from spaces.errors import SpacesError

#: label keys every backend puts on what it runs
LABEL_MANAGED = "spaces.managed"
LABEL_SPACE = "spaces.space-id"
LABEL_SHA = "spaces.sha"
#: the platform instance (its id, kept in its data dir): two platforms on one engine adopt only their own
LABEL_PLATFORM = "spaces.platform"


@dataclass(frozen=True)
class Limits:
    """What the instance may use (the flavor's shape, or an operator override)."""

    cpu: float  # cores
    memory_mb: int
    gpus: tuple[int, ...] = ()  # device indices assigned exclusively by the scheduler
    disk_mb: int = 0  # everything the Space may write (local backend: home and working-copy writes); 0: backend's


@dataclass(frozen=True)
class Claim:
    """A bucket kept by the backend in storage of its own (``HoldsClaims``): no directory of the platform's host
    backs it. ``sub_path``: a folder of the bucket mounted instead of its root."""

    bucket_id: str  # the bucket's row id: stable across renames, names its storage
    size_mb: int
    sub_path: str | None = None


@dataclass(frozen=True)
class Mount:
    """What the instance sees at ``target`` (a volume, ``spaces.runtime.volumes``): a directory of the host
    (``source``), or a bucket's own storage (``claim``; ``source`` is then empty)."""

    source: str
    target: str
    read_only: bool = True
    claim: Claim | None = None


@dataclass(frozen=True)
class InstanceSpec:
    space_id: str
    repo_id: str  # "owner/name"
    sha: str
    sdk: str
    artifact: Artifact
    workdir: str  # a checkout of ``sha`` the instance runs from (local backend); image has its own copy
    app_file: str | None
    port: int  # the port the app listens on
    env: dict[str, str]  # variables, secrets and the SPACE_* variables, assembled by the runtime service
    limits: Limits
    node: str = "local"
    flavor: str = "cpu-basic"
    labels: dict[str, str] = field(default_factory=dict)
    startup_timeout: float = 1800.0
    mounts: tuple[Mount, ...] = ()  # its volumes; a backend that cannot mount them raises StartFailed


@dataclass(frozen=True)
class Handle:
    backend: str  # "local", "docker", "kubernetes", "fake"
    ref: str  # pid, container id, pod name
    node: str
    data: dict = field(default_factory=dict)  # e.g. {"host": "127.0.0.1", "port": 41234, "uid": 20001}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Handle":
        return cls(**data)


class Phase(str, Enum):
    STARTING = "starting"  # running, port not answering yet
    RUNNING = "running"  # the app's port answers
    FROZEN = "frozen"  # first tier of sleep: alive, not scheduled
    EXITED = "exited"  # process / container ended (crash or stop)
    GONE = "gone"  # the backend knows nothing of it


@dataclass(frozen=True)
class Observed:
    phase: Phase
    address: tuple[str, int] | None = None  # where the proxy reaches the app
    exit_code: int | None = None
    message: str = ""  # for EXITED: the tail of the log, for the stage message


class StartFailed(SpacesError):
    status = 500
    code = "StartFailed"


class LogSink(Protocol):
    """Where the runtime writes a Space's run log, line by line (the platform passes
    ``spaces.services.logs.LogBus``; the runtime sits below the services and names only this port)."""

    def append(self, space_id: str, kind: str, data: str) -> None: ...

    def clear(self, space_id: str, kind: str) -> None: ...


class Backend(Protocol):
    name: str

    def start(self, spec: InstanceSpec) -> Handle: ...

    def stop(self, handle: Handle) -> None: ...

    def poll(self, handle: Handle) -> Observed: ...

    def list(self, labels: dict[str, str]) -> list[Handle]: ...

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]: ...

    def freeze(self, handle: Handle) -> None: ...

    def thaw(self, handle: Handle) -> None: ...


@runtime_checkable
class HoldsClaims(Protocol):
    """A backend that keeps buckets in storage of its own (see the module docstring)."""

    def claims(self) -> set[str]: ...

    def forget_claim(self, bucket_id: str) -> None: ...
