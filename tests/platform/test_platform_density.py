"""Room for many Spaces, for real (``spaces serve``, local backend, real Gradio apps and static sites).

* ``roomy`` runs the defaults: 30 Gradio Spaces put to sleep and 100 static Spaces hold no capacity (the admin
  API's node report and ``spaces nodes`` agree), any one of them answers a visit, and a woken Gradio Space holds
  exactly cpu-basic's request again. The memory the frozen Spaces keep is measured (their cgroups) and printed.
  There too, Gradio Spaces nobody visits are frozen by the platform's own sleeper, each once its sleep time passed
  (how 200 fit on two cores: an idle awake Gradio app keeps using a few percent of a core, a frozen one none); a
  random one answers a visit while the others stay frozen.
* ``tight`` holds two awake cpu-basic Spaces (a 0.75-core request, no overcommit): a third waits and says so on
  the proxy's waiting page and in its runtime ("Waiting for cpu-basic capacity: next in line ..."), never "waking
  up"; a sleeping Space gives its room to it; waking the sleeper then finds no room, and it waits saying so.

Run it under the live lock: ``flock -o /tmp/spaces-live.lock scripts/test tests/platform/test_platform_density.py``.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from test_platform_restart import Who

import platform_kit as kit
from spaces.runtime.cgroups import Cgroups

GRADIO, STATIC = 30, 100
IDLE = 4  # Gradio Spaces left idle until the sleeper freezes them


@pytest.fixture(scope="module")
def roomy(platform_base: Path, platform) -> Iterator[kit.Platform]:  # noqa: ANN001
    # ``platform`` first: the session's gradio environment exists (or is built there) before this one starts
    with kit.running_platform(platform_base, f"roomy-{secrets.token_hex(3)}", envs_dir=platform_base / "envs",
                              extra_env={"SPACES_RUNTIME__MIN_AVAILABLE_MEMORY": "0",
                                         # the sleeper looks every second: a Space sleeps right at its sleep time
                                         "SPACES_RUNTIME__SLEEP_SWEEP_SECONDS": "1"}) as p:
        yield p


@pytest.fixture(scope="module")
def tight(platform_base: Path, platform) -> Iterator[kit.Platform]:  # noqa: ANN001
    with kit.running_platform(platform_base, f"tight-{secrets.token_hex(3)}", envs_dir=platform_base / "envs",
                              extra_env={"SPACES_SCHEDULER__CPU_OVERCOMMIT": "1",
                                         "SPACES_NODES__RESERVED_CPU": "0.5",
                                         "SPACES_FLAVORS__REQUESTS": '{"cpu-basic": {"cpu": 0.75}}'}) as p:
        yield p


def greeter(mark: str) -> dict[str, bytes]:
    return kit.space_files(**{"README.md": kit.readme("gradio"), "app.py": kit.app_source("greet.py", MARK=mark)})


def site(mark: str) -> dict[str, bytes]:
    return kit.space_files(**{"README.md": kit.readme("static"), "index.html": f"<h1>site {mark}</h1>"})


def report(platform: kit.Platform, admin: str) -> dict:
    with httpx.Client(base_url=platform.url, headers={"authorization": f"Bearer {admin}"}, timeout=30) as c:
        r = c.get("/api/admin/nodes")
        r.raise_for_status()
        return r.json()


def sleep(who: Who, repo_id: str) -> None:
    with who.http() as c:
        c.post(f"/api/spaces/{repo_id}/sleep").raise_for_status()


def create_all(who: Who, spaces: dict[str, tuple[dict[str, bytes], str]], wanted: str = kit.RUNNING) -> None:
    with ThreadPoolExecutor(4) as pool:  # the hub takes concurrent creates; the builder queues them
        list(pool.map(lambda item: kit.create_space(who.api, item[0], item[1][0], sdk=item[1][1]), spaces.items()))
    for repo_id in spaces:
        kit.wait_stage(who.api, repo_id, wanted, timeout=600)


@pytest.mark.timeout(1800)  # 130 Spaces built and started on two shared cores
def test_30_sleeping_gradio_and_100_static_spaces_hold_no_capacity_and_any_one_answers(roomy) -> None:  # noqa: ANN001
    roomy.server.user("root-roomy", admin=True)
    admin = roomy.server.token("root-roomy")
    rita = Who(roomy.server, "rita")
    apps = {f"rita/app{i}": (greeter(f"g{i}"), "gradio") for i in range(GRADIO)}
    sites = {f"rita/site{i}": (site(f"s{i}"), "static") for i in range(STATIC)}
    create_all(rita, {**apps, **sites})
    local = report(roomy, admin)["nodes"][0]
    assert local["used"]["spaces"] == GRADIO and local["used"]["static"] == STATIC
    assert local["used"]["cpu"] == pytest.approx(0.1 * GRADIO) and local["used"]["memoryMB"] == 96 * GRADIO

    for repo_id in apps:
        sleep(rita, repo_id)
    for repo_id in apps:
        kit.wait_stage(rita.api, repo_id, "SLEEPING", timeout=60)
    kit.wait_for(lambda: report(roomy, admin)["nodes"][0]["used"]["asleep"] == GRADIO, timeout=60,
                 what="every Gradio Space frozen")
    used = report(roomy, admin)["nodes"][0]["used"]
    assert used == {"cpu": 0, "memoryMB": 0, "spaces": 0, "asleep": GRADIO, "static": STATIC}
    groups = Cgroups(roomy.cgroup_root)
    frozen = [s for s in kit.instance_states(roomy) if s.get("sdk") == "gradio"]
    assert len(frozen) == GRADIO and all(groups.frozen(s["instance"]) for s in frozen)
    kept = sum(_cgroup_mib(groups, s["instance"]) for s in frozen)
    print(f"\n{GRADIO} frozen Gradio Spaces keep {kept:.0f} MiB in their cgroups ({kept / GRADIO:.1f} MiB each); "
          f"{STATIC} static Spaces keep no process")

    woken = random.choice(list(apps))
    mark = woken.removeprefix("rita/app")
    assert kit.gradio_call(roomy.server, woken, "predict", "you") == [f"g{mark}: Hello, you!"]
    page = kit.app_get(roomy.server, random.choice(list(sites)))
    assert page.status_code == 200 and page.text.startswith("<h1>site s")
    used = report(roomy, admin)["nodes"][0]["used"]
    assert used == {"cpu": pytest.approx(0.1), "memoryMB": 96, "spaces": 1, "asleep": GRADIO - 1, "static": STATIC}

    cli = json.loads(roomy.server.cli("nodes", "--json").stdout)  # the operator's view: the same report
    assert cli["nodes"][0]["used"] == used and cli["nodes"][0]["allocatable"]["cpuOvercommit"] == 16


@pytest.mark.timeout(600)
def test_idle_gradio_spaces_are_frozen_by_the_sleeper_and_a_random_one_answers_while_the_rest_stay_frozen(
        roomy) -> None:  # noqa: ANN001
    sam = Who(roomy.server, "sam")
    apps = [f"sam/idle{i}" for i in range(IDLE)]
    for i, repo_id in enumerate(apps):  # one after another, as Spaces arrive; nobody visits them
        kit.create_space(sam.api, repo_id, greeter(f"i{i}"), space_sleep_time=60)  # the shortest sleep time
    for repo_id in apps:
        kit.wait_for(lambda r=repo_id: kit.runtime(sam.api, r).stage == "SLEEPING", timeout=300,
                     what=f"{repo_id} put to sleep by the sleeper")
    groups = Cgroups(roomy.cgroup_root)
    ids = {repo_id: kit.space_id(sam, repo_id) for repo_id in apps}
    instance = {repo_id: kit.instance_of(roomy, sid)["instance"] for repo_id, sid in ids.items()}
    kit.wait_for(lambda: all(groups.frozen(i) for i in instance.values()), timeout=60, what="every idle one frozen")
    kept = sum(_cgroup_mib(groups, i) for i in instance.values())
    print(f"\n{IDLE} Gradio Spaces frozen by the sleeper keep {kept / IDLE:.1f} MiB each in their cgroups")

    woken = random.choice(apps)
    mark = woken.removeprefix("sam/idle")
    assert kit.gradio_call(roomy.server, woken, "predict", "you") == [f"i{mark}: Hello, you!"]
    assert not groups.frozen(instance[woken])
    kit.wait_for(lambda: kit.runtime(sam.api, woken).stage == kit.RUNNING, timeout=30, what=f"{woken} awake")
    for repo_id in set(apps) - {woken}:  # a visit wakes its Space only
        assert groups.frozen(instance[repo_id]), f"{repo_id} thawed by a visit to {woken}"
        assert kit.runtime(sam.api, repo_id).stage == "SLEEPING"


@pytest.mark.timeout(1200)
def test_a_space_waiting_for_room_says_so_and_a_sleeper_gives_its_room_back(tight) -> None:  # noqa: ANN001
    tina = Who(tight.server, "tina")
    create_all(tina, {f"tina/app{i}": (greeter(f"t{i}"), "gradio") for i in range(2)})
    kit.create_space(tina.api, "tina/third", greeter("t2"))
    waiting = kit.wait_for(lambda: _waiting(tina, "tina/third"), timeout=300, what="the third Space queued")
    assert waiting.startswith("Waiting for cpu-basic capacity: next in line"), waiting
    assert "pause one of your running Spaces" in waiting
    page = kit.app_get(tight.server, "tina/third", accept="text/html")
    assert "waiting for room on the server" in page.text and "waking up" not in page.text
    assert "next in line" in page.text

    sleep(tina, "tina/app0")  # its room goes to the Space waiting
    running_or_explain(tight, tina, "tina/third")
    assert kit.gradio_call(tight.server, "tina/third", "predict", "x") == ["t2: Hello, x!"]

    with kit.app_client(tight.server, "tina/app0", accept="text/html") as c:  # a visit wakes it: no room now
        c.get("/")
        message = kit.wait_for(lambda: _waiting(tina, "tina/app0"), timeout=60, what="the woken Space queued")
        assert message.startswith("Waiting for cpu-basic capacity: next in line"), message
        status = c.get("/__spaces/status").json()
    assert status["queued"] is True and status["headline"].startswith("This Space is waiting for room")
    sleep(tina, "tina/app1")
    running_or_explain(tight, tina, "tina/app0")
    assert kit.gradio_call(tight.server, "tina/app0", "predict", "y") == ["t0: Hello, y!"]


def running_or_explain(platform: kit.Platform, who: Who, repo_id: str) -> None:
    """Wait until the Space runs; else fail with the node report and the server's log (what held the room)."""
    try:
        kit.wait_stage(who.api, repo_id, kit.RUNNING, timeout=300)
    except AssertionError as exc:
        platform.server.user("root-explain", admin=True)
        nodes = report(platform, platform.server.token("root-explain"))
        raise AssertionError(f"{exc}\n--- nodes ---\n{json.dumps(nodes, indent=1)}\n--- server log ---\n"
                             f"{platform.server.log()[-6000:]}") from None


def _waiting(who: Who, repo_id: str) -> str | None:
    raw = kit.runtime(who.api, repo_id).raw
    message = raw.get("message") or ""
    return message if message.startswith("Waiting for") else None


def _cgroup_mib(groups: Cgroups, instance: str) -> float:
    for group in groups.groups(instance):
        for name in ("memory.current", "memory.usage_in_bytes"):
            try:
                return int((group / name).read_text()) / 2**20
            except (OSError, ValueError):
                continue
    return 0.0
