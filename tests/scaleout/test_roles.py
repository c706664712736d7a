"""Two of each role as separate processes (see conftest), Spaces running: what one replica does, the others see;
one start per wake storm over two proxies; a Space deleted while the bus lost the message is stopped anyway; a
controller killed mid-flight is replaced within seconds and nothing running notices. The git side (pushes racing
through two hubs, a hub killed mid-push) is in test_front.py.
Run: ``flock -o /tmp/spaces-live.lock scripts/test tests/scaleout -x``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import textwrap
import time

import httpx
import platform_kit as kit
from harness import wait_until
from scaleout_kit import Cluster, space_id


def greeter(mark: str) -> dict[str, bytes]:
    return kit.space_files(**{"README.md": kit.readme("gradio"), "app.py": kit.app_source("greet.py", MARK=mark)})


def running_greeter(cluster: Cluster, owner, mark: str) -> tuple[str, str]:  # noqa: ANN001
    repo_id = f"olga/{mark}-{secrets.token_hex(3)}"
    kit.create_space(owner.api1, repo_id, greeter(mark))
    kit.wait_stage(owner.api2, repo_id, kit.RUNNING, timeout=300)
    return repo_id, space_id(cluster, owner, repo_id)


def test_a_push_through_one_hub_is_read_through_the_other_and_served_by_both_proxies(cluster, owner) -> None:  # noqa: ANN001
    repo_id, sid = running_greeter(cluster, owner, "both")
    info1 = owner.api1.space_info(repo_id)
    info2 = owner.api2.space_info(repo_id)
    assert info2.sha == info1.sha and info2.sha is not None
    build_log = kit.logs(owner.api2, repo_id, build=True)
    assert "\nbuilt " in "\n" + build_log, build_log[-2000:]
    # through either proxy (any load balancer in front of them): the same app
    for proxy in (cluster["proxy1"], cluster["proxy2"]):
        with httpx.Client(base_url=proxy.url, headers={"host": cluster.app_host(repo_id, proxy)}, timeout=60) as c:
            r = c.post("/gradio_api/call/predict", json={"data": ["x"]})
            assert r.status_code == 200, (proxy.name, r.text)
    # the real gradio_client, by Space id (the hub says where the app is: the apps domain, proxy 1) and by URL
    # on proxy 2
    sub = kit.subdomain(repo_id)
    script = textwrap.dedent("""
        import json, sys
        from gradio_client import Client
        src = sys.argv[1]
        print(json.dumps(Client(src, verbose=False, download_files=False).predict("g", api_name="/predict")))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_"))}
    env.update(HF_ENDPOINT=cluster["hub2"].url, HF_HUB_DISABLE_TELEMETRY="1", GRADIO_ANALYTICS_ENABLED="False",
               HF_HOME=os.environ.get("HF_HOME", "/var/tmp"))
    with kit.hosts_entries(f"{sub}.localhost"):
        for src in (repo_id, f"http://{sub}.localhost:{cluster['proxy2'].port}/"):
            res = subprocess.run([sys.executable, "-c", script, src], env=env, capture_output=True, text=True,
                                 timeout=180)
            assert res.returncode == 0, res.stderr[-3000:]
            assert json.loads(res.stdout.strip().splitlines()[-1]) == "both: Hello, g!"
    # hosts that are not apps go to the hub behind the proxy (SPACES_HUB_UPSTREAM)
    assert httpx.get(f"{cluster['proxy2'].url}/api/spaces/{repo_id}",
                     headers={"authorization": f"Bearer {owner.token}"}).json()["_id"] == sid
    owner.api2.delete_repo(repo_id, repo_type="space")
    # deleted through hub 2: the controller stops it; both proxies answer 404 at once
    for proxy in (cluster["proxy1"], cluster["proxy2"]):
        wait_until(lambda p=proxy: cluster.app_get(repo_id, p, "/config").status_code == 404, timeout=10,
                   what=f"{proxy.name} to forget the deleted Space")
    wait_until(lambda: not [s for s in cluster.instances() if s.get("space_id") == sid], timeout=30,
               what="the deleted Space's instance to stop")


def test_every_role_answers_health_and_only_the_leader_is_ready(cluster) -> None:  # noqa: ANN001
    for role in cluster.roles.values():
        assert role.probe("/healthz") == 200, role.name
    leader = cluster.leader()
    assert leader is not None
    standby = next(r for r in cluster.roles.values() if r.roles == "controller" and r is not leader)
    assert standby.probe("/readyz") == 503
    body = httpx.get(standby.ops_url + "/readyz").json()
    assert body["checks"] == {"database": "ok", "redis": "ok", "leader": "standby"}
    for name in ("hub1", "proxy2", "builder1"):
        assert cluster[name].probe("/readyz") == 200, name
    metrics = httpx.get(leader.ops_url + "/metrics").text
    assert "spaces_controller_leader 1.0" in metrics
    assert "spaces_controller_leader 0.0" in httpx.get(standby.ops_url + "/metrics").text


