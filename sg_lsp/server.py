"""The sg language server: LSP features as small handlers over engine.search.Engine (one Engine per folder).

Threads: the asyncio loop only parses messages and answers; searches run on a small thread pool; every index
write (initial index, saves, file-watch batches, settings changes) runs on ONE writer thread, debounced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import re
import threading
import time
import traceback
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator
from urllib.parse import unquote, urlparse

import attrs
import cattrs
from lsprotocol import types
from pygls.exceptions import (
    FeatureRequestError,
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcRequestCancelled,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import JsonRPCNotification, JsonRPCProtocol, JsonRPCRequestMessage, LanguageServerProtocol
from pygls.protocol import default_converter

from engine.errors import BadQuery, ConfigError, SgError
from engine.settings import Settings, load_settings

from . import __version__

logger = logging.getLogger("sg_lsp")

# JSON-RPC / LSP error codes pygls has no class for (or that we send ourselves).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002
REQUEST_FAILED = -32803  # LSP 3.17: the request was valid but failed; the message says why

SEARCH = "sg/search"
SIMILAR = "sg/similar"
STATUS = "sg/status"
TUNE = "sg/tune"
REINDEX = "sg/reindex"
CMD_FIND_SIMILAR = "sg.findSimilar"

MODES = ("hybrid", "semantic", "lexical")
SYMBOL_LIMIT = 50
SAVE_DEBOUNCE = 0.05  # seconds; a save must be searchable within ~1 s
WATCH_DEBOUNCE = 0.3  # external changes come in bursts (git checkout, code generators)
CHANGE_DEBOUNCE = 1.0  # unsaved edits: while typing, the buffer is re-indexed at most once a second
RESCAN_THRESHOLD = 500  # more changed paths than this: one incremental walk instead of per-file updates
# Test hook: every search sleeps this long (cooperatively cancellable) so cancellation can be tested.
_DEBUG_DELAY = float(os.environ.get("SG_LSP_DEBUG_SEARCH_DELAY", "0") or 0)
_DEBUG_INDEX_DELAY = float(os.environ.get("SG_LSP_DEBUG_INDEX_DELAY", "0") or 0)  # same, before indexing
_DEBUG_FAIL = set(filter(None, os.environ.get("SG_LSP_DEBUG_FAIL", "").split(",")))  # methods that raise

_SYMBOL_KINDS = {
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "class": types.SymbolKind.Class,
    "section": types.SymbolKind.String,  # what Markdown servers use for headings
    "page": types.SymbolKind.File,
    "window": types.SymbolKind.File,
    "module": types.SymbolKind.Module,
    "struct": types.SymbolKind.Struct,
    "interface": types.SymbolKind.Interface,
    "trait": types.SymbolKind.Interface,
    "enum": types.SymbolKind.Enum,
    "impl": types.SymbolKind.Class,
    "constant": types.SymbolKind.Constant,
    "variable": types.SymbolKind.Variable,
}
_CODE_KINDS = ("function", "method", "class", "struct", "interface", "trait", "enum", "impl")


# -- positions -------------------------------------------------------------------------------------------------
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Lines as LSP counts them (\\n, \\r\\n and \\r end a line; nothing else does)."""
    return _LINE_BREAK.split(text)


def to_client_units(line: str, col: int, encoding: str) -> int:
    """Code-point column -> column in the negotiated position encoding (utf-16 by default)."""
    col = max(0, min(col, len(line)))
    prefix = line[:col]
    if encoding == types.PositionEncodingKind.Utf32 or prefix.isascii():
        return col
    if encoding == types.PositionEncodingKind.Utf8:
        return len(prefix.encode("utf-8", "surrogatepass"))
    return len(prefix.encode("utf-16-le", "surrogatepass")) // 2


def from_client_units(line: str, units: int, encoding: str) -> int:
    """Column in the negotiated encoding -> code-point column (clamped to the line)."""
    if encoding == types.PositionEncodingKind.Utf32 or line.isascii():
        return max(0, min(units, len(line)))
    n = 0
    for i, ch in enumerate(line):
        if n >= units:
            return i
        cp = ord(ch)
        if encoding == types.PositionEncodingKind.Utf8:
            n += 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
        else:
            n += 2 if cp >= 0x10000 else 1
    return len(line)


def uri_to_path(uri: str) -> Path | None:
    """file:// URI -> absolute path (percent-decoded), or None for other schemes."""
    try:
        parsed = urlparse(uri)
    except (TypeError, ValueError):
        return None
    if parsed.scheme != "file":
        return None
    path = unquote(parsed.path)
    if re.match(r"^/[A-Za-z]:", path):  # file:///C:/x on Windows
        path = path[1:]
    if parsed.netloc and parsed.netloc != "localhost":
        path = f"//{parsed.netloc}{path}"
    return Path(path)


def path_to_uri(path: Path) -> str:
    return path.absolute().as_uri()


# -- JSON-RPC robustness ------------------------------------------------------------------------------------------
def _strict_str(value: Any, _type: Any) -> str:
    # cattrs' default str hook calls str(value): {"command": 5} would silently become "5".
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


def make_converter() -> cattrs.Converter:
    conv = default_converter()
    conv.register_structure_hook(str, _strict_str)
    return conv


def describe_structure_error(exc: Exception, method: str) -> str:
    """One readable line for a params error, with LSP (camelCase) field paths."""
    if isinstance(exc, cattrs.BaseValidationError):
        parts = cattrs.transform_error(exc, path="$")
    else:
        parts = [str(exc)]

    def camel(m: re.Match) -> str:
        return m.group(1).upper()

    parts = [re.sub(r"_([a-z])", camel, p).replace("$.params", "params") for p in parts]
    return f"invalid params for {method}: " + "; ".join(parts[:5])


def _valid_id(msg_id: Any) -> bool:
    return isinstance(msg_id, (str, int)) and not isinstance(msg_id, bool)


def _fields(cls: type) -> set[str]:
    try:
        return set(attrs.fields_dict(cls))
    except (TypeError, attrs.exceptions.NotAnAttrsClassError):
        return set()


