"""The layers of the package, bottom to top. A module imports only from its own package or from a layer below.

::

    0  errors                        the one error tree; imports nothing of ours
    1  domain, durable               pure rules and records: stages, README front matter, names, flavors;
                                     files written so that a crash does not take them back (fsync, rename)
    2  db, storage, bus, ops, xet,   persistence and process plumbing: SQLAlchemy rows, git, hints, health,
       malloc                        the Xet CAS (xorbs, shards, reconstructions), the C allocator's arenas
    3  builder, metrics              build packs, plans, environments and images; every metric (it reads the db)
    4  runtime                       scheduler, quota, flavors, nodes, backends, the reconciler, the sleeper
    5  services, templates_catalog,  accounts, Space lifecycle, builds, logs, wake, backup: the use cases;
       announce                      which server runs on this machine (for the CLI)
    6  settings                      one Settings; each subsystem's settings model may live in its own package
                                     (``spaces.hub.pages.config``, ``spaces.proxy.settings``) and counts here
    7  hub, proxy                    the edges: HTTP API, git, pages; the public front door
    8  platform                      the composition root: wires everything below and runs it
    9  cli                           the command line: builds a Platform, or a hub for one-off commands

Packages of one layer do not import each other (hub and proxy know nothing of one another). The runtime talks to
what is above it through ports it defines (``spaces.runtime.contracts``: ``Backend``, ``LogSink``) and callables
passed to constructors; the composition root passes the services' implementations in.
``tests/unit/test_layers.py`` reads every import (those inside functions too) and fails on one that runs back up.
"""

from __future__ import annotations

#: bottom to top; a name is a top-level module or package under ``spaces``
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors"}),
    frozenset({"domain", "durable"}),
    frozenset({"db", "storage", "bus", "ops", "xet", "malloc"}),
    frozenset({"builder", "metrics"}),
    frozenset({"runtime"}),
    frozenset({"services", "templates_catalog", "announce"}),
    frozenset({"settings"}),
    frozenset({"hub", "proxy"}),
    frozenset({"platform"}),
    frozenset({"cli", "layers"}),
)

#: modules whose layer is not their package's: settings models that ``spaces.settings`` nests
PLACED: dict[str, str] = {
    "spaces.hub.pages.config": "settings",
    "spaces.proxy.settings": "settings",
}


def unit_of(module: str) -> str:
    """The layer unit a dotted module name belongs to (``spaces.runtime.reconciler`` -> ``runtime``)."""
    for name, unit in PLACED.items():
        if module == name or module.startswith(name + "."):
            return unit
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of a module under ``spaces``; -1 for the package itself (``spaces/__init__``)."""
    unit = unit_of(module)
    for i, names in enumerate(LAYERS):
        if unit in names:
            return i
    if unit == "":
        return -1
    raise KeyError(f"{module}: its package {unit!r} is in no layer of spaces.layers.LAYERS")
