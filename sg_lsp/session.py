"""Session state: workspace folders (each with its Engine), background jobs, and settings resolution."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from pygls.exceptions import JsonRpcException

from engine import Settings, load_settings

from .jsonrpc import REQUEST_FAILED
from .positions import path_to_uri

logger = logging.getLogger("sg_lsp")


class Folder:
    """One workspace folder and its Engine. The engine can be swapped (settings change) while searches use it:
    a retired engine is closed when its last user leaves."""

    def __init__(self, uri: str, name: str, path: Path, settings: Settings):
        self.uri = uri
        self.name = name
        self.client_root = path  # as the client spells it: result URIs use it so they match the editor's
        self.root = path.resolve()
        self.settings = settings
        self.engine: Any = None
        self.state = "opening"  # opening | indexing | ready | error
        self.error = ""
        self.opened = threading.Event()
        self.index_complete = False
        self.cancel_requested = False
        self.superseded = False
        self.index_cancel: threading.Event | None = None
        self.last_report: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._users: dict[int, int] = {}
        self._retired: dict[int, Any] = {}
        self._index_path: tuple[str, Path] = ("", self.root)

    @contextmanager
    def use(self, wait: float = 10.0) -> Iterator[Any]:
        self.opened.wait(wait)
        with self._lock:
            eng = self.engine
            if eng is None:
                why = self.error or "the index is still being opened"
                raise JsonRpcException(f"sg: {self.name}: {why}", code=REQUEST_FAILED)
            self._users[id(eng)] = self._users.get(id(eng), 0) + 1
        try:
            yield eng
        finally:
            close = None
            with self._lock:
                self._users[id(eng)] -= 1
                if not self._users[id(eng)]:
                    del self._users[id(eng)]
                    close = self._retired.pop(id(eng), None)
            if close is not None:
                _close_quietly(close)

    def swap(self, engine: Any) -> None:
        with self._lock:
            old, self.engine = self.engine, engine
            if old is not None and self._users.get(id(old)):
                self._retired[id(old)] = old
                old = None
        if old is not None:
            _close_quietly(old)

    def cancel_index(self, *, by_user: bool = False, supersede: bool = False) -> None:
        if by_user:
            self.cancel_requested = True
        if supersede:
            self.superseded = True
        ev = self.index_cancel
        if ev is not None:
            ev.set()

    def rel(self, path: Path) -> str | None:
        """Workspace-relative POSIX path of an absolute path inside this folder, else None."""
        path = Path(os.path.normpath(path))  # "src/../../etc" must not pass as inside
        for root in (self.client_root, self.root):
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                pass
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except (ValueError, OSError):
            return None

    def uri_for(self, rel: str) -> str:
        return path_to_uri(self.client_root / rel)

    def ignored(self, rel: str) -> bool:
        """Paths whose changes never concern the index: VCS internals and the index itself."""
        parts = PurePosixPath(rel).parts
        if not parts or parts[0] in (".git", ".hg", ".svn"):
            return True
        index_dir = self.settings.index.index_dir or ".sg"
        if self._index_path[0] != index_dir:
            self._index_path = (index_dir, (self.root / index_dir).resolve())
        return (self.root / rel).is_relative_to(self._index_path[1])


def _close_quietly(engine: Any) -> None:
    try:
        engine.close()
    except Exception:
        logger.exception("closing an engine failed")


@dataclasses.dataclass
class Job:
    """A background job (local tuning), listed by sg/status."""

    id: str
    kind: str
    folder: str
    state: str = "running"  # running | done | failed | cancelled
    message: str = ""
    started: float = dataclasses.field(default_factory=time.time)
    finished: float | None = None
    result: Any = None
    error: str = ""
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "kind": self.kind, "folder": self.folder, "state": self.state,
               "message": self.message, "started": self.started, "finished": self.finished}
        if self.result is not None:
            out["result"] = self.result
        if self.error:
            out["error"] = self.error
        return out


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        try:
            return value.item()
        except Exception:
            pass
    return str(value)


def resolve_settings(root: Path, overrides: dict[str, Any], tuned: str | None, problems: list[str]) -> Settings:
    """A folder's settings: its .sg.toml under the client's overrides (lenient: a bad value is reported in
    `problems` and left out), then the model made by sg/tune for it, if any."""
    settings = load_settings(root, overrides, problems, lenient=True)
    if tuned:
        settings = dataclasses.replace(settings, models=dataclasses.replace(settings.models, model_path=tuned))
    return settings


def folder_for(folders: Iterable[Folder], path: Path) -> tuple[Folder, str] | None:
    """The innermost folder containing `path`, with the workspace-relative path."""
    best: tuple[Folder, str] | None = None
    for folder in folders:
        rel = folder.rel(path)
        if rel is not None and not rel.startswith("../") and (
                best is None or len(str(folder.root)) > len(str(best[0].root))):
            best = (folder, rel)
    return best
