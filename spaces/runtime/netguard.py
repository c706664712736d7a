"""Loopback guard for the local backend: a sandboxed Space may not open TCP connections to services on this
machine (other Spaces' ports, the database, Redis), only to the platform's public port.

Every app listens on a loopback port that only the proxy should reach; the proxy runs as the platform's user,
so an ``iptables`` rule on the OUTPUT path that rejects *new* loopback TCP connections made by the Spaces' uid
range closes the bypass without touching the apps' own answers (those belong to established connections).
Other protocols (UDP, ICMP...) to this machine are refused outright; the only exception is a DNS server on
loopback named in /etc/resolv.conf. Traffic to other hosts goes through a second chain, by the ``outbound`` setting:
``internet`` (default: apps download models and call APIs, as on Hugging Face) refuses only the private, shared and
link-local ranges (the LAN's services and the cloud metadata endpoint, 169.254.169.254, that hands out the host's
credentials; the DNS servers stay reachable); ``all`` refuses nothing; ``none`` refuses everything but DNS. Each
instance may still reach its *own* port (Gradio checks that
its server answers before it says it started): ``OwnPortHoles`` opens that one hole for the local backend before
the instance's process exists (so no app can look for it too early) and closes it when the instance stops. Needs
root and iptables; without them the platform logs a warning and runs unguarded.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from pathlib import Path

log = logging.getLogger(__name__)


def _tools() -> list[str]:
    return [exe for exe in (shutil.which("iptables") or "/usr/sbin/iptables",
                            shutil.which("ip6tables") or "/usr/sbin/ip6tables") if shutil.which(exe)]


def _run(exe: str, *args: str) -> bool:
    return subprocess.run([exe, "-w", *args], capture_output=True).returncode == 0


def chain_name(uid_min: int) -> str:
    return f"SPACES-LO-{uid_min}"  # one chain per uid range, so several platforms on one host do not collide


def out_chain_name(uid_min: int) -> str:
    return f"SPACES-OUT-{uid_min}"


#: destinations that ``outbound=internet`` refuses: private, shared (CGNAT) and link-local (cloud metadata) ranges
PRIVATE = {"iptables": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"],
           "ip6tables": ["fc00::/7", "fe80::/10"]}


def nameservers() -> list[str]:
    """The DNS servers of this host (Spaces resolve names through them, so they stay reachable on port 53)."""
    return _read_ns("/etc/resolv.conf")


def _read_ns(resolv: str) -> list[str]:
    try:
        lines = Path(resolv).read_text().splitlines()
    except OSError:
        return []
    return [parts[1] for parts in (line.split() for line in lines) if len(parts) >= 2 and parts[0] == "nameserver"]


def _family(exe: str) -> str:
    return "ip6tables" if exe.endswith("ip6tables") else "iptables"


def _dns_rules(exe: str, chain: str, servers: list[str]) -> list[list[str]]:
    six = _family(exe) == "ip6tables"
    return [[chain, "-d", ns, "-p", proto, "--dport", "53", "-j", "RETURN"]
            for ns in servers if (":" in ns) == six for proto in ("udp", "tcp")]


def jump_rule(uid_min: int, uid_max: int) -> list[str]:
    """The OUTPUT rule that sends new loopback connections of the Spaces' uids through the guard's chain."""
    return ["OUTPUT", "-o", "lo", "-m", "owner", "--uid-owner", f"{uid_min}-{uid_max}",
            "-m", "conntrack", "--ctstate", "NEW", "-j", chain_name(uid_min)]


def install(uid_min: int, uid_max: int, allow_ports: list[int], outbound: str = "internet") -> str | None:
    """Install (or refresh) the guard; returns None when it is in place, else why not."""
    if outbound not in ("internet", "all", "none"):
        raise ValueError(f"outbound must be internet, all or none, not {outbound!r}")
    chain, out = chain_name(uid_min), out_chain_name(uid_min)
    servers = nameservers()
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
            for port in allow_ports:  # ACCEPT, not RETURN: no later rule (another instance's) may refuse it
                run("-A", chain, "-p", "tcp", "--dport", str(port), "-j", "ACCEPT")
            for rule in _dns_rules(exe, chain, servers):
                run("-A", *rule)
            run("-A", chain, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")
            run("-A", chain, "-j", "REJECT")  # UDP and every other protocol: nothing of this host is reachable
            run("-N", out, check=False)
            run("-F", out)
            if outbound != "all":
                for rule in _dns_rules(exe, out, servers):
                    run("-A", *rule)
                everywhere = "0.0.0.0/0" if _family(exe) == "iptables" else "::/0"
                for net in PRIVATE[_family(exe)] if outbound == "internet" else [everywhere]:
                    run("-A", out, "-d", net, "-j", "REJECT")
            for rule in (jump_rule(uid_min, uid_max), out_jump_rule(uid_min, uid_max)):
                if not run("-C", *rule, check=False):
                    run("-I", *rule)
        except RuntimeError as exc:
            problems.append(f"{exe}: {exc}")
    if problems:
        message = "; ".join(problems)
        log.warning("Spaces can connect to other Spaces and local services: the loopback guard is off (%s)", message)
        return message
    return None


def out_jump_rule(uid_min: int, uid_max: int) -> list[str]:
    """The OUTPUT rule that sends the Spaces' new connections to other hosts through the outbound chain."""
    return ["OUTPUT", "!", "-o", "lo", "-m", "owner", "--uid-owner", f"{uid_min}-{uid_max}",
            "-m", "conntrack", "--ctstate", "NEW", "-j", out_chain_name(uid_min)]


