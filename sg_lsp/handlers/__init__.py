"""LSP features, one module per group. A handler is `handler(session, params)` (a command's:
`handler(session, *arguments)`); each module lists its own in FEATURES (and COMMANDS), and register_all attaches
them to the pygls server, bound to the session."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pygls.lsp.server import LanguageServer

from ..session import Session
from . import documents, lifecycle, search, status, tune

MODULES = (lifecycle, documents, search, status, tune)


def bind(session: Session, handler: Callable[..., Any]) -> Callable[[Any], Any]:
    """`handler` with the session filled in (a coroutine function stays one: pygls awaits those)."""
    if inspect.iscoroutinefunction(handler):
        async def bound_async(params: Any) -> Any:
            return await handler(session, params)
        return bound_async

    def bound(params: Any) -> Any:
        return handler(session, params)
    return bound


def bind_command(session: Session, handler: Callable[..., Any]) -> Callable[..., Any]:
    # No annotation on `args`: pygls reads a command's annotations to structure its arguments (raw JSON here).
    async def bound(*args):
        return await handler(session, *args)
    return bound


def register_all(server: LanguageServer, session: Session) -> None:
    for module in MODULES:
        for method, handler in module.FEATURES.items():
            server.feature(method)(bind(session, handler))
        for name, handler in getattr(module, "COMMANDS", {}).items():
            server.command(name)(bind_command(session, handler))
