"""Sandbox entry and the pre-warmed interpreter ("zygote") of the local backend. Standalone: stdlib only.

This file runs *inside a Space's virtual environment* (``{venv}/bin/python /path/to/zygote.py MODE``), which does
not contain the ``spaces`` package, so it imports nothing from it. It is executed by path, as root, by the local
backend (``spaces/runtime/zygote_client.py``), in one of two modes:

``exec`` (cold start)
    Read one launch request (JSON) from stdin, enter the sandbox (:func:`enter_sandbox`), then ``execve`` the app's
    command. The app is a fresh interpreter: this is the reference a woken Space must be indistinguishable from.

``serve --socket PATH --sdk SDK --exits DIR`` (zygote)
    Import the SDK (gradio or streamlit) and nothing else (never user code), fill the caches that depend only on
    the SDK's own files and the host's system files (``SDK_WARM``: Gradio's page template, Streamlit's MIME
    table), compute what depends only on the installed packages (``SDK_MEMO``: Streamlit's component scan), copy
    the templates the SDK copies at every start (``SDK_COPIES``: Streamlit's config options), then listen on a
    root-only unix socket. Per request: check that the Space's environment agrees with every variable the SDK read
    while it was imported (else answer ``{"fallback": reason}`` and the backend cold-starts instead); fork; the
    child enters the sandbox exactly like ``exec`` mode, re-applies the few import-time settings it knows how to
    refresh (gradio's port and host, OAuth variables), and runs the app as ``__main__`` the way ``python app.py``
    would (streamlit: ``runpy`` as ``python -m streamlit``); the parent answers ``{"pid": N}``. The zygote reaps
    its children and writes ``DIR/{instance}.exit`` (JSON with the exit code) so ``poll`` can report it. It exits
    when its parent (the control plane) dies; the children do not (own sessions).

With ``namespace.hide_host`` (the default; ``spaces/runtime/sandbox.py`` says what a Space then sees), both modes
go through :func:`spawn_hidden`: the zygote (or the ``exec`` launcher) unshares a PID namespace for its next child
and forks it; that child, pid 1 of the Space, sets its session (zygote) or dies with the launcher (exec), joins the
cgroups, builds the Space's root (:func:`build_root`: mount and IPC namespaces, pivot_root) and forks the app,
which drops to the Space's uid, confines itself with Landlock and then runs exactly as below; pid 1 waits as the
Space's uid and writes the app's wait status to a pipe before it exits. The backend knows pid 1 by its host pid
(the zygote's or launcher's child) and signals its process group, which the app is in; the zygote reports the
status from the pipe (an init cannot die by a signal), and the launcher dies the way the app died.
Without it, the lifecycle of a forked child, in order: setsid; join the instance's cgroups (refuse to run unconfined
if asked for them); new mount namespace with a private tmpfs on /tmp and the Space's private home bind-mounted on the
fixed HOME path; setgroups([]) / setgid / setuid to the Space's uid; umask 022; chdir to the working copy;
stdin from /dev/null, stdout/stderr to the instance log; every other fd closed; os.environ replaced; random state
reseeded (``random`` is reseeded by CPython at fork, numpy's legacy global generator here); argv and sys.path[0]
as ``python app.py`` sets them; the ``SDK_MEMO`` functions set to answer their first call from the zygote's result,
and the ``SDK_COPIES`` modules' first copy of their template set to be the zygote's.

What a forked child shares with other children of the same zygote: read-only (copy-on-write) pages of the SDK
import, the str hash secret and the address-space layout (ASLR offsets) of the zygote. Documented limitation.
With ``--memory-merge 1`` the zygote opts itself and (by inheritance) its forks into kernel samepage merging: pages
that the forks copied on write but that are byte-identical again (the same SDK objects touched the same way) are
merged back into one write-protected copy by ksmd; a write splits the page again. The README's security model
discusses what that shares.
Differences from a cold start an app could notice: /proc/self/cmdline and /proc/self/environ show the zygote's
(root-set, secret-free) start-up values, and ``gc.get_freeze_count()`` is non-zero (the import is frozen so that
the collector does not un-share it; a cold-started Gradio app freezes its SDK import too, through the start-up
hook in its environment, ``spaces/builder/venv_hook.py``, so there only the count differs), and what ``SDK_WARM``
fills is filled already (Gradio's Jinja cache holds its page template before the first request), and an
``SDK_MEMO`` function is a wrapper, and an ``SDK_COPIES`` module's ``copy`` a stand-in for the copy module, until
the SDK's own start-up has called it once. Native threads
present at fork (OpenBLAS, pyarrow's jemalloc) have fork handlers; the zygote refuses to serve if the import
started Python threads.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys
import time

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 0x4000, 1 << 18
MNT_DETACH = 2
# environment prefixes read by the interpreter or native libraries (getenv, not os.environ) while the zygote starts
# and imports the SDK; what they configure then stays configured in every fork, so a Space that sets any of them
# differently from the zygote's start-up environment is cold-started. Audited with a getenv recorder over both
# SDKs' imports (tests/runtime_local/test_zygote_import.py): CPython, glibc's locale and iconv, OpenSSL, numpy,
# OpenBLAS and its gfortran runtime, pyarrow (when pandas finds it), jemalloc.
NATIVE_PREFIXES = ("PYTHON", "LD_", "LC_", "LANG", "LOCPATH", "GCONV_PATH", "MALLOC_", "OMP_", "OPENBLAS_", "GOTO_",
                   "GFORTRAN_", "MKL_", "NPY_", "NUMPY_", "OPENSSL_", "SSLKEYLOGFILE", "ARROW_", "AZURE_", "JE_",
                   "TMPDIR", "FSSPEC_", "TZ", "HOME", "PATH", "__PYVENV_LAUNCHER__")
# module attributes computed from the environment at SDK import that a child can recompute: (module, attr, fn)
REFRESH = {
    "GRADIO_SERVER_PORT": [("gradio.http_server", "INITIAL_PORT_VALUE", lambda e: int(e.get("GRADIO_SERVER_PORT", "7860"))),
                           ("gradio.node_server", "INITIAL_PORT_VALUE", lambda e: int(e.get("GRADIO_SERVER_PORT", "7860")))],
    "GRADIO_SERVER_NAME": [("gradio.http_server", "LOCALHOST_NAME", lambda e: e.get("GRADIO_SERVER_NAME", "127.0.0.1")),
                           ("gradio.node_server", "LOCALHOST_NAME",
                            lambda e: e.get("GRADIO_NODE_SERVER_NAME", e.get("GRADIO_SERVER_NAME", "127.0.0.1")))],
    **{k: [("gradio.oauth", k, (lambda key: lambda e: e.get(key))(k))]
       for k in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL")},
}
# what the zygote imports: the SDK, then (optional, version-dependent) modules the SDK would otherwise import lazily
# on the first Interface/launch or first run; measured by diffing sys.modules in a forked child at its first 200
SDK_MODULES = {"gradio": ["gradio"], "streamlit": ["streamlit", "streamlit.web.cli", "streamlit.web.bootstrap"]}
_SERVER = ["uvicorn", "uvicorn.main", "uvicorn.server", "uvicorn.config", "uvicorn.lifespan.on", "uvicorn.loops.auto",
           "uvicorn.loops.asyncio", "uvicorn.protocols.http.auto", "uvicorn.protocols.http.h11_impl",
           "uvicorn.protocols.websockets.auto", "uvicorn.protocols.websockets.websockets_sansio_impl",
           "uvicorn.middleware.proxy_headers", "uvicorn.supervisors", "websockets.server", "anyio._backends._asyncio",
           "multiprocessing.synchronize", "multiprocessing.connection", "logging.config", "logging.handlers",
           "encodings.idna", "stringprep", "encodings.unicode_escape", "socketserver"]
SDK_PRELOAD = {
    "gradio": ["gradio.http_server", "gradio.routes", "pydantic.v1", "starlette.middleware.cors",
               "fastapi.telemetry._runtime", *_SERVER],
    "streamlit": ["streamlit.web.server", "starlette.applications", "starlette.routing", "starlette.staticfiles",
                  "starlette.websockets", "starlette.middleware.sessions", "requests", "h11",
                  # streamlit 1.67's server start (components v2, the agent routes), 30-50 ms of a fork's start
                  "streamlit.components.v2.manifest_scanner", "streamlit.runtime.agent.mcp",
                  "streamlit.runtime.agent.snapshot", "streamlit.runtime.agent.tree",
                  "streamlit.runtime.agent.widget_values", "streamlit.runtime.agent.widget_writes",
                  "streamlit.runtime.agent.interaction", "streamlit.web.server.app_discovery",
                  "streamlit.web.server.starlette.starlette_agent_routes", "streamlit.watcher.polling_path_watcher",
                  "watchdog", "packaging.tags", "zoneinfo", "sysconfig", "anyio._core._fileio", *_SERVER],
}

# caches that only the SDK's own files or the host's read-only system files fill, filled once here instead of in
# every fork: (module, attribute, fill). Gradio compiles its page template on the first request for a page, about
# 10 ms of a woken Space's first answer; the compiled template depends on nothing an app or its environment sets.
# Streamlit, once its server listens and before it answers, registers its web types with ``mimetypes``, whose first
# use reads the host's MIME tables (/etc/mime.types and the like; about 10 ms); a Space's sandbox sees the same
# files. Gradio's import reads them already.
SDK_WARM = {
    "gradio": [("gradio.routes", "templates", lambda templates: templates.get_template("frontend/index.html"))],
    "streamlit": [("mimetypes", "init", lambda init: init())],
}

# SDK functions whose result depends only on the installed distributions that importlib.metadata finds (the
# environment's site-packages: read-only to Spaces and the same for every Space on the environment): (module,
# function). The zygote calls each once; a fork's first call gets a copy of that result when the fork finds the same
# distribution metadata on its sys.path (its app directory normally holds none), else the SDK's own function runs.
# Either way the SDK's function is back in place after that call. Streamlit 1.67 starts its server by scanning the
# metadata of every installed package for components (two email-header parses per package): 90-110 ms of the
# 110-125 ms from fork to a listening port in the test suite's environment (69 packages; more packages, longer).
SDK_MEMO = {
    "gradio": [],
    "streamlit": [("streamlit.components.v2.manifest_scanner", "scan_component_manifests")],
}
#: (module, function, result, metadata view) computed by import_sdk; installed in each fork by _install_memos
_MEMOS: list[tuple[str, str, object, list]] = []

# templates that the SDK builds at import and deep-copies at start-up to get a mutable copy of its own, before it
# applies the app's config files, environment and flags to that copy: (module, the name through which that module
# calls the copy module, template attribute). The zygote makes one copy after the import; a fork's first deep copy of
# that template (the same object, with the same keys) in that module takes it instead of copying anew, and the copy
# module is back in place from then on. Streamlit 1.67 deep-copies its 367 config options on every start: 6-9 ms
# of a fork's 35-45 ms from fork to a listening port here.
SDK_COPIES = {
    "gradio": [],
    "streamlit": [("streamlit.config", "copy", "_config_options_template")],
}
#: (module, name, template, its keys, the copy made) made by import_sdk; installed in each fork by _install_copies
_COPIES: list[tuple[str, str, object, list, object]] = []

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


# ---------------------------------------------------------------------------------------------------------------
# the sandbox, shared by both modes


def enter_sandbox(req: dict) -> None:
    """Turn the current (root, single-threaded) process into the Space's sandboxed process. Raises on failure."""
    if os.getpid() != os.getsid(0):
        os.setsid()
    for procs in req.get("cgroup_procs", []):  # before dropping privileges: only root may move us
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    ns = req.get("namespace")
    if ns:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates back to the host
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={int(ns['tmp_size_mb'])}m")
        if ns.get("home_src"):
            _mount(ns["home_src"], ns["home_target"], None, MS_BIND | MS_REC)
    log_fd = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    uid, gid = int(req["uid"]), int(req["gid"])
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)  # last: after it nothing privileged is possible (no way back to root)
    os.umask(0o022)
    os.chdir(req["cwd"])
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") < 1 << 20 else 1 << 16)