def uninstall(uid_min: int, uid_max: int) -> None:
    """Remove the guard of a uid range (a platform instance that is gone): its jump rules and its chains."""
    for exe in _tools():
        for rule, chain in ((jump_rule(uid_min, uid_max), chain_name(uid_min)),
                            (out_jump_rule(uid_min, uid_max), out_chain_name(uid_min))):
            while _run(exe, "-D", *rule):
                pass
            if _run(exe, "-F", chain):
                _run(exe, "-X", chain)


def installed(uid_min: int) -> bool:
    """Does any chain of this uid range exist (in either table)? (``spaces down`` checks its work with it.)"""
    return any(_run(exe, "-n", "-L", chain) for exe in _tools()
               for chain in (chain_name(uid_min), out_chain_name(uid_min)))


def _self_rule(chain: str, uid: int, port: int) -> list[str]:
    return [chain, "-p", "tcp", "-m", "owner", "--uid-owner", str(uid), "--dport", str(port), "-j", "ACCEPT"]


class OwnPortHoles:
    """The holes that let each local instance reach its own port; the local backend begins one as soon as it has
    chosen the instance's port, waits for it right before it launches the instance, closes it after it stopped the
    instance, and opens it again for instances it adopts after a restart (``install`` flushed their holes).

    A hole is on the path of every start and wake, so it asks nothing of iptables: it remembers the holes it made
    (one chain per platform, flushed by ``install`` at start-up) and inserts into both address families at once, in
    processes of their own that run while the backend prepares the rest of the sandbox."""

    def __init__(self, uid_min: int) -> None:
        self.chain = chain_name(uid_min)
        self._open: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def begin(self, uid: int, port: int) -> Opening:
        """Start making the hole for ``uid`` to ``port``; the answer's ``wait()`` returns once it is made (or
        failed)."""
        with self._lock:
            if (uid, port) in self._open:
                return Opening()
            self._open.add((uid, port))
        procs = [subprocess.Popen([exe, "-w", "-I", *_self_rule(self.chain, uid, port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for exe in _tools()]
        return Opening(self, uid, port, procs)

    def open(self, uid: int, port: int) -> None:
        self.begin(uid, port).wait()

    def close(self, uid: int, port: int) -> None:
        with self._lock:
            self._open.discard((uid, port))
        for exe in _tools():
            while _run(exe, "-D", *_self_rule(self.chain, uid, port)):
                pass  # until none is left

    def _failed(self, uid: int, port: int, err: bytes) -> None:
        # the app's check of its own port will fail: say why in the platform's log
        log.warning("could not let uid %d reach its own port %d: %s", uid, port, err.decode(errors="replace").strip())
        with self._lock:  # not made: the next open of this hole must try again
            self._open.discard((uid, port))


class Opening:
    """A hole being made (see ``OwnPortHoles.begin``); one with no processes is made already, or not needed."""

    def __init__(self, holes: OwnPortHoles | None = None, uid: int = 0, port: int = 0,
                 procs: list[subprocess.Popen[bytes]] | None = None) -> None:
        self.holes, self.uid, self.port, self.procs = holes, uid, port, procs or []

    def wait(self) -> None:
        procs, self.procs = self.procs, []
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0 and self.holes is not None:
                self.holes._failed(self.uid, self.port, err)


class NoHoles:
    """What the local backend uses when it runs without the guard: no holes to open or close."""

    def begin(self, uid: int, port: int) -> Opening:
        return Opening()

    def open(self, uid: int, port: int) -> None:
        pass

    def close(self, uid: int, port: int) -> None:
        pass
