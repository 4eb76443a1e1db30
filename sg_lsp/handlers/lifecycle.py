"""Lifecycle and workspace handlers: initialize/initialized, shutdown/exit, configuration and folder changes,
progress cancellation."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from .. import indexing
from ..positions import path_to_uri

if TYPE_CHECKING:
    from ..server import SgLanguageServer

logger = logging.getLogger("sg_lsp")


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


def on_initialized(ls: SgLanguageServer, params: types.InitializedParams) -> None:
    ls.start_indexing()
    ls.pool.submit(indexing.setup_watching, ls)  # waits for the client's answer: not on the event loop


async def on_shutdown(ls: SgLanguageServer, params: Any) -> None:
    ls.shutdown_requested = True
    await asyncio.get_running_loop().run_in_executor(None, ls.stop)


def on_exit(ls: SgLanguageServer, params: Any) -> None:
    logger.info("exit (shutdown %s)", "received" if ls.shutdown_requested else "NOT received")


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


def on_folders(ls: SgLanguageServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    for f in params.event.removed:
        ls.remove_folder(f.uri)
    for f in params.event.added:
        folder = ls.add_folder(f.uri, f.name)
        if folder is not None:
            if ls.watch is not None:
                ls.watch.watch(folder)
            ls.schedule_index(folder)

def on_progress_cancel(ls: SgLanguageServer, params: types.WorkDoneProgressCancelParams) -> None:
    cancel = ls.progress_cancellers.get(params.token)
    if cancel is not None:
        cancel()


def register(server: SgLanguageServer) -> None:
    server.feature(types.INITIALIZE)(on_initialize)
    server.feature(types.INITIALIZED)(on_initialized)
    server.feature(types.SHUTDOWN)(on_shutdown)
    server.feature(types.EXIT)(on_exit)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(on_configuration)
    server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(on_folders)
    server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)(on_progress_cancel)
