"""Async code reaches the database only through the store's door (Database.run and the
*_async methods, which run in threads): never a transaction on the event loop."""

from __future__ import annotations

import ast
from pathlib import Path

import voxbatch

ROOT = Path(voxbatch.__file__).parent
DIRECT = {"write", "read"}  # Database's synchronous transactions


def _direct_transactions(fn: ast.AsyncFunctionDef) -> list[int]:
    """Lines in `fn`'s own body (not its nested functions) that open a transaction."""
    found: list[int] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue  # a nested sync function is what the door runs in a thread
            if isinstance(child, ast.With | ast.AsyncWith):
                for item in child.items:
                    call = item.context_expr
                    if (
                        isinstance(call, ast.Call)
                        and isinstance(call.func, ast.Attribute)
                        and call.func.attr in DIRECT
                        and "db" in ast.unparse(call.func.value)
                    ):
                        found.append(child.lineno)
            visit(child)

    visit(fn)
    return found


def test_no_async_function_opens_a_transaction_on_the_event_loop() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if "emulator" in path.parts:
            continue  # the emulator has no database
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.AsyncFunctionDef):
                offenders += [
                    f"{path.relative_to(ROOT)}:{line} ({node.name})"
                    for line in _direct_transactions(node)
                ]
    assert offenders == []
