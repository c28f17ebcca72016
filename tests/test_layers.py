"""The layers, lowest first: ir < models < compiler (target/ inside) < simulator < inference.

A module imports only from its own layer and the ones below, at module level and inside
functions alike; and no module imports another module's private (underscored) names.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["ir", "models", "compiler", "simulator", "inference"]


@dataclass(frozen=True)
class Import:
    where: str  # file:line
    module: str  # the absolute module imported from
    names: tuple[str, ...]  # names taken from it (empty for ``import x``)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["rduflow", *parts])


def imports(path: Path, root: Path = ROOT) -> list[Import]:
    """Every import in ``path``, wherever it stands, with relative ones made absolute."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(where, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append(Import(where, module, tuple(a.name for a in node.names)))
    return found


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "rduflow" or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def upward_imports(root: Path = ROOT) -> list[str]:
    bad = []
    for folder in LAYERS:
        for path in sorted((root / folder).rglob("*.py")):
            own = LAYERS.index(folder)
            for imp in imports(path, root):
                target = layer_of(imp.module)
                if target is not None and target > own:
                    bad.append(f"{imp.where}: {folder} imports {imp.module} ({LAYERS[target]} is above it)")
    return bad


def private_imports(root: Path = ROOT) -> list[str]:
    bad = []
    for folder in LAYERS:
        for path in sorted((root / folder).rglob("*.py")):
            for imp in imports(path, root):
                if imp.module.startswith("rduflow."):
                    bad += [f"{imp.where}: imports {imp.module}.{n}" for n in imp.names
                            if n.startswith("_") and not n.startswith("__")]
    return bad


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports() == []


def test_no_module_imports_another_modules_private_names():
    assert private_imports() == []


def test_every_code_folder_is_a_layer():
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert folders == set(LAYERS)


@pytest.mark.parametrize("source, folder, expect", [
    ("from rduflow.inference import run\n", "compiler/backend", True),  # module level
    ("def f():\n    from rduflow.simulator import simulate\n", "compiler", True),  # inside a function
    ("from ..simulator import engine\n", "compiler", True),  # relative, climbing out of the layer
    ("import rduflow.models\n", "ir", True),
    ("from rduflow.ir import Module\n", "inference", False),  # downward: fine
    ("from . import sibling\n", "simulator/gpu", False),
])
def test_a_planted_upward_import_is_caught(tmp_path, source, folder, expect):
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    where = tmp_path / folder
    where.mkdir(parents=True, exist_ok=True)
    (where / "planted.py").write_text(source)
    assert bool(upward_imports(tmp_path)) is expect


def test_a_planted_private_import_is_caught(tmp_path):
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
    (tmp_path / "compiler" / "planted.py").write_text("from rduflow.compiler.backend.place import _cost\n")
    assert private_imports(tmp_path) == ["compiler/planted.py:1: imports rduflow.compiler.backend.place._cost"]
