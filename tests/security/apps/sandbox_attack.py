"""A Gradio app that attacks its own sandbox from inside: every read, connect and write a hostile tenant would try.

It runs each attempt once at start, prints ``ATTACK-RESULT {json}`` to its log (name -> "ALLOWED: ..." or
"denied: ErrorType [errno]"), then serves like any Space. Targets come from its environment (set by
tests/security/test_sandbox_local.py): canary files, sockets and processes the test made on the host.
"""

import errno
import json
import os
import socket

import gradio as gr

E = os.environ


def attempt(fn):
    try:
        return "ALLOWED: " + repr(fn())[:200]
    except OSError as e:
        return f"denied: {type(e).__name__} {errno.errorcode.get(e.errno, e.errno)}"


def read(path):
    return open(path).read(200)


def connect_unix(address):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect(address)
        return s.recv(16)


def connect_tcp(port):
    with socket.create_connection(("127.0.0.1", int(port)), timeout=3) as s:
        return s.recv(16)


def udp_echo(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.connect(("127.0.0.1", int(port)))
        s.send(b"ping")
        return s.recv(16)


def scan_cmdlines(needle):
    """Every process's command line this app can read: ALLOWED when one holds the host's canary."""
    seen = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if needle.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                seen.append(pid)
        except OSError:
            pass
    if not seen:
        raise FileNotFoundError(errno.ENOENT, "no process holds the canary")
    return seen


def fill(path, mb):
    """Write ``mb`` MiB to ``path``; the disk or tmpfs limit must stop it (the file is removed either way)."""
    try:
        with open(path, "wb") as f:
            chunk = b"\1" * (1 << 20)
            for _ in range(mb):
                f.write(chunk)
                f.flush()
            os.fsync(f.fileno())
        return f"wrote {mb} MiB"
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def write(path):
    with open(path, "w") as f:
        return f.write("left behind by " + E["SPACE_ID"])


results = {
    "list_run": attempt(lambda: os.listdir("/run")),
    "list_var_run": attempt(lambda: os.listdir("/var/run")),
    "read_run_canary": attempt(lambda: read(E["RUN_CANARY"])),
    "read_var_tmp_canary": attempt(lambda: read(E["VAR_TMP_CANARY"])),
    "read_etc_shadow": attempt(lambda: read("/etc/shadow")),
    "read_etc_passwd": attempt(lambda: read("/etc/passwd")),
    "list_data_dir": attempt(lambda: os.listdir(E["DATA_DIR"])),
    "read_data_file": attempt(lambda: read(E["DATA_DIR"] + "/spaces.db")),
    "list_other_workdir": attempt(lambda: os.listdir(E["OTHER_WORKDIR"])),
    "list_other_home": attempt(lambda: os.listdir(E["OTHER_HOME"])),
    "connect_postgres_socket": attempt(lambda: connect_unix("/run/postgresql/.s.PGSQL.5432")),
    "connect_host_unix_socket": attempt(lambda: connect_unix(E["UNIX_SOCKET"])),
    "connect_host_abstract_socket": attempt(lambda: connect_unix("\0" + E["ABSTRACT_SOCKET"])),
    "connect_host_tcp": attempt(lambda: connect_tcp(E["TCP_PORT"])),
    "udp_to_host": attempt(lambda: udp_echo(E["UDP_PORT"])),
    "read_host_process_cmdline": attempt(lambda: read(f"/proc/{E['HOST_PID']}/cmdline")),
    "find_host_process_cmdline": attempt(lambda: scan_cmdlines(E["CANARY"])),
    "write_var_tmp": attempt(lambda: write("/var/tmp/" + E["CANARY"] + ".left")),
    "write_run_lock": attempt(lambda: write("/run/lock/" + E["CANARY"] + ".left")),
    "write_dev_shm": attempt(lambda: write("/dev/shm/" + E["CANARY"] + ".left")),
    "write_tmp": attempt(lambda: write("/tmp/" + E["CANARY"] + ".left")),
    "fill_home": attempt(lambda: fill(os.path.join(E["HOME"], "fill"), int(E["DISK_FILL_MB"]))),
    "fill_workdir": attempt(lambda: fill("fill", int(E["DISK_FILL_MB"]))),
    "fill_tmp": attempt(lambda: fill("/tmp/fill", int(E["TMP_FILL_MB"]))),
    "fill_dev_shm": attempt(lambda: fill("/dev/shm/fill", int(E["SHM_FILL_MB"]))),
    "processes": attempt(lambda: [len(pids := [int(p) for p in os.listdir("/proc") if p.isdigit()]), max(pids)]),
}
print("ATTACK-RESULT " + json.dumps(results), flush=True)

gr.Interface(lambda x: x, "text", "text").launch()
