"""The docker backend against the real engine: run, poll, stop, list / re-adopt, logs, freeze / thaw, isolation."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from docker_helpers import RUN_ID, TEST_LABEL, docker, get, make_spec, verify_template, wait_for

from spaces.builder.plan import Artifact
from spaces.runtime.backends.docker import DockerBackend, DockerBackendSettings, run_options
from spaces.runtime.contracts import LABEL_MANAGED, LABEL_SHA, LABEL_SPACE, Handle, Limits, Phase, StartFailed


# ---- pure: the container options, as a dict ------------------------------------------------------------------
def test_run_options_carry_labels_limits_gpus_and_a_loopback_port() -> None:
    artifact = Artifact(kind="image", ref="spaces/a-b:x", plan_digest="d", sha="f" * 40)
    spec = make_spec(artifact, port=7860, space_id="a/b", env={"CUDA_VISIBLE_DEVICES": "3", "X": "1"},
                     limits=Limits(cpu=0.5, memory_mb=512, gpus=(1, 3)))
    options = run_options(spec, DockerBackendSettings(), "spaces-apps")
    assert options["labels"] == {TEST_LABEL: RUN_ID, LABEL_MANAGED: "true", LABEL_SPACE: "a/b", LABEL_SHA: "f" * 40,
                                 "spaces.port": "7860"}
    assert options["nano_cpus"] == 500_000_000 and options["mem_limit"] == options["memswap_limit"] == "512m"
    assert options["ports"] == {"7860/tcp": ("127.0.0.1", None)}
    [request] = options["device_requests"]
    assert request["DeviceIDs"] == ["1", "3"] and request["Capabilities"] == [["gpu"]]
    assert "CUDA_VISIBLE_DEVICES" not in options["environment"] and options["environment"]["X"] == "1"
    assert options["network"] == "spaces-apps" and "no-new-privileges" in options["security_opt"]
    cpu_only = run_options(make_spec(artifact, port=7860), DockerBackendSettings(), "n")
    assert cpu_only["device_requests"] is None and "extra_hosts" not in cpu_only
    # host.docker.internal is the apps network's gateway, where the platform lets containers reach its hub
    assert run_options(spec, DockerBackendSettings(), "n", "172.18.0.1")["extra_hosts"] == {
        "host.docker.internal": "172.18.0.1"}
    assert run_options(spec, DockerBackendSettings(), "n", cgroup_parent="/spaces-x")["cgroup_parent"] == "/spaces-x"
    assert "cgroup_parent" not in cpu_only


@pytest.mark.parametrize("driver, parent", [("cgroupfs", "/spaces-x"), ("systemd", None)])
def test_containers_go_under_the_cgroup_parent_only_where_the_engine_takes_a_path(driver: str, parent) -> None:
    class Client:
        def info(self) -> dict:
            return {"CgroupDriver": driver}

    backend = DockerBackend(DockerBackendSettings(cgroup_parent="/spaces-x"))
    backend._clients["local"] = Client()
    assert backend._cgroup_parent("local") == parent
    assert DockerBackend(DockerBackendSettings())._cgroup_parent("local") is None


@pytest.mark.parametrize("url, bind, reach", [
    (None, "127.0.0.1", "127.0.0.1"),
    ("unix:///var/run/docker.sock", "127.0.0.1", "127.0.0.1"),
    ("tcp://10.0.0.7:2376", "0.0.0.0", "10.0.0.7"),
    ("ssh://ops@gpu-1.internal", "0.0.0.0", "gpu-1.internal"),
])
def test_engine_addresses(url: str | None, bind: str, reach: str) -> None:
    from spaces.runtime.backends.docker import DockerEngine

    engine = DockerEngine(url=url)
    assert (engine.bind_ip(), engine.reach_host()) == (bind, reach)


def test_unknown_node_is_a_clear_start_failure() -> None:
    with pytest.raises(StartFailed, match="No Docker engine is configured for node 'gpu-9'"):
        DockerBackend().client("gpu-9")


# ---- real engine ---------------------------------------------------------------------------------------------
def test_gradio_app_runs_and_answers(gradio_image, backend) -> None:
    artifact, _, _ = gradio_image
    handle = backend.start(make_spec(artifact, port=7860))
    seen = wait_for(backend, handle, {Phase.RUNNING, Phase.EXITED})
    assert seen.phase is Phase.RUNNING, seen.message
    assert seen.address == ("127.0.0.1", handle.data["port"])
    verify_template("gradio", seen.address)
    backend.stop(handle)
    assert backend.poll(handle).phase is Phase.GONE


def test_streamlit_app_runs_and_answers(build, backend) -> None:
    artifact, _, _ = build("streamlit", space_id=f"test/streamlit-{RUN_ID}")
    handle = backend.start(make_spec(artifact, port=8501))
    try:
        seen = wait_for(backend, handle, {Phase.RUNNING, Phase.EXITED})
        assert seen.phase is Phase.RUNNING, seen.message
        verify_template("streamlit", seen.address)
    finally:
        backend.stop(handle)


def test_limits_reach_the_container(docker_image, backend) -> None:
    artifact, _, _ = docker_image
    handle = backend.start(make_spec(artifact, port=7860, limits=Limits(cpu=0.25, memory_mb=256)))
    try:
        shape = docker("inspect", "--format", "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.Config.User}}",
                       handle.ref).stdout.split()
        assert shape[:2] == ["250000000", str(256 * 2**20)]
    finally:
        backend.stop(handle)


def test_volumes_are_mounted_read_only_or_read_write(docker_image, backend, tmp_path) -> None:
    """A bucket (read-write, given to the Docker Spaces uid 1000) and a repository snapshot (read-only)."""
    import dataclasses
    import os

    from spaces.runtime.contracts import Mount

    artifact, _, _ = docker_image
    bucket, snapshot = tmp_path / "bucket", tmp_path / "snapshot"
    bucket.mkdir()
    snapshot.mkdir()
    (snapshot / "weights.txt").write_text("w=42")
    spec = dataclasses.replace(make_spec(artifact, port=7860),
                               mounts=(Mount(str(bucket), "/data", False), Mount(str(snapshot), "/models", True)))
    handle = backend.start(spec)
    try:
        wrote = docker("exec", handle.ref, "sh", "-c", "echo kept > /data/f && cat /models/weights.txt")
        assert wrote.stdout.strip() == "w=42"
        assert (bucket / "f").read_text() == "kept\n" and os.stat(bucket / "f").st_uid == 1000
        refused = docker("exec", handle.ref, "sh", "-c", "echo x > /models/new", check=False)
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    finally:
        backend.stop(handle)


def test_poll_is_starting_until_the_app_answers(docker_image, backend) -> None:
    artifact, _, _ = docker_image
    # the app listens on 7860 but we publish 7861: docker-proxy accepts on the host port, nothing answers behind it
    handle = backend.start(make_spec(artifact, port=7861))
    try:
        assert wait_for(backend, handle, {Phase.STARTING}, timeout=20).phase is Phase.STARTING
        time.sleep(1.0)
        seen = backend.poll(handle)
        assert seen.phase is Phase.STARTING and seen.address is not None  # port published, nothing answers
    finally:
        backend.stop(handle)


def test_crash_is_exited_with_the_log_tail(docker_image, backend) -> None:
    artifact, _, _ = docker_image
    handle = backend.start(make_spec(artifact, port=7860, env={"PORT": "not-a-port"}))
    seen = wait_for(backend, handle, {Phase.EXITED}, timeout=60)
    assert seen.phase is Phase.EXITED and seen.exit_code == 1
    assert "ValueError" in seen.message and "not-a-port" in seen.message
    backend.stop(handle)
    backend.stop(handle)  # already gone is success
    assert backend.poll(handle).phase is Phase.GONE


def test_stop_and_poll_of_unknown_containers(backend) -> None:
    ghost = Handle(backend="docker", ref="0" * 64, node="local")
    backend.stop(ghost)
    assert backend.poll(ghost).phase is Phase.GONE


def test_list_re_adopts_by_label_after_a_restart(docker_image, backend) -> None:
    artifact, _, _ = docker_image
    space_id = f"test/adopt-{uuid.uuid4().hex[:6]}"
    handle = backend.start(make_spec(artifact, port=7860, space_id=space_id))
    try:
        assert wait_for(backend, handle, {Phase.RUNNING}).phase is Phase.RUNNING
        fresh = DockerBackend()  # a control plane that just restarted: nothing in memory
        [adopted] = fresh.list({LABEL_SPACE: space_id})
        assert adopted.ref == handle.ref and adopted.data["port"] == handle.data["port"]
        assert adopted.data["sha"] == artifact.sha
        seen = fresh.poll(adopted)
        assert seen.phase is Phase.RUNNING and get(seen.address).status_code == 200
        assert fresh.list({LABEL_SPACE: "test/nobody-" + RUN_ID}) == []
        assert handle.ref in {h.ref for h in fresh.list({TEST_LABEL: RUN_ID})}
    finally:
        backend.stop(handle)


def test_logs_return_the_apps_output(docker_image, backend) -> None:
    artifact, _, _ = docker_image
    handle = backend.start(make_spec(artifact, port=7860))
    try:
        seen = wait_for(backend, handle, {Phase.RUNNING})
        get(seen.address, "/logged-path")
        deadline = time.monotonic() + 10
        while not any("/logged-path" in line for line in backend.logs(handle)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any('"GET /logged-path HTTP/1.1" 200' in line for line in backend.logs(handle))
        follow = backend.logs(handle, follow=True)
        assert "/logged-path" in next(line for line in follow if "/logged-path" in line)
        follow.close()
    finally:
        backend.stop(handle)


def test_freeze_and_thaw(docker_image, backend) -> None:
    artifact, _, _ = docker_image
    handle = backend.start(make_spec(artifact, port=7860))
    try:
        address = wait_for(backend, handle, {Phase.RUNNING}).address
        backend.freeze(handle)
        backend.freeze(handle)  # idempotent
        assert backend.poll(handle).phase is Phase.FROZEN
        with pytest.raises(httpx.TimeoutException):
            get(address, timeout=1)
        backend.thaw(handle)
        backend.thaw(handle)
        assert wait_for(backend, handle, {Phase.RUNNING}, timeout=20).phase is Phase.RUNNING
        assert get(address).status_code == 200
    finally:
        backend.stop(handle)


def test_frozen_app_can_be_stopped(docker_image, backend) -> None:
    artifact, _, _ = docker_image
    handle = backend.start(make_spec(artifact, port=7860))
    wait_for(backend, handle, {Phase.RUNNING})
    backend.freeze(handle)
    backend.stop(handle)
    assert backend.poll(handle).phase is Phase.GONE


def test_a_space_cannot_reach_another_spaces_container(docker_image, backend) -> None:
    artifact, _, _ = docker_image
    a = backend.start(make_spec(artifact, port=7860))
    b = backend.start(make_spec(artifact, port=7860))
    try:
        wait_for(backend, a, {Phase.RUNNING})
        wait_for(backend, b, {Phase.RUNNING})
        ip = docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", a.ref).stdout.strip()
        probe = ("import socket,sys\ns=socket.socket();s.settimeout(3)\n"
                 f"sys.exit(s.connect_ex(('{ip}',7860)))")
        # positive control: the host reaches the app on its bridge address
        assert httpx.get(f"http://{ip}:7860/", timeout=5).status_code == 200
        blocked = docker("exec", b.ref, "python", "-c", probe, check=False)
        assert blocked.returncode != 0, "another Space's container was reachable"
    finally:
        backend.stop(a)
        backend.stop(b)


def test_the_answer_probe_is_for_start_up_only(gradio_image, backend) -> None:
    """Once a run of the container answered, polls (every sweep, and after an unpause) trust the running
    container; a restart of the container is a new start and is probed again."""
    artifact, _, _ = gradio_image
    handle = backend.start(make_spec(artifact, port=7860))
    probes: list[tuple[str, int]] = []
    real = backend._answers
    try:
        assert wait_for(backend, handle, {Phase.RUNNING, Phase.EXITED}).phase is Phase.RUNNING
        backend._answers = lambda address: probes.append(address) or False  # would say "not answering"
        assert backend.poll(handle).phase is Phase.RUNNING and probes == []
        backend.freeze(handle)
        assert backend.poll(handle).phase is Phase.FROZEN
        backend.thaw(handle)
        assert backend.poll(handle).phase is Phase.RUNNING and probes == []
        docker("restart", "-t", "1", handle.ref)
        assert backend.poll(handle).phase is Phase.STARTING and len(probes) == 1  # a new run: probed again
        backend._answers = real
        assert wait_for(backend, handle, {Phase.RUNNING}).phase is Phase.RUNNING
    finally:
        backend._answers = real
        backend.stop(handle)
