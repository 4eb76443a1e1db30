"""sg_lsp/pygls_shim.py against the installed pygls: each private it reaches still exists and means what the server
relies on. A pygls upgrade that breaks one fails here, not in the middle of an editor session."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from sg_lsp import pygls_shim
from sg_lsp.jsonrpc import make_converter


class Collect:
    """A pygls writer that keeps what was written."""

    def __init__(self) -> None:
        self.data: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(d.split(b"\r\n\r\n", 1)[-1]) for d in self.data]


class Hooked(pygls_shim.SendHook, LanguageServerProtocol):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.routed: list[Any] = []

    def send_message(self, data: Any) -> None:
        self.routed.append(data)
        pygls_shim.write_message(self, data)


def server(protocol_cls: type = LanguageServerProtocol) -> tuple[LanguageServer, Collect]:
    ls = LanguageServer("shim-test", "0", protocol_cls=protocol_cls, converter_factory=make_converter)
    out = Collect()
    ls.protocol.set_writer(out)
    return ls, out


def test_every_outgoing_message_goes_through_the_send_hook() -> None:
    ls, out = server(Hooked)
    ls.protocol.notify("window/logMessage", types.LogMessageParams(type=types.MessageType.Log, message="hi"))
    fut = ls.protocol.send_request("workspace/configuration", types.ConfigurationParams(items=[]), msg_id="r1")
    assert [m["method"] for m in out.messages()] == ["window/logMessage", "workspace/configuration"]
    assert len(ls.protocol.routed) == 2  # both went through send_message, then reached the writer
    assert out.messages()[0]["params"]["message"] == "hi"
    assert not fut.done()


def test_converter_is_the_one_the_server_was_built_with() -> None:
    ls, _ = server()
    conv = pygls_shim.converter(ls.protocol)
    with pytest.raises(ValueError):
        conv.structure(5, str)  # make_converter's strict str hook, not cattrs' str(5)
    assert conv.structure({"query": "x"}, types.WorkspaceSymbolParams).query == "x"


def test_pop_request_future_forgets_a_sent_request() -> None:
    ls, _ = server()
    fut = ls.protocol.send_request("workspace/configuration", None, msg_id="cfg-1")
    assert pygls_shim.pop_request_future(ls.protocol, "cfg-1") is fut
    assert pygls_shim.pop_request_future(ls.protocol, "cfg-1") is None
    assert pygls_shim.pop_request_future(ls.protocol, "never-sent") is None


def test_is_shut_down_follows_the_shutdown_request() -> None:
    ls, out = server()

    async def run() -> None:
        assert pygls_shim.is_shut_down(ls.protocol) is False
        ls.protocol.handle_message(types.ShutdownRequest(id=1))

    asyncio.run(run())
    assert pygls_shim.is_shut_down(ls.protocol) is True
    assert out.messages()[-1] == {"jsonrpc": "2.0", "id": 1, "result": None}


def test_stop_server_does_not_wait_for_the_thread_pool() -> None:
    ls, _ = server()
    pygls_shim.stop_server(ls)  # nothing started yet: nothing to stop, no error
    pool = ls.thread_pool
    pool.submit(lambda: None).result(timeout=5)
    ls._stop_event = threading.Event()  # what start_io/start_tcp set up
    pygls_shim.stop_server(ls)
    assert ls._stop_event.is_set()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
