"""The engine is the only door: `engine` never imports `sg_lsp`; the server and the CLI use only the engine's
public API (the names engine/__init__.py exports, plus engine.text), never its store or a private member.

An AST scan of the source, so it runs in milliseconds and names the file and line of each breach. The layers and
the absence of import cycles are import-linter's contracts (pyproject.toml, run by .ci/run); this test holds what an
import graph cannot show: private members and the store reached through an attribute.
"""

from __future__ import annotations

import ast
from pathlib import Path


import engine

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_MODULES = {"engine", "engine.text"}  # importable by the server and the CLI
PUBLIC_NAMES = set(engine.__all__)
ALLOWED_PRIVATE = {ROOT / "sg_lsp" / "pygls_shim.py"}  # the one, tested, place that touches pygls internals


def sources(*parts: str) -> list[Path]:
    base = ROOT.joinpath(*parts)
    return [base] if base.is_file() else sorted(base.rglob("*.py"))


def absolute(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against the file's package)."""
    if not node.level:
        return node.module or ""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def client_breaches(path: Path, text: str | None = None) -> list[str]:
    """What a client of the engine (the server, the CLI) must not do, sorted by line."""
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text, str(path))
    out = []
    where = path.relative_to(ROOT)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("engine.") and alias.name not in PUBLIC_MODULES:
                    out.append(f"{where}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = absolute(node, path)
            if module == "engine":
                for alias in node.names:
                    if alias.name not in PUBLIC_NAMES:
                        out.append(f"{where}:{node.lineno}: from engine import {alias.name} (not exported)")
            elif module.startswith("engine.") and module not in PUBLIC_MODULES:
                out.append(f"{where}:{node.lineno}: from {module} import ...")
        elif isinstance(node, ast.Attribute):
            if node.attr == "store":
                out.append(f"{where}:{node.lineno}: .store")
            elif (node.attr.startswith("_") and not node.attr.startswith("__") and path not in ALLOWED_PRIVATE
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "os"))):  # os._exit
                out.append(f"{where}:{node.lineno}: private member .{node.attr}")
    return sorted(out, key=lambda b: int(b.split(":")[1]))


def test_engine_never_imports_the_server() -> None:
    found = []
    for path in sources("engine"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] == "sg_lsp"]
    assert not found, found


def test_server_uses_only_the_public_engine_api() -> None:
    breaches = [b for path in sources("sg_lsp") for b in client_breaches(path)]
    assert not breaches, "\n".join(breaches)


def test_cli_uses_only_the_public_engine_api() -> None:
    breaches = client_breaches(ROOT / "engine" / "cli.py")
    assert not breaches, "\n".join(breaches)


def test_the_scan_sees_each_kind_of_breach() -> None:
    # The rules above are only as good as the scanner: a sample with one breach of each kind (and two allowed
    # lines: a sibling import, a private member of self) as if it were a server module.
    code = ("import engine.store\nfrom engine.search import Engine\nfrom engine import Engine, _private\n"
            "from . import pygls_shim\nx = eng.store.files()\ny = eng._writer\nz = self._ok\n")
    found = client_breaches(ROOT / "sg_lsp" / "sample.py", code)
    assert [b.split(": ", 1)[1] for b in found] == [
        "import engine.store", "from engine.search import ...", "from engine import _private (not exported)",
        ".store", "private member ._writer"], found
