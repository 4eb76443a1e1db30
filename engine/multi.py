"""Search over several workspaces at once (an editor's workspace folders): path scoping per root, merged hits."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import BadQuery
from .records import Hit

MAX_PATTERNS = 100


def inside(path: Path, root: Path) -> str | None:
    """`path` relative to `root` as POSIX, or None when it is not inside (symlinks resolved as a last resort)."""
    path = Path(os.path.normpath(path))  # "src/../../etc" must not pass as inside
    for base in (root, root.resolve()):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return None


def scope_patterns(patterns: list[Any] | None, roots: list[Path]) -> list[list[str] | None]:
    """Glob patterns per root. A relative pattern applies to every root; an absolute path only to the root that
    holds it (made relative to it); a pattern that reaches outside (any '..', or an absolute path in no root) is
    refused with BadQuery, so a scope can never leave the workspace. No patterns (None or []): None for every
    root (no scope); else a root that no pattern reaches gets [] (search_many leaves it out)."""
    if not patterns:
        return [None] * len(roots)
    if not isinstance(patterns, list) or len(patterns) > MAX_PATTERNS or \
            not all(isinstance(p, str) and p for p in patterns):
        raise BadQuery(f"'paths' must be an array of at most {MAX_PATTERNS} non-empty strings")
    out: list[list[str]] = [[] for _ in roots]  # a root no pattern reaches is not searched
    for p in patterns:
        if not Path(p).is_absolute():
            if ".." in PurePosixPath(p.replace("\\", "/")).parts:
                raise BadQuery(f"path pattern {p!r} reaches outside the workspace")
            for i in range(len(roots)):
                out[i].append(p.rstrip("/") or "*")
            continue
        for i, root in enumerate(roots):
            rel = inside(Path(p), root)
            if rel is not None and ".." not in PurePosixPath(rel).parts:
                out[i].append(rel if rel != "." else "*")
                break
        else:
            raise BadQuery(f"path {p!r} is outside the workspace")
    return list(out)  # list is invariant: list[list[str]] is not a list[list[str] | None]


@dataclass
class Target:
    """One workspace to search: its engine, and what the caller knows of it (still indexing, or unusable)."""

    name: str
    engine: Any  # engine.search.Engine
    indexing: bool = False
    error: str = ""


@dataclass
class MultiResult:
    hits: list[tuple[int, Hit]]  # (index into the targets, hit), best first
    mode: str
    route: dict[str, float]
    models: dict[str, str]
    notes: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0


def search_many(targets: list[Target], query: str, k: int = 10, mode: str | None = None,
                paths: list[Any] | None = None, explain: bool = False, wait_for_models: bool = False,
                cancel: threading.Event | None = None) -> MultiResult:
    """Engine.search on every usable target, hits merged by score. A target with an error is left out with a
    note (unless none is usable: then its error is raised by its engine); `paths` are scoped per root."""
    t0 = time.perf_counter()
    scopes = scope_patterns(paths, [t.engine.root for t in targets])
    usable = [t for t in targets if not t.error]
    out = MultiResult([], mode or "", {}, {})

    def note(text: str) -> None:
        if text not in out.notes:
            out.notes.append(text)

    for i, (target, scope) in enumerate(zip(targets, scopes)):
        if cancel is not None and cancel.is_set():
            break
        if target.error and usable:
            note(f"{target.name}: not searched: {target.error}")
            continue
        if scope is not None and not scope:
            continue
        res = target.engine.search(query, k=k, mode=mode, paths=scope, explain=explain,
                                   wait_for_models=wait_for_models)
        out.hits.extend((i, h) for h in res.hits)
        out.models.update(res.models)
        for n in res.notes:
            note(n if len(targets) == 1 else f"{target.name}: {n}")
        out.mode, out.route = res.mode, res.route
        if target.indexing:
            note(f"{target.name}: still indexing; results come from what is indexed so far")
    out.hits.sort(key=lambda ih: -ih[1].score)
    out.hits = out.hits[:k]
    out.elapsed_ms = (time.perf_counter() - t0) * 1000
    return out
