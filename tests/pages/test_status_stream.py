"""``GET /api/spaces/{id}/status``: the live stage stream every page renders (spaces.domain.status), over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
from harness import Server, unique
from huggingface_hub import HfApi
from pagekit import add_log_lines
from statuskit import set_build, set_stage


def events(response: httpx.Response) -> Iterator[tuple[str, dict | None]]:
    kind, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


def test_the_stream_follows_a_build_and_says_gone(pages_server: Server) -> None:
    owner = unique("st")
    token = pages_server.token(owner)
    repo = f"{owner}/streamed"
    HfApi(endpoint=pages_server.url, token=token).create_repo(repo, repo_type="space", space_sdk="gradio")
    set_build(pages_server, repo, "queued", stage="BUILDING", reason="build_queued", message="Build is queued.",
              new=True)
    headers = {"authorization": f"Bearer {token}"}
    # without Accept: text/event-stream (what EventSource sends), the status now, as JSON: never a stream that a
    # script or a fuzzer waits on forever
    now = httpx.get(f"{pages_server.url}/api/spaces/{repo}/status", headers=headers, timeout=30)
    assert now.headers["content-type"].startswith("application/json")
    assert (now.json()["stage"], now.json()["step"]) == ("BUILDING", "queued")
    headers["accept"] = "text/event-stream"
    with httpx.stream("GET", f"{pages_server.url}/api/spaces/{repo}/status", headers=headers, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        seen = events(r)
        kind, st = next(seen)
        assert kind == "status" and (st["stage"], st["step"], st["busy"]) == ("BUILDING", "queued", True)

        set_build(pages_server, repo, "running", stage="BUILDING", reason="building", message="Building.")
        add_log_lines(pages_server, repo, "build", ["fetching   Checking out 1a2b3c4"])
        kind, st = next(seen)
        assert (st["step"], st["phase"]) == ("building", "fetching the code"), st
        add_log_lines(pages_server, repo, "build", ["installing + gradio==5.1"])
        kind, st = next(seen)
        assert (st["step"], st["phase"]) == ("building", "installing packages"), st

        set_build(pages_server, repo, "built", stage="APP_STARTING", reason="starting", message="Built; starting.")
        kind, st = next(seen)
        assert (st["stage"], st["step"], st["phase"], st["view"]) == ("APP_STARTING", "starting", None, "app")
        set_stage(pages_server, repo, "RUNNING", "The app is running.")
        kind, st = next(seen)
        assert (st["label"], st["step"], st["busy"]) == ("Running", "running", False)

        HfApi(endpoint=pages_server.url, token=token).delete_repo(repo, repo_type="space")
        kind, st = next(seen)
        assert (kind, st) == ("gone", None)
        assert next(seen, None) is None  # and the stream ends


def test_a_private_space_streams_to_its_owner_only(pages_server: Server) -> None:
    owner = unique("st")
    repo = f"{owner}/hidden"
    HfApi(endpoint=pages_server.url, token=pages_server.token(owner)).create_repo(
        repo, repo_type="space", space_sdk="gradio", private=True)
    other = {"authorization": f"Bearer {pages_server.token(unique('st'))}"}
    assert httpx.get(f"{pages_server.url}/api/spaces/{repo}/status", headers=other).status_code == 404
    assert httpx.get(f"{pages_server.url}/api/spaces/{repo}/status").status_code in (401, 404)


def test_the_list_stream_sends_each_visible_space_and_its_changes(pages_server: Server) -> None:
    owner, stranger = unique("st"), unique("st")
    mine, theirs = f"{owner}/listed", f"{stranger}/secret"
    HfApi(endpoint=pages_server.url, token=pages_server.token(owner)).create_repo(
        mine, repo_type="space", space_sdk="gradio")
    HfApi(endpoint=pages_server.url, token=pages_server.token(stranger)).create_repo(
        theirs, repo_type="space", space_sdk="gradio", private=True)
    set_stage(pages_server, mine, "SLEEPING", "")
    set_stage(pages_server, theirs, "RUNNING", "")
    headers = {"authorization": f"Bearer {pages_server.token(owner)}"}
    url = f"{pages_server.url}/api/status/spaces"
    now = httpx.get(url, params={"ids": f"{mine},{theirs},nobody/none"}, headers=headers, timeout=30).json()
    assert [(st["id"], st["label"]) for st in now] == [(mine, "Sleeping")]  # only mine, as JSON
    headers["accept"] = "text/event-stream"
    with httpx.stream("GET", url, params={"ids": f"{mine},{theirs},nobody/none"}, headers=headers, timeout=30) as r:
        assert r.status_code == 200
        seen = events(r)
        kind, st = next(seen)
        assert (kind, st["id"], st["label"], st["tone"]) == ("status", mine, "Sleeping", "idle")  # only mine
        set_stage(pages_server, mine, "RUNNING", "The app is running.")
        kind, st = next(seen)
        assert (st["id"], st["label"], st["tone"]) == (mine, "Running", "ok")
    too_many = ",".join(f"a/b{i}" for i in range(101))
    assert httpx.get(url, params={"ids": too_many}, headers=headers).status_code == 400
