"""cgroups for the local backend: memory, CPU and pids limits, the freezer, and OOM detection; v1 and v2.

One group per instance, ``{root}/{instance}``, in every controller hierarchy we use. The backend creates it before
the app starts and hands the app's launcher the ``cgroup.procs`` files to join (the launcher writes its own pid as
root, before dropping privileges, so the app never runs outside its limits). ``remove`` kills anything left inside
and deletes the group. Needs root (or a delegated, writable hierarchy). When neither v2 nor v1 is writable,
:class:`Cgroups` says so once in the log (``available`` False, ``reason`` set) and the backend runs apps without
limits and freezes with SIGSTOP instead.

Hosts: cgroup v2 (unified, ``/sys/fs/cgroup`` with ``cgroup.controllers``) is preferred when it offers the memory
controller; otherwise v1 (one mount per controller, found in /proc/mounts; "hybrid" hosts whose v2 mount carries no
controllers use v1).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

V1_CONTROLLERS = ("memory", "cpu", "pids", "freezer", "devices")
CPU_PERIOD_US = 100_000
NVIDIA_MAJOR = 195


def _write(path: Path, value: str) -> None:
    path.write_text(value)


class Cgroups:
    """Per-instance cgroups under ``root_name``. Construct once; cheap to query."""

    def __init__(self, root_name: str = "spaces", mounts_file: str = "/proc/mounts", *,
                 memory_mb: int | None = None) -> None:
        """``memory_mb``: the most all the groups under the root may use together (the root group's own limit),
        so that Spaces that each keep to their limits still cannot take the machine from the platform."""
        self.root_name = root_name
        self.version: int | None = None
        self.reason = ""
        self.v1: dict[str, Path] = {}  # controller -> our root group in that hierarchy
        self.v2: Path | None = None
        self._mounts: dict[str, Path] = {}  # hierarchy ("" for v2, else a v1 controller) -> its mount point
        self._detect(mounts_file)
        if memory_mb and self.available:
            self.limit_root(memory_mb)

    def limit_root(self, memory_mb: int) -> None:
        """Set the root group's memory limit (what every instance together may use). A limit below what the groups
        use now is refused by the kernel: then it stays as it was, said in the log."""
        value = str(int(memory_mb) * 1024 * 1024)
        if self.version == 2 and self.v2 is not None:
            files = [self.v2 / "memory.max"]
        else:
            root = self.v1.get("memory")
            files = [root / "memory.limit_in_bytes"] if root is not None else []
        for path in files:
            try:
                _write(path, value)
            except OSError as e:
                log.warning("could not limit all Spaces together to %d MiB (%s): %s", memory_mb, path, e)

    @property
    def available(self) -> bool:
        return self.version is not None

    # -- detection -----------------------------------------------------------------------------------------
    def _detect(self, mounts_file: str) -> None:
        v1_mounts: dict[str, Path] = {}
        v2_mount: Path | None = None
        try:
            lines = Path(mounts_file).read_text().splitlines()
        except OSError as e:
            self.reason = f"cannot read {mounts_file}: {e}"
            return
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            _, mnt, fstype, opts = parts[:4]
            if fstype == "cgroup2" and v2_mount is None:
                v2_mount = Path(mnt)
            elif fstype == "cgroup":
                for opt in opts.split(","):
                    if opt in V1_CONTROLLERS and opt not in v1_mounts:
                        v1_mounts[opt] = Path(mnt)
        errors = []
        if v2_mount is not None:
            try:
                controllers = (v2_mount / "cgroup.controllers").read_text().split()
            except OSError:
                controllers = []
            if "memory" in controllers:
                try:
                    root = v2_mount / self.root_name
                    root.mkdir(exist_ok=True)
                    wanted = [c for c in ("memory", "cpu", "pids") if c in controllers]
                    # a v2 group may only use the controllers its parent enabled for its children
                    for group in (v2_mount, root):
                        _write(group / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
                    self.v2, self.version, self._mounts = root, 2, {"": v2_mount}
                    return
                except OSError as e:
                    errors.append(f"cgroup v2 at {v2_mount} is not writable ({e})")
        if "memory" in v1_mounts:
            try:
                for ctrl, mnt in v1_mounts.items():
                    (mnt / self.root_name).mkdir(exist_ok=True)
                    self.v1[ctrl] = mnt / self.root_name
                self.version, self._mounts = 1, dict(v1_mounts)
                return
            except OSError as e:
                self.v1 = {}
                errors.append(f"cgroup v1 at {v1_mounts['memory']} is not writable ({e})")
        self.reason = "; ".join(errors) or "no cgroup v1 memory controller or cgroup v2 hierarchy is mounted"
        log.warning("local backend: cgroups unavailable, Spaces run WITHOUT memory/CPU limits: %s", self.reason)

    # -- joining fast --------------------------------------------------------------------------------------------
    def warm_join(self, proc_cgroup: str = "/proc/self/cgroup") -> threading.Thread | None:
        """Start, in a thread, the wait that makes the kernel slow to let the next process join a group; call it
        right after ``create`` and before the launch, so that the app's own join (its first instruction) does not wait.

        Moving a process between cgroups takes a lock that the kernel keeps cheap for forks and exits until someone
        writes: the first write after a quiet spell waits for an RCU grace period (5-25 ms measured on a 2-core VM),
        and writes in the moments after it do not. The thread writes our own pid to the group we are in already,
        which moves nothing but pays that wait while the backend opens the guard's hole and the zygote forks. Not
        before ``create``: making a group waits for a join in flight. Best effort: a host where our own group
        cannot be written to is simply not warmed."""
        target = self._own_procs_file(proc_cgroup)
        if target is None:
            return None

        def rejoin() -> None:
            try:
                _write(target, str(os.getpid()))
            except OSError as e:
                log.debug("could not warm the cgroup join through %s: %s", target, e)

        thread = threading.Thread(target=rejoin, name="cgroup-warm", daemon=True)
        thread.start()
        return thread

    def _own_procs_file(self, proc_cgroup: str) -> Path | None:
        """The ``cgroup.procs`` file of the group this process is in, in one of our hierarchies (None if unseen)."""
        try:
            lines = Path(proc_cgroup).read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for hierarchy in (controllers.split(",") if controllers else [""]):
                mount = self._mounts.get(hierarchy)
                procs = mount / path.lstrip("/") / "cgroup.procs" if mount is not None else None
                if procs is not None and procs.exists():
                    return procs
        return None

    # -- one instance ----------------------------------------------------------------------------------------
    def groups(self, instance: str) -> list[Path]:
        if self.version == 2 and self.v2 is not None:
            return [self.v2 / instance]
        return [root / instance for root in self.v1.values()]

    def create(self, instance: str, cpu: float, memory_mb: int, pids_max: int, gpus: tuple[int, ...] = (),
               all_gpus: tuple[int, ...] = ()) -> list[str]:
        """Make the instance's groups with its limits; return the ``cgroup.procs`` files its launcher joins."""
        if not self.available:
            return []
        mem = str(int(memory_mb) * 1024 * 1024)
        quota = max(1000, int(cpu * CPU_PERIOD_US)) if cpu and cpu > 0 else None
        if self.version == 2:
            g = self.groups(instance)[0]
            g.mkdir(exist_ok=True)
            _write(g / "memory.max", mem)
            if (g / "memory.swap.max").exists():
                _write(g / "memory.swap.max", "0")
            if (g / "memory.oom.group").exists():  # the whole app dies together, as a container would
                _write(g / "memory.oom.group", "1")
            if quota and (g / "cpu.max").exists():
                _write(g / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            if (g / "pids.max").exists():
                _write(g / "pids.max", str(pids_max))
            return [str(g / "cgroup.procs")]
        procs = []
        for ctrl, root in self.v1.items():
            g = root / instance
            g.mkdir(exist_ok=True)
            if ctrl == "memory":
                _write(g / "memory.limit_in_bytes", mem)
                if (g / "memory.memsw.limit_in_bytes").exists():  # no swapping around the limit
                    _write(g / "memory.memsw.limit_in_bytes", mem)
                if (g / "memory.swappiness").exists():
                    try:
                        _write(g / "memory.swappiness", "0")
                    except OSError:
                        pass
            elif ctrl == "cpu" and quota:
                _write(g / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(g / "cpu.cfs_quota_us", str(quota))
            elif ctrl == "pids":
                _write(g / "pids.max", str(pids_max))
            elif ctrl == "devices":
                # GPUs not assigned to this instance: CUDA_VISIBLE_DEVICES is advisory, the device node is not
                for idx in all_gpus:
                    if idx not in gpus:
                        _write(g / "devices.deny", f"c {NVIDIA_MAJOR}:{idx} rwm")
            procs.append(str(g / "cgroup.procs"))
        return procs

    def pids(self, instance: str) -> list[int]:
        for g in self.groups(instance):
            try:
                return [int(p) for p in (g / "cgroup.procs").read_text().split()]
            except OSError:
                continue
        return []

    def oom_killed(self, instance: str) -> bool:
        """Whether the kernel killed something in this instance for going over its memory limit."""
        try:
            if self.version == 2:
                events = (self.groups(instance)[0] / "memory.events").read_text()
            elif "memory" in self.v1:
                events = (self.v1["memory"] / instance / "memory.oom_control").read_text()
            else:
                return False
        except OSError:
            return False
        for line in events.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip() not in ("", "0"):
                return True
        return False

    # -- freezer ---------------------------------------------------------------------------------------------
    def can_freeze(self) -> bool:
        return self.version == 2 or "freezer" in self.v1

    def frozen(self, instance: str) -> bool:
        try:
            if self.version == 2:
                return (self.groups(instance)[0] / "cgroup.freeze").read_text().strip() == "1"
            if "freezer" in self.v1:
                return (self.v1["freezer"] / instance / "freezer.state").read_text().strip() == "FROZEN"
        except OSError:
            pass
        return False

    def set_frozen(self, instance: str, frozen: bool, timeout: float = 5.0) -> None:
        """Freeze or thaw and wait until the kernel says it is done (v1 passes through FREEZING)."""
        if self.version == 2:
            g = self.groups(instance)[0]
            _write(g / "cgroup.freeze", "1" if frozen else "0")
            want, path, key = ("1" if frozen else "0"), g / "cgroup.events", "frozen"
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                events = dict(line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
                if events.get(key, "").strip() == want:
                    return
                time.sleep(0.005)
            raise TimeoutError(f"cgroup {g} did not {'freeze' if frozen else 'thaw'} in {timeout}s")
        state = self.v1["freezer"] / instance / "freezer.state"
        want = "FROZEN" if frozen else "THAWED"
        deadline = time.monotonic() + timeout
        while True:
            _write(state, want)
            if state.read_text().strip() == want:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{state} did not reach {want} in {timeout}s")
            time.sleep(0.005)

    # -- teardown --------------------------------------------------------------------------------------------
    def remove(self, instance: str, timeout: float = 5.0) -> None:
        """Kill whatever is left in the groups and delete them. Already gone is fine."""
        if not self.available:
            return
        if self.frozen(instance):
            try:
                self.set_frozen(instance, False)
            except (OSError, TimeoutError):
                pass
        deadline = time.monotonic() + timeout
        for g in self.groups(instance):
            while g.exists():
                try:
                    for pid in (int(p) for p in (g / "cgroup.procs").read_text().split()):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    g.rmdir()
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        log.warning("could not remove cgroup %s", g)
                        break
                    time.sleep(0.02)


def remove_root(root_name: str, mounts_file: str = "/proc/mounts") -> None:
    """Remove a cgroup root that nothing runs in any more (a removed platform's), in every hierarchy; a group
    with processes in it stays (rmdir refuses), and so does anything that is not ours to judge."""
    if not root_name or "/" in root_name or root_name.startswith("."):
        return
    try:
        lines = Path(mounts_file).read_text().splitlines()
    except OSError:
        return
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("cgroup", "cgroup2"):
            root = Path(parts[1]) / root_name
            if root.is_dir():
                for group in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    try:
                        group.rmdir()
                    except OSError:
                        pass
                try:
                    root.rmdir()
                except OSError:
                    pass
