"""The starter templates as real Spaces: ``templates/gradio``, ``templates/streamlit``... on this hub.

``/api/spaces/templates`` and ``hf repos create --template`` name templates by repo id, as on the Hub, so those
repositories must exist: a visitor can open them, browse their files, clone or duplicate them. At start-up the
hub seeds one public Space per folder of ``templates/`` under the reserved namespace ``templates`` (an
organization nobody can sign up as; the server's admins may write to it). Seeding is idempotent:

* a missing template Space is created from its folder, **paused** (a starter is something to copy, not an app to
  keep running on every server: four builds at every start would cost a small machine its first minute; an admin
  may restart one to run it);
* an existing one whose tip was written by the seeder is brought up to the folder when the folder changed (a new
  server version); one an admin edited (the tip's author is someone else) is left as it is.

Creating a Space from a template copies the template *Space*'s files at its ``main`` (so an admin's edit reaches
new Spaces), its README retitled for the new Space.
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from spaces.db.models import Account, Space
from spaces.db.session import Database
from spaces.domain.stages import SpaceStage
from spaces.services.accounts import Principal, find_account
from spaces.services.spaces import CreateRequest, SpaceService
from spaces.storage.gitrepo import Addition


class Template(Protocol):
    """A starter of ``spaces.templates_catalog`` (its layer's sibling: the edges hand the catalog in)."""

    name: str
    title: str
    sdk: str

    @property
    def repo_id(self) -> str: ...

    def additions(self, title: str, files: dict[str, bytes] | None = None) -> list[Addition]: ...

log = logging.getLogger("spaces.templates")

NAMESPACE = "templates"
SEEDER = "templates"  # the organization itself writes the seeded commits: its name is the author


def _organization(s) -> Account:  # noqa: ANN001
    org = find_account(s, NAMESPACE)
    if org is None:  # the name is reserved for users, which is the point: only the platform may own it
        org = Account(name=NAMESPACE, key=NAMESPACE, type="org", fullname="Space templates")
        s.add(org)
        s.flush()
    return org


def seed(db: Database, spaces: SpaceService, templates: list[Template]) -> list[str]:
    """Create or update the template Spaces; returns the repo ids written. Never raises: a template that cannot
    be seeded is logged and the others go on (the server must start either way)."""
    # no hooks: seeding never queues a build (the Spaces stay paused) nor checks a quota
    quiet = SpaceService(spaces.repos_root, spaces.flavors)
    written = []
    for template in templates:
        try:
            with db.session() as s:
                if _seed_one(s, quiet, template):
                    written.append(template.repo_id)
        except IntegrityError:  # another hub replica seeded it at the same moment
            continue
        except Exception:  # noqa: BLE001 - a database or disk hiccup: the next start seeds it
            log.exception("seeding the template Space %s failed", template.repo_id)
    return written


def _seed_one(s, spaces: SpaceService, template: Template) -> bool:  # noqa: ANN001
    org = _organization(s)
    seeder = Principal(org, "write")
    files = {a.path: a.content for a in template.additions(template.title)}
    space = spaces.find(s, template.repo_id)
    if space is None:
        space = spaces.create(s, seeder, CreateRequest(namespace=NAMESPACE, name=template.name, sdk=template.sdk,
                                                       private=False))
    else:
        tip = spaces.repo(space).log("main", limit=1)
        if not tip or tip[0].author_name != SEEDER:
            return False  # an admin's edit: theirs wins
        if _tree(spaces, space) == files:
            return False
    current = _tree(spaces, space)
    spaces.commit(s, seeder, space, additions=[Addition(p, c) for p, c in files.items() if current.get(p) != c],
                  deletions=[p for p in current if p not in files and p != ".gitattributes"],
                  message=f"Seed the {template.name} template from this server's templates/ folder")
    space.paused = True
    SpaceService.set_stage(space, SpaceStage.PAUSED, "template",
                           "A starter template: create a Space from it (hf repos create NAME --type space "
                           f"--template {template.repo_id}) or duplicate it.")
    return True


def _tree(spaces: SpaceService, space: Space) -> dict[str, bytes]:
    repo = spaces.repo(space)
    return {e.path: repo.read_blob("main", e.path) for e in repo.list_tree("main", recursive=True)
            if e.type == "file" and e.path != ".gitattributes"}


def seeded(s) -> set[str]:  # noqa: ANN001
    """Repo ids of the template Spaces that exist (what the listing may name)."""
    return set(s.scalars(select(Space.repo_id).join(Account, Space.owner_id == Account.id)
                         .where(Account.key == NAMESPACE)))


def files_of(spaces: SpaceService, s, repo_id: str) -> dict[str, bytes] | None:  # noqa: ANN001
    """The files of the template Space ``repo_id`` at ``main`` (what a new Space starts from, so an admin's edit
    reaches new Spaces); None when this server has not seeded it."""
    space = spaces.find(s, repo_id)
    return None if space is None else _tree(spaces, space)
