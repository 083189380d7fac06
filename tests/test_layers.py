"""The packages of ccvault import only downward, along the data flow (docs/design.md).

Each package may import itself and any package listed before it in LAYERS, never one after it;
imports under `if TYPE_CHECKING:` and inside functions count too, since they are dependencies
all the same. The checker is tried on a planted upward import, so it cannot pass vacuously.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "ccvault"

# Lowest first. Modules directly under ccvault/ (errors, timefmt, the version) are the base.
LAYERS: tuple[str, ...] = (
    "",  # ccvault/__init__.py, errors.py, timefmt.py, text.py
    "host",
    "config",
    "catalog",
    "storage",
    "recorder",
    "motion",
    "ingest",
    "access",
    "retention",
    "evidence",
    "views",
    "alerts",
    "api",
    "service",
    "cli",
)
TOP_LEVEL = {"ccvault", "ccvault.errors", "ccvault.timefmt", "ccvault.text", "ccvault.__main__"}


def layer_of(module: str) -> str:
    """The package a dotted module belongs to ("" for the base modules)."""
    if module in TOP_LEVEL:
        return ""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        raise AssertionError(f"{module}: not in a known package (add it to LAYERS)")
    return parts[1]


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, ccvault module) for every import in the file, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = module.rsplit(".", node.level)[0]
            found.append((node.lineno, f"{base}.{node.module}" if node.module else base))
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "ccvault":  # from ccvault import __version__
                found += [(node.lineno, "ccvault") for _ in node.names]
            elif node.module.startswith("ccvault."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("ccvault")]
    return found


def upward_imports(root: Path) -> list[str]:
    """Every import of a package listed later than the importer's own, as readable lines."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    problems = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        own = layer_of(module)
        for line, target in imported_modules(path, module):
            if module == "ccvault.__main__":
                continue  # the entry point may start the CLI
            theirs = layer_of(target)
            if rank[theirs] > rank[own]:
                problems.append(
                    f"{path.relative_to(root.parent)}:{line}: {own or 'base'} "
                    f"imports {target} ({theirs}, a higher layer)"
                )
    return problems


def test_no_package_imports_a_higher_one() -> None:
    assert upward_imports(ROOT) == []


def test_the_checker_finds_a_planted_upward_import(tmp_path: Path) -> None:
    pkg = tmp_path / "ccvault"
    for name in ("storage", "api"):
        (pkg / name).mkdir(parents=True)
        (pkg / name / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "api" / "routes.py").write_text("from ccvault.storage import volumes\n")
    (pkg / "storage" / "volumes.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from ccvault.api.routes import thing\n"
    )
    assert upward_imports(pkg) == [
        "ccvault/storage/volumes.py:3: storage imports ccvault.api.routes (api, a higher layer)"
    ]


def test_a_module_outside_the_known_packages_is_named(tmp_path: Path) -> None:
    pkg = tmp_path / "ccvault"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "util.py").write_text("")
    with pytest.raises(AssertionError, match=r"ccvault\.util: not in a known package"):
        upward_imports(pkg)
