"""Document and file-change notifications: each only records what changed; the writer re-indexes it later."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from ..indexing import CHANGE_DEBOUNCE, SAVE_DEBOUNCE, WATCH_DEBOUNCE

if TYPE_CHECKING:
    from ..server import SgLanguageServer


def on_save(ls: SgLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.note_uris([(params.text_document.uri, "changed")], SAVE_DEBOUNCE)


def on_change(ls: SgLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    """Unsaved edits are searchable too: the writer indexes the open document's text in place of the file."""
    ls.note_uris([(params.text_document.uri, "buffer")], CHANGE_DEBOUNCE)


def on_close(ls: SgLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    """A document closed after edits: index the file as it is on disk again (its unsaved text is gone)."""
    hit = ls.folder_for(params.text_document.uri)
    if hit is not None and ls.unsaved.pop((hit[0].uri, hit[1]), None) is not None:
        ls.note_uris([(params.text_document.uri, "changed")], SAVE_DEBOUNCE)


def on_watched(ls: SgLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
    ls.note_uris([(c.uri, "deleted" if c.type == types.FileChangeType.Deleted else "changed")
                  for c in params.changes], WATCH_DEBOUNCE)


def register(server: SgLanguageServer) -> None:
    server.feature(types.TEXT_DOCUMENT_DID_SAVE)(on_save)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(on_change)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(on_close)
    server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(on_watched)
