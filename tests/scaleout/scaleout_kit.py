"""The scale-out tests' own kit: a role as a ``spaces serve --roles ...`` subprocess, the cluster of them, and
git helpers. The fixtures that start a cluster are in conftest.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import platform_kit as kit
from harness import spaces_command, wait_until


@dataclass
class Role:
    """One ``spaces serve --roles ...`` process."""

    name: str
    roles: str
    port: int
    ops_port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*spaces_command(), "serve", "--roles", self.roles, "--host", "127.0.0.1", "--port", str(self.port),
                 "--ops-port", str(self.ops_port)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """Where /healthz and /readyz are: the hub's own port, else the ops port."""
        return self.url if "hub" in self.roles else f"http://127.0.0.1:{self.ops_port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def probe(self, path: str) -> int:
        try:
            return httpx.get(self.ops_url + path, timeout=2).status_code
        except httpx.HTTPError:
            return 0

    def wait_alive(self, timeout: float = 120) -> None:
        def up() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()[-4000:]}")
            return self.probe("/healthz") == 200
        wait_until(up, timeout=timeout, interval=0.3, what=f"{self.name} to answer /healthz")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Cluster:
    base: Path
    data_dir: Path
    env: dict[str, str]
    prefix: str
    uid_min: int
    uid_max: int
    cgroup_root: str
    roles: dict[str, Role] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Role:
        return self.roles[name]

    @property
    def apps_domain(self) -> str:
        return self.env["SPACES_APPS_DOMAIN"]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*spaces_command(), *args], env=self.env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return res

    def leader(self) -> Role | None:
        """The controller whose /readyz says ready (it leads); None while none does."""
        ready = [r for r in self.roles.values() if r.roles == "controller" and r.alive() and r.probe("/readyz") == 200]
        assert len(ready) <= 1, f"two controllers lead at once: {[r.name for r in ready]}"
        return ready[0] if ready else None

    def instances(self) -> list[dict]:
        import json

        out = []
        for p in sorted((self.data_dir / "local" / "run" / "instances").glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                out.append(json.loads(p.read_text()))
        return out

    def instance_of(self, space_id: str) -> dict:
        found = [s for s in self.instances() if s.get("space_id") == space_id]
        assert len(found) == 1, f"expected one instance of {space_id}, got {found}"
        return found[0]

    def instance_logs(self, space_id: str) -> list[Path]:
        """One log file per instance ever started for the Space (the local backend's): counts starts."""
        from spaces.runtime.sandbox import slug

        return sorted((self.data_dir / "local" / "logs").glob(f"{slug(space_id)}-*.log"))

    def app_host(self, repo_id: str, proxy: Role) -> str:
        return f"{kit.subdomain(repo_id)}.localhost:{proxy.port}"

    def app_get(self, repo_id: str, proxy: Role, path: str = "/", **headers: str) -> httpx.Response:
        return httpx.get(proxy.url + path, headers={"host": self.app_host(repo_id, proxy), **headers}, timeout=60)

    def logs_on_failure(self) -> str:
        return "\n".join(f"--- {r.name} ({r.roles}) ---\n{r.log()[-3000:]}" for r in self.roles.values())


LAYOUT = (("hub1", "hub"), ("hub2", "hub"), ("proxy1", "proxy"), ("proxy2", "proxy"), ("builder1", "builder"),
          ("builder2", "builder"), ("ctl1", "controller"), ("ctl2", "controller"))



def space_id(cluster: Cluster, owner, repo_id: str) -> str:  # noqa: ANN001
    r = httpx.get(f"{cluster['hub2'].url}/api/spaces/{repo_id}", headers={"authorization": f"Bearer {owner.token}"})
    r.raise_for_status()
    return r.json()["_id"]


def git(*args: str, cwd: Path | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "o", "GIT_AUTHOR_EMAIL": "o@x",
           "GIT_COMMITTER_NAME": "o", "GIT_COMMITTER_EMAIL": "o@x"}
    res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    assert not check or res.returncode == 0, f"git {' '.join(args)}: {res.stderr}"
    return res


def remote(hub: Role, owner, repo_id: str) -> str:  # noqa: ANN001
    return f"http://olga:{owner.token}@127.0.0.1:{hub.port}/spaces/{repo_id}"


def repo_dir(cluster: Cluster, sid: str) -> Path:
    return cluster.data_dir / "repos" / f"{sid}.git"


