"""Dependencies point one way: every import of every module (inside functions and TYPE_CHECKING blocks too)
goes to its own package or to a layer below it, as ``spaces.layers`` lays them out."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spaces
from spaces.layers import LAYERS, layer_of, unit_of

ROOT = Path(spaces.__file__).parent
#: what the pure rules at the bottom must never need: a database, a web framework, an engine's SDK
DOMAIN_FORBIDDEN = ("sqlalchemy", "fastapi", "starlette", "docker", "kubernetes", "redis", "httpx", "uvicorn")


def module_name(path: Path) -> str:
    parts = ["spaces", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in ``source``, relative ones resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # ``from spaces import errors`` imports the module spaces.errors
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if base.startswith("spaces") and _exists(sub) else base))
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    here, unit = layer_of(module), unit_of(module)
    bad = []
    for line, target in imports(source, module, is_package):
        if target.split(".")[0] != "spaces":
            if unit == "domain" and target.split(".")[0] in DOMAIN_FORBIDDEN:
                bad.append(f"{module}:{line} imports {target}: the domain is pure")
            continue
        if unit_of(target) == unit:
            continue
        there = layer_of(target)
        if there >= here:
            what = "a layer above" if there > here else "another package of its own layer"
            bad.append(f"{module}:{line} imports {target}, {what} ({unit} is layer {here}, "
                       f"{unit_of(target)} is layer {there})")
    return bad


def all_modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def test_every_module_imports_only_its_own_package_or_layers_below() -> None:
    bad = []
    for path in all_modules():
        bad += violations(path.read_text(), module_name(path), path.name == "__init__.py")
    assert not bad, "imports that run back up the layers (see spaces/layers.py):\n" + "\n".join(bad)


def test_every_package_has_a_layer() -> None:
    units = {unit_of(module_name(p)) for p in all_modules()} - {""}
    placed = set().union(*LAYERS)
    assert units <= placed, f"place these in spaces.layers.LAYERS: {sorted(units - placed)}"


@pytest.mark.parametrize(("module", "source", "is_package", "flagged"), [
    ("spaces.runtime.reconciler", "from spaces.services.logs import LogBus", False, True),
    ("spaces.runtime.reconciler", "def f():\n    from spaces.services.spaces import SpaceService", False, True),
    ("spaces.services.wake", "from spaces.runtime.reconciler import Reconciler", False, False),
    ("spaces.domain.stages", "from spaces import db", False, True),
    ("spaces.domain.stages", "import sqlalchemy", False, True),
    ("spaces.hub.app", "from spaces.proxy.routes import Route", False, True),  # same layer, other package
    ("spaces.hub.api.spaces", "from ...services.logs import LogBus", False, False),
    ("spaces.runtime.backends", "from ..quota import Usage", True, False),
    ("spaces.runtime.backends", "from ...hub import app", True, True),
    ("spaces.settings", "from spaces.proxy.settings import ProxySettings", False, False),
    ("spaces.proxy.settings", "from spaces.proxy.server import ProxyServer", False, True),
])
def test_the_check_catches_an_import_that_runs_back_up(module: str, source: str, is_package: bool,
                                                      flagged: bool) -> None:
    assert bool(violations(source, module, is_package)) is flagged
