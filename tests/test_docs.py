"""Documentation cannot drift: every file, test and function docs/design.md cites exists."""

from __future__ import annotations

import importlib
import re

from tests.conftest import REPO

DESIGN = (REPO / "docs" / "design.md").read_text()
SOURCE = "".join(p.read_text() for p in (REPO / "ccvault").rglob("*.py"))


def test_cited_files_and_tests_exist() -> None:
    cited = set(
        re.findall(r"`((?:tests|ccvault|bench|config|systemd)/[\w/.]+?\.\w+)(?:::(\w+))?`", DESIGN)
    )
    cited |= set(re.findall(r"(tests/[\w/]+\.py)(?:::(\w+))?", DESIGN))
    assert cited
    for path, test in cited:
        assert (REPO / path).exists(), f"docs/design.md cites missing {path}"
        if test:
            assert f"def {test}(" in (REPO / path).read_text(), f"missing {path}::{test}"


def test_cited_functions_exist() -> None:
    modules: dict[str, list[str]] = {}  # a stem may name modules in several packages
    for p in (REPO / "ccvault").rglob("*.py"):
        if p.stem not in ("__init__", "__main__"):
            modules.setdefault(p.stem, []).append(
                ".".join(p.relative_to(REPO).with_suffix("").parts)
            )
    classes = {}
    for names in modules.values():
        for name in names:
            module = importlib.import_module(name)
            classes.update({k: v for k, v in vars(module).items() if isinstance(v, type)})
    for owner, attr in re.findall(r"`(\w+)\.(\w+)`", DESIGN):
        if attr in ("py", "md", "sql", "toml", "json", "mp4") or f'"{owner}.{attr}"' in SOURCE:
            continue  # a file name (checked above) or a log event name
        if owner in modules:
            assert any(hasattr(importlib.import_module(m), attr) for m in modules[owner]), (
                f"{owner}.{attr}"
            )
        elif owner in classes:
            assert hasattr(classes[owner], attr), f"{owner}.{attr}"
