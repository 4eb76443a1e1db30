"""No import cycles among the engine's model modules: every import statement of engine/ (module level and inside
functions, since a deferred import still ties two modules together), resolved to engine modules, as a graph; a
strongly connected component of more than one module that touches engine/embed/ is a ring to break."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ENGINE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(name: str) -> bool:
    return (ENGINE.parent / Path(*name.split(".")) / "__init__.py").is_file()


def _exists(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ENGINE.parent / rel).with_suffix(".py").is_file() or _is_package(name)


def imports_of(path: Path) -> set[str]:
    """The engine modules one file imports: `from .x import y` counts y when y is a module, else x."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if _exists(sub) else target)
    return {m for m in found if (m == "engine" or m.startswith("engine.")) and _exists(m) and m != me}


def graph() -> dict[str, set[str]]:
    return {_module_name(p): imports_of(p) for p in sorted(ENGINE.rglob("*.py"))}


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is small, but recursion depth is not ours to assume)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in g:
        if root in index:
            continue
        work = [(root, iter(sorted(g.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_detector_finds_a_ring():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(g) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve_to_modules(tmp_path):
    g = graph()
    assert "engine.embed.runtime.select" in g["engine.embed.registry"]
    assert "engine.embed.runtime.cache" in g["engine.embed.runtime.onnx"]
    assert "engine.embed.runtime.export" in g["engine.embed.runtime.exported"]  # a deferred import counts too


def test_no_import_cycle_touches_the_model_modules():
    rings = [c for c in strongly_connected(graph()) if any(m.startswith("engine.embed") for m in c)]
    assert rings == [], f"import cycles through engine/embed/: {rings}"


def test_model_modules_do_not_import_the_ann_code():
    g = graph()
    offenders = {m: sorted(d) for m, d in g.items() if m.startswith("engine.embed")
                 for d in [{x for x in g[m] if x.startswith("engine.backends") or x == "engine.spaces"}] if d}
    assert offenders == {}


def test_ranking_and_indexing_see_only_the_backend_protocols():
    """rank.py and indexer.py import engine/backends/base.py and nothing else of the backends (no ANN code)."""
    g = graph()
    offenders = {m: sorted(d) for m in ("engine.rank", "engine.indexer")
                 for d in [{x for x in g[m] if x.startswith("engine.backends") and x != "engine.backends.base"}] if d}
    assert offenders == {}