class SgProtocol(LanguageServerProtocol):
    """LanguageServerProtocol that answers every request exactly once.

    Stock pygls 2.x structures a message inside `json.loads(..., object_hook=structure_message)`: when the params
    do not fit the lsprotocol type the exception escapes the read loop and the request is never answered. Here
    `structure_message` is the identity and `handle_message` validates the envelope, checks the lifecycle
    (ServerNotInitialized before initialize, InvalidRequest after shutdown) and structures params itself, so a
    bad message becomes an error response with the request's id. Messages sent from worker threads are handed
    to the event loop, so the transport is only ever written from one thread.
    """

    def __init__(self, server: Any, converter: cattrs.Converter):
        super().__init__(server, converter)
        self.initialize_seen = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    # The read loop calls this for every JSON object; the real work happens in handle_message.
    def structure_message(self, data: Any) -> Any:
        return data

    def handle_message(self, message: Any) -> None:
        if self.loop is None:
            try:
                self.loop = asyncio.get_running_loop()
                self._loop_thread = threading.get_ident()
            except RuntimeError:
                pass
        try:
            self._dispatch(message)
        except (SystemExit, KeyboardInterrupt):
            raise
        except Exception:  # never let one message take the server down
            logger.exception("unexpected error while dispatching a message")

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, dict):
            what = "a batch (JSON array)" if isinstance(message, list) else type(message).__name__
            self.send_error(None, INVALID_REQUEST, f"Invalid request: expected a JSON object, got {what}")
            return
        has_id = "id" in message
        msg_id = message.get("id")
        method = message.get("method")
        if message.get("jsonrpc") != JsonRPCProtocol.VERSION:
            if "method" in message and has_id:
                self.send_error(msg_id if _valid_id(msg_id) else None, INVALID_REQUEST,
                                'Invalid request: "jsonrpc" must be "2.0"')
            else:
                logger.warning("dropping a message without jsonrpc 2.0: %.200r", message)
            return
        if "method" not in message:
            self._response(message)
            return
        if not isinstance(method, str):
            if has_id:
                self.send_error(msg_id if _valid_id(msg_id) else None, INVALID_REQUEST,
                                'Invalid request: "method" must be a string')
            return
        if has_id:
            if not _valid_id(msg_id):
                self.send_error(None, INVALID_REQUEST, 'Invalid request: "id" must be an integer or a string')
                return
            self._request(msg_id, method, message)
        else:
            self._notification(method, message)

    def _request(self, msg_id: Any, method: str, message: dict) -> None:
        if self._shutdown:
            self.send_error(msg_id, INVALID_REQUEST, f"{method}: the server is shut down; only 'exit' is accepted")
            return
        if not self.initialize_seen and method != types.INITIALIZE:
            self.send_error(msg_id, SERVER_NOT_INITIALIZED, f"{method}: the server is not initialized yet "
                                                            "(send 'initialize' first)")
            return
        if self.initialize_seen and method == types.INITIALIZE:
            self.send_error(msg_id, INVALID_REQUEST, "initialize may only be sent once")
            return
        params = message.get("params")
        if params is not None and not isinstance(params, (dict, list)):
            self.send_error(msg_id, INVALID_PARAMS, f"invalid params for {method}: params must be an object")
            return
        mtype = self.get_message_type(method)
        if mtype is None:  # sg/* and unknown methods: handlers get the raw JSON params (unknown -> MethodNotFound)
            request: Any = JsonRPCRequestMessage(id=msg_id, method=method, jsonrpc=JsonRPCProtocol.VERSION,
                                                 params=params)
        elif "id" not in _fields(mtype):
            self.send_error(msg_id, INVALID_REQUEST, f"{method} is a notification and must not carry an id")
            return
        else:
            problem = _precheck(method, params)
            if problem:
                self.send_error(msg_id, INVALID_PARAMS, f"invalid params for {method}: {problem}")
                return
            try:
                request = self._converter.structure(message, mtype)
            except Exception as exc:
                logger.info("bad params for %s: %s", method, exc)
                self.send_error(msg_id, INVALID_PARAMS, describe_structure_error(exc, method))
                return
        if method == types.INITIALIZE:
            self.initialize_seen = True
        super().handle_message(request)

    def _notification(self, method: str, message: dict) -> None:
        if method == types.EXIT:
            super().handle_message(types.ExitNotification())
            return
        if self._shutdown or not self.initialize_seen:
            logger.info("dropping notification %s (%s)", method, "after shutdown" if self._shutdown else
                        "before initialize")
            return
        mtype = self.get_message_type(method)
        if mtype is None:
            note: Any = JsonRPCNotification(method=method, jsonrpc=JsonRPCProtocol.VERSION,
                                            params=message.get("params"))
        elif "id" in _fields(mtype):
            logger.warning("dropping request %s sent without an id", method)
            return
        else:
            try:
                note = self._converter.structure(message, mtype)
            except Exception as exc:
                logger.warning("%s", describe_structure_error(exc, method))
                return
        super().handle_message(note)

    def _response(self, message: dict) -> None:
        try:
            structured = JsonRPCProtocol.structure_message(self, message)
        except Exception as exc:
            fut = self._request_futures.pop(message.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_exception(JsonRpcInternalError(f"unreadable response from the client: {exc}"))
            return
        super().handle_message(structured)

    def send_error(self, msg_id: Any, code: int, text: str) -> None:
        self._send_data({"jsonrpc": JsonRPCProtocol.VERSION, "id": msg_id,
                         "error": {"code": code, "message": text}})

    def _send_data(self, data: Any) -> None:
        loop = self.loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            try:
                loop.call_soon_threadsafe(JsonRPCProtocol._send_data, self, data)
                return
            except RuntimeError:  # loop closed (exiting): write directly, best effort
                pass
        super()._send_data(data)


def _precheck(method: str, params: Any) -> str:
    """Checks cattrs is too lenient for (it iterates a string into a list of arguments)."""
    if method == types.WORKSPACE_EXECUTE_COMMAND:
        if not isinstance(params, dict):
            return "params must be an object with a 'command'"
        if not isinstance(params.get("command"), str):
            return "'command' must be a string"
        if params.get("arguments") is not None and not isinstance(params["arguments"], list):
            return "'arguments' must be an array"
    return ""


# -- progress ------------------------------------------------------------------------------------------------------
class WorkProgress:
    """One server-initiated `$/progress` token: create, begin, throttled reports, end; cancellable by the client.

    Methods block on the client's answer to window/workDoneProgress/create, so use them from worker threads only.
    """

    def __init__(self, ls: "SgLanguageServer", title: str, on_cancel: Callable[[], None] | None = None):
        self.ls = ls
        self.title = title
        self.token = f"sg-{uuid.uuid4().hex[:12]}"
        self.enabled = ls.supports_progress()
        self._pct = 0
        self._last = 0.0
        self._ended = False
        if self.enabled:
            try:
                ls.work_done_progress.create(self.token).result(timeout=10)
            except Exception as exc:  # the client refused or did not answer: no progress for this task
                logger.info("work done progress not created: %s", exc)
                self.enabled = False
        if self.enabled and on_cancel is not None:
            ls.progress_cancellers[self.token] = on_cancel

    def begin(self, message: str = "") -> None:
        if self.enabled:
            self.ls.work_done_progress.begin(self.token, types.WorkDoneProgressBegin(
                title=self.title, cancellable=self.token in self.ls.progress_cancellers, message=message,
                percentage=0))

    def report(self, message: str, pct: float | None = None, force: bool = False) -> None:
        if not self.enabled or self._ended:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        if pct is not None:
            self._pct = max(self._pct, min(100, int(pct)))  # percentages never go backwards
        self.ls.work_done_progress.report(self.token, types.WorkDoneProgressReport(
            message=message, percentage=self._pct))

    def end(self, message: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.ls.progress_cancellers.pop(self.token, None)
        if self.enabled:
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
            self.ls.work_done_progress.tokens.pop(self.token, None)


# -- workspace folders -----------------------------------------------------------------------------------------------
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
        self.models_ready = False
        self.models_failed = ""
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


# -- the writer thread -----------------------------------------------------------------------------------------------
class Writer(threading.Thread):
    """The one thread that writes indexes: queued tasks (open/index/reopen) and debounced file updates.

    Due file updates go first; a running index is pre-empted by a save (it stops after the current batch, the
    update runs, the index resumes where it stopped), so a save is searchable quickly even during a long index.
    """

    def __init__(self, ls: "SgLanguageServer"):
        super().__init__(name="sg-writer", daemon=True)
        self.ls = ls
        self.cond = threading.Condition()
        self.tasks: deque[tuple[str, Callable[[], None]]] = deque()
        self.pending: dict[Folder, dict[str, str]] = {}  # folder -> rel path -> changed | deleted | dir | buffer
        self.due: float | None = None
        self.stopping = False
        self.preempt: threading.Event | None = None

    def submit(self, key: str, fn: Callable[[], None], front: bool = False) -> None:
        with self.cond:
            if key and any(k == key for k, _ in self.tasks):
                return  # the same work is already queued
            (self.tasks.appendleft if front else self.tasks.append)((key, fn))
            self.cond.notify()

    def note_changes(self, folder: Folder, changes: dict[str, str], delay: float) -> None:
        with self.cond:
            mine = self.pending.setdefault(folder, {})
            for rel, kind in changes.items():
                mine[rel] = "dir" if "dir" in (kind, mine.get(rel)) else kind
            due = time.monotonic() + delay
            self.due = due if self.due is None else min(max(self.due, time.monotonic()), due)
            if self.preempt is not None:
                self.preempt.set()
            self.cond.notify()

    def stop(self, timeout: float = 10.0) -> None:
        with self.cond:
            self.stopping = True
            self.tasks.clear()
            if self.preempt is not None:
                self.preempt.set()
            self.cond.notify()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def run(self) -> None:
        while True:
            with self.cond:
                job = self._next_locked()
            if job is None:
                return
            try:
                job()
            except Exception as exc:
                logger.exception("index work failed")
                self.ls.tell_user(types.MessageType.Error, f"sg: indexing failed: {exc}")

    def _next_locked(self) -> Callable[[], None] | None:
        while not self.stopping:
            now = time.monotonic()
            if self.pending and self.due is not None and now >= self.due:
                return self._take_updates_locked()
            if self.tasks:
                return self.tasks.popleft()[1]
            self.cond.wait(None if self.due is None or not self.pending else max(0.0, self.due - now))
        return None

    def _take_updates_locked(self) -> Callable[[], None]:
        batch, self.pending, self.due = self.pending, {}, None
        return lambda: self._apply_updates(batch)

    def flush_due_updates(self) -> None:
        """Called by a pre-empted index: apply the pending updates now (after their debounce)."""
        while True:
            with self.cond:
                if self.stopping or not self.pending:
                    return
                wait = (self.due or 0) - time.monotonic()
                if wait > 0:
                    self.cond.wait(wait)
                    continue
                job = self._take_updates_locked()
            job()

    def _apply_updates(self, batch: dict[Folder, dict[str, str]]) -> None:
        for folder, changes in batch.items():
            if folder.engine is None or folder not in self.ls.folders.values():
                continue  # not open yet: the initial index will read these files anyway
            eng = folder.engine
            paths = sorted(changes)
            rescan = len(paths) > RESCAN_THRESHOLD or "dir" in changes.values()
            deleted = [p for p, k in changes.items() if k == "deleted"]
            if not rescan and deleted:
                known = eng.store.files()
                rescan = any(p not in known and any(k.startswith(p + "/") for k in known) for p in deleted)
            if rescan:
                self.submit(f"index:{folder.uri}", lambda f=folder: self.ls.index_folder(f), front=True)
                continue
            embed = folder.index_complete and folder.models_ready and not folder.models_failed
            buffers = {}
            for rel in (p for p, k in changes.items() if k == "buffer"):  # unsaved edits: the open document's text
                doc = self.ls.workspace.text_documents.get(unquote(self.ls.unsaved.get((folder.uri, rel), "")))
                if doc is not None:
                    buffers[rel] = doc.source
            t0 = time.perf_counter()
            try:
                report = eng.update_files(paths, embed=embed, buffers=buffers)
            except Exception as exc:
                logger.exception("update_files failed")
                self.ls.tell_user(types.MessageType.Error, f"sg: could not re-index {paths[0]}: {exc}")
                continue
            logger.info("re-indexed %d path(s) in %s in %.0f ms (changed %d, removed %d, embedded %d)",
                        len(paths), folder.name, (time.perf_counter() - t0) * 1000, report.changed,
                        report.removed, report.embedded)


# -- file watching (fallback when the client cannot watch files for us) --------------------------------------------
class FileWatch:
    """watchdog observer over every folder; events become debounced writer updates."""

    def __init__(self, ls: "SgLanguageServer"):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.ls = ls
        self.observer = Observer()
        self.observer.daemon = True
        self._handler_cls = FileSystemEventHandler
        self.watches: dict[str, Any] = {}

    def watch(self, folder: Folder) -> None:
        ls = self.ls

        class Handler(self._handler_cls):  # type: ignore[misc, valid-type]
            def on_any_event(self, event: Any) -> None:
                kind = event.event_type
                if kind not in ("created", "modified", "deleted", "moved", "closed"):
                    return
                if event.is_directory and kind in ("modified", "closed"):
                    return  # a directory's mtime changes with every child: the child has its own event
                changes: dict[str, str] = {}
                paths = [(event.src_path, "deleted" if kind in ("deleted", "moved") else "changed")]
                if kind == "moved":
                    paths.append((event.dest_path, "changed"))
                for p, k in paths:
                    rel = folder.rel(Path(os.fsdecode(p)))
                    if rel is None or folder.ignored(rel):
                        continue
                    changes[rel] = "dir" if event.is_directory else k
                if changes:
                    ls.writer.note_changes(folder, changes, WATCH_DEBOUNCE)

        from watchdog import events as ev

        # Only events that can change the index: no open/close-without-write noise from the indexer's reads.
        kinds = [ev.FileCreatedEvent, ev.FileModifiedEvent, ev.FileDeletedEvent, ev.FileMovedEvent,
                 ev.FileClosedEvent, ev.DirCreatedEvent, ev.DirDeletedEvent, ev.DirMovedEvent]
        self.watches[folder.uri] = self.observer.schedule(Handler(), str(folder.root), recursive=True,
                                                          event_filter=kinds)

    def unwatch(self, folder: Folder) -> None:
        w = self.watches.pop(folder.uri, None)
        if w is not None:
            self.observer.unschedule(w)

    def start(self) -> None:
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()


# -- background jobs (local tuning) ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Job:
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


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
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


# -- the server ------------------------------------------------------------------------------------------------------
class SgLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(name="sg-lsp", version=__version__, protocol_cls=SgProtocol,
                         converter_factory=make_converter, max_workers=4)
        self.protocol: SgProtocol
        self.folders: dict[str, Folder] = {}
        self.overrides: dict[str, Any] = {}
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sg-search")
        self.writer = Writer(self)
        self.watch: FileWatch | None = None
        self.progress_cancellers: dict[Any, Callable[[], None]] = {}
        self.jobs: dict[str, Job] = {}
        self.tuned: dict[Path, str] = {}  # folder root -> model dir made by sg/tune, used until the server exits
        self.unsaved: dict[tuple[str, str], str] = {}  # (folder uri, rel path) -> the uri of an edited open document
        self._job_ids = itertools.count(1)
        self._told: dict[str, float] = {}
        self._startup_messages: list[tuple[types.MessageType, str]] = []
        self.shutdown_requested = False
        self.stopped = False

    # -- plumbing ------------------------------------------------------------------------------------------------
    @property
    def encoding(self) -> str:
        try:
            return self.workspace.position_encoding or types.PositionEncodingKind.Utf16
        except RuntimeError:
            return types.PositionEncodingKind.Utf16

    def supports_progress(self) -> bool:
        caps = getattr(self.protocol, "client_capabilities", None)
        return bool(caps and caps.window and caps.window.work_done_progress)

    def tell_user(self, kind: types.MessageType, text: str, every: float = 30.0) -> None:
        """window/showMessage, at most once per `every` seconds for the same text."""
        now = time.monotonic()
        if now - self._told.get(text, -1e9) < every:
            return
        self._told[text] = now
        logger.log(logging.ERROR if kind == types.MessageType.Error else logging.WARNING, "%s", text)
        try:
            self.window_show_message(types.ShowMessageParams(type=kind, message=text))
        except Exception:
            logger.exception("showMessage failed")

    def log_to_client(self, text: str) -> None:
        logger.info("%s", text)
        try:
            self.window_log_message(types.LogMessageParams(type=types.MessageType.Log, message=text))
        except Exception:
            pass

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls calls this with source=JsonRpcException when json.loads failed in the read loop (our
        # structure_message never raises): the sender gets a ParseError with a null id, as JSON-RPC says.
        if source is JsonRpcException and isinstance(error, ValueError):
            self.protocol.send_error(None, PARSE_ERROR, f"Parse error: {error}")
            return
        if source is FeatureRequestError:
            return  # already answered with an error response
        logger.error("server error (%s): %s", getattr(source, "__name__", source), error)
        self.tell_user(types.MessageType.Error, f"sg: internal error: {error}")

    def shutdown(self) -> None:
        # pygls' shutdown() waits for its thread pool, where a reader thread may sit in stdin.readline() forever.
        if self._stop_event is not None:
            self._stop_event.set()
        if self._thread_pool:
            self._thread_pool.shutdown(wait=False, cancel_futures=True)
        if self._server:
            self._server.close()

    async def offload(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args, cancel_event) on the search pool; engine errors become JSON-RPC errors.

        When the client cancels, the awaiting task is cancelled at once (pygls answers RequestCancelled) and the
        worker sees `cancel_event` set at its next check.
        """
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self.pool, self._guarded, what, fn, args, cancel)
        try:
            return await fut
        except asyncio.CancelledError:
            cancel.set()
            raise

    def _guarded(self, what: str, fn: Callable[..., Any], args: tuple, cancel: threading.Event) -> Any:
        try:
            if what in _DEBUG_FAIL:
                raise RuntimeError(f"injected failure in {what}")
            return fn(*args, cancel)
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

    # -- settings and folders ----------------------------------------------------------------------------------------
    def resolve_settings(self, root: Path, name: str) -> Settings:
        problems: list[str] = []
        settings = load_settings(root, self.overrides, problems, lenient=True)
        for p in problems:
            self.queue_message(types.MessageType.Warning, f"sg ({name}): {p}")
        tuned = self.tuned.get(root.resolve())
        if tuned:
            settings = dataclasses.replace(settings, models=dataclasses.replace(settings.models, model_path=tuned))
        return settings

    def use_tuned(self, folder: "Folder", model_dir: str) -> None:
        """Serve `folder` with a model made by sg/tune: its settings change, so the folder re-opens and re-embeds."""
        self.tuned[folder.root] = model_dir
        self.apply_settings()

    def queue_message(self, kind: types.MessageType, text: str) -> None:
        if self._startup_messages is not None and not self.writer.is_alive():
            self._startup_messages.append((kind, text))
        else:
            self.tell_user(kind, text)

    def add_folder(self, uri: str, name: str | None) -> Folder | None:
        path = uri_to_path(uri)
        if path is None or not path.is_dir():
            self.queue_message(types.MessageType.Warning, f"sg: cannot index {uri}: not a local folder")
            return None
        folder = Folder(uri, name or path.name, path, self.resolve_settings(path, name or path.name))
        self.folders[uri] = folder
        return folder

    def folder_for(self, uri: str) -> tuple[Folder, str] | None:
        path = uri_to_path(uri)
        if path is None:
            return None
        best: tuple[Folder, str] | None = None
        for folder in self.folders.values():
            rel = folder.rel(path)
            if rel is not None and not rel.startswith("../") and (
                    best is None or len(str(folder.root)) > len(str(best[0].root))):
                best = (folder, rel)
        return best

    def require_folder(self, uri: str) -> tuple[Folder, str]:
        hit = self.folder_for(uri)
        if hit is None:
            raise JsonRpcInvalidParams(f"{uri} is not inside a workspace folder")
        return hit

    # -- indexing (writer thread) ----------------------------------------------------------------------------------
    def open_engine(self, folder: Folder) -> bool:
        try:
            from engine.search import Engine

            engine = Engine(folder.root, folder.settings, log=self.log_to_client)
        except Exception as exc:
            logger.exception("cannot open the index of %s", folder.root)
            folder.state, folder.error = "error", f"cannot open the index: {exc}"
            self.tell_user(types.MessageType.Error, f"sg: {folder.name}: {folder.error}")
            folder.opened.set()
            return False
        folder.swap(engine)
        folder.error = ""
        folder.opened.set()
        return True

    def index_folder(self, folder: Folder) -> None:
        """Open (if needed) and index one folder, with $/progress; lexical pass, then models, then embeddings."""
        if folder not in self.folders.values():
            return
        folder.cancel_requested = folder.superseded = False  # before the token exists: a cancel may follow at once
        prog = WorkProgress(self, f"sg: indexing {folder.name}",
                            on_cancel=lambda: folder.cancel_index(by_user=True))
        prog.begin("opening the index")
        if folder.engine is None and not self.open_engine(folder):
            prog.end(f"failed: {folder.error}")
            return
        eng = folder.engine
        folder.state = "indexing"
        want_models = folder.settings.models.enabled
        stage = "lexical" if want_models and not folder.models_ready and not folder.models_failed else "full"
        t0 = time.perf_counter()

        def progress(phase: str, done: int, total: int) -> None:
            # Percent bands: files 0-40, models 40-45, embeddings 45-100 (files 0-100 without models).
            if not want_models:
                lo, hi = 0, 100
            elif phase.startswith("embed"):
                lo, hi = 45, 100
            else:
                lo, hi = (0, 40) if stage == "lexical" else (40, 45)
            if phase == "files":
                msg = f"files {done}/{total}" if total else "checking files"
            else:
                msg = f"embedding {done}/{total} chunks ({phase.split(':', 1)[-1]})"
            prog.report(msg, lo + (hi - lo) * (done / total if total else 1.0), force=done == total)

        report = None
        while True:
            ev = threading.Event()
            folder.index_cancel = ev
            if folder.cancel_requested or folder.superseded or self.writer.stopping:
                ev.set()
            self.writer.preempt = ev
            try:
                if stage == "models":
                    prog.report("loading embedding models", 42, force=True)
                    self.load_models(folder, eng)
                    stage = "full"
                    continue
                embed = want_models and folder.models_ready and not folder.models_failed
                if _DEBUG_INDEX_DELAY and report is None and ev.wait(_DEBUG_INDEX_DELAY):
                    from engine.search import IndexReport

                    report = IndexReport(cancelled=True)
                else:
                    report = eng.index(progress=progress, cancel=ev, embed=embed)
            except Exception as exc:
                logger.exception("indexing %s failed", folder.root)
                folder.state, folder.error = "ready", f"indexing failed: {exc}"
                self.tell_user(types.MessageType.Error, f"sg: {folder.name}: {folder.error}")
                prog.end(f"failed: {exc}")
                return
            finally:
                self.writer.preempt = None
                folder.index_cancel = None
            folder.last_report = _jsonable(report)
            if report.cancelled:
                if folder.cancel_requested or folder.superseded or self.writer.stopping:
                    folder.state = "ready"
                    folder.index_complete = False  # saves stay lexical-only until an index completes
                    prog.end("cancelled: searching what is indexed so far")
                    return
                self.writer.flush_due_updates()  # pre-empted by a save: apply it, then resume
                continue
            for note in report.notes:
                self.log_to_client(f"sg ({folder.name}): {note}")
            if stage == "lexical" and want_models:
                stage = "models"
                continue
            break
        folder.index_complete = True
        folder.state = "ready"
        # The walk read every file from disk: documents with unsaved edits get their text back.
        edited = {rel: "buffer" for furi, rel in list(self.unsaved) if furi == folder.uri}
        if edited:
            self.writer.note_changes(folder, edited, SAVE_DEBOUNCE)
        eng.warm()
        st = eng.status()
        prog.end(f"{st.get('files', 0)} files, {st.get('chunks', 0)} chunks, {st.get('skipped', 0)} skipped "
                 f"in {time.perf_counter() - t0:.1f} s")

    def load_models(self, folder: Folder, eng: Any) -> None:
        try:
            reports = eng.models()
        except SgError as exc:
            folder.models_failed = str(exc)
            self.tell_user(types.MessageType.Error, f"sg ({folder.name}): no embedding model: {exc}; "
                                                    "searching lexically only")
            return
        folder.models_ready = True
        for r in reports:
            if r.note:
                self.tell_user(types.MessageType.Warning, f"sg ({folder.name}): {r.route}: {r.note}", every=3600)

    def reopen(self, folder: Folder) -> None:
        """Swap in an Engine built with the folder's current settings (the old one serves until then)."""
        folder.models_ready, folder.models_failed, folder.index_complete = False, "", False
        folder.state = "opening"
        if self.open_engine(folder):
            self.index_folder(folder)

    def apply_settings(self) -> None:
        """New overrides: search-only changes apply at once; model/index changes re-open and re-index."""
        for folder in list(self.folders.values()):
            new = self.resolve_settings(folder.root, folder.name)
            if new == folder.settings:
                continue
            if new.models == folder.settings.models and new.index == folder.settings.index:
                folder.settings = new
                if folder.engine is not None:
                    folder.engine.settings = new
                continue
            folder.settings = new
            folder.cancel_index(supersede=True)  # a running index of the old settings stops after its batch
            self.writer.submit(f"reopen:{folder.uri}", lambda f=folder: self.reopen(f), front=True)

    def start_indexing(self) -> None:
        if not self.writer.is_alive():
            self.writer.start()
        messages, self._startup_messages = self._startup_messages, None
        for kind, text in messages or []:
            self.tell_user(kind, text)
        if not self.folders:
            self.tell_user(types.MessageType.Info, "sg: no workspace folder is open; nothing to index")
        for folder in self.folders.values():
            self.writer.submit(f"index:{folder.uri}", lambda f=folder: self.index_folder(f))

    def remove_folder(self, uri: str) -> None:
        folder = self.folders.pop(uri, None)
        if folder is None:
            return
        folder.cancel_index(supersede=True)
        if self.watch is not None:
            self.watch.unwatch(folder)
        self.writer.submit("", lambda: folder.swap(None))

    # -- file changes ----------------------------------------------------------------------------------------------
    def note_uris(self, uris: list[tuple[str, str]], delay: float) -> None:
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

    def setup_watching(self) -> None:
        """Ask the client to watch files (dynamic registration) or fall back to a watchdog observer."""
        caps = self.client_capabilities.workspace
        dyn = bool(caps and caps.did_change_watched_files and caps.did_change_watched_files.dynamic_registration)
        if dyn:
            reg = types.Registration(
                id=f"sg-watch-{uuid.uuid4().hex[:8]}", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=types.DidChangeWatchedFilesRegistrationOptions(
                    watchers=[types.FileSystemWatcher(glob_pattern="**/*")]))
            try:
                self.client_register_capability(types.RegistrationParams(registrations=[reg])).result(timeout=10)
                logger.info("the client watches files for us")
                return
            except Exception as exc:
                logger.info("client/registerCapability failed (%s): using a watchdog observer", exc)
        self.start_watchdog()

    def start_watchdog(self) -> None:
        try:
            self.watch = FileWatch(self)
            for folder in self.folders.values():
                self.watch.watch(folder)
            self.watch.start()
        except Exception as exc:
            self.watch = None
            self.tell_user(types.MessageType.Warning, f"sg: cannot watch files ({exc}); changes made outside the "
                                                      "editor are picked up on the next start")

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


# -- request helpers (pure translation: LSP <-> engine) ---------------------------------------------------------
class LineReader:
    """Line texts for turning code-point columns into client units: open document first, else the file on disk."""

    def __init__(self, ls: SgLanguageServer):
        self.ls = ls
        self.encoding = ls.encoding
        self.cache: dict[tuple[str, str], list[str]] = {}

    def line(self, folder: Folder, rel: str, index: int) -> str:
        key = (folder.uri, rel)
        lines = self.cache.get(key)
        if lines is None:
            lines = self.cache[key] = self._load(folder, rel)
        return lines[index] if 0 <= index < len(lines) else ""

    def _load(self, folder: Folder, rel: str) -> list[str]:
        uri = folder.uri_for(rel)
        try:
            doc = self.ls.workspace.text_documents.get(unquote(uri))
        except RuntimeError:
            doc = None
        if doc is not None:
            return split_lines(doc.source)
        try:
            data = (folder.root / rel).read_bytes()
        except OSError:
            return []
        from engine.discover import decode_text  # decode exactly as the indexer did (BOMs, UTF-16/32)

        text = decode_text(rel, data)
        return split_lines(text) if isinstance(text, str) else []

    def position(self, folder: Folder, rel: str, line1: int, col: int) -> types.Position:
        line0 = max(0, line1 - 1)
        if self.encoding == types.PositionEncodingKind.Utf32 or col == 0:
            return types.Position(line=line0, character=max(0, col))
        return types.Position(line=line0, character=to_client_units(self.line(folder, rel, line0), col,
                                                                    self.encoding))

    def range(self, folder: Folder, hit: Any) -> types.Range:
        return types.Range(start=self.position(folder, hit.path, hit.start_line, hit.start_col),
                           end=self.position(folder, hit.path, hit.end_line, hit.end_col))

    def client_col_to_cp(self, folder: Folder, rel: str, line0: int, units: int) -> int:
        return from_client_units(self.line(folder, rel, line0), units, self.encoding)


def _range_json(r: types.Range) -> dict[str, Any]:
    return {"start": {"line": r.start.line, "character": r.start.character},
            "end": {"line": r.end.line, "character": r.end.character}}


def symbol_name(hit: Any) -> tuple[str, str]:
    """(name, container): 'Class.method' -> ('method', 'Class'); top-level symbols live in their file."""
    if not hit.symbol:
        return f"{PurePosixPath(hit.path).name}:{hit.start_line}", hit.path
    if hit.kind in _CODE_KINDS:
        for sep in ("::", "."):
            if sep in hit.symbol:
                container, name = hit.symbol.rsplit(sep, 1)
                if name and container:
                    return name, container
    return hit.symbol, hit.path


def _check_cancel(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise JsonRpcRequestCancelled("the request was cancelled")


def _debug_delay(cancel: threading.Event) -> None:
    end = time.monotonic() + _DEBUG_DELAY
    while time.monotonic() < end:
        _check_cancel(cancel)
        time.sleep(0.01)


def _as_params(params: Any, method: str) -> dict[str, Any]:
    if params is None:
        return {}
    if isinstance(params, dict):
        return params
    raise JsonRpcInvalidParams(f"invalid params for {method}: params must be an object")


def _opt(p: dict[str, Any], key: str, kind: type | tuple[type, ...], method: str, default: Any = None) -> Any:
    value = p.get(key)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in (
        kind if isinstance(kind, tuple) else (kind,)))
    if not ok:
        words = {"str": "a string", "int": "an integer", "bool": "a boolean", "list": "an array", "dict": "an object"}
        names = " or ".join(words.get(k.__name__, k.__name__) for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise JsonRpcInvalidParams(f"invalid params for {method}: '{key}' must be {names}")
    return value


def _check_text(value: str, key: str, method: str) -> str:
    """JSON may carry lone surrogates ("\\ud800"); model tokenizers raise TypeError on them, so refuse them here."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JsonRpcInvalidParams(f"invalid params for {method}: '{key}' is not valid Unicode text "
                                   f"(lone surrogate at character {exc.start})") from None
    return value


def scoped_paths(ls: SgLanguageServer, paths: list[Any] | None) -> dict[Folder, list[str] | None]:
    """Glob patterns per folder. Relative patterns apply to every folder; absolute paths and file:// URIs only to
    the folder that contains them; anything else (or any '..') is refused, so `paths` never leaves the workspace."""
    folders = list(ls.folders.values())
    if not paths:
        return {f: None for f in folders}
    if len(paths) > 100 or not all(isinstance(p, str) and p for p in paths):
        raise JsonRpcInvalidParams("invalid params for sg/search: 'paths' must be an array of at most 100 "
                                   "non-empty strings")
    out: dict[Folder, list[str]] = {}
    for p in paths:
        if p.startswith("file:"):
            absolute = uri_to_path(p)
        else:
            absolute = Path(p) if Path(p).is_absolute() else None
        if absolute is None and (".." in PurePosixPath(p.replace("\\", "/")).parts):
            raise JsonRpcInvalidParams(f"path pattern {p!r} reaches outside the workspace")
        if absolute is None:
            for f in folders:
                out.setdefault(f, []).append(p)
            continue
        owner = None
        for f in folders:
            rel = f.rel(absolute)
            if rel is not None and ".." not in PurePosixPath(rel).parts:
                owner = (f, rel)
                break
        if owner is None:
            raise JsonRpcInvalidParams(f"path {p!r} is outside the workspace")
        out.setdefault(owner[0], []).append(owner[1] if owner[1] != "." else "*")
    return out


def search_folders(ls: SgLanguageServer, query: str, k: int, mode: str | None, paths: list[Any] | None,
                   explain: bool, cancel: threading.Event) -> tuple[list[tuple[Folder, Any]], dict[str, Any]]:
    """Run Engine.search on every folder (in the pool thread); hits merged by score."""
    _debug_delay(cancel)
    scopes = scoped_paths(ls, paths)
    hits: list[tuple[Folder, Any]] = []
    meta: dict[str, Any] = {"models": {}, "notes": [], "mode": mode, "route": {}}
    usable = [f for f in scopes if f.state != "error"]
    for folder, scope in scopes.items():
        _check_cancel(cancel)
        if folder.state == "error" and usable:
            meta["notes"].append(f"{folder.name}: not searched: {folder.error}")
            continue
        with folder.use() as eng:
            eff_mode = mode
            if (mode or folder.settings.search.mode) != "lexical" and folder.settings.models.enabled:
                if folder.models_failed:
                    eff_mode = "lexical"
                    meta["notes"].append(f"{folder.name}: no embedding model ({folder.models_failed}): lexical only")
                elif not folder.models_ready and folder.state in ("opening", "indexing"):
                    # Loading models takes the engine's writer lock: do not wait behind the index.
                    eff_mode = "lexical"
                    meta["notes"].append(f"{folder.name}: models are still loading: lexical results only")
            res = eng.search(query, k=k, mode=eff_mode, paths=scope, explain=explain)
        hits.extend((folder, h) for h in res.hits)
        meta["models"].update(res.models)
        meta["notes"].extend(n for n in res.notes if n not in meta["notes"])
        meta["mode"] = res.mode
        meta["route"] = res.route
        if folder.state in ("opening", "indexing"):
            note = f"{folder.name}: still indexing; results come from what is indexed so far"
            if note not in meta["notes"]:
                meta["notes"].append(note)
    hits.sort(key=lambda fh: -fh[1].score)
    return hits[:k], meta


def _model_label(models: dict[str, str]) -> str:
    names = list(dict.fromkeys(v for v in models.values() if v and v != "lexical"))
    return ", ".join(names) if names else "lexical"


def hits_json(ls: SgLanguageServer, pairs: list[tuple[Folder, Any]], explain: bool) -> list[dict[str, Any]]:
    reader = LineReader(ls)
    out = []
    for folder, hit in pairs:
        item = {"uri": folder.uri_for(hit.path), "path": hit.path, "range": _range_json(reader.range(folder, hit)),
                "symbol": hit.symbol, "kind": hit.kind, "language": hit.language, "score": round(hit.score, 6),
                "snippet": hit.snippet, "space": hit.space}
        if explain:
            item["explanation"] = {k: round(float(v), 6) for k, v in hit.components.items()}
        out.append(item)
    return out


def similar_at(ls: SgLanguageServer, uri: str, line0: int, k: int, cancel: threading.Event) -> tuple[
        Folder, Any]:
    folder, rel = ls.require_folder(uri)
    _check_cancel(cancel)
    with folder.use() as eng:
        mode = "lexical" if folder.models_failed or (
            not folder.models_ready and folder.state in ("opening", "indexing")) else None
        return folder, eng.similar(rel, line0 + 1, k=k, mode=mode)


def default_limit(ls: SgLanguageServer) -> int:
    """10, or less when a folder's search.max_results is smaller (a request without `limit` must not fail)."""
    return min([10, *(f.settings.search.max_results for f in ls.folders.values())])


def _similar_target(params: Any, method: str, default: int = 10) -> tuple[str, int, int]:
    """(uri, 0-based line, limit) from {textDocument: {uri}, position} or {uri, line}."""
    p = _as_params(params, method)
    doc = p.get("textDocument")
    if isinstance(doc, dict):
        uri = _opt(doc, "uri", str, method)
        pos = p.get("position")
        if not isinstance(pos, dict) or not isinstance(pos.get("line"), int) or isinstance(pos.get("line"), bool):
            raise JsonRpcInvalidParams(f"invalid params for {method}: 'position' must be {{line, character}}")
        line = pos["line"]
    else:
        uri = _opt(p, "uri", str, method)
        line = _opt(p, "line", int, method)
    if uri is None or line is None:
        raise JsonRpcInvalidParams(f"invalid params for {method}: give {{textDocument: {{uri}}, position}} "
                                   "or {uri, line}")
    if line < 0:
        raise JsonRpcInvalidParams(f"invalid params for {method}: 'line' must be >= 0")
    return uri, line, _opt(p, "limit", int, method, default)


# -- features ---------------------------------------------------------------------------------------------------------
server = SgLanguageServer()


@server.feature(types.INITIALIZE)
def on_initialize(ls: SgLanguageServer, params: types.InitializeParams) -> None:
    opts = params.initialization_options
    if isinstance(opts, dict) and set(opts) == {"sg"} and isinstance(opts["sg"], dict):
        opts = opts["sg"]
    if opts is not None and not isinstance(opts, dict):
        ls.queue_message(types.MessageType.Warning, "sg: initializationOptions must be an object; ignored")
        opts = None
    ls.overrides = dict(opts or {})
    folders = list(params.workspace_folders or [])
    if not folders and params.root_uri:
        folders = [types.WorkspaceFolder(uri=params.root_uri, name="")]
    elif not folders and params.root_path:
        folders = [types.WorkspaceFolder(uri=path_to_uri(Path(params.root_path)), name="")]
    for f in folders:
        ls.add_folder(f.uri, f.name)


@server.feature(types.INITIALIZED)
def on_initialized(ls: SgLanguageServer, params: types.InitializedParams) -> None:
    ls.start_indexing()
    ls.pool.submit(ls.setup_watching)  # waits for the client's answer: not on the event loop


@server.feature(types.SHUTDOWN)
async def on_shutdown(ls: SgLanguageServer, params: Any) -> None:
    ls.shutdown_requested = True
    await asyncio.get_running_loop().run_in_executor(None, ls.stop)


@server.feature(types.EXIT)
def on_exit(ls: SgLanguageServer, params: Any) -> None:
    logger.info("exit (shutdown %s)", "received" if ls.shutdown_requested else "NOT received")


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def on_configuration(ls: SgLanguageServer, params: types.DidChangeConfigurationParams) -> None:
    settings = params.settings
    if isinstance(settings, dict) and isinstance(settings.get("sg"), dict):
        settings = settings["sg"]
    if not settings:
        caps = ls.client_capabilities.workspace
        if not (caps and caps.configuration):
            return
        try:  # pull model: the client only says "something changed"
            got = await ls.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section="sg")]))
            settings = got[0] if got else None
        except Exception as exc:
            logger.info("workspace/configuration failed: %s", exc)
            return
    if not isinstance(settings, dict):
        ls.tell_user(types.MessageType.Warning, "sg: settings must be an object; ignored")
        return
    ls.overrides = settings
    ls.apply_settings()


