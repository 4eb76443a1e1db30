"""Lifecycle and workspace handlers: initialize/initialized, shutdown/exit, configuration and folder changes,
progress cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types

from .. import indexing
from ..positions import path_to_uri
from ..session import Session

logger = logging.getLogger("sg_lsp")


def on_initialize(session: Session, params: types.InitializeParams) -> None:
    opts = params.initialization_options
    if isinstance(opts, dict) and set(opts) == {"sg"} and isinstance(opts["sg"], dict):
        opts = opts["sg"]
    if opts is not None and not isinstance(opts, dict):
        session.queue_message(types.MessageType.Warning, "sg: initializationOptions must be an object; ignored")
        opts = None
    session.overrides = dict(opts or {})
    folders = list(params.workspace_folders or [])
    if not folders and params.root_uri:
        folders = [types.WorkspaceFolder(uri=params.root_uri, name="")]
    elif not folders and params.root_path:
        folders = [types.WorkspaceFolder(uri=path_to_uri(Path(params.root_path)), name="")]
    for f in folders:
        session.add_folder(f.uri, f.name)


def on_initialized(session: Session, params: types.InitializedParams) -> None:
    indexing.start(session)
    session.pool.submit(indexing.setup_watching, session)  # waits for the client's answer: not on the event loop


async def on_shutdown(session: Session, params: Any) -> None:
    session.shutdown_requested = True
    await asyncio.get_running_loop().run_in_executor(None, session.stop)


def on_exit(session: Session, params: Any) -> None:
    logger.info("exit (shutdown %s)", "received" if session.shutdown_requested else "NOT received")


async def on_configuration(session: Session, params: types.DidChangeConfigurationParams) -> None:
    settings = params.settings
    if isinstance(settings, dict) and isinstance(settings.get("sg"), dict):
        settings = settings["sg"]
    if not settings:
        caps = session.lsp.client_capabilities.workspace
        if not (caps and caps.configuration):
            return
        try:  # pull model: the client only says "something changed"
            got = await session.lsp.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section="sg")]))
            settings = got[0] if got else None
        except Exception as exc:
            logger.info("workspace/configuration failed: %s", exc)
            return
    if not isinstance(settings, dict):
        session.tell_user(types.MessageType.Warning, "sg: settings must be an object; ignored")
        return
    session.overrides = settings
    indexing.apply_settings(session)


def on_folders(session: Session, params: types.DidChangeWorkspaceFoldersParams) -> None:
    for f in params.event.removed:
        session.remove_folder(f.uri)
    for f in params.event.added:
        folder = session.add_folder(f.uri, f.name)
        if folder is not None:
            indexing.watch_folder(session, folder)
            indexing.schedule_index(session, folder)


def on_progress_cancel(session: Session, params: types.WorkDoneProgressCancelParams) -> None:
    cancel = session.progress_cancellers.get(params.token)
    if cancel is not None:
        cancel()


FEATURES: dict[str, Callable[..., Any]] = {
    types.INITIALIZE: on_initialize,
    types.INITIALIZED: on_initialized,
    types.SHUTDOWN: on_shutdown,
    types.EXIT: on_exit,
    types.WORKSPACE_DID_CHANGE_CONFIGURATION: on_configuration,
    types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS: on_folders,
    types.WINDOW_WORK_DONE_PROGRESS_CANCEL: on_progress_cancel,
}