def run_exec(req: dict) -> None:
    if not (req.get("namespace") or {}).get("hide_host"):
        enter_sandbox(req)
        os.execve(req["argv"][0], req["argv"], req["env"])
    # the launcher stays outside as the process the backend knows (pid, start time; its exit code is the app's):
    # the signals it gets as a member of the process group reach the app directly
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    pid, status_r = spawn_hidden(req, lambda: os.execve(req["argv"][0], req["argv"], req["env"]), new_session=False)
    _, status = os.waitpid(pid, 0)
    reported = os.read(status_r, 64)
    code = os.waitstatus_to_exitcode(int(reported) if reported else status)
    if code < 0:  # die the way the app died, so the backend sees the same status as without a PID namespace
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)


# ---------------------------------------------------------------------------------------------------------------
# the host-hiding sandbox: a PID namespace and a root of its own per Space (see spaces/runtime/sandbox.py)

_SELF_PIDNS: list[int] = []  # the zygote's own PID namespace, to go back to after each fork


def spawn_hidden(req: dict, run_app, new_session: bool = True, close: tuple = ()) -> tuple[int, int]:
    """Fork the Space's init (pid 1 of a new PID namespace); it builds the Space's root and forks the app, which
    calls ``run_app`` once it is the Space's uid inside that root. Returns (host pid of the init, the read end of
    the pipe on which the init reports the app's raw wait status just before it exits)."""
    if not _SELF_PIDNS:
        _SELF_PIDNS.append(os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC))
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")  # our next child is pid 1 of a new namespace
    try:
        pid = os.fork()
    finally:
        if os.getpid() != 1:  # later children of ours are ours again
            _check(_libc.setns(_SELF_PIDNS[0], CLONE_NEWPID), "setns(CLONE_NEWPID)")
    if pid == 0:
        os.close(status_r)
        for fd in close:
            try:
                fd.close()
            except OSError:
                pass
        _init_main(req, status_w, run_app, new_session)
    os.close(status_w)
    os.set_blocking(status_r, False)
    return pid, status_r


