"""Two builder processes sharing the build queue in PostgreSQL (see conftest: two of each role, Redis between them).

A builder killed with SIGKILL in the middle of a build: the other builder takes the build again (at its next
heartbeat: on one machine it sees that the process is gone; on another the lease runs out), says so in the build
log, builds it, and the Space runs. A client connected to hub 2
follows a build running in a builder process and sees its lines as they are printed, each once, to the end.

To hold a build in the middle, the test takes the file lock the local builder takes before it makes a new
environment (requirements.txt carries a fresh token, so no environment of those inputs exists yet): the build
waits there, after its first lines, until the test lets go. Run: ``flock -o /tmp/spaces-live.lock scripts/test
tests/scaleout/test_builders.py -x``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import platform_kit as kit
import sqlalchemy as sa
from harness import SHARED_ENVS_DIR, wait_until
from scaleout_kit import Cluster, Role, space_id


def slow_greeter(mark: str) -> dict[str, bytes]:
    return kit.space_files(**{"README.md": kit.readme("gradio"), "app.py": kit.app_source("greet.py", MARK=mark),
                              "requirements.txt": f"# {mark} {secrets.token_hex(8)}: an environment of its own\n"})


@contextlib.contextmanager
def held_environment(files: dict[str, bytes]) -> Iterator[None]:
    """Hold the lock a builder takes before making the environment these files need (see the docstring)."""
    from spaces.builder.detect import plan_checkout
    from spaces.builder.localconfig import LocalBuildSettings
    from spaces.builder.localenv import LocalEnvBuilder

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        plan = plan_checkout(Path(tmp))
    key = LocalEnvBuilder(LocalBuildSettings(envs_dir=SHARED_ENVS_DIR)).locate(plan).name
    fd = os.open(SHARED_ENVS_DIR / ".locks" / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def build_row(cluster: Cluster, sid: str) -> dict | None:
    """The Space's newest build, as the database has it."""
    engine = sa.create_engine(cluster.env["SPACES_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT id, status, worker, attempts FROM builds WHERE space_id = :s "
                                       "ORDER BY id DESC LIMIT 1"), {"s": sid}).mappings().first()
            return dict(row) if row else None
    finally:
        engine.dispose()


def builder_running(cluster: Cluster, worker: str) -> Role:
    """The builder process a worker id names (``host:pid:random``)."""
    pid = int(worker.rsplit(":", 3)[1])
    found = [r for r in cluster.roles.values() if r.roles == "builder" and r.proc is not None and r.proc.pid == pid]
    assert len(found) == 1, (worker, [(r.name, r.proc and r.proc.pid) for r in cluster.roles.values()])
    return found[0]


def build_log(api, repo_id: str) -> list[str]:  # noqa: ANN001
    return list(api.fetch_space_logs(repo_id, build=True, follow=False))


def test_a_builder_killed_mid_build_its_build_is_taken_again_and_the_space_runs(cluster, owner) -> None:  # noqa: ANN001
    repo_id = f"olga/killed-builder-{secrets.token_hex(3)}"
    files = slow_greeter("rebuilt")
    victim: Role | None = None
    try:
        with held_environment(files):
            kit.create_space(owner.api1, repo_id, files)
            sid = space_id(cluster, owner, repo_id)
            row = wait_until(lambda: (r := build_row(cluster, sid)) and r["status"] == "running" and r,
                             timeout=60, what="a builder to take the build")
            wait_until(lambda: any("Checking out" in line for line in build_log(owner.api2, repo_id)), timeout=60,
                       what="the build to start printing")
            victim = builder_running(cluster, row["worker"])
            victim.kill9()  # mid-build: it waits for the environment lock the test holds
        # the other builder takes it again and builds it to the end
        kit.wait_stage(owner.api2, repo_id, kit.RUNNING, timeout=300)
        done = build_row(cluster, sid)
        assert done["id"] == row["id"] and done["status"] == "built" and done["attempts"] == 2, done
        text = "".join(build_log(owner.api1, repo_id))
        # builders on one machine see that the process is gone; elsewhere its lease runs out (30 s) first
        assert f"({row['worker']}) is lost: its process is gone" in text and "(attempt 2)" in text, text
        assert cluster.app_get(repo_id, cluster["proxy2"]).status_code == 200
    finally:
        if victim is not None:  # the other tests of this module get both builders back
            victim.start()
            victim.wait_alive()


def test_a_client_on_hub2_follows_a_build_in_a_builder_process_live_to_the_end(cluster, owner) -> None:  # noqa: ANN001
    repo_id = f"olga/followed-{secrets.token_hex(3)}"
    files = slow_greeter("followed")
    seen: list[str] = []
    result: dict[str, object] = {}

    def follow() -> None:
        try:
            for line in owner.api2.fetch_space_logs(repo_id, build=True, follow=True):
                seen.append(line)
        except BaseException as exc:  # noqa: BLE001
            result["error"] = exc

    follower = threading.Thread(target=follow, daemon=True)
    with held_environment(files):
        kit.create_space(owner.api1, repo_id, files)
        sid = space_id(cluster, owner, repo_id)
        follower.start()
        wait_until(lambda: build_row(cluster, sid)["status"] == "running", timeout=60, what="a builder to take it")
        # the follower is connected (it has replayed what was printed) while the build waits in its builder
        wait_until(lambda: any("Checking out" in line for line in seen), timeout=60, what="the replay on hub 2")
        assert build_row(cluster, sid)["status"] == "running" and follower.is_alive()
        replayed = len(seen)
    # from here on every line is printed after the follower connected: it can only have come live, through Redis
    follower.join(300)
    assert not follower.is_alive(), "the followed build log did not end with the build"
    assert "error" not in result, result.get("error")
    assert seen[-1].startswith("built ") and "finished" in seen[-1], seen
    assert any(line.startswith("installing ") for line in seen[replayed:]), seen
    assert seen == build_log(owner.api1, repo_id)  # every stored line, once, in order, through the other hub
    assert build_row(cluster, sid)["status"] == "built"
