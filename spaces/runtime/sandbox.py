"""The local backend's sandbox, host side: uids, private directories, the environment, and process identity.

What a Space's process gets (the launcher in ``zygote.py`` applies it, as root, before dropping privileges):

* its own unprivileged uid/gid, ``uid_min + n``, allocated once per Space and kept in ``{state_dir}/uids.json``
  (file-locked, so two control planes never hand one uid to two Spaces; no /etc/passwd entry is needed);
* its working copy (``spec.workdir``) chowned to that uid, top directory 0700: other Spaces cannot even list it;
* a private HOME: ``{homes_dir}/{space}`` (0700, the Space's uid) bind-mounted on one fixed path, ``HOME`` below,
  so that every Space sees the same HOME (as on Hugging Face, where it is ``/home/user``) and a pre-warmed
  interpreter's import-time view of HOME stays true for every Space it forks;
* a private tmpfs on /tmp (its own mount namespace), sized ``tmp_size_mb``;
* exactly ``spec.env`` plus PATH, HOME, LANG and PYTHONUNBUFFERED: nothing of the platform's environment.

With ``hide_host`` (the default) it sees nothing else of the host ("a sandbox with nothing of the host in it"):

* **its own root**: a tmpfs holding only what :func:`root_ops` names: /usr (and the merged-/usr symlinks), the
  few files of /etc an interpreter, TLS, DNS and MIME types read (``ETC_FILES``: no passwd, shadow, operator
  config), its environment (venv and the Python installation it comes from), all read-only; its working copy and
  private home read-write; a private /tmp, /dev/shm (tmpfs, sized) and a minimal /dev; /proc of its own PID
  namespace; /sys/devices/system/cpu only. No /run, /var/run, /var/tmp, /home, no data dir, no other Space, no
  host unix socket: none of their paths exists. The skeleton is read-only, so nothing it writes lands anywhere
  but its home, working copy (an overlay on its disk, ``spacedisk.py``), /tmp and /dev/shm, all of which go with
  it or with the Space's deletion.
* **its own PID namespace** (and IPC namespace): /proc lists only its own processes. Its pid 1 is a small init
  (``zygote._init_main``) that forks the app and reports how it ended; its exit kills whatever the app left.
* **Landlock scopes** (Linux 6.12+): no abstract unix socket of the host (those have no path to hide and are per
  network namespace; Spaces share the host's network so the proxy reaches their loopback ports) and no signal to a
  process outside its domain; ``no_new_privs`` so no setuid program regains anything.
* **the loopback guard** (``netguard.py``): no new TCP, UDP or other connection to this machine but its own port
  and the public one, and the operator's ``outbound`` choice for everything else.

Why our own ~150 lines (``zygote.build_root``) and not bubblewrap, the reference: bubblewrap (and nsjail) set up a
sandbox and then *exec* a program, while a wake forks an interpreter that has already imported the SDK (the wake
goal is a fork, not an exec). Running each zygote inside bubblewrap would still leave each fork to make its own
PID and mount namespaces and hide the other Spaces' paths that the zygote must see to serve them, and the pids the
zygote reports would be its namespace's, not the host's that the backend tracks. So one function applies a layout
written in bubblewrap's vocabulary (ro, bind, dev, tmpfs, dir, symlink, proc, devpts, plus overlay) with plain
mount(2) and pivot_root(2), for both paths: the fork and the cold start (``zygote.py exec``) enter the very same
sandbox. What it must and must not show is tested from inside by an attacking app
(``tests/security/test_sandbox_local.py``).

Directory modes the host must have (checked by :func:`check_reachable`, which names the offending directory):
the platform's data dir 0711 or 0700 with everything of the Spaces' (working copies, homes, venvs) *outside* it;
a 0700 directory anywhere on the path to a venv's interpreter (``/root/.pyenv``...) makes it unusable by Spaces.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import socket
import stat
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spaces.runtime.contracts import InstanceSpec, Mount, StartFailed

BASIC_LANG = "C.UTF-8"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


class UidAllocator:
    """Stable uid per Space from [uid_min, uid_max], persisted; never one uid for two Spaces."""

    def __init__(self, path: Path, uid_min: int, uid_max: int) -> None:
        self.path, self.uid_min, self.uid_max = path, uid_min, uid_max

    @contextlib.contextmanager
    def _locked(self):  # type: ignore[no-untyped-def]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            table = json.loads(self.path.read_text()) if self.path.exists() else {}
            yield table
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(table, sort_keys=True))
            os.replace(tmp, self.path)

    def uid(self, space_id: str) -> int:
        """The Space's uid. Never-used uids are handed out first; a freed one (a deleted Space's) only when none
        is left, oldest first, so a uid is reused as late as the range allows. A stored uid outside the range (the
        range was changed) is replaced: the start re-owns the Space's files to the new one."""
        with self._locked() as table:
            freed: list[int] = table.pop(FREED, [])
            try:
                if space_id in table and self.uid_min <= int(table[space_id]) <= self.uid_max:
                    return int(table[space_id])
                used = set(table.values()) | set(freed)
                for uid in range(self.uid_min, self.uid_max + 1):
                    if uid not in used:
                        table[space_id] = uid
                        return uid
                for uid in list(freed):
                    if self.uid_min <= uid <= self.uid_max and uid not in table.values():
                        freed.remove(uid)
                        table[space_id] = uid
                        return uid
            finally:
                if freed:
                    table[FREED] = freed
        raise StartFailed(f"no free sandbox uid left in {self.uid_min}-{self.uid_max}; raise uid_max")

    def free(self, space_id: str) -> int | None:
        """Give a deleted Space's uid back (call it once nothing owned by it is left); returns it, None if none."""
        with self._locked() as table:
            uid = table.pop(space_id, None)
            if uid is not None:
                table[FREED] = [*table.get(FREED, []), int(uid)]
        return None if uid is None else int(uid)


