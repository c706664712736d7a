"""One backend made of several: each Space runs on the backend its SDK asks for (the default set-up runs
``sdk: docker`` Spaces on a Docker engine beside the local backend's sandboxed Python Spaces).

Why a composite behind the one ``Backend`` contract, and not a choice made in the reconciler: every caller of the
backend (the reconciler's applier and adoption, ``decide``'s inputs, the backstop, the sleeper's freeze and thaw,
a deleted Space's stop) already works through one ``Backend``, and every ``Handle`` already names the backend that
made it (``Handle.backend``), which the Space row records with its instance. So a start is routed by the spec's
SDK, and every other call by the handle it is given: nothing above this module knows there are two, and an
instance is always polled, frozen, logged and stopped by the backend that started it, even after its Space's SDK
changed (a push from ``gradio`` to ``docker`` starts the new revision on the Docker engine while the old process
keeps serving until the new one answers) or a control plane restarted (adoption lists every part's instances).

A part can be *retired*: the server runs no SDK on it any more (``SPACES_RUNTIME__DOCKER_SPACES`` turned off
after Docker Spaces ran) but its engine still answers. Its instances are still listed, so a restarted control
plane sees them, and the first poll of one stops it and says it is gone: no container is left running unmanaged,
and the Space's next start is refused saying why (``refused``), not tried on a backend that cannot run it.

Capacity is not this module's business: the scheduler places every Space on a node of its own list whatever
runs it, so Docker containers and local processes on this machine draw on the same node's CPU and memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping

from spaces.runtime.contracts import Backend, Handle, InstanceSpec, Observed, Phase, StartFailed

log = logging.getLogger(__name__)


class PerSdkBackend:
    """``default`` runs every SDK that ``by_sdk`` does not name."""

    name = "per-sdk"

    def __init__(self, default: Backend, by_sdk: Mapping[str, Backend], *, retired: Iterable[Backend] = (),
                 refused: Mapping[str, str] | None = None) -> None:
        """``retired``: backends whose instances are stopped when seen; ``refused``: SDK -> why this server does
        not run it (a start of it fails saying so)."""
        self.default = default
        self.by_sdk = dict(by_sdk)
        self.refused = dict(refused or {})
        self.parts: dict[str, Backend] = {default.name: default}
        for backend in self.by_sdk.values():
            self.parts.setdefault(backend.name, backend)
        self.retired = {b.name for b in retired if b.name not in self.parts}
        for backend in retired:
            self.parts.setdefault(backend.name, backend)
        #: where the platform starts a standby: the default's node (a standby is never placed elsewhere)
        self.node = getattr(default, "node", "local")
        #: an SDK runs as a standby only where the backend that runs it can
        self.standby_sdks = frozenset(
            sdk for b in self.parts.values() for sdk in getattr(b, "standby_sdks", ()) if self.for_sdk(sdk) is b)

    def for_sdk(self, sdk: str) -> Backend:
        return self.by_sdk.get(sdk, self.default)

    def _of(self, handle: Handle) -> Backend | None:
        """The backend that made ``handle``; None for one no part of this server runs (the server was started
        without it since: e.g. SPACES_RUNTIME__DOCKER_SPACES turned off)."""
        return self.parts.get(handle.backend)

    # ---- the Backend contract -----------------------------------------------------------------------------
    def start(self, spec: InstanceSpec) -> Handle:
        if spec.sdk in self.refused:
            raise StartFailed(self.refused[spec.sdk])
        return self.for_sdk(spec.sdk).start(spec)

    def poll(self, handle: Handle) -> Observed:
        backend = self._of(handle)
        if handle.backend in self.retired:
            log.warning("stopping %s: this server runs nothing on the %s backend any more", handle.ref, handle.backend)
            backend.stop(handle)
            return Observed(Phase.GONE)
        # gone as far as this server can tell: the reconciler clears the record and starts the Space anew on the
        # backend its SDK asks for now
        return backend.poll(handle) if backend is not None else Observed(Phase.GONE)

    def stop(self, handle: Handle) -> None:
        backend = self._of(handle)
        if backend is None:
            log.warning("cannot stop %s: no %s backend runs on this server now", handle.ref, handle.backend)
            return
        backend.stop(handle)

    def list(self, labels: dict[str, str]) -> list[Handle]:
        """Every part's instances. The default's failure is the caller's (as it would be alone); another part
        that cannot be reached (a Docker engine stopped) lists nothing: its instances are neither adopted nor
        taken for orphans, and their Spaces' polls say why."""
        handles = list(self.default.list(labels))
        for backend in self.parts.values():
            if backend is self.default:
                continue
            try:
                handles += backend.list(labels)
            except Exception as exc:  # noqa: BLE001 - one engine down must not stop the whole control plane
                log.warning("cannot list the %s backend's instances: %s", backend.name, exc)
        return handles

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        backend = self._of(handle)
        return backend.logs(handle, follow) if backend is not None else iter(())

    def freeze(self, handle: Handle) -> None:
        backend = self._of(handle)
        if backend is None:
            raise NotImplementedError(f"no {handle.backend} backend runs on this server now")
        backend.freeze(handle)

    def thaw(self, handle: Handle) -> None:
        backend = self._of(handle)
        if backend is None:
            raise NotImplementedError(f"no {handle.backend} backend runs on this server now")
        backend.thaw(handle)

    def forget(self, space_id: str) -> None:
        """What a deleted Space left with each part (the local backend's home, logs and uid)."""
        for backend in self.parts.values():
            forget = getattr(backend, "forget", None)
            if forget is not None:
                forget(space_id)
