"""The sg language server: the LanguageServer class and what ties the parts together (one Engine per folder).

Threads: the asyncio loop only parses messages and answers; searches run on a small thread pool; every index
write (initial index, saves, file-watch batches, settings changes) runs on ONE writer thread, debounced
(indexing.py). The features themselves live in handlers/, one module per group.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import FeatureRequestError, JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from engine import BadQuery, ConfigError, Settings, SgError

from . import __version__, indexing, pygls_shim
from .handlers import register_all
from .indexing import FileWatch, Writer
from .jsonrpc import PARSE_ERROR, REQUEST_FAILED, SgProtocol, make_converter
from .positions import uri_to_path
from .session import Folder, Job, folder_for, resolve_settings

logger = logging.getLogger("sg_lsp")

_DEBUG_FAIL = set(filter(None, os.environ.get("SG_LSP_DEBUG_FAIL", "").split(",")))  # test hook: methods that raise


class SgLanguageServer(LanguageServer):
    """pygls' LanguageServer plus the session: folders, the writer, the search pool, jobs, messages to the user."""

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
        self.job_ids = itertools.count(1)
        self._told: dict[str, float] = {}
        self._startup_messages: list[tuple[types.MessageType, str]] | None = []  # None once told
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
        pygls_shim.stop_server(self)  # pygls' own shutdown() may hang joining a reader thread

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
        settings = resolve_settings(root, self.overrides, self.tuned.get(root.resolve()), problems)
        for p in problems:
            self.queue_message(types.MessageType.Warning, f"sg ({name}): {p}")
        return settings

    def use_tuned(self, folder: Folder, model_dir: str) -> None:
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
        return None if path is None else folder_for(self.folders.values(), path)

    def require_folder(self, uri: str) -> tuple[Folder, str]:
        hit = self.folder_for(uri)
        if hit is None:
            raise JsonRpcInvalidParams(f"{uri} is not inside a workspace folder")
        return hit

    def apply_settings(self) -> None:
        """New overrides: search-only changes apply at once; model/index changes re-open and re-index."""
        for folder in list(self.folders.values()):
            new = self.resolve_settings(folder.root, folder.name)
            if new == folder.settings:
                continue
            folder.settings = new  # what the next Engine of this folder opens with
            eng = folder.engine
            if eng is not None and eng.configure(new):
                continue  # search settings: the engine applied them
            folder.cancel_index(supersede=True)  # a running index of the old settings stops after its batch
            self.writer.submit(f"reopen:{folder.uri}", lambda f=folder: indexing.reopen(self, f), front=True)

    def start_indexing(self) -> None:
        if not self.writer.is_alive():
            self.writer.start()
        messages, self._startup_messages = self._startup_messages, None
        for kind, text in messages or []:
            self.tell_user(kind, text)
        if not self.folders:
            self.tell_user(types.MessageType.Info, "sg: no workspace folder is open; nothing to index")
        for folder in self.folders.values():
            self.schedule_index(folder)

    def schedule_index(self, folder: Folder, front: bool = False) -> None:
        """Queue a walk of `folder` on the writer (once: an index already queued is not queued twice)."""
        self.writer.submit(f"index:{folder.uri}", lambda: indexing.index_folder(self, folder), front=front)

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


server = SgLanguageServer()
register_all(server)