def _init_main(req: dict, status_w: int, run_app, new_session: bool) -> None:
    """pid 1 of the Space: set up its root as root, fork the app, then wait as the Space's uid. Never returns.

    It stays as the namespace's init because the app must not be one: the kernel ignores signals that an init has
    no handler for (SIGTERM to a Python app would do nothing), and an init's exit kills everything left in the
    namespace, so nothing of a Space outlives it."""
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        if new_session:
            os.setsid()
        else:  # the cold path: the launcher is the process the backend knows; when it is killed, so is the Space
            _libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        for procs in req.get("cgroup_procs", []):  # before anything else: the app never runs outside its limits
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        log_fd = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except BaseException as e:  # noqa: BLE001 - never run the app half-sandboxed
        _die(None, f"could not open the log: {e}")
    try:
        build_root(req["namespace"])
        app = os.fork()
    except BaseException as e:  # noqa: BLE001
        _die(log_fd, f"could not set up the sandbox: {e}")
    if app == 0:
        os.close(status_w)
        try:
            become_app(req, log_fd)
        except BaseException as e:  # noqa: BLE001
            _die(log_fd, f"could not enter the sandbox: {e}")
        run_app()
        os._exit(127)
    try:  # nothing privileged is left to do: wait as the Space's uid, holding no fd but the status pipe
        os.closerange(3, status_w)
        os.closerange(status_w + 1, _max_fd())
        os.setgroups([])
        os.setgid(int(req["gid"]))
        os.setuid(int(req["uid"]))
    except OSError:
        pass
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == app:
            os.write(status_w, str(status).encode())
            os._exit(0)


