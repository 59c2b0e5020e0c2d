"""House style: one concern per module, each small enough to read in one sitting; tests share
helpers through tests/helpers, never by importing each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "voxbatch"
MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 300


def test_no_module_or_class_outgrows_the_house_limits() -> None:
    too_big: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        name = str(path.relative_to(PACKAGE.parent))
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    too_big.append(f"{name}: class {node.name} {lines} lines")
    assert too_big == [], "split by concern, not by squeezing lines"


def test_no_test_module_imports_another() -> None:
    tiers = ("tests.unit", "tests.integration", "tests.system")
    found: list[str] = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith(tiers)]
    assert found == [], "move what tests share to tests/helpers"