@server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def on_folders(ls: SgLanguageServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    for f in params.event.removed:
        ls.remove_folder(f.uri)
    for f in params.event.added:
        folder = ls.add_folder(f.uri, f.name)
        if folder is not None:
            if ls.watch is not None:
                ls.watch.watch(folder)
            ls.writer.submit(f"index:{folder.uri}", lambda fo=folder: ls.index_folder(fo))


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def on_save(ls: SgLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.note_uris([(params.text_document.uri, "changed")], SAVE_DEBOUNCE)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def on_change(ls: SgLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    """Unsaved edits are searchable too: the writer indexes the open document's text in place of the file."""
    ls.note_uris([(params.text_document.uri, "buffer")], CHANGE_DEBOUNCE)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def on_close(ls: SgLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    """A document closed after edits: index the file as it is on disk again (its unsaved text is gone)."""
    hit = ls.folder_for(params.text_document.uri)
    if hit is not None and ls.unsaved.pop((hit[0].uri, hit[1]), None) is not None:
        ls.note_uris([(params.text_document.uri, "changed")], SAVE_DEBOUNCE)


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def on_watched(ls: SgLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
    ls.note_uris([(c.uri, "deleted" if c.type == types.FileChangeType.Deleted else "changed")
                  for c in params.changes], WATCH_DEBOUNCE)


@server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
def on_progress_cancel(ls: SgLanguageServer, params: types.WorkDoneProgressCancelParams) -> None:
    cancel = ls.progress_cancellers.get(params.token)
    if cancel is not None:
        cancel()


@server.feature(types.WORKSPACE_SYMBOL)
async def workspace_symbol(ls: SgLanguageServer, params: types.WorkspaceSymbolParams) -> list[types.WorkspaceSymbol]:
    if not params.query.strip():
        return []  # "list every symbol" is not a semantic question
    _check_text(params.query, "query", types.WORKSPACE_SYMBOL)

    def run(cancel: threading.Event) -> list[types.WorkspaceSymbol]:
        k = min([SYMBOL_LIMIT, *(f.settings.search.max_results for f in ls.folders.values())])
        pairs, _ = search_folders(ls, params.query, k, None, None, False, cancel)
        _check_cancel(cancel)
        reader = LineReader(ls)
        out = []
        for folder, hit in pairs:
            name, container = symbol_name(hit)
            out.append(types.WorkspaceSymbol(
                name=name, kind=_SYMBOL_KINDS.get(hit.kind, types.SymbolKind.Object), container_name=container,
                location=types.Location(uri=folder.uri_for(hit.path), range=reader.range(folder, hit))))
        return out

    return await ls.offload("workspace/symbol", run)


@server.feature(SEARCH)
async def sg_search(ls: SgLanguageServer, params: Any) -> dict[str, Any]:
    p = _as_params(params, SEARCH)
    query = p.get("query")
    if not isinstance(query, str):
        raise JsonRpcInvalidParams("invalid params for sg/search: 'query' (a string) is required")
    _check_text(query, "query", SEARCH)
    limit = _opt(p, "limit", int, SEARCH, default_limit(ls))
    mode = _opt(p, "mode", str, SEARCH)
    if mode is not None and mode not in MODES:
        raise JsonRpcInvalidParams(f"invalid params for sg/search: 'mode' must be one of {', '.join(MODES)}")
    paths = _opt(p, "paths", list, SEARCH)
    explain = _opt(p, "explain", bool, SEARCH, False)

    def run(cancel: threading.Event) -> dict[str, Any]:
        t0 = time.perf_counter()
        pairs, meta = search_folders(ls, query, limit, mode, paths, explain, cancel)
        _check_cancel(cancel)
        return {"results": hits_json(ls, pairs, explain), "model": _model_label(meta["models"]),
                "models": meta["models"], "mode": meta["mode"], "notes": meta["notes"],
                "elapsedMs": round((time.perf_counter() - t0) * 1000, 2)}

    return await ls.offload("sg/search", run)


@server.feature(SIMILAR)
async def sg_similar(ls: SgLanguageServer, params: Any) -> dict[str, Any]:
    uri, line, limit = _similar_target(params, SIMILAR, default_limit(ls))

    def run(cancel: threading.Event) -> dict[str, Any]:
        t0 = time.perf_counter()
        folder, res = similar_at(ls, uri, line, limit, cancel)
        return {"results": hits_json(ls, [(folder, h) for h in res.hits], False), "model": _model_label(res.models),
                "models": res.models, "mode": res.mode, "notes": res.notes,
                "elapsedMs": round((time.perf_counter() - t0) * 1000, 2)}

    return await ls.offload("sg/similar", run)


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION)
async def code_action(ls: SgLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    if params.context.only is not None and types.CodeActionKind.Empty not in params.context.only:
        return []
    uri, line0 = params.text_document.uri, params.range.start.line
    hit = ls.folder_for(uri)
    if hit is None:
        return []
    folder, rel = hit

    def run(cancel: threading.Event) -> list[types.CodeAction]:
        with folder.use(wait=0.5) as eng:
            chunks = eng.store.chunks_of_file(rel)
        covering = [c for c in chunks if c.start_line <= line0 + 1 <= c.end_line and c.kind in ("function", "method")]
        if not covering:
            return []
        target = min(covering, key=lambda c: c.end_line - c.start_line)
        title = "Find similar functions"
        return [types.CodeAction(title=title, command=types.Command(
            title=title, command=CMD_FIND_SIMILAR, arguments=[uri, target.start_line - 1]))]

    try:
        return await ls.offload("textDocument/codeAction", run)
    except JsonRpcException as exc:
        if exc.code == REQUEST_FAILED:
            return []  # index not open yet: no action rather than an error on every cursor move
        raise


@server.command(CMD_FIND_SIMILAR)
async def find_similar_command(ls: SgLanguageServer, *args: Any) -> list[dict[str, Any]]:
    """Arguments: [uri, line] (0-based line), or one object like sg/similar's params. Returns Location[]."""
    if len(args) == 1 and isinstance(args[0], dict):
        uri, line, limit = _similar_target(args[0], CMD_FIND_SIMILAR, default_limit(ls))
    elif len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], int) and not isinstance(args[1], bool):
        uri, line, limit = args[0], args[1], default_limit(ls)
        if line < 0:
            raise JsonRpcInvalidParams(f"invalid arguments for {CMD_FIND_SIMILAR}: line must be >= 0")
    else:
        raise JsonRpcInvalidParams(f"invalid arguments for {CMD_FIND_SIMILAR}: expected [uri, line] or "
                                   "[{textDocument: {uri}, position}]")

    def run(cancel: threading.Event) -> list[dict[str, Any]]:
        folder, res = similar_at(ls, uri, line, limit, cancel)
        reader = LineReader(ls)
        return [{"uri": folder.uri_for(h.path), "range": _range_json(reader.range(folder, h))} for h in res.hits]

    return await ls.offload(CMD_FIND_SIMILAR, run)


@server.feature(STATUS)
async def sg_status(ls: SgLanguageServer, params: Any) -> dict[str, Any]:
    def run(cancel: threading.Event) -> dict[str, Any]:
        folders = []
        totals = {"files": 0, "chunks": 0, "skipped": 0}
        models: dict[str, str] = {}
        for f in list(ls.folders.values()):
            entry: dict[str, Any] = {"uri": f.uri, "name": f.name, "state": f.state, "error": f.error,
                                     "modelsLoaded": f.models_ready, "complete": f.index_complete,
                                     "lastIndex": f.last_report}
            if f.models_failed:
                entry["modelError"] = f.models_failed
            eng = f.engine
            if eng is not None:
                try:
                    st = eng.status()
                except Exception as exc:
                    st = {"error": str(exc)}
                entry.update({k: st.get(k) for k in ("files", "chunks", "skipped", "vectors", "models", "index")})
                for k in totals:
                    totals[k] += int(st.get(k) or 0)
                models.update(st.get("models") or {})
            folders.append(entry)
        busy = any(f.state in ("opening", "indexing") for f in ls.folders.values())
        return {"state": "indexing" if busy else "ready", **totals, "models": models,
                "jobs": [j.to_json() for j in ls.jobs.values()], "folders": folders,
                "positionEncoding": ls.encoding, "version": __version__}

    return await ls.offload("sg/status", run)


@server.feature(REINDEX)
async def sg_reindex(ls: SgLanguageServer, params: Any) -> None:
    for folder in ls.folders.values():
        ls.writer.submit(f"index:{folder.uri}", lambda f=folder: ls.index_folder(f))


@server.feature(TUNE)
async def sg_tune(ls: SgLanguageServer, params: Any) -> dict[str, Any]:
    p = _as_params(params, TUNE)
    config_path = _opt(p, "configPath", str, TUNE)
    out_dir = _opt(p, "outDir", str, TUNE)
    folder_uri = _opt(p, "folder", str, TUNE)
    extra = {"dry_run": True} if _opt(p, "dryRun", bool, TUNE, False) else {}  # mine pairs only
    apply = _opt(p, "apply", bool, TUNE)  # None: use the tuned model if it did not get worse on held-out pairs
    try:
        from engine.tune import run_tune
    except ImportError:
        raise JsonRpcException("local tuning is not available in this build", code=REQUEST_FAILED) from None
    if folder_uri is not None:
        folder = ls.require_folder(folder_uri)[0]
    elif ls.folders:
        folder = next(iter(ls.folders.values()))
    else:
        raise JsonRpcException("sg/tune: no workspace folder is open", code=REQUEST_FAILED)
    running = [j for j in ls.jobs.values() if j.kind == "tune" and j.state == "running"]
    if running:
        raise JsonRpcException(f"a tuning job is already running ({running[0].id})", code=REQUEST_FAILED)
    job = Job(id=f"tune-{next(ls._job_ids)}", kind="tune", folder=folder.uri)
    ls.jobs[job.id] = job
    threading.Thread(target=_run_tune_job, args=(ls, job, folder, run_tune, config_path, out_dir, extra, apply),
                     name=f"sg-{job.id}", daemon=True).start()
    return {"jobId": job.id}


def _apply_tuned(ls: SgLanguageServer, folder: Folder, report: Any, apply: bool | None) -> tuple[bool, str]:
    """Switch the folder to the tuned model when asked (apply true), or by default when its held-out MRR@10 did
    not drop: (switched, the sentence to add to the user's message)."""
    where = getattr(report, "out_dir", "")
    if not where or apply is False or getattr(report, "stopped", "") in ("dry-run", "eval-only"):
        return False, ""
    before = (getattr(report, "before", None) or {}).get("MRR@10")
    after = (getattr(report, "after", None) or {}).get("MRR@10")
    measured = f" (held-out MRR@10 {before:.3f} -> {after:.3f})" if before is not None and after is not None else ""
    if apply is None and (before is None or after is None or after < before):
        return False, f"; not switched to it{measured or ' (not measured)'}: set models.model_path to use it"
    ls.use_tuned(folder, where)
    return True, (f"; {folder.name} now searches with it{measured} and is re-indexing. To keep it after a restart "
                  f"set models.model_path = \"{where}\" in .sg.toml")


def _run_tune_job(ls: SgLanguageServer, job: Job, folder: Folder, run_tune: Callable[..., Any],
                  config_path: str | None, out_dir: str | None, extra: dict[str, Any], apply: bool | None) -> None:
    prog = WorkProgress(ls, f"sg: tuning on {folder.name}", on_cancel=job.cancel.set)
    prog.begin("starting")

    def progress(*args: Any, **kwargs: Any) -> None:
        if len(args) >= 3 and isinstance(args[1], (int, float)) and isinstance(args[2], (int, float)):
            phase, done, total = args[0], args[1], args[2]
            job.message = f"{phase} {done}/{total}"
            prog.report(job.message, 100 * done / total if total else None)
        elif args:
            job.message = " ".join(str(a) for a in args)
            prog.report(job.message)

    try:
        with folder.use(wait=60) as eng:
            report = run_tune(eng, config_path=config_path, out_dir=out_dir, progress=progress, cancel=job.cancel,
                              **extra)
        result = _jsonable(report)
        state = "cancelled" if job.cancel.is_set() or getattr(report, "cancelled", False) else "done"
        said = ""
        if state == "done":
            result["applied"], said = _apply_tuned(ls, folder, report, apply)
        job.result, job.state = result, state
        where = getattr(report, "out_dir", "")
        job.message = "cancelled" if state == "cancelled" else f"done: {where}" if where else "done"
        prog.end(job.message)
        if state == "done":
            ls.tell_user(types.MessageType.Info, f"sg: tuning finished ({job.id}): {where or 'see sg/status'}{said}")
    except Exception as exc:
        logger.exception("tuning failed")
        job.state, job.error = "failed", str(exc) or repr(exc)
        prog.end(f"failed: {job.error}")
        ls.tell_user(types.MessageType.Error, f"sg: tuning failed: {job.error}")
    finally:
        job.finished = time.time()
