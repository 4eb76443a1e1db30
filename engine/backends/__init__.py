"""Index backends: where the ranker's candidates come from. Each backend is one package here that answers the
Protocols in base.py, and one row in BACKENDS; make_backend, settings validation and the CLI's --backend all read
that table, so a new backend is one folder plus one row.

The SQLite store (engine/store.py) is not a backend: it is the record the indexer writes, and every backend is a
searchable copy of it (the local one reads it in place, Qdrant is pushed from it).

This module is data plus one factory: it imports no backend until one is chosen, so the settings can read the table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import Store
    from .base import Backend


@dataclass(frozen=True)
class BackendKind:
    """One row of the table. `module` is a package with `create(store, index_dir, settings, root, log) -> Backend`;
    `needs` lists the settings it cannot run without: (dotted name, what it should hold)."""

    name: str
    module: str
    summary: str
    needs: tuple[tuple[str, str], ...] = ()


BACKENDS: dict[str, BackendKind] = {k.name: k for k in (
    BackendKind("local", "engine.backends.local", "SQLite + hnswlib on this machine (the default)"),
    BackendKind("qdrant", "engine.backends.qdrant", "a Qdrant server, cluster, or embedded directory (docs/qdrant.md)",
                needs=(("qdrant.url", "an http(s):// URL or a directory"),)),
)}


def check_backend(settings: Settings) -> None:
    """Raise ConfigError unless `index.backend` names a row of BACKENDS whose needed settings are set."""
    kind = BACKENDS.get(settings.index.backend)
    if kind is None:
        names = list(BACKENDS)
        choices = " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]
        raise ConfigError(f"index.backend must be {choices}, not {settings.index.backend!r}")
    for dotted, what in kind.needs:
        section, key = dotted.split(".")
        if not getattr(getattr(settings, section), key):
            raise ConfigError(f"index.backend = \"{kind.name}\" needs {dotted} ({what})")


def make_backend(store: Store, index_dir: Path, settings: Settings, root: Path,
                 log: Callable[[str], None]) -> Backend:
    """The backend `index.backend` names (settings validation has checked the name)."""
    module = importlib.import_module(BACKENDS[settings.index.backend].module)
    return cast("Backend", module.create(store, index_dir, settings, root, log))
