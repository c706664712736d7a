"""``spaces down``'s host part: stop every instance of one platform and take away what it put on the host.

The local backend leaves, per platform instance (see ``spaces.runtime.tenancy``): the Spaces' processes (running or
frozen, standbys included), each Space's disk mounted on a loop device (``spacedisk``), one cgroup per instance under
the platform's cgroup root, the loopback guard's two iptables chains and their jump rules (``netguard``, IPv4 and
IPv6), and its claim in the host registry. :func:`down_local` removes all of them, in that order: processes first,
since a mount, a cgroup or a uid range that something still uses cannot go.

What stays, all inside the data dir: the database, the repositories, the environments, the logs and each Space's
disk image (its files, found again at its next start). The Docker and Kubernetes backends' containers and pods are
stopped by :func:`down_labelled`; their images stay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class DownReport:
    """What was taken away (for the operator's one-line summary and the tests)."""

    stopped: int = 0  # instances stopped through the backend
    killed: int = 0  # stragglers of the platform's uids killed afterwards
    unmounted: int = 0  # Space disks unmounted
    chains: bool = False  # the firewall chains were removed
    cgroup_root: str = ""
    cgroups_left: list[str] = field(default_factory=list)  # groups that could not be removed (something runs)
    unclaimed: bool = False  # the host registry entry was dropped
    problems: list[str] = field(default_factory=list)


def down_local(local, data_dir: Path, *, grace_s: float = 5.0) -> DownReport:  # noqa: ANN001 (LocalBackendSettings)
    """Stop every instance of the platform at ``data_dir`` and remove its host-wide state. ``local``: its
    LocalBackendSettings as ``spaces serve`` reads them; the uids, cgroup root and chains it claimed come from
    the host registry (without claiming anything)."""
    from spaces.runtime import netguard, tenancy
    from spaces.runtime.backends.local import LocalBackend
    from spaces.runtime.cgroups import remove_root

    report = DownReport()
    if "root" not in local.model_fields_set:
        local = local.model_copy(update={"root": data_dir / "local"})
    claim = tenancy.claimed(data_dir, local.registry)
    if claim is not None:
        local = local.model_copy(update={"uid_min": claim.uid_min, "uid_max": claim.uid_max,
                                         "cgroup_root": claim.cgroup_root, "port_min": claim.port_min,
                                         "port_max": claim.port_max})
    local = local.model_copy(update={"stop_grace_s": grace_s})
    report.cgroup_root = local.cgroup_root
    if local.dir("run").is_dir():  # it ever ran a Space here
        backend = LocalBackend(local)
        for handle in backend.list({}):
            try:
                backend.stop(handle)
                report.stopped += 1
            except Exception as exc:  # one that will not stop must not keep the others running
                report.problems.append(f"stopping {handle.id}: {exc}")
        report.unmounted = _unmount_disks(backend.homes_dir / "spaces")
    report.killed = _kill_uids(local.uid_min, local.uid_max)
    netguard.uninstall(local.uid_min, local.uid_max)
    report.chains = not netguard.installed(local.uid_min)
    deadline = time.monotonic() + 5.0
    while True:  # a killed process leaves its cgroup a moment after the signal
        remove_root(local.cgroup_root)
        report.cgroups_left = _cgroup_dirs(local.cgroup_root)
        if not report.cgroups_left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if report.cgroups_left:
        report.problems.append(f"cgroups still in use: {', '.join(report.cgroups_left)}")
    report.unclaimed = tenancy.unclaim(data_dir, local.registry)
    return report


def down_labelled(backend, labels: dict[str, str]) -> DownReport:  # noqa: ANN001 (a Backend)
    """Docker / Kubernetes: stop every container or pod carrying this platform's labels."""
    report = DownReport()
    for handle in backend.list(labels):
        try:
            backend.stop(handle)
            report.stopped += 1
        except Exception as exc:
            report.problems.append(f"stopping {handle.id}: {exc}")
    return report


def _unmount_disks(spaces_homes: Path) -> int:
    from spaces.runtime.spacedisk import SpaceDisk

    count = 0
    for space_dir in sorted(spaces_homes.iterdir()) if spaces_homes.is_dir() else ():
        disk = SpaceDisk(space_dir)
        if disk.mounted():
            try:
                disk.release()
                count += 1
            except OSError as exc:
                log.warning("could not unmount %s: %s", disk.mnt, exc)
    return count


def _kill_uids(uid_min: int, uid_max: int) -> int:
    """SIGKILL every process of the platform's sandbox uids (a zygote's fork that left its group, say)."""
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if uid_min <= entry.stat().st_uid <= uid_max:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def _cgroup_dirs(root_name: str) -> list[str]:
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    left = []
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("cgroup", "cgroup2") and (Path(parts[1]) / root_name).is_dir():
            left.append(str(Path(parts[1]) / root_name))
    return left
