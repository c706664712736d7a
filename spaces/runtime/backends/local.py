"""The local backend: each Space a sandboxed process group on this machine; wake by forking a pre-warmed zygote.

Lifecycle (the Backend contract, ``spaces/runtime/contracts.py``):

* ``start(spec)``: allocate the Space's uid and a free loopback port, give it the working copy, prepare its home
  and its cgroups (memory, CPU, pids, freezer), then launch ``{venv}/bin/python {app_file}`` (gradio) or
  ``python -m streamlit run ...`` (streamlit): forked from the environment's zygote when one can serve this
  Space (fast: the SDK is already imported), else cold (``zygote.py exec`` enters the same sandbox and execs;
  the reason is logged). Writes ``{run_dir}/instances/{instance}.json`` and returns at once with
  ``Handle(backend="local", ref=str(pid), data={pid, starttime, port, host, uid, instance, log, via, ...})``.
* ``poll``: the process is identified by (pid, start time) so a reused pid is never mistaken for the app.
  Alive: FROZEN if frozen, RUNNING once the port accepts TCP, STARTING before. Gone: EXITED with the exit code
  (reaped by us for cold starts, by the zygote for forked ones, which writes ``{run_dir}/exits/{instance}.exit``;
  None if the control plane restarted in between) and the log tail, plus a note when the memory limit killed it.
* ``stop``: thaw, SIGTERM the process group, SIGKILL after ``stop_grace_s``, kill anything left in the cgroup,
  remove the cgroup and the state file. Already gone is success; idempotent. The log file is kept.
* ``list(labels)``: instances from the state files (how a control plane restarted after SIGKILL re-adopts: apps
  live in their own sessions and survive it; poll then works from the handle alone).
* ``freeze``/``thaw``: the cgroup freezer (v1 ``freezer.state``, v2 ``cgroup.freeze``), else SIGSTOP/SIGCONT.
* ``logs(handle, follow)``: lines of the instance's log file; ``follow`` tails until the process is gone.

Static Spaces: no process. ``start`` returns ``data={"static": workdir}`` and ``poll`` says RUNNING with no
address: the proxy serves the files itself.

Needs root for: setuid to the Space uids, chown of working copies and homes, cgroups, namespaces (each Space's own
root, PID namespace, private /tmp; ``spaces/runtime/sandbox.py``) and loop devices (its disk,
``spaces/runtime/spacedisk.py``). Without cgroups, namespaces or loop devices it degrades (no limits / shared /tmp /
no disk limit) and says so once in the log; without root it cannot sandbox at all and refuses to start
(StartFailed).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from spaces.builder import preload
from spaces.builder.plan import Artifact
from spaces.runtime import sandbox
from spaces.runtime.cgroups import Cgroups
from spaces.runtime.contracts import Handle, InstanceSpec, Mount, Observed, Phase, StartFailed
from spaces.runtime.netguard import NoHoles, Opening, OwnPortHoles
from spaces.runtime.spacedisk import SpaceDisk
from spaces.runtime.volumes import give_to
from spaces.runtime.zygote_client import ZYGOTE_SCRIPT, ZygotePool, ZygoteUnavailable

log = logging.getLogger(__name__)
LOG_TAIL_LINES = 30


class LocalBackendSettings(BaseModel):
    """Settings of the local backend (nested as ``Settings.local``, env ``SPACES_LOCAL__*``)."""

    root: Path = Field(Path("/var/lib/spaces/local"), description="base of the dirs below when they are unset; "
                       "must be reachable by the Space uids (0711 up the path), never under a 0700 directory")
    run_dir: Path | None = Field(None, description="instance state files, zygote sockets, exit codes (root, 0700)")
    logs_dir: Path | None = Field(None, description="one log file per instance (root, 0700)")
    state_dir: Path | None = Field(None, description="uid allocations, kept across restarts (root, 0700)")
    homes_dir: Path | None = Field(None, description="private HOME per Space (0711; each home 0700, its uid)")
    uid_min: int = Field(20000, description="first uid handed to Spaces (no /etc/passwd entry needed); unset, the "
                         "platform claims a free block of uid_block uids in the host registry")
    uid_max: int = Field(29999, description="last uid handed to Spaces (see uid_min)")
    cgroup_root: str = Field("spaces", description="cgroup under which each instance gets its group; unset, the "
                             "platform uses spaces-{its instance id}")
    spaces_memory_mb: int | None = Field(None, ge=64, description="the most MiB all Spaces together may use (their "
                                         "cgroup root's limit); the platform sets it to what the local node leaves "
                                         "Spaces (see SPACES_NODES__RESERVED_MEMORY_MB)")
    registry: Path = Field(Path("/var/lib/spaces-host/instances.json"), description="the host's registry of "
                           "platform instances: which uids, ports and cgroup root each holds (file-locked)")
    uid_block: int = Field(1000, ge=10, description="uids a platform claims (from 70000-99999) when uid_min/uid_max "
                           "are unset")
    port_block: int = Field(500, ge=10, description="app ports a platform claims when port_min/port_max are unset")
    zygote: bool = Field(True, description="fork Spaces from a pre-warmed interpreter per environment")
    memory_merge: bool = Field(True, description="let the kernel merge identical memory pages of a zygote's forks "
                               "(KSM; turns ksmd on if it is off). Merged pages are read-only to every fork; see "
                               "the README's security model for the trade-off")
    zygote_wait_s: float = Field(30.0, description="how long start waits for a zygote still importing its SDK")
    stop_grace_s: float = Field(5.0, description="SIGTERM to SIGKILL delay on stop")
    namespaces: bool = Field(True, description="private /tmp and fixed HOME through a mount namespace")
    hide_host: bool = Field(True, description="each Space in a root and PID namespace of its own that hold nothing "
                            "of the host but the system files its interpreter reads (see spaces/runtime/sandbox.py); "
                            "false: only a private /tmp and HOME (the sandbox before it, kept for comparisons)")
    tmp_size_mb: int = Field(1024, description="size of each Space's private /tmp (tmpfs, counts as memory)")
    disk_mb: int = Field(5120, ge=0, description="a Space's disk (home and files it writes next to its code, "
                         "spaces/runtime/spacedisk.py) when its flavor names none; 0: no limit, home on the host's "
                         "filesystem. Needs hide_host")
    shm_size_mb: int = Field(256, description="size of each Space's private /dev/shm (tmpfs, counts as memory)")
    outbound: Literal["internet", "all", "none"] = Field(
        "internet", description="where Spaces may connect beyond this machine (never to it: see "
        "spaces/runtime/netguard.py): internet (not the private, shared and link-local ranges, so neither the LAN "
        "nor a cloud metadata endpoint; DNS servers stay reachable), all, or none (DNS only)")
    pids_max: int = Field(2048, description="most processes and threads per Space (cgroup pids)")
    host: str = Field("127.0.0.1", description="address apps listen on (the proxy reaches them there)")
    port_min: int = Field(20000, ge=1024, le=65535,
                          description="first port handed to apps; keep the range apart from the kernel's ephemeral "
                          "ports (net.ipv4.ip_local_port_range, Linux default 32768-60999)")
    port_max: int = Field(32767, ge=1024, le=65535, description="last port handed to apps")

    @model_validator(mode="after")
    def _ranges(self) -> LocalBackendSettings:
        if self.port_min > self.port_max:
            raise ValueError(f"port_min {self.port_min} is above port_max {self.port_max}")
        if self.uid_min > self.uid_max:
            raise ValueError(f"uid_min {self.uid_min} is above uid_max {self.uid_max}")
        return self

    def dir(self, name: str) -> Path:
        value = getattr(self, f"{name}_dir")
        return Path(value) if value is not None else self.root / name


class LocalBackend:
    name = "local"
    #: Streamlit runs an app's script only when a session connects: its fresh server runs nothing of the app's
    standby_sdks = frozenset({"streamlit"})

    def __init__(self, settings: LocalBackendSettings | None = None, node: str = "local",
                 holes: OwnPortHoles | None = None, shared_env: dict[str, str] | None = None) -> None:
        """``holes``: the loopback guard's per-instance holes (``spaces.runtime.netguard``); none when unguarded.
        ``shared_env``: variables every Space of this platform gets with the same value (``HF_ENDPOINT``). The
        zygotes import their SDK with them: an SDK that reads one at import (huggingface_hub reads HF_ENDPOINT)
        then still forks every Space that keeps the platform's value; only one that sets its own starts cold."""
        self.shared_env = dict(shared_env or {})
        self.settings = s = settings or LocalBackendSettings()
        self.node = node
        self.holes: OwnPortHoles | NoHoles = holes or NoHoles()
        self.run_dir, self.logs_dir = s.dir("run"), s.dir("logs")
        self.state_dir, self.homes_dir = s.dir("state"), s.dir("homes")
        for d, mode in ((self.run_dir, 0o700), (self.logs_dir, 0o700), (self.state_dir, 0o700),
                        (self.homes_dir, 0o711)):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, mode)
        self.instances_dir = self.run_dir / "instances"
        self.exits_dir = self.run_dir / "exits"
        self.uids = sandbox.UidAllocator(self.state_dir / "uids.json", s.uid_min, s.uid_max)
        self.ports = sandbox.PortAllocator(s.port_min, s.port_max)
        ephemeral = sandbox.ephemeral_ports()
        if ephemeral and ephemeral[0] <= s.port_max and s.port_min <= ephemeral[1]:
            log.warning("local backend: app ports %d-%d overlap the kernel's ephemeral ports %d-%d; an app may find "
                        "its port taken by an outgoing connection. Set SPACES_LOCAL__PORT_MIN/_MAX apart from them",
                        s.port_min, s.port_max, *ephemeral)
        self.cgroups = Cgroups(s.cgroup_root, memory_mb=s.spaces_memory_mb)
        self.namespaces = s.namespaces and _namespaces_work()
        if s.namespaces and not self.namespaces:
            log.warning("local backend: mount namespaces unavailable: Spaces share /tmp and see their home path")
        self.hide_host = self.namespaces and s.hide_host
        self.landlock = self.hide_host and sandbox.landlock_abi() >= 6
        if self.hide_host and not self.landlock:
            log.warning("local backend: Landlock scopes unavailable (Linux 6.12+ with Landlock enabled): Spaces can "
                        "connect to the host's abstract unix sockets")
        self.disks = self.hide_host and os.path.exists("/dev/loop-control") and shutil.which("mkfs.ext4") is not None
        if self.hide_host and not self.disks:
            log.warning("local backend: no loop devices or no mkfs.ext4 (e2fsprogs): Spaces get no disk limit")
        self.root_dir = self.run_dir / "root"  # empty: each Space's root is mounted on it in its own namespace
        self.root_dir.mkdir(exist_ok=True)
        self.zygotes = ZygotePool(self.run_dir, self.logs_dir, memory_merge=s.memory_merge and _ksm_running())
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # cold starts we must reap

    # -- start -----------------------------------------------------------------------------------------------
    def start(self, spec: InstanceSpec) -> Handle:
        instance = f"{sandbox.slug(spec.space_id)}-{spec.sha[:8]}-{secrets.token_hex(3)}"
        if spec.artifact.kind == "static" or spec.sdk == "static":
            self._save(sandbox.InstanceState(instance, 0, 0, 0, "", 0, spec.space_id, "static", "static", "",
                                             dict(spec.labels), time.time(), workdir=spec.workdir))
            return Handle("local", f"static:{instance}", self.node, {"static": spec.workdir, "instance": instance})
        if spec.artifact.kind != "venv" or spec.sdk not in ("gradio", "streamlit"):
            raise StartFailed(f"the local backend runs gradio and streamlit apps from a virtual environment, not "
                              f"a {spec.sdk} app built as {spec.artifact.kind!r}; use the docker backend")
        if os.geteuid() != 0:
            raise StartFailed("the local backend needs root to sandbox Spaces (uids, cgroups, namespaces)")
        venv, workdir = spec.artifact.ref, Path(spec.workdir)
        uid = self.uids.uid(spec.space_id)
        port, host = self.ports.take(self.settings.host), self.settings.host
        # the guard's hole takes iptables a few milliseconds in processes of their own: they run on another core
        # while this thread checks and prepares the rest, and the hole is made before the app exists (_start waits)
        opening = self.holes.begin(uid, port)
        try:
            return self._start(spec, instance, venv, workdir, uid, port, host, opening)
        except BaseException:
            opening.wait()
            self.holes.close(uid, port)
            raise

    def _start(self, spec: InstanceSpec, instance: str, venv: str, workdir: Path, uid: int, port: int, host: str,
               opening: Opening) -> Handle:
        app_file = spec.app_file or "app.py"
        if not Path(venv, "bin", "python").exists():
            raise StartFailed(f"the environment {venv} has no bin/python; rebuild the Space")
        if not (workdir / app_file).is_file():
            raise StartFailed(f"app file {app_file} not found in the working copy")
        sandbox.check_reachable(Path(os.path.realpath(f"{venv}/bin/python")), "the interpreter")
        sandbox.check_reachable(Path(venv) / "lib", "the environment")
        sandbox.check_reachable(workdir, "the working copy")
        if self.namespaces:  # /tmp is replaced by a private tmpfs inside the sandbox: nothing it needs may be there
            for what, path in (("environment", venv), ("working copy", workdir), ("homes dir", self.homes_dir)):
                if Path(os.path.realpath(path)).is_relative_to("/tmp"):
                    raise StartFailed(f"the {what} {path} is under /tmp, which each Space replaces with its own "
                                      "private /tmp; move it (e.g. under /var/tmp or the data dir)")
        sandbox.own_tree(workdir, uid, uid)
        self._prepare_mounts(spec, uid)
        disk_mb = spec.limits.disk_mb or self.settings.disk_mb
        overlay, layer = None, ""
        if self.disks and disk_mb:
            if any(c in str(workdir) for c in ",:\\"):
                raise StartFailed(f"the working copy's path {workdir} has a character an overlay cannot name")
            disk, layer = self._disk(spec.space_id), SpaceDisk.layer(str(workdir), spec.sha)
            keep = {s.layer for s in self._states() if s.space_id == spec.space_id}
            try:
                disk.ensure(disk_mb, uid, layer, keep)
            except OSError as e:
                raise StartFailed(f"could not mount the Space's disk: {e}") from e
            home, home_target = disk.home, self.homes_dir / "home"
            overlay = (str(disk.upper(layer)), str(disk.work(layer)))
            home_target.mkdir(exist_ok=True)
        else:
            home, home_target = sandbox.prepare_home(self.homes_dir, spec.space_id, uid, uid)
        home_env = str(home_target if self.namespaces else home)
        mounts = spec.mounts
        if spec.artifact.preload:  # README preload_from_hub: links in the app's own cache, the shared files read-only
            try:
                preload.link_into(spec.artifact.preload, Path(home), uid)
            except OSError as e:
                raise StartFailed(f"could not give the Space its preloaded files: {e}; rebuild the Space") from e
            mounts += (Mount(spec.artifact.preload, spec.artifact.preload, True),)
        env = sandbox.build_env(spec, venv, home_env, port, host)
        argv = sandbox.app_argv(spec.sdk, venv, app_file, port, host)
        log_path = self.logs_dir / f"{instance}.log"
        log_path.touch(mode=0o600)
        all_gpus = tuple(range(8)) if spec.limits.gpus else ()
        try:
            procs = self.cgroups.create(instance, spec.limits.cpu, spec.limits.memory_mb, self.settings.pids_max,
                                        spec.limits.gpus, all_gpus)
        except OSError as e:
            self.cgroups.remove(instance)
            raise StartFailed(f"could not set up the Space's resource limits: {e}") from e
        # after the groups exist (making one waits for a join in flight): the kernel's wait before the app can join
        # them now overlaps the guard's hole and the zygote's fork (see Cgroups.warm_join)
        self.cgroups.warm_join()
        req = {"instance": instance, "uid": uid, "gid": uid, "cwd": str(workdir), "log": str(log_path),
               "env": env, "argv": argv, "cgroup_procs": procs,
               "namespace": {"tmp_size_mb": self.settings.tmp_size_mb, "home_src": str(home),
                             "home_target": str(home_target)} if self.namespaces else None}
        if self.hide_host:
            plan = sandbox.RootPlan(venv, str(workdir), str(home), str(home_target), self.settings.tmp_size_mb,
                                    self.settings.shm_size_mb, spec.limits.gpus, overlay, mounts)
            req["namespace"] = {"hide_host": True, "root": str(self.root_dir), "ops": sandbox.root_ops(plan),
                                "landlock": self.landlock}
        opening.wait()  # before the app exists: it may check its own port at once
        pid, via = self._launch(req, spec.sdk, venv, home_env)
        st = sandbox.proc_stat(pid)
        state = sandbox.InstanceState(instance, pid, st[1] if st else 0, port, host, uid, spec.space_id, spec.sdk,
                                      via, str(log_path), dict(spec.labels), time.time(), bool(procs), str(workdir),
                                      layer=layer)
        self._save(state)
        return self._handle(state)

    def _prepare_mounts(self, spec: InstanceSpec, uid: int) -> None:
        """Volumes are mounts of the Space's own root: without one (hide_host off) there is nowhere to put them."""
        if spec.mounts and not self.hide_host:
            raise StartFailed("this server cannot mount volumes: they need each Space's own root "
                              "(SPACES_LOCAL__HIDE_HOST=true, mount namespaces and Landlock)")
        for m in spec.mounts:
            if not m.read_only:
                give_to(Path(m.source), uid)

    def _launch(self, req: dict, sdk: str, venv: str, home_env: str) -> tuple[int, str]:
        if self.settings.zygote and self.namespaces:  # without a fixed HOME no fork matches a cold start
            zygote = self.zygotes.get(venv, sdk, {**sandbox.basic_env(venv, home_env), **self.shared_env})
            try:
                return zygote.spawn(req, self.settings.zygote_wait_s), "zygote"
            except ZygoteUnavailable as e:
                log.info("space instance %s: cold start instead of zygote fork: %s", req["instance"], e)
        with open(req["log"], "ab") as out:
            proc = subprocess.Popen(
                [f"{venv}/bin/python", str(ZYGOTE_SCRIPT), "exec"], stdin=subprocess.PIPE, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, cwd="/",
                env=sandbox.basic_env(venv, home_env),  # the launcher never sees the Space's secrets in its env
            )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(req).encode())
        proc.stdin.close()
        self._children[req["instance"]] = proc
        return proc.pid, "exec"

    def prewarm(self, artifact: Artifact, sdk: str | None = None) -> None:
        """Start the zygote(s) of a venv artifact now, so the next start or wake forks at once."""
        if artifact.kind != "venv" or not self.settings.zygote or not self.namespaces:
            return
        sdks = [sdk] if sdk else [name for name in ("gradio", "streamlit")
                                  if list(Path(artifact.ref).glob(f"lib/python*/site-packages/{name}"))]
        home_env = str(self.homes_dir / "home")
        (self.homes_dir / "home").mkdir(exist_ok=True)
        for name in sdks:
            try:
                self.zygotes.get(artifact.ref, name, sandbox.basic_env(artifact.ref, home_env)).start()
            except (OSError, ZygoteUnavailable) as e:
                log.warning("could not pre-warm a %s zygote for %s: %s", name, artifact.ref, e)

    # -- observe ---------------------------------------------------------------------------------------------
    def poll(self, handle: Handle) -> Observed:
        d = handle.data
        if "static" in d:
            return Observed(Phase.RUNNING if self._state_path(d["instance"]).exists() else Phase.GONE)
        pid, instance = int(d["pid"]), d["instance"]
        if sandbox.alive(pid, int(d["starttime"])):
            if self._frozen(d):
                return Observed(Phase.FROZEN, (d["host"], int(d["port"])))
            addr = (d["host"], int(d["port"]))
            return Observed(Phase.RUNNING if _port_open(addr) else Phase.STARTING, addr)
        code = self._exit_code(instance, pid)
        deadline = time.monotonic() + 2.0
        while code is None and d.get("via") == "zygote" and _zombie(pid, int(d["starttime"])) \
                and time.monotonic() < deadline:  # died a moment ago: its zygote is writing the exit code
            time.sleep(0.02)
            code = self._exit_code(instance, pid)
        if code is None and not self._state_path(instance).exists():
            return Observed(Phase.GONE)
        message = _tail(Path(d["log"]), LOG_TAIL_LINES)
        if self.cgroups.oom_killed(instance):
            message = (f"{message}\n" if message else "") + "Killed: the Space went over its memory limit."
        return Observed(Phase.EXITED, None, code, message)

    def _exit_code(self, instance: str, pid: int) -> int | None:
        proc = self._children.get(instance)
        if proc is not None:
            return proc.poll()
        try:
            return json.loads((self.exits_dir / f"{instance}.exit").read_text())["code"]
        except (OSError, ValueError, KeyError):
            return None

    def list(self, labels: dict[str, str]) -> list[Handle]:
        handles = []
        for path in sorted(self.instances_dir.glob("*.json")):
            state = sandbox.InstanceState.load(path)
            if state and all(state.labels.get(k) == v for k, v in labels.items()):
                if state.uid and state.port:  # adopted after a restart of the platform
                    self.holes.open(state.uid, state.port)
                handles.append(self._handle(state))
        return handles

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        path = handle.data.get("log")
        if not path or not Path(path).exists():
            return
        with open(path, "rb") as f:
            pending = b""
            while True:
                chunk = f.read(65536)
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        yield line.decode("utf-8", "replace")
                    continue
                if not follow or not sandbox.alive(int(handle.data["pid"]), int(handle.data["starttime"])):
                    if pending:
                        yield pending.decode("utf-8", "replace")
                    return
                time.sleep(0.2)

    # -- stop, freeze ----------------------------------------------------------------------------------------
    def stop(self, handle: Handle) -> None:
        d = handle.data
        instance = d.get("instance")
        if instance is None:
            return
        if "static" not in d:
            pid, starttime = int(d["pid"]), int(d["starttime"])
            if sandbox.alive(pid, starttime):
                if self._frozen(d):
                    self.thaw(handle)
                self._signal_group(pid, starttime, signal.SIGTERM)
                deadline = time.monotonic() + self.settings.stop_grace_s
                while sandbox.alive(pid, starttime) and time.monotonic() < deadline:
                    self._exit_code(instance, pid)  # reap a cold start of ours
                    time.sleep(0.05)
                self._signal_group(pid, starttime, signal.SIGKILL)
            self.cgroups.remove(instance)  # also kills stragglers that left the process group
            proc = self._children.pop(instance, None)
            if proc is not None:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            (self.exits_dir / f"{instance}.exit").unlink(missing_ok=True)
            if d.get("uid") and d.get("port"):
                self.holes.close(int(d["uid"]), int(d["port"]))
        self._state_path(instance).unlink(missing_ok=True)
        space_id = d.get("space_id")
        if space_id and self._disk(space_id).mounted() and not any(s.space_id == space_id for s in self._states()):
            try:  # the last instance of the Space is gone: its disk with it (it is mounted again at the next start)
                self._disk(space_id).release()
            except OSError as e:
                log.warning("could not unmount the disk of %s: %s", space_id, e)

    def forget(self, space_id: str) -> None:
        """A deleted Space leaves nothing here: its home, its instances' logs and exit codes go, and its uid is
        freed (handed out again only after every never-used one, see ``UidAllocator``). Call after ``stop``."""
        name = sandbox.slug(space_id)
        shutil.rmtree(self.homes_dir / "spaces" / name, ignore_errors=True)
        for directory, pattern in ((self.logs_dir, f"{name}-*.log"), (self.exits_dir, f"{name}-*.exit")):
            for path in directory.glob(pattern):
                path.unlink(missing_ok=True)
        for path in self.instances_dir.glob(f"{name}-*.json"):  # a static instance has no process to stop
            state = sandbox.InstanceState.load(path)
            if state is not None and state.space_id == space_id and state.sdk == "static":
                path.unlink(missing_ok=True)
        if any(s.space_id == space_id for s in map(sandbox.InstanceState.load, self.instances_dir.glob("*.json"))
               if s is not None):
            log.warning("space %s: an instance is still recorded after its deletion; its uid is kept", space_id)
            return
        self.uids.free(space_id)

    def freeze(self, handle: Handle) -> None:
        self._set_frozen(handle, True)

    def thaw(self, handle: Handle) -> None:
        self._set_frozen(handle, False)

    def _set_frozen(self, handle: Handle, frozen: bool) -> None:
        d = handle.data
        if "static" in d:
            return
        if d.get("cgroups") and self.cgroups.can_freeze():
            self.cgroups.set_frozen(d["instance"], frozen)
        else:
            self._signal_group(int(d["pid"]), int(d["starttime"]), signal.SIGSTOP if frozen else signal.SIGCONT)

    def _frozen(self, d: dict) -> bool:
        if d.get("cgroups") and self.cgroups.can_freeze():
            return self.cgroups.frozen(d["instance"])
        st = sandbox.proc_stat(int(d["pid"]))
        return st is not None and st[0] == "T"

    def close(self) -> None:
        """Stop this control plane's zygotes (instances keep running)."""
        self.zygotes.close()

    # -- helpers ---------------------------------------------------------------------------------------------
    def _signal_group(self, pid: int, starttime: int, sig: int) -> None:
        if not sandbox.alive(pid, starttime):  # never signal a group whose leader pid was reused
            return
        try:
            os.killpg(pid, sig)  # the app is a session (and group) leader: pgid == pid
        except (ProcessLookupError, PermissionError):
            pass

    def _states(self) -> list[sandbox.InstanceState]:
        return [s for s in map(sandbox.InstanceState.load, self.instances_dir.glob("*.json")) if s is not None]

    def _disk(self, space_id: str) -> SpaceDisk:
        return SpaceDisk(self.homes_dir / "spaces" / sandbox.slug(space_id))

    def _state_path(self, instance: str) -> Path:
        return self.instances_dir / f"{instance}.json"

    def _save(self, state: sandbox.InstanceState) -> None:
        state.save(self.instances_dir)

    def _handle(self, s: sandbox.InstanceState) -> Handle:
        if s.sdk == "static":
            return Handle("local", f"static:{s.instance}", self.node, {"static": s.workdir, "instance": s.instance})
        return Handle("local", str(s.pid), self.node, {
            "pid": s.pid, "starttime": s.starttime, "port": s.port, "host": s.host, "uid": s.uid,
            "instance": s.instance, "log": s.log, "via": s.via, "cgroups": s.cgroups, "space_id": s.space_id})


