"""One platform instance per data dir, and the host-wide names that belong to it alone.

Several platforms may run on one host (a staging next to production, two test servers). What the local backend
takes from the host is shared by everything on it: sandbox uids (file ownership, the firewall's owner match),
app ports, the cgroup root, the loopback guard's iptables chain. Two platforms with the same ones see and touch
each other's Spaces (same uid: same files; one chain: each start wipes the other's rules and one platform's holes
let the other's Spaces in). So each instance claims its own:

* its **id**: random, kept in ``{data_dir}/instance-id`` (a copied data dir is a clash, see below);
* a **registry** file for the host (:attr:`LocalBackendSettings.registry`, ``/var/lib/spaces-host/instances.json``
  by default: uids outlive a reboot, so it is not under /run), file-locked, one entry per instance with its uid
  block, port block and cgroup root. Settings an operator gave explicitly (``SPACES_LOCAL__UID_MIN`` ...) are kept;
  unset ones get the lowest block no live instance holds. An explicit range that overlaps a live instance's is
  refused at start-up with both data dirs named (:class:`InstanceClash`).
* the chain is named after the uid block's first uid (``netguard.chain_name``), unique because the blocks are.

An entry whose data dir is gone, or holds another id, is stale (that platform was removed) and is dropped; its
firewall rules and empty cgroups go with it (:func:`forget_stale`). The docker and kubernetes backends label what
they run with the id (``spaces.platform``), so a platform adopts, and stops as orphans, only its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from spaces.errors import InstanceClash

log = logging.getLogger(__name__)

ID_FILE = "instance-id"
#: uids handed out in blocks from here: above every login user (login.defs UID_MAX 60000) and nobody (65534),
#: below the subordinate uids of rootless containers (SUB_UID_MIN 100000), and apart from the 20000-29999 every
#: platform used before it had a claim (one not yet upgraded on the same host keeps using it)
UID_POOL = (70000, 99999)
_ID_RE = re.compile(r"^[a-z0-9]{4,16}$")


@dataclass(frozen=True)
class Claim:
    """The host-wide names of one platform instance."""

    id: str
    data_dir: str
    uid_min: int
    uid_max: int
    port_min: int
    port_max: int
    cgroup_root: str


def instance_id(data_dir: Path) -> str:
    """This data dir's instance id, made (random) on first use."""
    path = data_dir / ID_FILE
    try:
        value = path.read_text().strip()
        if _ID_RE.match(value):
            return value
        log.warning("%s holds no valid instance id (%r); making a new one", path, value[:40])
    except FileNotFoundError:
        pass
    value = secrets.token_hex(4)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{ID_FILE}.tmp")
    tmp.write_text(value + "\n")
    os.replace(tmp, path)
    return value


def _id_of(data_dir: str) -> str | None:
    try:
        return Path(data_dir, ID_FILE).read_text().strip()
    except OSError:
        return None