def test_activity_seen_by_one_proxy_reaches_the_controllers(cluster, owner) -> None:  # noqa: ANN001
    import redis

    repo_id, sid = running_greeter(cluster, owner, "act")
    r = redis.Redis.from_url(cluster.env["SPACES_REDIS_URL"], decode_responses=True)
    before = time.time()
    assert cluster.app_get(repo_id, cluster["proxy2"], "/config").status_code == 200
    wait_until(lambda: (r.zscore(f"{cluster.prefix}activity", sid) or 0) >= before - 1, timeout=10,
               what="proxy 2's stamp in Redis")
    owner.api1.delete_repo(repo_id, repo_type="space")


def test_a_wake_storm_over_both_proxies_starts_the_space_once(cluster, owner) -> None:  # noqa: ANN001
    repo_id, sid = running_greeter(cluster, owner, "storm")
    before = cluster.instance_of(sid)
    logs_before = cluster.instance_logs(sid)
    cluster.cli("sleep", repo_id, "--url", cluster["hub1"].url)
    kit.wait_stage(owner.api2, repo_id, "SLEEPING", timeout=30)
    wait_until(lambda: not [s for s in cluster.instances() if s.get("space_id") == sid], timeout=30,
               what="the sleeping Space's process to be stopped")

    async def storm() -> list[dict]:
        return await asyncio.gather(*(kit.storm(p.port, cluster.app_host(repo_id, p), 40)
                                      for p in (cluster["proxy1"], cluster["proxy2"])))

    statuses = asyncio.run(storm())
    assert statuses == [{200: 40}, {200: 40}], statuses
    after = cluster.instance_of(sid)
    assert after["pid"] != before["pid"]
    new_logs = [p for p in cluster.instance_logs(sid) if p not in logs_before]
    assert len(new_logs) == 1, f"expected exactly one start, got {len(new_logs)}: {new_logs}"
    owner.api1.delete_repo(repo_id, repo_type="space")


def test_a_space_deleted_while_its_message_is_lost_is_stopped_by_the_backstop(cluster, owner) -> None:  # noqa: ANN001
    """The bus is best effort: a Space row gone without a ``deleted`` message (here: removed in the database
    directly) still loses its instance and its route at the leader's next backstop sweeps."""
    import psycopg

    repo_id, sid = running_greeter(cluster, owner, "lost")
    url = cluster.env["SPACES_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("delete from spaces where id = %s", (sid,))
    wait_until(lambda: not [s for s in cluster.instances() if s.get("space_id") == sid], timeout=30,
               what="the backstop to stop the orphan")
    for proxy in (cluster["proxy1"], cluster["proxy2"]):
        wait_until(lambda p=proxy: cluster.app_get(repo_id, p, "/config").status_code == 404, timeout=10,
                   what=f"{proxy.name} to drop the orphan's route")


def test_the_leading_controller_killed_is_replaced_and_running_spaces_do_not_notice(cluster, owner) -> None:  # noqa: ANN001
    repo_id, sid = running_greeter(cluster, owner, "ctl")
    before = cluster.instance_of(sid)
    logs_before = cluster.instance_logs(sid)
    leader = cluster.leader()
    standby = next(r for r in cluster.roles.values() if r.roles == "controller" and r is not leader)
    leader.kill9()
    killed = time.monotonic()

    def leads() -> bool:
        try:
            return httpx.get(standby.ops_url + "/readyz", timeout=2).json()["checks"]["leader"] != "standby"
        except (httpx.HTTPError, ValueError, KeyError):
            return False
    wait_until(leads, timeout=15, interval=0.1, what="the standby to take the lead")
    took = time.monotonic() - killed
    # leading, it builds its backend and adopts what runs, then it is ready (acting)
    wait_until(lambda: standby.probe("/readyz") == 200, timeout=60, interval=0.1, what="the new leader to act")
    acting = time.monotonic() - killed
    print(f"failover: the standby led {took:.2f} s and acted {acting:.2f} s after the leader was killed")
    # the app was never touched: same process, still answering through both proxies
    for proxy in (cluster["proxy1"], cluster["proxy2"]):
        assert cluster.app_get(repo_id, proxy, "/config").status_code == 200
    time.sleep(3)  # a few sweeps of the new leader
    assert cluster.instance_of(sid)["pid"] == before["pid"]
    assert cluster.instance_logs(sid) == logs_before, "a Space was started again"
    assert kit.runtime(owner.api2, repo_id).stage == kit.RUNNING
    # the new leader acts: a change is reconciled (a restart starts one new instance)
    owner.api1.restart_space(repo_id)
    wait_until(lambda: len(cluster.instance_logs(sid)) == len(logs_before) + 1, timeout=60, what="the restart")
    kit.wait_stage(owner.api2, repo_id, kit.RUNNING, timeout=120)
    # the killed one comes back as the standby
    leader.start()
    leader.wait_alive()
    assert leader.probe("/readyz") == 503 and cluster.leader() is standby
    owner.api1.delete_repo(repo_id, repo_type="space")
