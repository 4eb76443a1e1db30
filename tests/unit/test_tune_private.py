"""The tuner trains through the embedder's public training surface: no module under engine/tune/ reads a private
member (`._x`) of an object from another module, nor imports a private name from one.

An AST scan: a private attribute is allowed only on `self`/`cls`, or when the module itself defines that name (its
own private classes and helpers). Everything else crossing a module goes through documented methods.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUNE = ROOT / "engine" / "tune"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def own_names(tree: ast.Module) -> set[str]:
    """Private names the module defines: functions, classes, assigned names, attributes it sets on self."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            out.add(node.attr)
    return {n for n in out if _private(n)}


def breaches(path: Path, text: str | None = None) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text, str(path))
    mine = own_names(tree)
    where = path.relative_to(ROOT)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in mine:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                out.append((node.lineno, f"{where}:{node.lineno}: private member .{node.attr}"))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _private(alias.name):
                    out.append((node.lineno, f"{where}:{node.lineno}: imports {alias.name} from "
                                              f"{'.' * node.level}{node.module or ''}"))
    return [b for _, b in sorted(out)]


def test_the_tuner_reads_no_private_member_of_another_module() -> None:
    paths = sorted(TUNE.rglob("*.py"))
    assert paths
    found = [b for p in paths for b in breaches(p)]
    assert not found, "\n".join(found)


def test_the_scan_sees_each_kind_of_breach() -> None:
    code = ("from ..embed.transformer import _pool\n"
            "class _Local:\n    def __init__(self):\n        self._n = 1\n"
            "def _helper(u):\n    return u._n\n"
            "x = enc.emb._model\nenc.emb._dense = []\ny = self._ok\nz = _Local()._n\nw = obj.__class__\n")
    found = breaches(TUNE / "sample.py", code)
    assert [b.split(": ", 1)[1] for b in found] == [
        "imports _pool from ..embed.transformer", "private member ._model", "private member ._dense"], found
