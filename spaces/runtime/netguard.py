"""Loopback guard for the local backend: a sandboxed Space may not open TCP connections to services on this
machine (other Spaces' ports, the database, Redis), only to the platform's public port.

Every app listens on a loopback port that only the proxy should reach; the proxy runs as the platform's user,
so an ``iptables`` rule on the OUTPUT path that rejects *new* loopback TCP connections made by the Spaces' uid
range closes the bypass without touching the apps' own answers (those belong to established connections).
Outbound traffic to other hosts is untouched. Each instance may still reach its *own* port (Gradio checks that
its server answers before it says it started): ``GuardedBackend`` opens that one hole when it starts an instance
and closes it when it stops it. Needs root and iptables; without them the platform logs a warning and runs
unguarded.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

log = logging.getLogger(__name__)


def _tools() -> list[str]:
    return [exe for exe in (shutil.which("iptables") or "/usr/sbin/iptables",
                            shutil.which("ip6tables") or "/usr/sbin/ip6tables") if shutil.which(exe)]


def _run(exe: str, *args: str) -> bool:
    return subprocess.run([exe, "-w", *args], capture_output=True).returncode == 0


def chain_name(uid_min: int) -> str:
    return f"SPACES-LO-{uid_min}"  # one chain per uid range, so several platforms on one host do not collide


def install(uid_min: int, uid_max: int, allow_ports: list[int]) -> str | None:
    """Install (or refresh) the guard; returns None when it is in place, else why not."""
    chain = chain_name(uid_min)
    tools = _tools()
    problems = [] if tools else ["iptables is not installed"]
    for exe in tools:
        def run(*args: str, check: bool = True) -> bool:
            proc = subprocess.run([exe, "-w", *args], capture_output=True, text=True)
            if check and proc.returncode != 0:
                raise RuntimeError(proc.stderr.strip() or f"{exe} {' '.join(args)} failed")
            return proc.returncode == 0

        try:
            run("-N", chain, check=False)  # exists already after a restart: flushed and refilled below
            run("-F", chain)
            for port in allow_ports:
                run("-A", chain, "-p", "tcp", "--dport", str(port), "-j", "RETURN")
            run("-A", chain, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")
            rule = ["OUTPUT", "-o", "lo", "-m", "owner", "--uid-owner", f"{uid_min}-{uid_max}",
                    "-m", "conntrack", "--ctstate", "NEW", "-j", chain]
            if not run("-C", *rule, check=False):
                run("-I", *rule)
        except RuntimeError as exc:
            problems.append(f"{exe}: {exc}")
    if problems:
        message = "; ".join(problems)
        log.warning("Spaces can connect to other Spaces and local services: the loopback guard is off (%s)", message)
        return message
    return None


def _self_rule(chain: str, uid: int, port: int) -> list[str]:
    return [chain, "-p", "tcp", "-m", "owner", "--uid-owner", str(uid), "--dport", str(port), "-j", "RETURN"]


def allow_own_port(uid_min: int, uid: int, port: int) -> None:
    for exe in _tools():
        rule = _self_rule(chain_name(uid_min), uid, port)
        if not _run(exe, "-C", *rule):
            _run(exe, "-I", *rule)


def revoke_own_port(uid_min: int, uid: int, port: int) -> None:
    for exe in _tools():
        while _run(exe, "-D", *_self_rule(chain_name(uid_min), uid, port)):
            pass


class GuardedBackend:
    """Wraps the local backend: opens an instance's own port to itself while it runs (see the module docstring)."""

    def __init__(self, inner, uid_min: int) -> None:  # noqa: ANN001
        self.inner = inner
        self.uid_min = uid_min
        self.name = inner.name

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.inner, name)

    def _ids(self, handle) -> tuple[int, int] | None:  # noqa: ANN001
        uid, port = handle.data.get("uid"), handle.data.get("port")
        return (int(uid), int(port)) if uid and port else None

    def start(self, spec):  # noqa: ANN001, ANN201
        handle = self.inner.start(spec)
        if ids := self._ids(handle):
            allow_own_port(self.uid_min, *ids)
        return handle

    def stop(self, handle) -> None:  # noqa: ANN001
        self.inner.stop(handle)
        if ids := self._ids(handle):
            revoke_own_port(self.uid_min, *ids)

    def list(self, labels):  # noqa: ANN001, ANN201
        handles = self.inner.list(labels)
        for handle in handles:  # adopted after a restart: install() flushed their holes
            if ids := self._ids(handle):
                allow_own_port(self.uid_min, *ids)
        return handles