#: the key of :class:`UidAllocator`'s table that lists freed uids, oldest first (never a Space id: those are hex)
FREED = "~freed"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "space"


class PortAllocator:
    """Listening ports for apps, from ``[lo, hi]``: a range kept apart from the kernel's ephemeral ports.

    A port found with ``bind(0)`` comes from the ephemeral range, which every outgoing connection on the machine
    draws its local port from too: between the check and the app's own bind, a connection (the proxy's, a client's)
    could take it, and the app then fails with "address in use". Ports here are checked with a plain bind (no
    SO_REUSEADDR: a port with any connection left on it is skipped) and remembered for ``hold_s`` seconds, so two
    starts in this process never get the same port before the first app has bound it.
    """

    def __init__(self, lo: int, hi: int, hold_s: float = 120.0) -> None:
        if not 1024 <= lo <= hi <= 65535:
            raise ValueError(f"app port range {lo}-{hi} is not within 1024-65535")
        self.lo, self.hi, self.hold_s = lo, hi, hold_s
        self._lock = threading.Lock()
        self._held: dict[int, float] = {}

    def take(self, host: str = "127.0.0.1") -> int:
        now = time.monotonic()
        size = self.hi - self.lo + 1
        with self._lock:
            self._held = {p: t for p, t in self._held.items() if now - t < self.hold_s}
            start = secrets.randbelow(size)  # random: control planes sharing a machine rarely try the same port
            for i in range(size):
                port = self.lo + (start + i) % size
                if port not in self._held and _bindable(host, port):
                    self._held[port] = now
                    return port
        raise StartFailed(f"no free port left for apps in {self.lo}-{self.hi}; widen SPACES_LOCAL__PORT_MIN/_MAX")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def ephemeral_ports() -> tuple[int, int] | None:
    """The kernel's range for outgoing connections' local ports (Linux), or None where it cannot be read."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return None


def check_reachable(path: Path, what: str) -> None:
    """Every directory above ``path`` must be searchable by others, or an unprivileged uid cannot reach it."""
    path = Path(os.path.realpath(path))
    for parent in [*reversed(path.parents)]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise StartFailed(f"{what} {path} is not reachable by sandboxed Spaces: {parent} has mode "
                              f"{stat.filemode(mode)}; make it 0711 (or 0755) or move {what} elsewhere")


def own_tree(path: Path, uid: int, gid: int) -> None:
    """Give a tree (working copy, home) to the Space's uid; the top directory 0700 locks everyone else out.

    The top directory is changed last, after everything under it, so a top that already belongs to ``uid`` with
    mode 0700 means the whole tree was given away before (an interrupted walk leaves the top as it was): then
    nothing is walked, and a wake does not re-own a home full of model files again."""
    st = os.lstat(path)
    if st.st_uid == uid and st.st_gid == gid and stat.S_IMODE(st.st_mode) == 0o700:
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)
    os.lchown(path, uid, gid)
    os.chmod(path, 0o700)


def prepare_home(homes_dir: Path, space_id: str, uid: int, gid: int) -> tuple[Path, Path]:
    """Return (private home of this Space, fixed HOME path it is mounted on)."""
    homes_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(homes_dir, 0o711)
    target = homes_dir / "home"  # empty, root-owned: only a mount point
    target.mkdir(exist_ok=True)
    os.chmod(target, 0o755)
    home = homes_dir / "spaces" / slug(space_id)
    home.parent.mkdir(exist_ok=True)
    os.chmod(home.parent, 0o711)
    home.mkdir(exist_ok=True)
    own_tree(home, uid, gid)  # a uid may have changed since the last run (state_dir lost): checked at every start
    return home, target


def build_env(spec: InstanceSpec, venv: str, home: str, port: int, host: str) -> dict[str, str]:
    """Exactly the Space's variables plus the basics; nothing inherited from the platform's own environment."""
    env = {k: str(v) for k, v in spec.env.items()}
    env.update(PATH=f"{venv}/bin:{SYSTEM_PATH}" if venv else SYSTEM_PATH, HOME=home, LANG=BASIC_LANG,
               PYTHONUNBUFFERED="1")
    if spec.sdk == "gradio":
        env.update(GRADIO_SERVER_NAME=host, GRADIO_SERVER_PORT=str(port))
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in spec.limits.gpus)
    return env


def basic_env(venv: str, home: str) -> dict[str, str]:
    """The zygote's own start-up environment: the basics every Space's environment also has."""
    return {"PATH": f"{venv}/bin:{SYSTEM_PATH}", "HOME": home, "LANG": BASIC_LANG, "PYTHONUNBUFFERED": "1"}


def app_argv(sdk: str, venv: str, app_file: str, port: int, host: str) -> list[str]:
    python = f"{venv}/bin/python"
    if sdk == "streamlit":
        return [python, "-m", "streamlit", "run", app_file, "--server.port", str(port), "--server.address", host,
                "--server.headless", "true"]
    return [python, app_file]


# ---------------------------------------------------------------------------------------------------------------
# the Space's root: what of the host it sees (applied by zygote.build_root, in bubblewrap's vocabulary)

#: host directories every interpreter needs, read-only; on merged-/usr hosts /bin, /lib... are symlinks, kept so
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: the files of /etc that an interpreter, TLS, DNS, time zones and MIME types read; nothing of the operator's
ETC_FILES = ("alternatives", "ca-certificates", "ca-certificates.conf", "fonts", "gai.conf", "host.conf", "hosts",
             "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types", "nsswitch.conf", "os-release",
             "protocols", "resolv.conf", "services", "ssl", "timezone", "xdg")
DEV_FILES = ("null", "zero", "full", "random", "urandom", "tty")


@dataclass(frozen=True)
class RootPlan:
    """What one Space's root holds besides the system files: its interpreter, working copy, home, scratch space."""

    venv: str
    workdir: str
    home: str  # the Space's private home on the host
    home_target: str  # the fixed HOME path it is mounted on
    tmp_mb: int
    shm_mb: int
    gpus: tuple[int, ...] = ()
    overlay: tuple[str, str] | None = None  # (upper, work) dirs on the Space's disk: its writes to the working copy
    mounts: tuple[Mount, ...] = ()  # its volumes (spaces.runtime.volumes)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (6+ has the scopes the sandbox uses), 0 where there is none."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(int(version), 0)


