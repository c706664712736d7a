"""Docker Spaces beside the local backend's Python Spaces (issue 24, item 5): ``PerSdkBackend`` routes a start by
the Space's SDK and every other call by the backend named on the recorded handle, so the reconciler (start, sleep,
wake, crash, adoption, a revision that changes SDK) treats each instance with the backend that made it. Fakes of
the two backends here; the real engine and the real local backend: tests/platform_docker/test_docker_on_default.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import DATABASES, migrated_databases

from spaces.builder.errors import BuildFailed
from spaces.builder.plan import Artifact
from spaces.db.models import Account, Space
from spaces.db.session import Database
from spaces.domain.stages import SpaceStage
from spaces.errors import BadRequest
from spaces.runtime.backends.docker import DockerEngine, EngineProbe, engine_problem
from spaces.runtime.backends.per_sdk import PerSdkBackend
from spaces.runtime.contracts import Handle, InstanceSpec, Limits, Observed, Phase, StartFailed
from spaces.runtime.reconciler import Reconciler, RouteUpdate
from spaces.services.logs import LogBus

A, B = "a" * 40, "b" * 40
PLACEMENT = {"node": "local", "flavor": "cpu-basic", "cpu": 0.25, "memory_mb": 512, "gpus": []}
_ports = itertools.count(7000)


class Fake:
    """A backend that only records; ``name`` is what its handles say (``local``, ``docker``)."""

    def __init__(self, name: str, standby_sdks: frozenset[str] = frozenset(), fail_list: bool = False) -> None:
        self.name, self.standby_sdks, self.fail_list = name, standby_sdks, fail_list
        self.phases: dict[str, Phase] = {}
        self.listening = True  # a started instance answers at once
        self.started: list[str] = []  # sdk of each start
        self.stopped: list[str] = []
        self.forgotten: list[str] = []
        self._refs = itertools.count(1)

    def start(self, spec: InstanceSpec) -> Handle:
        ref = f"{self.name}-{next(self._refs)}"
        self.phases[ref] = Phase.RUNNING if self.listening else Phase.STARTING
        self.started.append(spec.sdk)
        return Handle(self.name, ref, spec.node, {"port": next(_ports), "space_id": spec.space_id})

    def poll(self, handle: Handle) -> Observed:
        assert handle.backend == self.name, f"{self.name} asked about {handle}"
        phase = self.phases.get(handle.ref, Phase.GONE)
        return Observed(phase, ("127.0.0.1", handle.data["port"]) if phase != Phase.GONE else None)

    def stop(self, handle: Handle) -> None:
        assert handle.backend == self.name
        if self.phases.pop(handle.ref, None) is not None:
            self.stopped.append(handle.ref)

    def freeze(self, handle: Handle) -> None:
        assert handle.backend == self.name
        self.phases[handle.ref] = Phase.FROZEN

    def thaw(self, handle: Handle) -> None:
        assert handle.backend == self.name
        self.phases[handle.ref] = Phase.RUNNING

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        assert handle.backend == self.name
        return iter([f"{self.name} says hi"])

    def list(self, labels: dict[str, str]) -> list[Handle]:
        if self.fail_list:
            raise ConnectionError("engine down")
        return [Handle(self.name, ref, "local", {"port": 1}) for ref in self.phases]

    def forget(self, space_id: str) -> None:
        self.forgotten.append(space_id)


def spec(sdk: str, space_id: str = "s1", sha: str = A) -> InstanceSpec:
    kind = "image" if sdk == "docker" else "venv"
    return InstanceSpec(space_id=space_id, repo_id="u/x", sha=sha, sdk=sdk, artifact=Artifact(kind, "ref", "d", sha),
                        workdir="/w", app_file=None, port=7860, env={}, limits=Limits(0.25, 512))


def pair(**docker_kw) -> tuple[PerSdkBackend, Fake, Fake]:  # noqa: ANN003
    local, docker = Fake("local", frozenset({"streamlit"})), Fake("docker", **docker_kw)
    return PerSdkBackend(local, {"docker": docker}), local, docker


# ---- the composite alone --------------------------------------------------------------------------------------
def test_a_start_goes_to_the_backend_of_its_sdk_and_every_other_call_to_the_handles_backend() -> None:
    both, local, docker = pair()
    handles = {sdk: both.start(spec(sdk)) for sdk in ("gradio", "streamlit", "static", "docker")}
    assert local.started == ["gradio", "streamlit", "static"] and docker.started == ["docker"]
    assert {sdk: h.backend for sdk, h in handles.items()} == {
        "gradio": "local", "streamlit": "local", "static": "local", "docker": "docker"}
    box = handles["docker"]
    both.freeze(box)
    assert both.poll(box).phase == Phase.FROZEN and docker.phases[box.ref] == Phase.FROZEN
    both.thaw(box)
    assert both.poll(box).phase == Phase.RUNNING
    assert list(both.logs(box)) == ["docker says hi"]
    both.stop(box)
    assert docker.stopped == [box.ref] and local.stopped == []
    assert {h.ref for h in both.list({})} == {h.ref for sdk, h in handles.items() if sdk != "docker"}
    both.forget("s1")
    assert local.forgotten == docker.forgotten == ["s1"]


def test_standbys_only_for_sdks_whose_own_backend_can_run_one() -> None:
    both, _, _ = pair()
    assert both.standby_sdks == frozenset({"streamlit"}) and both.node == "local"
    # an operator who sends streamlit to the docker side gets no local standby for it
    local = Fake("local", frozenset({"streamlit"}))
    assert PerSdkBackend(local, {"streamlit": Fake("docker")}).standby_sdks == frozenset()


def test_an_engine_that_cannot_list_does_not_stop_the_control_plane_but_the_default_must_answer() -> None:
    both, local, _ = pair(fail_list=True)
    both.start(spec("gradio"))
    assert [h.backend for h in both.list({})] == ["local"]
    local.fail_list = True
    with pytest.raises(ConnectionError):
        both.list({})


def test_an_instance_of_a_backend_this_server_no_longer_runs_is_gone_to_it() -> None:
    both = PerSdkBackend(Fake("local"), {})
    orphan = Handle("docker", "abc", "local", {})
    assert both.poll(orphan).phase == Phase.GONE and list(both.logs(orphan)) == []
    both.stop(orphan)  # nothing to do it with: logged, not raised
    with pytest.raises(NotImplementedError):
        both.freeze(orphan)


def test_a_retired_backends_instances_are_listed_and_stopped_when_polled_and_its_sdk_refused() -> None:
    """Docker Spaces turned off after containers ran: no container is left running unmanaged."""
    docker = Fake("docker")
    box = docker.start(spec("docker"))
    both = PerSdkBackend(Fake("local"), {}, retired=[docker], refused={"docker": "Docker Spaces are turned off"})
    assert [h.ref for h in both.list({})] == [box.ref]  # a restarted controller sees it (adopts or stops it)
    assert both.poll(box).phase == Phase.GONE and docker.stopped == [box.ref]
    with pytest.raises(StartFailed, match="turned off"):
        both.start(spec("docker"))
    assert docker.started == ["docker"]  # the one before it was retired
    assert both.start(spec("gradio")).backend == "local"


# ---- the reconciler over it: each instance with its own backend ----------------------------------------------
class World:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.backend, self.local, self.docker = pair()
        self.routes: list[RouteUpdate] = []
        self.rec = Reconciler(db, self.backend, LogBus(db), start_instance=self._start,
                              publish_route=self.routes.append)
        with db.session() as s:
            owner = Account(name="u", key="u")
            s.add(owner)
            s.flush()
            self.ids = {}
            for sdk in ("gradio", "docker"):
                space = Space(owner_id=owner.id, name=sdk, repo_id=f"u/{sdk}", key=f"u/{sdk}", subdomain=f"u-{sdk}",
                              sdk=sdk, sha=A, stage=SpaceStage.APP_STARTING.value, artifact=self.artifact(sdk, A))
                s.add(space)
                s.flush()
                self.ids[sdk] = space.id
            s.commit()

    @staticmethod
    def artifact(sdk: str, sha: str) -> dict:
        return Artifact("image" if sdk == "docker" else "venv", "ref", "digest", sha).to_json()

    def _start(self, s, space: Space, artifact: Artifact) -> tuple[Handle, dict]:  # noqa: ANN001
        return self.backend.start(spec(space.sdk, space.id, artifact.sha)), dict(PLACEMENT)

    def step(self, which: str, **change: object) -> Space:
        """One reconcile of the Space first made with SDK ``which``, after ``change`` to its row."""
        if change:
            with self.db.session() as s:
                space = s.get(Space, self.ids[which])
                for k, v in change.items():
                    setattr(space, k, v)
                s.commit()
        self.rec.reconcile(self.ids[which])
        with self.db.session() as s:
            space = s.get(Space, self.ids[which])
            s.expunge(space)
            return space


db = pytest.fixture(params=DATABASES, name="db")(migrated_databases("spaces_per_sdk"))


@pytest.fixture
def world(db: Database) -> Iterator[World]:
    w = World(db)
    yield w
    w.rec.stop()


def current(space: Space) -> dict:
    return space.instance["current"]


def test_each_space_runs_sleeps_and_wakes_on_its_own_backend(world: World) -> None:
    for sdk in ("gradio", "docker"):
        world.step(sdk)
        assert world.step(sdk).stage == SpaceStage.RUNNING.value
    box, proc = current(world.step("docker")), current(world.step("gradio"))
    assert (box["backend"], proc["backend"]) == ("docker", "local")  # recorded on the instance
    assert world.local.started == ["gradio"] and world.docker.started == ["docker"]

    space = world.step("docker", asleep=True)
    assert world.docker.phases[box["ref"]] == Phase.FROZEN and space.stage == SpaceStage.SLEEPING.value
    assert world.local.phases[proc["ref"]] == Phase.RUNNING
    space = world.step("docker", asleep=False)
    assert world.docker.phases[box["ref"]] == Phase.RUNNING and space.stage == SpaceStage.RUNNING.value
    assert world.routes[-1].state == "running" and world.routes[-1].subdomain == "u-docker"


def test_a_crash_on_the_docker_side_restarts_it_there(world: World) -> None:
    world.step("docker")
    first = current(world.step("docker"))["ref"]
    world.docker.phases[first] = Phase.EXITED
    assert world.step("docker").instance is None and first in world.docker.stopped
    space = world.step("docker", retry_at=None)
    assert current(space)["backend"] == "docker" and current(space)["ref"] != first
    assert world.local.started == []


def test_a_push_that_turns_a_gradio_space_into_a_docker_one_swaps_backends_without_a_gap(world: World) -> None:
    world.step("gradio")
    old = current(world.step("gradio"))
    world.docker.listening = False
    space = world.step("gradio", sdk="docker", sha=B, artifact=world.artifact("docker", B))
    new = current(space)
    assert new["backend"] == "docker" and space.instance["previous"]["ref"] == old["ref"]
    assert world.local.phases[old["ref"]] == Phase.RUNNING and world.routes[-1].state == "running"  # still serves
    world.docker.phases[new["ref"]] = Phase.RUNNING
    space = world.step("gradio")  # the new one answers: the old process is stopped by the local backend
    assert space.instance["previous"] is None and world.local.stopped == [old["ref"]]


def test_adoption_keeps_both_kinds_and_stops_each_sides_orphans(world: World) -> None:
    for sdk in ("gradio", "docker"):
        world.step(sdk)
    orphans = [world.docker.start(spec("docker", "gone")), world.local.start(spec("gradio", "gone"))]
    world.rec.adopt()
    assert world.docker.stopped == [orphans[0].ref] and world.local.stopped == [orphans[1].ref]
    assert len(world.docker.phases) == len(world.local.phases) == 1


# ---- no engine: said before a Docker Space is made, and by a build ------------------------------------------
def test_a_missing_engine_is_said_in_one_sentence_and_an_answer_is_kept_a_while() -> None:
    why = engine_problem(DockerEngine(url="unix:///nonexistent/docker.sock"))
    assert why == "no Docker engine listens at unix:///nonexistent/docker.sock"
    calls = []
    probe = EngineProbe(DockerEngine(), ttl=60, check=lambda engine: calls.append(engine) or "down")
    assert probe.problem() == probe.problem() == "down" and len(calls) == 1


def test_the_space_service_refuses_an_sdk_the_server_cannot_run_and_makes_nothing(db: Database,
                                                                                   tmp_path: Path) -> None:
    from spaces.services.accounts import Principal
    from spaces.services.spaces import CreateRequest, SpaceHooks, SpaceService

    why = "Docker Spaces need a Docker engine and this server reaches none: no socket."
    service = SpaceService(tmp_path / "repos", hooks=SpaceHooks(sdk_unavailable=lambda: {"docker": why}))
    with db.session() as s:
        owner = Account(name="u", key="u")
        s.add(owner)
        s.flush()
        with pytest.raises(BadRequest, match="reaches none"):
            service.create(s, Principal(owner, "write"), CreateRequest("u", "box", "docker"))
        assert s.query(Space).count() == 0
        assert not list((tmp_path / "repos").rglob("HEAD"))  # no repository made either
        made = service.create(s, Principal(owner, "write"), CreateRequest("u", "ok", "gradio"))
        assert made.sdk == "gradio"
        assert service.sdk_unavailable() == {"docker": why}


def test_a_docker_build_without_an_engine_fails_saying_why(tmp_path: Path) -> None:
    from spaces.builder.plan import BuildPlan
    from spaces.platform import DockerSpaces, LocalArtifacts
    from spaces.settings import Settings

    settings = Settings(data_dir=tmp_path, docker={"engines": {"local": {"url": "unix:///nonexistent.sock"}}})
    builder = LocalArtifacts(settings, DockerSpaces(settings))
    plan = BuildPlan.__new__(BuildPlan)
    object.__setattr__(plan, "sdk", "docker")
    with pytest.raises(BuildFailed, match="no Docker engine listens at unix:///nonexistent.sock"):
        builder.build(plan, space_id="x", sha=A, context=tmp_path, variables={}, secrets={}, log=print,
                      factory=False)
    off = Settings(data_dir=tmp_path, runtime={"docker_spaces": False})
    with pytest.raises(BuildFailed, match="turned off"):
        LocalArtifacts(off, DockerSpaces(off)).build(plan, space_id="x", sha=A, context=tmp_path, variables={},
                                                     secrets={}, log=print, factory=False)
