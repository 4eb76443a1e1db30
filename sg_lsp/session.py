"""The server's state: workspace folders (each with its Engine), settings overrides, background jobs, unsaved
buffers, the search pool (`offload`), and what the user has been told. Handlers take a Session; indexing.py
queues the index work it implies; the pygls object is only the way to the client."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import unquote

import cattrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from engine import BadQuery, ConfigError, FileWatch, IndexWriter, Settings, SgError, load_settings

from . import protocol, pygls_shim
from .jsonrpc import REQUEST_FAILED
from .positions import path_to_uri, uri_to_path

logger = logging.getLogger("sg_lsp")

_DEBUG_FAIL = set(filter(None, os.environ.get("SG_LSP_DEBUG_FAIL", "").split(",")))  # test hook: methods that raise
T = TypeVar("T")


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

    def status(self) -> protocol.JobStatus:
        return protocol.JobStatus(id=self.id, kind=self.kind, folder=self.folder, state=self.state,
                                  message=self.message, started=self.started, finished=self.finished,
                                  result=self.result, error=self.error)


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


class Session:
    """What the server knows between messages. `lsp` is the pygls server: the way to the client (messages,
    progress, open documents, capabilities); the session holds no protocol logic."""

    def __init__(self, lsp: LanguageServer, make_writer: Callable[[Session], IndexWriter]):
        self.lsp = lsp
        self.folders: dict[str, Folder] = {}
        self.overrides: dict[str, Any] = {}
        self.tuned: dict[Path, str] = {}  # folder root -> model dir made by sg/tune, used until the server exits
        self.unsaved: dict[tuple[str, str], str] = {}  # (folder uri, rel path) -> the uri of an edited open document
        self.jobs: dict[str, Job] = {}
        self.job_ids = itertools.count(1)
        self.progress_cancellers: dict[Any, Callable[[], None]] = {}
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sg-search")
        self.writer = make_writer(self)  # the one thread that writes indexes (indexing.Writer)
        self.watch: FileWatch | None = None  # our own file watcher, when the client does not watch files for us
        self.shutdown_requested = False
        self.stopped = False
        self._told: dict[str, float] = {}
        self._startup_messages: list[tuple[types.MessageType, str]] | None = []  # None once told

    # -- the client --------------------------------------------------------------------------------------------------
    @property
    def encoding(self) -> str:
        try:
            return self.lsp.workspace.position_encoding or types.PositionEncodingKind.Utf16
        except RuntimeError:
            return types.PositionEncodingKind.Utf16

    @property
    def converter(self) -> cattrs.Converter:
        return pygls_shim.converter(self.lsp.protocol)

    def supports_progress(self) -> bool:
        caps = getattr(self.lsp.protocol, "client_capabilities", None)
        return bool(caps and caps.window and caps.window.work_done_progress)

    def open_text(self, uri: str) -> str | None:
        """The text of an open document (with its unsaved edits), else None."""
        try:
            doc = self.lsp.workspace.text_documents.get(unquote(uri))
        except RuntimeError:
            return None
        return None if doc is None else doc.source

    def tell_user(self, kind: types.MessageType, text: str, every: float = 30.0) -> None:
        """window/showMessage, at most once per `every` seconds for the same text."""
        now = time.monotonic()
        if now - self._told.get(text, -1e9) < every:
            return
        self._told[text] = now
        logger.log(logging.ERROR if kind == types.MessageType.Error else logging.WARNING, "%s", text)
        try:
            self.lsp.window_show_message(types.ShowMessageParams(type=kind, message=text))
        except Exception:
            logger.exception("showMessage failed")

    def log_to_client(self, text: str) -> None:
        logger.info("%s", text)
        try:
            self.lsp.window_log_message(types.LogMessageParams(type=types.MessageType.Log, message=text))
        except Exception:
            pass

    def queue_message(self, kind: types.MessageType, text: str) -> None:
        """tell_user, or, before indexing starts (during initialize), once it does."""
        if self._startup_messages is not None and not self.writer.is_alive():
            self._startup_messages.append((kind, text))
        else:
            self.tell_user(kind, text)

    def flush_startup_messages(self) -> None:
        messages, self._startup_messages = self._startup_messages, None
        for kind, text in messages or []:
            self.tell_user(kind, text)

    # -- work on the search pool -------------------------------------------------------------------------------------
    async def offload(self, what: str, fn: Callable[[threading.Event], T]) -> T:
        """Run fn(cancel_event) on the search pool; engine errors become JSON-RPC errors.

        When the client cancels, the awaiting task is cancelled at once (pygls answers RequestCancelled) and the
        worker sees `cancel_event` set at its next check.
        """
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self.pool, self._guarded, what, fn, cancel)
        try:
            return await fut
        except asyncio.CancelledError:
            cancel.set()
            raise

    def _guarded(self, what: str, fn: Callable[[threading.Event], T], cancel: threading.Event) -> T:
        try:
            if what in _DEBUG_FAIL:
                raise RuntimeError(f"injected failure in {what}")
            return fn(cancel)
        except JsonRpcException:
            raise
        except (BadQuery, ConfigError) as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        except SgError as exc:
            self.tell_user(types.MessageType.Error, f"sg: {what} failed: {exc}")
            raise JsonRpcException(f"{what} failed: {exc}", code=REQUEST_FAILED) from None
        except Exception as exc:
            logger.error("%s failed:\n%s", what, traceback.format_exc())
            self.tell_user(types.MessageType.Error, f"sg: internal error in {what}: {exc!r} (details in the log)")
            raise JsonRpcInternalError(f"internal error in {what}: {exc!r}") from None

    def structure(self, raw: Any, cls: type[T], method: str) -> T:
        """Params that did not come through a request of their own (a command's arguments) as a protocol class."""
        try:
            return protocol.structure(self.converter, raw, cls, method)
        except protocol.Invalid as exc:
            raise JsonRpcInvalidParams(str(exc)) from None

    # -- settings and folders ----------------------------------------------------------------------------------------
    def resolve_settings(self, root: Path, name: str) -> Settings:
        problems: list[str] = []
        settings = resolve_settings(root, self.overrides, self.tuned.get(root.resolve()), problems)
        for p in problems:
            self.queue_message(types.MessageType.Warning, f"sg ({name}): {p}")
        return settings

    def add_folder(self, uri: str, name: str | None) -> Folder | None:
        path = uri_to_path(uri)
        if path is None or not path.is_dir():
            self.queue_message(types.MessageType.Warning, f"sg: cannot index {uri}: not a local folder")
            return None
        folder = Folder(uri, name or path.name, path, self.resolve_settings(path, name or path.name))
        self.folders[uri] = folder
        return folder

    def remove_folder(self, uri: str) -> None:
        folder = self.folders.pop(uri, None)
        if folder is None:
            return
        folder.cancel_index(supersede=True)
        if self.watch is not None:
            self.watch.remove(folder.uri)
        self.writer.submit("", lambda: folder.swap(None))

    def folder_for(self, uri: str) -> tuple[Folder, str] | None:
        path = uri_to_path(uri)
        return None if path is None else folder_for(self.folders.values(), path)

    def require_folder(self, uri: str) -> tuple[Folder, str]:
        hit = self.folder_for(uri)
        if hit is None:
            raise JsonRpcInvalidParams(f"{uri} is not inside a workspace folder")
        return hit

    def default_limit(self) -> int:
        """10, or less when a folder's search.max_results is smaller (a request without `limit` must not fail)."""
        return min([10, *(f.settings.search.max_results for f in self.folders.values())])

    # -- file changes ----------------------------------------------------------------------------------------------
    def note_uris(self, uris: list[tuple[str, str]], delay: float) -> None:
        """Record changed documents and files (kind: changed | deleted | buffer); the writer applies them later."""
        by_folder: dict[Folder, dict[str, str]] = {}
        for uri, kind in uris:
            hit = self.folder_for(uri)
            if hit is None or hit[0].ignored(hit[1]):
                continue
            by_folder.setdefault(hit[0], {})[hit[1]] = kind
            if kind == "buffer":
                self.unsaved[(hit[0].uri, hit[1])] = uri
        for folder, changes in by_folder.items():
            self.writer.note_changes(folder, changes, delay)

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel indexing and jobs, stop watching, close engines. Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        for folder in self.folders.values():
            folder.cancel_index(supersede=True)
        for job in self.jobs.values():
            job.cancel.set()
        self.writer.stop(timeout=10.0)
        if self.watch is not None:
            try:
                self.watch.stop()
            except Exception:
                pass
        if self.writer.is_alive():
            logger.warning("the writer did not stop in time; engines are left open")
            return
        for folder in self.folders.values():
            folder.swap(None)