def python_home(venv: str) -> str | None:
    """The installation a venv's interpreter comes from (its prefix: ``home`` in pyvenv.cfg is its bin dir)."""
    try:
        for line in Path(venv, "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                return str(Path(os.path.realpath(value.strip())).parent)
    except OSError:
        pass
    return None


def root_ops(plan: RootPlan) -> list[list]:
    """The mount operations that build a Space's root, in order (see ``zygote._apply``). Sources are host paths,
    read here once; a path of the host that no operation names does not exist inside."""
    ops: list[list] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            ops.append(["symlink", os.readlink(d), d])
        elif os.path.isdir(d):
            ops.append(["ro", d, d])
    for name in ETC_FILES:
        src = f"/etc/{name}"
        if os.path.lexists(src) and os.path.exists(src):  # resolv.conf may point into /run: its target is bound
            ops.append(["ro", os.path.realpath(src), src])
    for path in _python_paths(plan.venv):
        ops.append(["ro", path, path])
    if plan.overlay:
        ops.append(["overlay", plan.workdir, plan.overlay[0], plan.overlay[1], plan.workdir])
    else:
        ops.append(["bind", plan.workdir, plan.workdir])
    ops.append(["bind", plan.home, plan.home_target])
    ops += [["ro" if m.read_only else "bind", m.source, m.target] for m in plan.mounts]
    ops.append(["tmpfs", plan.tmp_mb, "1777", "/tmp"])
    ops.append(["tmpfs", 1, "0755", "/dev"])
    ops += [["dev", f"/dev/{name}", f"/dev/{name}"] for name in DEV_FILES if os.path.exists(f"/dev/{name}")]
    for i in plan.gpus:
        ops.append(["dev", f"/dev/nvidia{i}", f"/dev/nvidia{i}"])
    if plan.gpus:
        ops += [["dev", p, p] for p in ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
                if os.path.exists(p)]
    ops += [["symlink", "/proc/self/fd", "/dev/fd"], ["symlink", "/proc/self/fd/0", "/dev/stdin"],
            ["symlink", "/proc/self/fd/1", "/dev/stdout"], ["symlink", "/proc/self/fd/2", "/dev/stderr"],
            ["symlink", "pts/ptmx", "/dev/ptmx"], ["devpts", "/dev/pts"], ["tmpfs", plan.shm_mb, "1777", "/dev/shm"]]
    if os.path.isdir("/sys/devices/system/cpu"):  # CPU topology for thread pools; nothing else of /sys
        ops.append(["ro", "/sys/devices/system/cpu", "/sys/devices/system/cpu"])
    ops.append(["proc", "/proc"])
    return ops


def bwrap_args(ops: list[list]) -> list[str]:
    """The same root as bubblewrap (0.8) arguments: the reference the tests compare ``zygote.build_root`` with.
    bubblewrap 0.8 has no tmpfs sizes or modes and no overlay: a tmpfs is a plain one, an overlay a bind of its
    lower directory; ``devpts`` is a directory (both then list the same names)."""
    args: list[str] = []
    for op in ops:
        kind = op[0]
        if kind in ("ro", "bind", "dev"):
            args += [{"ro": "--ro-bind", "bind": "--bind", "dev": "--dev-bind"}[kind], op[1], op[2]]
        elif kind == "tmpfs":
            args += ["--tmpfs", op[3]]
        elif kind == "dir":
            args += ["--dir", op[2]]
        elif kind == "symlink":
            args += ["--symlink", op[1], op[2]]
        elif kind == "proc":
            args += ["--proc", op[1]]
        elif kind == "devpts":
            args += ["--dir", op[1]]
        elif kind == "overlay":
            args += ["--bind", op[1], op[4]]
        else:
            raise ValueError(f"unknown sandbox operation {kind!r}")
    return args


def _python_paths(venv: str) -> list[str]:
    """The venv and the installation its interpreter comes from, unless /usr holds them already."""
    paths = []
    for path in (venv, os.path.realpath(venv), python_home(venv)):
        if path and not any(Path(path).is_relative_to(d) for d in ("/usr", *paths)):
            paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------------------------
# process identity: a pid alone can be reused; (pid, start time) cannot


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None when there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may contain spaces and parentheses
    return fields[0], int(fields[19])


def alive(pid: int, starttime: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[1] == starttime and st[0] not in ("Z", "X")


@dataclass
class InstanceState:
    """What a restarted control plane needs to re-adopt an instance: ``{run_dir}/instances/{instance}.json``."""

    instance: str
    pid: int
    starttime: int
    port: int
    host: str
    uid: int
    space_id: str
    sdk: str
    via: str  # "zygote" or "exec"
    log: str
    labels: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    cgroups: bool = False
    workdir: str = ""
    layer: str = ""  # the overlay layer on the Space's disk that holds its writes next to its code (spacedisk.py)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{self.instance}.tmp"
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, directory / f"{self.instance}.json")

    @classmethod
    def load(cls, path: Path) -> "InstanceState | None":
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
