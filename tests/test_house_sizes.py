"""Modules stay small (DESIGN §1): at most 400 lines a module and 60 lines a function in fleet_sdk/.

A function's size is its own span, from `def` to its last line; a nested function counts inside its
parent and on its own too. Decorators are not counted."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fleet_sdk"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def function_spans(tree: ast.Module) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function and method, nested ones included."""
    spans: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                assert child.end_lineno is not None
                spans.append((prefix + child.name, child.end_lineno - child.lineno + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return spans


def test_the_spans_count_each_function_from_def_to_its_end() -> None:
    source = "@decorator\ndef outer():\n    x = 1\n\n    def inner():\n        return x\n\n    return inner\n"
    source += "class C:\n    async def method(self):\n        pass\n"
    assert function_spans(ast.parse(source)) == [("outer", 7), ("outer.inner", 2), ("C.method", 2)]


def test_no_module_is_over_400_lines() -> None:
    over = [f"{name(p)}: {n}" for p in modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not over, "modules over 400 lines:\n" + "\n".join(over)


def test_no_function_is_over_60_lines() -> None:
    over = [
        f"{name(p)}:{function}: {n}"
        for p in modules()
        for function, n in function_spans(ast.parse(p.read_text()))
        if n > MAX_FUNCTION_LINES
    ]
    assert not over, "functions over 60 lines:\n" + "\n".join(over)
