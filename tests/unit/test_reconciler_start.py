"""A start that cannot read the artifact's revision: wait for the newer build, or say why the Space is broken.

Seen once in a full CI-like run: a Space whose previous build was still serving got a new commit, and the start
of the previous revision failed with "Invalid rev id"; the Space was marked RUNTIME_ERROR although the new
revision was already building, and gradio_client gave up on it. A revision the builder is about to replace is
not worth a broken Space: the reconciler logs it and waits for the build (whose end clears ``retry_at``).
"""

from __future__ import annotations

from spaces.builder.plan import Artifact
from spaces.db.models import Account, Space
from spaces.db.session import Database
from spaces.domain.stages import SpaceStage
from spaces.errors import RevisionNotFound
from spaces.runtime.reconciler import Reconciler
from spaces.services.logs import LogBus

OLD, NEW = "a" * 40, "b" * 40


def _space(db: Database, *, sha: str, stage: SpaceStage) -> str:
    with db.session() as s:
        owner = Account(name="u", key="u")
        s.add(owner)
        s.flush()
        space = Space(owner_id=owner.id, name="demo", repo_id="u/demo", key="u/demo", subdomain="u-demo",
                      sha=sha, stage=stage.value, artifact=Artifact("venv", "/envs/x", "digest", OLD).to_json())
        s.add(space)
        s.flush()
        return space.id


def _reconcile(db: Database, space_id: str) -> tuple[Space, list]:
    starts, routes = [], []

    def start_instance(s, space, artifact):  # noqa: ANN001, ANN202 - the platform's glue: export fails
        starts.append(artifact.sha)
        raise RevisionNotFound(artifact.sha)

    rec = Reconciler(db, backend=None, logs=LogBus(db), start_instance=start_instance,  # type: ignore[arg-type]
                     publish_route=routes.append)
    rec.reconcile(space_id)
    assert starts == [OLD]
    with db.session() as s:
        space = s.get(Space, space_id)
        s.expunge(space)
    return space, routes


def test_an_unreadable_old_revision_waits_for_the_newer_build(db: Database) -> None:
    space, routes = _reconcile(db, _space(db, sha=NEW, stage=SpaceStage.BUILDING))
    assert space.stage == SpaceStage.BUILDING.value
    assert space.retry_at is not None  # not retried at every sweep; the build's end clears it
    # the proxy keeps showing what it showed: the build (the start's attempt said so before it began)
    assert [(r.state, r.stage) for r in routes] == [("starting", SpaceStage.BUILDING.value)]


def test_an_unreadable_current_revision_is_a_runtime_error(db: Database) -> None:
    space, routes = _reconcile(db, _space(db, sha=OLD, stage=SpaceStage.APP_STARTING))
    assert space.stage == SpaceStage.RUNTIME_ERROR.value
    assert space.stage_reason == "start_failed"
    assert OLD in space.stage_message
    assert routes and routes[-1].state == "error"
