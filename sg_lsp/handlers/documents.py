"""Document and file-change notifications: each only records what changed; the writer re-indexes it later."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lsprotocol import types

from ..indexing import CHANGE_DEBOUNCE, SAVE_DEBOUNCE, WATCH_DEBOUNCE
from ..session import Session


def on_save(session: Session, params: types.DidSaveTextDocumentParams) -> None:
    session.note_uris([(params.text_document.uri, "changed")], SAVE_DEBOUNCE)


def on_change(session: Session, params: types.DidChangeTextDocumentParams) -> None:
    """Unsaved edits are searchable too: the writer indexes the open document's text in place of the file."""
    session.note_uris([(params.text_document.uri, "buffer")], CHANGE_DEBOUNCE)


def on_close(session: Session, params: types.DidCloseTextDocumentParams) -> None:
    """A document closed after edits: index the file as it is on disk again (its unsaved text is gone)."""
    hit = session.folder_for(params.text_document.uri)
    if hit is not None and session.unsaved.pop((hit[0].uri, hit[1]), None) is not None:
        session.note_uris([(params.text_document.uri, "changed")], SAVE_DEBOUNCE)


def on_watched(session: Session, params: types.DidChangeWatchedFilesParams) -> None:
    session.note_uris([(c.uri, "deleted" if c.type == types.FileChangeType.Deleted else "changed")
                       for c in params.changes], WATCH_DEBOUNCE)


FEATURES: dict[str, Callable[..., Any]] = {
    types.TEXT_DOCUMENT_DID_SAVE: on_save,
    types.TEXT_DOCUMENT_DID_CHANGE: on_change,
    types.TEXT_DOCUMENT_DID_CLOSE: on_close,
    types.WORKSPACE_DID_CHANGE_WATCHED_FILES: on_watched,
}
