"""The one place that touches pygls internals (private attributes with no public equivalent in pygls 2.x).

Tested by tests/test_pygls_shim.py against the installed pygls; pyproject.toml pins pygls to the versions tested.
Everything else in sg_lsp uses pygls' public API only.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import cattrs
from pygls.protocol import JsonRPCProtocol


def is_shut_down(protocol: JsonRPCProtocol) -> bool:
    """True once the client sent `shutdown` (pygls keeps the flag private)."""
    return bool(protocol._shutdown)


def converter(protocol: JsonRPCProtocol) -> cattrs.Converter:
    """The protocol's cattrs converter (lsprotocol hooks plus ours), to structure params ourselves."""
    return protocol._converter


def pop_request_future(protocol: JsonRPCProtocol, msg_id: Any) -> Future | None:
    """Forget a request this server sent to the client and return its future (None if unknown)."""
    return protocol._request_futures.pop(msg_id, None)


def write_message(protocol: JsonRPCProtocol, data: Any) -> None:
    """Serialise and write one message to the transport, bypassing any override of the send path."""
    JsonRPCProtocol._send_data(protocol, data)


class SendHook:
    """Mixin for a protocol: every outgoing message (responses, notifications, server requests) goes through
    `self.send_message(data)`, which must end in write_message(self, data). pygls has no public send hook."""

    def _send_data(self, data: Any) -> None:
        self.send_message(data)  # type: ignore[attr-defined]


def stop_server(server: Any) -> None:
    """LanguageServer.shutdown without waiting for the thread pool: pygls' own shutdown() joins it, and a
    reader thread may sit in stdin.readline() forever."""
    if server._stop_event is not None:
        server._stop_event.set()
    if server._thread_pool:
        server._thread_pool.shutdown(wait=False, cancel_futures=True)
    if server._server:
        server._server.close()
