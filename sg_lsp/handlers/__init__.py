"""LSP features, one module per group; each module's register(server) attaches its handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import documents, lifecycle, search, status, tune

if TYPE_CHECKING:
    from ..server import SgLanguageServer


def register_all(server: SgLanguageServer) -> None:
    for module in (lifecycle, documents, search, status, tune):
        module.register(server)
