"""The front of the platform as separate processes, no Space running (so no controller, no firewall: it needs no
live lock): two hubs, two proxies and two builders on one PostgreSQL, one Redis and one data dir. A push through
hub 1 is built by a builder and read, with its build log, through hub 2; two pushes racing through the two hubs:
one wins, the other is told to pull; a hub killed -9 mid-push loses nothing acknowledged and the repository
passes ``git fsck``; a proxy sends hosts that are not apps to the hub upstream.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading

import httpx
import platform_kit as kit
from harness import wait_until
from scaleout_kit import git, remote, repo_dir, space_id

LAYOUT = (("hub1", "hub"), ("hub2", "hub"), ("proxy1", "proxy"), ("proxy2", "proxy"), ("builder1", "builder"),
          ("builder2", "builder"))


def test_a_push_through_one_hub_is_built_and_read_through_the_other(cluster, owner, tmp_path) -> None:  # noqa: ANN001
    repo_id = f"olga/site-{secrets.token_hex(3)}"
    owner.api1.create_repo(repo_id, repo_type="space", space_sdk="static")
    work = tmp_path / "w"
    git("clone", remote(cluster["hub1"], owner, repo_id), str(work))
    (work / "index.html").write_text("<p>pushed through hub 1</p>")
    git("add", ".", cwd=work)
    git("commit", "-m", "page", cwd=work)
    push = git("push", "origin", "main", cwd=work)
    assert "spaces: received" in push.stderr
    tip = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert owner.api2.space_info(repo_id).sha == tip  # at once: one database behind every hub
    kit.wait_for(lambda: "\nbuilt " in "\n" + kit.logs(owner.api2, repo_id, build=True), timeout=60,
                 what="a builder to build the pushed revision (log read through hub 2)")
    path = owner.api2.hf_hub_download(repo_id, "index.html", repo_type="space", local_dir=tmp_path / "dl")
    assert "pushed through hub 1" in open(path).read()
    # a proxy sends what is not an app to the hub upstream
    r = httpx.get(f"{cluster['proxy2'].url}/api/spaces/{repo_id}", headers={"authorization": f"Bearer {owner.token}"})
    assert r.status_code == 200 and r.json()["sha"] == tip
    owner.api2.delete_repo(repo_id, repo_type="space")


def test_every_front_role_is_alive_and_ready(cluster) -> None:  # noqa: ANN001
    for role in cluster.roles.values():
        assert role.probe("/healthz") == 200, role.name
        body = httpx.get(role.ops_url + "/readyz").json()
        assert body == {"ready": True, "checks": {"database": "ok", "redis": "ok"}}, (role.name, body)


def test_two_pushes_racing_through_two_hubs_one_wins_the_other_is_told_to_pull(cluster, owner, tmp_path) -> None:  # noqa: ANN001
    repo_id = f"olga/race-{secrets.token_hex(3)}"
    owner.api1.create_repo(repo_id, repo_type="space", space_sdk="static")
    sid = space_id(cluster, owner, repo_id)
    clones = []
    for i, hub in enumerate((cluster["hub1"], cluster["hub2"])):
        work = tmp_path / f"c{i}"
        git("clone", remote(hub, owner, repo_id), str(work))
        (work / f"file{i}.txt").write_bytes(os.urandom(2_000_000))  # a pack that takes a moment to receive
        git("add", ".", cwd=work)
        git("commit", "-m", f"from clone {i}", cwd=work)
        clones.append(work)
    results: dict[int, subprocess.CompletedProcess] = {}
    go = threading.Barrier(2)

    def push(i: int) -> None:
        go.wait()
        results[i] = git("push", "origin", "main", cwd=clones[i], check=False)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    won = [i for i, r in results.items() if r.returncode == 0]
    lost = [i for i, r in results.items() if r.returncode != 0]
    assert len(won) == 1 and len(lost) == 1, {i: r.stderr for i, r in results.items()}
    refused = results[lost[0]].stderr
    assert "pull" in refused, refused
    tip = git("rev-parse", "HEAD", cwd=clones[won[0]]).stdout.strip()
    assert git("ls-remote", remote(cluster["hub2"], owner, repo_id), "refs/heads/main").stdout.split()[0] == tip
    assert owner.api2.space_info(repo_id).sha == tip
    git("fsck", "--full", cwd=repo_dir(cluster, sid))
    # the loser pulls and pushes again: both commits are kept
    git("pull", "--no-rebase", "--no-edit", "origin", "main", cwd=clones[lost[0]])
    git("push", "origin", "main", cwd=clones[lost[0]])
    files = {f.rfilename for f in owner.api1.list_repo_tree(repo_id, repo_type="space")}
    assert {"file0.txt", "file1.txt"} <= files
    owner.api1.delete_repo(repo_id, repo_type="space")


def test_a_hub_killed_mid_push_loses_nothing_acknowledged(cluster, owner, tmp_path) -> None:  # noqa: ANN001
    repo_id = f"olga/kill-{secrets.token_hex(3)}"
    owner.api2.create_repo(repo_id, repo_type="space", space_sdk="static")
    sid = space_id(cluster, owner, repo_id)
    work = tmp_path / "w"
    hub1 = cluster["hub1"]
    git("clone", remote(hub1, owner, repo_id), str(work))
    (work / "index.html").write_text("<p>acknowledged</p>")
    git("add", ".", cwd=work)
    git("commit", "-m", "acknowledged", cwd=work)
    git("push", "origin", "main", cwd=work)
    acked = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    (work / "big.bin").write_bytes(os.urandom(60_000_000))
    git("add", ".", cwd=work)
    git("commit", "-m", "cut short", cwd=work)
    pushing = subprocess.Popen(["git", "push", "origin", "main"], cwd=work, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    quarantine = repo_dir(cluster, sid) / "objects"
    wait_until(lambda: list(quarantine.glob("*incoming-*")) or pushing.poll() is not None, timeout=60,
               interval=0.01, what="the push to reach receive-pack")
    hub1.kill9()
    _, err = pushing.communicate(timeout=60)
    tip = git("ls-remote", remote(cluster["hub2"], owner, repo_id), "refs/heads/main").stdout.split()[0]
    if pushing.returncode == 0:  # it was acknowledged before the kill: it must be there
        assert tip == git("rev-parse", "HEAD", cwd=work).stdout.strip()
    else:  # not acknowledged: the tip is what was, or the new one if git moved it before the kill
        assert tip in (acked, git("rev-parse", "HEAD", cwd=work).stdout.strip()), err
    git("fsck", "--full", cwd=repo_dir(cluster, sid))
    # hub 1 comes back (a supervisor restarts it): it brings the database up to git's tip
    hub1.start()
    hub1.wait_alive()
    wait_until(lambda: owner.api2.space_info(repo_id).sha == tip, timeout=90, what="the database at git's tip")
    assert acked in git("log", "--format=%H", tip, cwd=repo_dir(cluster, sid)).stdout
    owner.api2.delete_repo(repo_id, repo_type="space")
