"""The sg language server's wiring: the pygls server (the connection to the client), the Session (the state), and
the features of handlers/ registered on the one, bound to the other.

Threads: the asyncio loop only parses messages and answers; searches run on the session's thread pool; every index
write (initial index, saves, file-watch batches, settings changes) runs on ONE writer thread, debounced
(indexing.py).
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import FeatureRequestError, JsonRpcException
from pygls.lsp.server import LanguageServer

from . import __version__, indexing, pygls_shim
from .handlers import register_all
from .jsonrpc import PARSE_ERROR, SgProtocol, make_converter
from .session import Session

logger = logging.getLogger("sg_lsp")


class SgServer(LanguageServer):
    """pygls' LanguageServer with sg's strict protocol and converter (jsonrpc.py); it owns the connection, and its
    `session` the state."""

    def __init__(self) -> None:
        super().__init__(name="sg-lsp", version=__version__, protocol_cls=SgProtocol,
                         converter_factory=make_converter, max_workers=4)
        self.protocol: SgProtocol
        self.session = Session(self, make_writer=indexing.Writer)

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls calls this with source=JsonRpcException when json.loads failed in the read loop (our
        # structure_message never raises): the sender gets a ParseError with a null id, as JSON-RPC says.
        if source is JsonRpcException and isinstance(error, ValueError):
            self.protocol.send_error(None, PARSE_ERROR, f"Parse error: {error}")
            return
        if source is FeatureRequestError:
            return  # already answered with an error response
        logger.error("server error (%s): %s", getattr(source, "__name__", source), error)
        self.session.tell_user(types.MessageType.Error, f"sg: internal error: {error}")

    def shutdown(self) -> None:
        pygls_shim.stop_server(self)  # pygls' own shutdown() may hang joining a reader thread


server = SgServer()
register_all(server, server.session)