def _zombie(pid: int, starttime: int) -> bool:
    st = sandbox.proc_stat(pid)
    return st is not None and st[1] == starttime and st[0] == "Z"


def _port_open(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _namespaces_work() -> bool:
    """Probe once: can we unshare a mount namespace here (root, no seccomp/AppArmor veto)?"""
    code = "import ctypes,sys; sys.exit(0 if ctypes.CDLL(None).unshare(0x20000) == 0 else 1)"
    try:
        return subprocess.run([sys.executable, "-c", code], env={"PATH": sandbox.SYSTEM_PATH},
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


KSM_RUN = Path("/sys/kernel/mm/ksm/run")


def _ksm_running() -> bool:
    """Kernel samepage merging on (turned on when it is off and we may): else memory merging is not asked for."""
    try:
        state = KSM_RUN.read_text().strip()
        if state == "1":
            return True
        if state != "0":  # 2: an operator asked the kernel to unmerge everything; leave that alone
            log.warning("local backend: kernel samepage merging is set to %s; forks are not merged", state)
            return False
        KSM_RUN.write_text("1")
        log.info("local backend: turned kernel samepage merging on (%s) for the zygotes' forks", KSM_RUN)
        return True
    except OSError as exc:
        log.warning("local backend: kernel samepage merging unavailable (%s): forks share only what they inherit",
                    exc)
        return False
