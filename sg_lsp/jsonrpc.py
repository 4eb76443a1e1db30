"""JSON-RPC strictness: every request answered exactly once, error codes, a converter that refuses wrong types.

pygls internals are reached only through pygls_shim.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from typing import Any

import attrs
import cattrs
from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcRequestCancelled
from pygls.protocol import (
    JsonRPCNotification,
    JsonRPCProtocol,
    JsonRPCRequestMessage,
    LanguageServerProtocol,
    default_converter,
)

from . import protocol, pygls_shim

logger = logging.getLogger("sg_lsp")

# JSON-RPC / LSP error codes pygls has no class for (or that we send ourselves).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002
REQUEST_FAILED = -32803  # LSP 3.17: the request was valid but failed; the message says why


def _strict_str(value: Any, _type: Any) -> str:
    # cattrs' default str hook calls str(value): {"command": 5} would silently become "5".
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


def make_converter() -> cattrs.Converter:
    """lsprotocol's converter, strict about strings, that also knows the sg/* params and results (protocol.py)."""
    conv = default_converter()
    conv.register_structure_hook(str, _strict_str)
    protocol.register_hooks(conv)
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


class SgProtocol(pygls_shim.SendHook, LanguageServerProtocol):
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
        if pygls_shim.is_shut_down(self):
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
        if mtype is None:  # sg/*: their typed params (protocol.py); unknown methods: raw (-> MethodNotFound)
            cls = protocol.PARAMS.get(method)
            if cls is not None:
                try:
                    params = protocol.structure(pygls_shim.converter(self), params, cls, method)
                except protocol.Invalid as exc:
                    logger.info("bad params for %s: %s", method, exc)
                    self.send_error(msg_id, INVALID_PARAMS, str(exc))
                    return
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
                request = pygls_shim.converter(self).structure(message, mtype)
            except Exception as exc:
                logger.info("bad params for %s: %s", method, exc)
                self.send_error(msg_id, INVALID_PARAMS, describe_structure_error(exc, method))
                return
        if method == types.INITIALIZE:
            self.initialize_seen = True
        super().handle_message(request)

    def _notification(self, method: str, message: dict) -> None:
        if method == types.EXIT:
            # lsprotocol's `method: Literal["exit"]` does not fit pygls' `method: str` protocol attribute (invariant)
            super().handle_message(types.ExitNotification())  # type: ignore[arg-type]
            return
        shut = pygls_shim.is_shut_down(self)
        if shut or not self.initialize_seen:
            logger.info("dropping notification %s (%s)", method, "after shutdown" if shut else
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
                note = pygls_shim.converter(self).structure(message, mtype)
            except Exception as exc:
                logger.warning("%s", describe_structure_error(exc, method))
                return
        super().handle_message(note)

    def _response(self, message: dict) -> None:
        try:
            structured = JsonRPCProtocol.structure_message(self, message)
        except Exception as exc:
            fut = pygls_shim.pop_request_future(self, message.get("id"))
            if fut is not None and not fut.done():
                fut.set_exception(JsonRpcInternalError(f"unreadable response from the client: {exc}"))
            return
        super().handle_message(structured)

    def send_error(self, msg_id: Any, code: int, text: str) -> None:
        self.send_message({"jsonrpc": JsonRPCProtocol.VERSION, "id": msg_id,
                           "error": {"code": code, "message": text}})

    def send_message(self, data: Any) -> None:
        """Every outgoing message comes here (pygls_shim.SendHook): written on the event loop's thread."""
        loop = self.loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            try:
                loop.call_soon_threadsafe(pygls_shim.write_message, self, data)
                return
            except RuntimeError:  # loop closed (exiting): write directly, best effort
                pass
        pygls_shim.write_message(self, data)


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

def check_cancel(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise JsonRpcRequestCancelled("the request was cancelled")