@contextlib.contextmanager
def _locked(registry: Path) -> Iterator[dict]:
    registry.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(registry.parent, 0o755)
    with open(registry.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            table = json.loads(registry.read_text()) if registry.exists() else {}
        except ValueError:
            log.warning("the instance registry %s is unreadable; starting it anew", registry)
            table = {}
        yield table
        tmp = registry.with_name(f".{registry.name}.tmp")
        tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
        os.replace(tmp, registry)


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _free_block(size: int, pool: tuple[int, int], taken: list[tuple[int, int]],
                near: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """The lowest block of ``size`` in ``pool`` that overlaps nothing ``taken`` (covering ``near`` if given)."""
    if near is not None:  # the uids a data dir handed out before it had a block: its block must keep them
        lo = pool[0] + (near[0] - pool[0]) // size * size
        hi = pool[0] + ((near[1] - pool[0]) // size + 1) * size - 1
        block = (lo, hi)
        return block if not any(_overlap(block, t) for t in taken) else None
    start = pool[0]
    while start + size - 1 <= pool[1]:
        block = (start, start + size - 1)
        clash = next((t for t in taken if _overlap(block, t)), None)
        if clash is None:
            return block
        start = max(start + size, pool[0] + ((clash[1] + 1 - pool[0] + size - 1) // size) * size)
    return None


def claim(data_dir: Path, registry: Path, *, uids: tuple[int, int] | None, ports: tuple[int, int] | None,
          cgroup_root: str | None, uid_block: int, port_block: int, port_pool: tuple[int, int],
          used_uids: tuple[int, int] | None = None, legacy_root: str | None = None) -> tuple[Claim, list[Claim]]:
    """Claim this instance's names in the host registry; return them and the stale entries that were dropped.

    ``uids``/``ports``/``cgroup_root``: what the operator set explicitly (kept, or refused when they clash), None
    for "give me a free one". ``used_uids``: the lowest and highest uid this data dir handed out already, which a
    newly allocated block must cover (a platform upgraded from before blocks keeps its Spaces' files).
    ``legacy_root``: the cgroup root its running instances were started under before it had a claim (kept when no
    other live instance holds it, so they can still be frozen and stopped)."""
    data_dir = data_dir.resolve()
    my_id = instance_id(data_dir)
    with _locked(registry) as table:
        stale = []
        for other_id, entry in list(table.items()):
            if other_id == my_id:
                continue
            gone = _id_of(entry.get("data_dir", "")) != other_id
            # a removed platform's Spaces may still run (nobody stopped them): their block stays theirs, guarded
            if gone and not _uids_in_use(entry["uid_min"], entry["uid_max"]):
                stale.append(Claim(**{k: entry[k] for k in Claim.__dataclass_fields__}))
                del table[other_id]
        mine = table.get(my_id)
        if mine is not None and mine.get("data_dir") != str(data_dir):
            if _id_of(mine["data_dir"]) == my_id:
                raise InstanceClash(
                    f"The data dir {data_dir} has the same instance id ({my_id}) as the platform at "
                    f"{mine['data_dir']}: it was copied. Delete {data_dir / ID_FILE} to make it a platform of its "
                    "own (it then gets its own uids, ports and cgroups).")
            mine = None
        others = [Claim(**{k: e[k] for k in Claim.__dataclass_fields__}) for i, e in table.items() if i != my_id]
        uid_range = _pick("uid", uids, mine and (mine["uid_min"], mine["uid_max"]),
                          [(o.uid_min, o.uid_max) for o in others], others, uid_block, UID_POOL, used_uids,
                          data_dir, "SPACES_LOCAL__UID_MIN/_MAX")
        port_range = _pick("port", ports, mine and (mine["port_min"], mine["port_max"]),
                           [(o.port_min, o.port_max) for o in others], others, port_block, port_pool, None,
                           data_dir, "SPACES_LOCAL__PORT_MIN/_MAX")
        if legacy_root and any(o.cgroup_root == legacy_root for o in others):
            legacy_root = None
        root = cgroup_root or (mine and mine["cgroup_root"]) or legacy_root or f"spaces-{my_id}"
        for o in others:
            if o.cgroup_root == root:
                raise InstanceClash(f"This platform (data dir {data_dir}) and the one at {o.data_dir} would both "
                                    f"use the cgroup root {root!r}: set SPACES_LOCAL__CGROUP_ROOT to another name "
                                    "or leave it unset to get one of its own.")
        result = Claim(my_id, str(data_dir), *uid_range, *port_range, root)
        table[my_id] = {**asdict(result), "pid": os.getpid(), "claimed_at": time.time()}
    return result, stale


def _pick(what: str, explicit: tuple[int, int] | None, previous: tuple[int, int] | None,
          taken: list[tuple[int, int]], others: list[Claim], size: int, pool: tuple[int, int],
          used: tuple[int, int] | None, data_dir: Path, setting: str) -> tuple[int, int]:
    wanted = explicit or previous
    if wanted is not None:
        for o, t in zip(others, taken):
            if _overlap(wanted, t):
                raise InstanceClash(
                    f"This platform's {what}s {wanted[0]}-{wanted[1]} (data dir {data_dir}) overlap the "
                    f"{what}s {t[0]}-{t[1]} of the platform at {o.data_dir}: two platforms on one host must not "
                    f"share them. Set {setting} apart, or leave them unset to get a free block.")
        return wanted
    block = _free_block(size, pool, taken, used)
    if block is None:
        held = ", ".join(f"{t[0]}-{t[1]} ({o.data_dir})" for o, t in zip(others, taken)) or "none"
        covering = f" covering the {what}s {used[0]}-{used[1]} it handed out already" if used else ""
        raise InstanceClash(f"No free block of {size} {what}s in {pool[0]}-{pool[1]}{covering} for the platform at "
                            f"{data_dir}; held by others: {held}. Set {setting} explicitly.")
    return block


def _uids_in_use(lo: int, hi: int, proc: Path = Path("/proc")) -> bool:
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if lo <= entry.stat().st_uid <= hi:
                    return True
            except OSError:
                continue
    return False


def claimed(data_dir: Path, registry: Path) -> Claim | None:
    """This data dir's entry in the registry, without claiming anything (None: it holds none)."""
    my_id, data_dir = _id_of(str(data_dir.resolve())), str(data_dir.resolve())
    try:
        entry = json.loads(registry.read_text()).get(my_id or "")
    except (OSError, ValueError, AttributeError):
        return None
    if not entry or entry.get("data_dir") != data_dir:
        return None
    return Claim(**{k: entry[k] for k in Claim.__dataclass_fields__})


def unclaim(data_dir: Path, registry: Path) -> bool:
    """Drop this data dir's entry (``spaces down``): its uids, ports and cgroup root are free for others; a later
    ``spaces serve`` of this data dir claims them again (the same ones while nobody took them). True if dropped."""
    my_id, data_dir = _id_of(str(data_dir.resolve())), str(data_dir.resolve())
    if my_id is None or not registry.exists():
        return False
    with _locked(registry) as table:
        entry = table.get(my_id)
        if entry is None or entry.get("data_dir") != data_dir:
            return False
        del table[my_id]
    return True


def release(stale: list[Claim]) -> None:
    """Take down what removed platforms left on the host: their loopback guard and their (empty) cgroups."""
    from spaces.runtime import netguard
    from spaces.runtime.cgroups import remove_root

    for c in stale:
        log.info("dropping the host-wide names of the platform that was at %s (uids %d-%d, cgroup %s)",
                 c.data_dir, c.uid_min, c.uid_max, c.cgroup_root)
        netguard.uninstall(c.uid_min, c.uid_max)
        remove_root(c.cgroup_root)


def claim_local(local, data_dir: Path):  # noqa: ANN001, ANN201 (LocalBackendSettings, imported late: no cycle)
    """The local backend's settings with this instance's own uids, ports and cgroup root (see the module doc);
    raises :class:`InstanceClash` when an explicit one is another live platform's."""
    given = local.model_fields_set
    state = local.dir("state") / "uids.json"
    running = any(local.dir("run").glob("instances/*.json"))  # started before this platform had a claim?
    try:  # every uid it handed out, freed ones too (those may still own files)
        used = [int(u) for v in json.loads(state.read_text()).values() for u in (v if isinstance(v, list) else [v])]
    except (OSError, ValueError, TypeError, AttributeError):
        used = []
    defaults = type(local).model_fields
    try:
        result, stale = _claim_local(local, data_dir, given, used, running, defaults)
    except OSError as e:  # not root (the local backend then refuses to start Spaces anyway): nothing to keep apart
        log.warning("could not claim this platform's uids, ports and cgroup root in %s (%s): using the settings "
                    "as given; another platform on this host may share them", local.registry, e)
        return local, Claim(instance_id(data_dir), str(data_dir), local.uid_min, local.uid_max, local.port_min,
                            local.port_max, local.cgroup_root)
    release(stale)
    return local.model_copy(update={"uid_min": result.uid_min, "uid_max": result.uid_max, "port_min": result.port_min,
                                    "port_max": result.port_max, "cgroup_root": result.cgroup_root}), result


def _claim_local(local, data_dir: Path, given: set, used: list[int], running: bool, defaults):  # noqa: ANN001, ANN202
    return claim(
        data_dir, local.registry,
        uids=(local.uid_min, local.uid_max) if {"uid_min", "uid_max"} & given else None,
        ports=(local.port_min, local.port_max) if {"port_min", "port_max"} & given else None,
        cgroup_root=local.cgroup_root if "cgroup_root" in given else None,
        uid_block=local.uid_block, port_block=local.port_block,
        port_pool=(defaults["port_min"].default, defaults["port_max"].default),
        used_uids=(min(used), max(used)) if used and not {"uid_min", "uid_max"} & given else None,
        legacy_root=defaults["cgroup_root"].default if running else None)