def _die(log_fd: int | None, message: str) -> None:
    try:
        os.write(log_fd if log_fd is not None else 2, f"spaces: {message}\n".encode())
    finally:
        os._exit(126)


def _max_fd() -> int:
    return os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") < 1 << 20 else 1 << 16


def build_root(ns: dict) -> None:
    """In a new mount (and IPC) namespace: a tmpfs root holding only ``ns["ops"]`` (bubblewrap's vocabulary: ro,
    bind, dev, tmpfs, dir, symlink, proc, devpts), made the process's root with pivot_root; the host's root is
    detached. The caller is root and pid 1 of a new PID namespace (for /proc)."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare(CLONE_NEWNS|CLONE_NEWIPC)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates back to the host
    root = ns["root"]
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for op in ns["ops"]:
        _apply(root, op)
    os.chdir(root)
    _check(_libc.syscall(155, b".", b"."), "pivot_root")  # SYS_pivot_root (x86_64): the old root stacks under "."
    _check(_libc.umount2(b".", MNT_DETACH), "umount the host's root")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)  # the skeleton is read-only


def _apply(root: str, op: list) -> None:
    kind, dst = op[0], root + op[-1]
    if kind in ("ro", "bind", "dev"):
        src = op[1]
        if os.path.isdir(src):
            os.makedirs(dst, 0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
            if not os.path.exists(dst):
                os.close(os.open(dst, os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(src, dst, None, MS_BIND | MS_REC)
        flags = MS_BIND | MS_REMOUNT | MS_NOSUID | (MS_RDONLY if kind == "ro" else 0)
        _mount(None, dst, None, flags | (MS_NODEV if kind != "dev" else 0))
    elif kind == "tmpfs":  # ["tmpfs", size_mb, mode, dst]
        os.makedirs(dst, 0o755, exist_ok=True)
        _mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={op[2]},size={int(op[1])}m")
    elif kind == "dir":  # ["dir", mode, dst]
        os.makedirs(dst, 0o755, exist_ok=True)
        os.chmod(dst, int(op[1], 8))
    elif kind == "symlink":  # ["symlink", target, dst]
        os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
        os.symlink(op[1], dst)
    elif kind == "proc":
        os.makedirs(dst, 0o755, exist_ok=True)
        _mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    elif kind == "devpts":
        os.makedirs(dst, 0o755, exist_ok=True)
        _mount("devpts", dst, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    elif kind == "overlay":  # ["overlay", lower, upper, work, dst]: the working copy, its writes on the Space's disk
        os.makedirs(dst, 0o755, exist_ok=True)
        _mount("overlay", dst, "overlay", MS_NOSUID | MS_NODEV, f"lowerdir={op[1]},upperdir={op[2]},workdir={op[3]}")
    else:
        raise ValueError(f"unknown sandbox operation {kind!r}")


LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, LANDLOCK_SCOPE_SIGNAL = 1, 2


def landlock_scope() -> None:
    """Confine the process to its own abstract unix sockets and signals (Landlock scopes, Linux 6.12+): abstract
    sockets have no path to hide, they are per network namespace, and Spaces share the host's network."""
    attr = (ctypes.c_uint64 * 3)(0, 0, LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL)
    fd = _libc.syscall(444, ctypes.byref(attr), ctypes.sizeof(attr), 0)  # landlock_create_ruleset
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        _check(_libc.prctl(38, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
        _check(_libc.syscall(446, fd, 0), "landlock_restrict_self")
    finally:
        os.close(fd)


def become_app(req: dict, log_fd: int) -> None:
    """In the app's process, inside the Space's root: drop to the Space's uid, then the app's directory and fds."""
    null_fd = os.open(os.devnull, os.O_RDONLY)
    uid, gid = int(req["uid"]), int(req["gid"])
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if req["namespace"].get("landlock"):
        landlock_scope()
    os.umask(0o022)
    os.chdir(req["cwd"])
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.closerange(3, _max_fd())


# ---------------------------------------------------------------------------------------------------------------
# the zygote


class RecordingEnviron(os._Environ):  # type: ignore[name-defined]
    """os.environ that remembers every key read (present or not) while the SDK is imported."""

    reads: set[str] = set()

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        RecordingEnviron.reads.add(key)
        return super().__getitem__(key)


def import_sdk(sdk: str) -> dict[str, str | None]:
    """Import the SDK and fill its ``SDK_WARM`` caches with a recording environ; return {key read: value then}."""
    import gc

    gc.disable()  # re-enabled in each child (see serve: gc.freeze)
    plain = os.environ
    os.environ = RecordingEnviron(plain._data, plain.encodekey, plain.decodekey, plain.encodevalue, plain.decodevalue)
    try:
        import importlib

        for mod in SDK_MODULES[sdk]:
            importlib.import_module(mod)
        for mod in SDK_PRELOAD[sdk]:
            try:
                importlib.import_module(mod)
            except Exception:  # noqa: BLE001 - absent in this SDK version: the app imports what it needs
                pass
        for module, attr, fill in SDK_WARM[sdk]:
            target = getattr(sys.modules.get(module), attr, None)
            if target is not None:
                try:
                    fill(target)
                except Exception:  # noqa: BLE001 - another SDK version: its first request fills it instead
                    pass
        for module, attr in SDK_MEMO[sdk]:
            fn = getattr(sys.modules.get(module), attr, None)
            if fn is not None:
                try:
                    _MEMOS.append((module, attr, fn(), metadata_view()))
                except Exception:  # noqa: BLE001 - another SDK version: each fork calls it itself
                    pass
        import copy

        for module, name, attr in SDK_COPIES[sdk]:
            mod = sys.modules.get(module)
            template = getattr(mod, attr, None)
            if template is not None and getattr(mod, name, None) is copy:  # else another SDK version: it copies
                _COPIES.append((module, name, template, list(template), copy.deepcopy(template)))
    finally:
        os.environ = plain
    return {k: plain.get(k) for k in RecordingEnviron.reads}


def metadata_view() -> list:
    """What ``importlib.metadata.distributions()`` reads, in order: per sys.path entry that holds any, its
    distribution metadata names (a zip or other non-directory entry is named as such: treated as different), and the
    meta path finders. Equal views find the same distributions, given that the environment's files do not change."""
    view: list = []
    for entry in sys.path:
        path = os.path.abspath(entry or ".")
        try:
            names = sorted(n for n in os.listdir(path) if n.lower().endswith((".dist-info", ".egg-info")))
        except NotADirectoryError:
            names = ["<not a directory>"]
        except OSError:
            continue  # absent or unreadable: importlib.metadata finds nothing there either
        if names:
            view.append((path, names))
    view.append([id(finder) for finder in sys.meta_path])
    return view


def _install_memos() -> None:
    """In a fork: the SDK_MEMO functions answer their first call from the zygote's result when the view matches."""
    import copy
    import functools

    for module, attr, result, view in _MEMOS:
        mod = sys.modules[module]
        original = getattr(mod, attr)

        def first_call(*args, _mod=mod, _attr=attr, _original=original, _result=result, _view=view, **kwargs):
            setattr(_mod, _attr, _original)  # one call only: every later call is the SDK's own
            if args or kwargs or metadata_view() != _view:
                return _original(*args, **kwargs)
            return copy.deepcopy(_result)  # the fork's own objects, as a scan of its own would give

        setattr(mod, attr, functools.wraps(original)(first_call))


class _FirstCopy:
    """Stands for the copy module in one SDK module until that module deep-copies its template: that one copy is the
    one the zygote made (when the template still has the keys it had then), and the copy module is back after it."""

    def __init__(self, mod: object, name: str, template: object, keys: list, made: object) -> None:
        self._mod, self._name, self._template, self._keys, self._made = mod, name, template, keys, made

    def __getattr__(self, attr: str) -> object:
        import copy

        return getattr(copy, attr)

    def deepcopy(self, x: object, memo: dict | None = None) -> object:
        import copy

        if x is not self._template:
            return copy.deepcopy(x, memo)
        setattr(self._mod, self._name, copy)  # one copy only: every later copy is made anew
        if memo is None and list(x) == self._keys:  # type: ignore[call-overload]
            return self._made
        return copy.deepcopy(x, memo)


def _install_copies() -> None:
    """In a fork: each SDK_COPIES module's first deep copy of its template takes the copy the zygote made."""
    for module, name, template, keys, made in _COPIES:
        mod = sys.modules[module]
        setattr(mod, name, _FirstCopy(mod, name, template, keys, made))


def incompatibility(import_env: dict[str, str | None], env: dict[str, str]) -> str | None:
    """Why a fork would not be indistinguishable from a cold start with ``env`` (None when it would)."""
    zygote_env = dict(os.environ)
    for key in set(env) | set(zygote_env):
        if key.startswith(NATIVE_PREFIXES) and env.get(key) != zygote_env.get(key):
            return f"{key} differs from the zygote's start-up environment"
    for key, seen in import_env.items():
        if env.get(key) != seen and key not in REFRESH and not key.startswith(NATIVE_PREFIXES):
            return f"{key} was read while the SDK was imported and differs for this Space"
    return None


def _refresh(env: dict[str, str]) -> None:
    for key, targets in REFRESH.items():
        for module, attr, fn in targets:
            if module in sys.modules:
                setattr(sys.modules[module], attr, fn(env))


def _finish(code: int) -> None:
    """Interpreter shutdown as ``python app.py`` would do it: join threads, atexit, flush; then exit."""
    import atexit
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _run_main(app: str) -> None:
    """Run ``app`` as ``python app.py`` does: a fresh ``__main__`` with an absolute ``__file__``, argv untouched."""
    import builtins
    import importlib.machinery
    import types

    path = os.path.abspath(app)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    sys.modules["__main__"] = main
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def child_main(req: dict, sdk: str, sandboxed: bool = False) -> None:
    """In the forked child: become the Space's app (``sandboxed``: the sandbox's init made it one). Never returns."""
    try:
        signal.set_wakeup_fd(-1)  # the zygote's SIGCHLD pipe: must not be written to once the fd is closed
        for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        if not sandboxed:
            enter_sandbox(req)
        import gc

        gc.enable()
        os.environ.clear()
        os.environ.update(req["env"])
        _refresh(req["env"])
        if "numpy" in sys.modules:  # random reseeds itself at fork; numpy's legacy global state does not
            sys.modules["numpy"].random.seed()
        sys.orig_argv = list(req["argv"])
        _install_memos()
        _install_copies()
    except BaseException as e:  # noqa: BLE001 - report in the Space's log, never run half-sandboxed
        try:
            os.write(2, f"spaces: could not start the sandbox: {e}\n".encode())
        finally:
            os._exit(126)
    code = 0
    try:
        import runpy

        if sdk == "streamlit":  # argv: python -m streamlit run APP ...
            sys.argv = [os.path.join(os.path.dirname(sys.modules["streamlit"].__file__), "__main__.py"),
                        *req["argv"][3:]]
            sys.path[0] = os.getcwd()
            runpy.run_module("streamlit", run_name="__main__", alter_sys=True)
        else:  # argv: python APP
            app = req["argv"][1]
            sys.argv = [app]
            sys.path[0] = os.path.dirname(os.path.abspath(app))
            _run_main(app)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    except BaseException as e:  # noqa: BLE001 - print like the interpreter does, without our own frames
        import traceback

        tb, ours = e.__traceback__, (os.path.abspath(__file__), runpy.__file__, "<frozen runpy>")
        while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in ours:
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb)
        code = 130 if isinstance(e, KeyboardInterrupt) else 1
    _finish(code)


PR_SET_MEMORY_MERGE = 67


def enable_memory_merge() -> None:
    """Let the kernel merge this process's identical pages with its forks' (KSM, Linux 6.4+; inherited on fork).

    Forks of one zygote run the same SDK code on the same inherited heap: many pages they copy on write end up
    byte-identical in every fork (the same objects touched the same way). ksmd merges such pages back into one
    write-protected copy; a write un-merges just that page again. Unavailable: the forks simply share less."""
    _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if _libc.prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        print(f"zygote: memory merging unavailable: {os.strerror(err)}", flush=True)


def serve(sock_path: str, sdk: str, exits: str, memory_merge: bool = False) -> None:
    parent = os.getppid()
    os.chdir("/")
    import_env = import_sdk(sdk)
    if len(os.listdir("/proc/self/task")) > 1:  # native threads (OpenBLAS, jemalloc) have fork handlers; say so
        names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
        print(f"zygote: native threads after import: {names}", flush=True)
    import gc
    import threading

    # move everything imported out of the collector's reach: a full collection in a child would otherwise write
    # to every object's GC header and un-share the pages (copy-on-write) the forks are meant to share. The
    # collector was off during the import (see import_sdk), so no freed holes invite child allocations either.
    gc.freeze()
    if memory_merge:
        enable_memory_merge()
    if threading.active_count() != 1:
        print("zygote: the SDK started Python threads; refusing to fork", flush=True)
        sys.exit(3)
    old = os.umask(0o077)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    listener.bind(sock_path)
    os.umask(old)
    os.chmod(sock_path, 0o600)
    listener.listen(16)
    print(f"zygote: ready sdk={sdk} pid={os.getpid()}", flush=True)
    children: dict[int, tuple[str, int | None]] = {}  # pid -> (instance, its init's status pipe)
    # SIGCHLD wakes the loop at once (through a wakeup pipe), so exit codes are on disk within milliseconds
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    while True:
        if os.getppid() != parent:  # the control plane died: the next one starts a new zygote
            break
        _reap(children, exits)
        ready, _, _ = select.select([listener, wake_r], [], [], 0.5)
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        try:
            conn.settimeout(10)
            req = json.loads(_recv_line(conn))
            if req.get("op") == "ping":
                conn.sendall(json.dumps({"ok": True, "import_env_keys": len(import_env)}).encode() + b"\n")
                continue
            why = incompatibility(import_env, req["env"])
            if why:
                conn.sendall(json.dumps({"fallback": why}).encode() + b"\n")
                continue
            status_r = None
            if (req.get("namespace") or {}).get("hide_host"):
                pid, status_r = spawn_hidden(req, lambda: child_main(req, sdk, sandboxed=True),
                                             close=(listener, conn))
            else:
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    conn.close()
                    child_main(req, sdk)
            children[pid] = (req["instance"], status_r)
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        except Exception as e:  # noqa: BLE001 - one bad request never takes the zygote down
            try:
                conn.sendall(json.dumps({"error": str(e)}).encode() + b"\n")
            except OSError:
                pass
        finally:
            conn.close()
    listener.close()


def _recv_line(conn: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def _reap(children: dict[int, tuple[str, int | None]], exits: str) -> None:
    """Record each exited child's code, *then* reap it: poll never sees it gone without its exit file."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None:
            return
        pid = info.si_pid
        code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        instance, status_r = children.pop(pid, (None, None))
        if status_r is not None:  # a sandbox's init: it reports how the app ended (it cannot die by a signal)
            try:
                reported = os.read(status_r, 64)
                if reported:
                    code = os.waitstatus_to_exitcode(int(reported))
            except (OSError, ValueError):
                pass
            os.close(status_r)
        if instance:
            tmp = os.path.join(exits, f".{instance}.tmp")
            with open(tmp, "w") as f:
                json.dump({"pid": pid, "code": code, "at": time.time()}, f)
            os.replace(tmp, os.path.join(exits, f"{instance}.exit"))
        os.waitpid(pid, 0)


def main(argv: list[str]) -> None:
    # the script's own directory (spaces/runtime) must never shadow a top-level module of the SDK or the app
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        sys.path[0] = "/nonexistent/spaces-zygote"  # a placeholder the child replaces with the app's directory
    mode = argv[0] if argv else ""
    if mode == "exec":
        run_exec(json.loads(sys.stdin.buffer.read()))
    elif mode == "serve":
        opts = dict(zip(argv[1::2], argv[2::2]))
        def bye(*_: object) -> None:  # the socket's name is unique to this zygote: leave no stale file behind
            try:
                os.unlink(opts["--socket"])
            finally:
                os._exit(0)

        signal.signal(signal.SIGTERM, bye)
        serve(opts["--socket"], opts["--sdk"], opts["--exits"], opts.get("--memory-merge") == "1")
        bye()
    else:
        sys.exit("usage: zygote.py exec < request.json | serve --socket PATH --sdk SDK --exits DIR [--memory-merge 1]")


if __name__ == "__main__":
    main(sys.argv[1:])
