"""The non-editable install ships every package: pyproject's list must name them all."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for pkg, folder in cfg["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((pkg, *rel)))
    assert found - listed == set(), f"add to pyproject [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed but missing: {sorted(listed - found)}"


# Distribution name -> import name, where they differ.
IMPORT_NAMES = {"pyyaml": "yaml"}


def test_every_third_party_import_is_a_declared_dependency():
    """`pip install .` alone must be enough to import every module (test extras are not there)."""
    import ast
    import re
    import sys

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = set()
    for req in cfg["project"]["dependencies"]:
        dist = re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower()
        declared.add(IMPORT_NAMES.get(dist, dist.replace("-", "_")))
    stdlib = set(sys.stdlib_module_names)
    missing = {}
    for folder in cfg["tool"]["setuptools"]["package-dir"].values():
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in stdlib and top != "rduflow" and top not in declared:
                        missing.setdefault(top, str(path.relative_to(ROOT)))
    assert not missing, f"imported but not in [project] dependencies: {missing}"
