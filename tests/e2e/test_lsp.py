"""End-to-end tests of the sg language server: the real `python -m sg_lsp --stdio` process, driven by pytest-lsp
(and by a raw Content-Length JSON-RPC client for the malformed-message cases)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Callable, Union

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import JsonRPCResponseMessage
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ROOT = Path(__file__).resolve().parents[2]
from tests.support import eventually  # noqa: E402
from bench.reliability.rellib import SERVER, Raw  # noqa: E402  (the raw JSON-RPC client the reliability benches use)
from tests.support.corpus import MAXSIM_FILES, write  # noqa: E402
LEXICAL = {"models": {"enabled": False}}
pytestmark = pytest.mark.timeout(120)

FILES = {
    "src/mathutil.py": '''"""Small math helpers."""


def fibonacci(n):
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def sum_of_squares(values):
    total = 0
    for value in values:
        total += value * value
    return total


def sum_of_cubes(values):
    total = 0
    for value in values:
        total += value * value * value
    return total


class Matrix:
    """A dense matrix of rows."""

    def __init__(self, rows):
        self.rows = rows

    def transpose(self):
        return Matrix([list(col) for col in zip(*self.rows)])
''',
    "src/strings.js": '''// String helpers.

function reverseString(text) {
  return text.split("").reverse().join("");
}

function capitalizeWords(text) {
  return text.replace(/\\b\\w/g, (c) => c.toUpperCase());
}
''',
    # A function that starts after Japanese text and an emoji on its first line and ends on a Japanese line:
    # its range must be counted in UTF-16 code units (the emoji is 2 units, 1 code point).
    "src/greet.js": '/* 日本語😀 */ function greetUser(name) {\n  return "こんにちは😀 " + name; }\n',
    "src/files_ja.py": '''def read_config_file(path):
    """設定ファイルを読み込む。"""
    with open(path, encoding="utf-8") as handle:
        return handle.read()
''',
    # Two functions on one line after a comment with an emoji: the position's character decides which one encloses
    # the cursor (in UTF-16 units the emoji counts twice), and each has a twin elsewhere that sg/similar must find.
    "src/oneline.js": "/* 日本😀 */ function alphaSum(numbers) { let accumulator = 0; for (const number of numbers) "
                      "{ accumulator += number; } return accumulator; } function betaJoin(fragments) "
                      "{ return fragments.join(separatorDash); }\n",
    "src/twins.js": "function gammaSum(numbers) {\n  let accumulator = 0;\n  for (const number of numbers) "
                    "{ accumulator += number; }\n  return accumulator;\n}\n\n"
                    "function deltaJoin(fragments) {\n  return fragments.join(separatorDash);\n}\n",
    "docs/guide.md": "# Installation guide\n\nRun the installer and follow the prompts.\n\n"
                     "## Troubleshooting network proxies\n\nSet HTTPS_PROXY before running the installer.\n",
}


def write_workspace(root: Path) -> Path:
    for rel, text in FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


def line_of(root: Path, rel: str, needle: str) -> int:
    for i, line in enumerate((root / rel).read_text(encoding="utf-8").split("\n")):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {rel}")


def make_client() -> LanguageClient:
    client = pytest_lsp.make_test_lsp_client()
    # pygls turns results of custom requests into namedtuples (and renames keys such as "sem:x"): keep JSON.
    conv = client.protocol._converter
    conv.register_structure_hook(JsonRPCResponseMessage, lambda obj, cls: cls(**obj))
    # lsprotocol reads any code action that has a "command" as a Command; LSP clients look at its type.
    conv.register_structure_hook(
        Union[types.Command, types.CodeAction],
        lambda obj, _: conv.structure(obj, types.Command if isinstance(obj.get("command"), str) else types.CodeAction))
    registrations: list[Any] = []
    client.registrations = registrations  # type: ignore[attr-defined]

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def _register(params: types.RegistrationParams) -> None:
        registrations.extend(params.registrations)

    return client


def config(**env: str) -> ClientServerConfig:
    return ClientServerConfig(server_command=SERVER, client_factory=make_client,
                              server_env={**os.environ, "PYTHONPATH": str(ROOT), **env})


async def start(cfg: ClientServerConfig, root: Path, options: dict | None,
                caps: types.ClientCapabilities | None = None) -> LanguageClient:
    client = await cfg.start()
    await client.initialize_session(types.InitializeParams(
        capabilities=caps or client_capabilities("visual-studio-code"),
        root_uri=root.as_uri(), workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        initialization_options=options))
    return client


async def stop(client: LanguageClient) -> None:
    try:
        await asyncio.wait_for(client.shutdown_session(), 15)
    finally:
        await client.stop()


async def request(client: LanguageClient, method: str, params: Any = None, msg_id: Any = None) -> Any:
    return await asyncio.wait_for(client.protocol.send_request_async(method, params, msg_id=msg_id), 30)


def status_of(client: LanguageClient) -> Callable[[], Any]:
    return lambda: request(client, "sg/status")


async def wait_ready(client: LanguageClient, timeout: float = 30.0) -> dict:
    return await eventually(status_of(client), lambda st: st["state"] == "ready", timeout)


async def wait_progress_end(client: LanguageClient, title_part: str, timeout: float = 10.0) -> list[Any]:
    def finished():
        return next((r for r in client.progress_reports.values()
                     if r and isinstance(r[0], types.WorkDoneProgressBegin) and title_part in r[0].title
                     and isinstance(r[-1], types.WorkDoneProgressEnd)), None)
    return await eventually(finished, timeout=timeout)


async def search(client: LanguageClient, query: str, **kw: Any) -> dict:
    return await request(client, "sg/search", {"query": query, **kw})


async def error_of(coro: Any) -> JsonRpcException:
    with pytest.raises(JsonRpcException) as info:
        await coro
    return info.value


# -- one lexical server shared by the read-mostly tests ---------------------------------------------------------
@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_workspace(tmp_path_factory.mktemp("ws"))


@pytest_lsp.fixture(scope="module", config=config())
async def lex(lsp_client: LanguageClient, workspace: Path):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=workspace.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
        initialization_options={**LEXICAL, "bogus_key": 1}))
    await wait_ready(lsp_client)
    yield
    await lsp_client.shutdown_session()


module = pytest.mark.asyncio(loop_scope="module")


@module
async def test_initialize_progress_status_and_settings_problems(lex: LanguageClient):
    reports = await wait_progress_end(lex, "sg: indexing")
    assert reports[0].cancellable is True
    assert "files" in reports[-1].message and "chunks" in reports[-1].message
    status = await wait_ready(lex)
    assert status["files"] == len(FILES) and status["chunks"] >= 8 and status["jobs"] == []
    assert status["folders"][0]["complete"] is True
    # The unknown setting is reported, not fatal.
    assert any("bogus_key" in m.message and m.type == types.MessageType.Warning for m in lex.messages)
    # The client watches files for us (dynamic registration).
    regs = lex.registrations  # type: ignore[attr-defined]
    assert any(r.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES for r in regs)


@module
async def test_workspace_symbol_kinds_and_containers(lex: LanguageClient, workspace: Path):
    syms = await lex.workspace_symbol_async(types.WorkspaceSymbolParams(query="fibonacci"))
    top = syms[0]
    assert (top.name, top.kind, top.container_name) == ("fibonacci", types.SymbolKind.Function, "src/mathutil.py")
    assert top.location.uri == (workspace / "src/mathutil.py").as_uri()
    assert top.location.range.start.line == line_of(workspace, "src/mathutil.py", "def fibonacci")

    syms = await lex.workspace_symbol_async(types.WorkspaceSymbolParams(query="transpose"))
    assert (syms[0].name, syms[0].kind, syms[0].container_name) == ("transpose", types.SymbolKind.Method, "Matrix")
    syms = await lex.workspace_symbol_async(types.WorkspaceSymbolParams(query="Matrix dense rows"))
    assert any(s.kind == types.SymbolKind.Class and s.name == "Matrix" for s in syms)
    syms = await lex.workspace_symbol_async(types.WorkspaceSymbolParams(query="proxy troubleshooting"))
    assert syms[0].kind == types.SymbolKind.String and syms[0].container_name == "docs/guide.md"
    assert await lex.workspace_symbol_async(types.WorkspaceSymbolParams(query="")) == []


@module
@pytest.mark.parametrize("mode", ["hybrid", "semantic", "lexical"])
async def test_sg_search_modes(lex: LanguageClient, workspace: Path, mode: str):
    res = await search(lex, "reverse string", mode=mode, limit=3, explain=True)
    assert set(res) >= {"results", "model", "elapsedMs"}
    assert 1 <= len(res["results"]) <= 3
    top = res["results"][0]
    assert top["symbol"] == "reverseString" and top["kind"] == "function"
    assert top["uri"] == (workspace / "src/strings.js").as_uri()
    line = line_of(workspace, "src/strings.js", "function reverseString")
    assert top["range"]["start"] == {"line": line, "character": 0}
    assert set(top) >= {"uri", "range", "symbol", "kind", "score", "snippet", "space", "explanation"}
    assert "lexical" in top["explanation"]
    assert set(res["route"]) == {"code", "prose", "cjk"} and res["route"]["code"] > 0.5, res["route"]
    assert res["model"] == "lexical"  # models are disabled in this server
    if mode != "lexical":
        assert any("lexical" in n for n in res["notes"])  # says why it fell back


@module
async def test_sg_search_paths_and_bad_params(lex: LanguageClient, workspace: Path):
    res = await search(lex, "text", paths=["src/*.js"])
    assert res["results"] and all(r["uri"].endswith(".js") for r in res["results"])
    res = await search(lex, "text", paths=[str(workspace / "src")])
    assert all("/src/" in r["uri"] for r in res["results"])
    bad = [
        ({"query": "x", "paths": ["../outside"]}, "outside the workspace"),
        ({"query": "x", "paths": ["/etc"]}, "outside the workspace"),
        ({"query": "x", "paths": ["src/../../etc/*"]}, "outside the workspace"),
        ({"query": "x", "paths": "src"}, "'paths' must be an array"),
        ({"query": "x", "limit": 10**6}, "limit"),
        ({"query": "x", "limit": "10"}, "'limit' must be an integer"),
        ({"query": "x" * 5000}, "5000 characters"),
        ({"query": "x", "mode": "fuzzy"}, "'mode' must be one of"),
        ({"query": "x", "explain": "yes"}, "'explain' must be a boolean"),
        ({"query": "x", "limit": True}, "'limit' must be an integer"),
        ({"query": "x", "paths": ["src", 3]}, "'paths' must be an array of strings"),
        ({"query": "x", "bogus": 1}, "unknown field 'bogus'"),
        ({"query": 5}, "'query'"),
        ({}, "'query'"),
        ({"query": "   "}, "empty"),
    ]
    for params, words in bad:
        err = await error_of(request(lex, "sg/search", params))
        assert err.code == -32602, (params, err)
        assert words in err.message, (params, err.message)
    err = await error_of(request(lex, "sg/search", ["positional"]))
    assert err.code == -32602
    # The server is still fine.
    assert (await search(lex, "fibonacci"))["results"]


@module
async def test_code_action_and_find_similar_command(lex: LanguageClient, workspace: Path):
    uri = (workspace / "src/mathutil.py").as_uri()
    line = line_of(workspace, "src/mathutil.py", "total += value * value\n".strip())
    actions = await lex.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=line, character=4), end=types.Position(line=line, character=4)),
        context=types.CodeActionContext(diagnostics=[])))
    assert [a.title for a in actions] == ["Find similar functions"]
    cmd = actions[0].command
    assert cmd.command == "sg.findSimilar"
    locations = await lex.workspace_execute_command_async(types.ExecuteCommandParams(
        command=cmd.command, arguments=cmd.arguments))
    assert locations, "no similar functions"
    own = line_of(workspace, "src/mathutil.py", "def sum_of_squares")
    assert not any(loc["uri"] == uri and loc["range"]["start"]["line"] == own for loc in locations)
    assert locations[0]["uri"] == uri
    assert locations[0]["range"]["start"]["line"] == line_of(workspace, "src/mathutil.py", "def sum_of_cubes")
    # Not on a function: no action.
    actions = await lex.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
        context=types.CodeActionContext(diagnostics=[])))
    assert not actions
    err = await error_of(lex.workspace_execute_command_async(types.ExecuteCommandParams(
        command="sg.findSimilar", arguments=["not-a-uri"])))
    assert err.code == -32602


@module
async def test_sg_similar_both_param_forms(lex: LanguageClient, workspace: Path):
    uri = (workspace / "src/mathutil.py").as_uri()
    line = line_of(workspace, "src/mathutil.py", "def sum_of_cubes")
    a = await request(lex, "sg/similar", {"textDocument": {"uri": uri},
                                                 "position": {"line": line + 2, "character": 0}})
    b = await request(lex, "sg/similar", {"uri": uri, "line": line})
    assert a["results"][0]["symbol"] == b["results"][0]["symbol"] == "sum_of_squares"
    assert all(r["symbol"] != "sum_of_cubes" for r in a["results"])
    err = await error_of(request(lex, "sg/similar", {"uri": uri}))
    assert err.code == -32602
    err = await error_of(request(lex, "sg/similar", {"uri": "file:///elsewhere/x.py", "line": 1}))
    assert err.code == -32602 and "not inside a workspace folder" in err.message
    err = await error_of(request(lex, "sg/similar", {"textDocument": {"uri": uri}, "position": {"line": "3"}}))
    assert err.code == -32602 and "'position.line' must be an integer" in err.message


def oneline_columns() -> tuple[str, int]:
    """The line holding alphaSum and betaJoin, and the code-point column just past alphaSum's closing brace (a
    cursor there is still in alphaSum; one column on, at betaJoin's first letter, it is in betaJoin)."""
    line = FILES["src/oneline.js"].split("\n")[0]
    return line, line.index(" function betaJoin")


@module
async def test_similar_uses_the_character_of_the_position(lex: LanguageClient, workspace: Path):
    uri = (workspace / "src/oneline.js").as_uri()
    line, end_alpha = oneline_columns()

    def utf16(cp: int) -> int:
        return len(line[:cp].encode("utf-16-le")) // 2

    twins = {"gammaSum": line_of(workspace, "src/twins.js", "function gammaSum"),
             "deltaJoin": line_of(workspace, "src/twins.js", "function deltaJoin")}
    # The cursor just past alphaSum's brace, then on betaJoin's first letter. Read as code points, the UTF-16
    # column of the first (one more, for the emoji) would land on the second; ignoring the character, both would
    # name the same function.
    for cp, want in ((end_alpha, "gammaSum"), (end_alpha + 1, "deltaJoin")):
        pos = {"line": 0, "character": utf16(cp)}
        res = await request(lex, "sg/similar", {"textDocument": {"uri": uri}, "position": pos})
        assert res["results"][0]["symbol"] == want, (pos, res["results"][:2])
        # the code action finds the same function, and its command carries the position
        at = types.Position(**pos)
        actions = await lex.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=at, end=at),
            context=types.CodeActionContext(diagnostics=[])))
        cmd = actions[0].command
        locations = await lex.workspace_execute_command_async(types.ExecuteCommandParams(
            command=cmd.command, arguments=cmd.arguments))
        assert locations[0]["range"]["start"]["line"] == twins[want], (pos, cmd.arguments, locations[:2])
        # [uri, line, character] says the same
        locations = await lex.workspace_execute_command_async(types.ExecuteCommandParams(
            command="sg.findSimilar", arguments=[uri, 0, utf16(cp)]))
        assert locations[0]["range"]["start"]["line"] == twins[want]


@module
async def test_utf16_ranges_on_a_japanese_line(lex: LanguageClient, workspace: Path):
    res = await search(lex, "greetUser", mode="lexical")
    top = res["results"][0]
    assert top["symbol"] == "greetUser"
    first, last = FILES["src/greet.js"].split("\n")[:2]
    start_cp = first.index("function")
    assert top["range"]["start"] == {"line": 0, "character": len(first[:start_cp].encode("utf-16-le")) // 2}
    assert top["range"]["start"]["character"] == start_cp + 1  # the emoji is two UTF-16 units
    assert top["range"]["end"] == {"line": 1, "character": len(last.encode("utf-16-le")) // 2}
    syms = await lex.workspace_symbol_async(types.WorkspaceSymbolParams(query="greetUser"))
    assert syms[0].location.range.start.character == start_cp + 1


@module
async def test_did_save_makes_new_code_findable(lex: LanguageClient, workspace: Path):
    path = workspace / "src/mathutil.py"
    path.write_text(path.read_text(encoding="utf-8") + "\n\ndef quaternion_slerp_blend(a, b, t):\n"
                    "    return a * (1 - t) + b * t\n", encoding="utf-8")
    t0 = time.monotonic()
    lex.text_document_did_save(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=path.as_uri())))
    await eventually(lambda: search(lex, "quaternion slerp blend", mode="lexical", limit=1),
                     lambda res: res["results"] and res["results"][0]["symbol"] == "quaternion_slerp_blend",
                     timeout=2.0, interval=0.02)
    assert time.monotonic() - t0 < 1.0


@module
async def test_watched_file_events(lex: LanguageClient, workspace: Path):
    new = workspace / "src/generated_codec.py"
    new.write_text("def decode_base85_payload(blob):\n    return blob\n", encoding="utf-8")
    lex.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=new.as_uri(), type=types.FileChangeType.Created)]))
    await poll_symbol(lex, "decode base85 payload", "decode_base85_payload")
    new.unlink()
    lex.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=new.as_uri(), type=types.FileChangeType.Deleted)]))
    await poll_symbol(lex, "decode base85 payload", "decode_base85_payload", present=False)


@module
async def test_unsaved_edits_are_searchable_until_closed(lex: LanguageClient, workspace: Path):
    path = workspace / "src/mathutil.py"
    on_disk = path.read_text(encoding="utf-8")
    uri = path.as_uri()
    lex.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=on_disk)))
    lex.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(
            text=on_disk + "\n\ndef gyroscope_drift_estimate(samples):\n    return sum(samples)\n")]))
    await poll_symbol(lex, "gyroscope drift estimate", "gyroscope_drift_estimate")
    assert path.read_text(encoding="utf-8") == on_disk
    # a walk of the folder reads the disk, then gives the edited document its text back
    walks = finished_walks(lex)
    await request(lex, "sg/reindex")
    await eventually(lambda: finished_walks(lex) > walks)
    await poll_symbol(lex, "gyroscope drift estimate", "gyroscope_drift_estimate")
    # closed without saving: the file on disk is what is indexed again
    lex.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    await poll_symbol(lex, "gyroscope drift estimate", "gyroscope_drift_estimate", present=False)
    await poll_symbol(lex, "sum of squares", "sum_of_squares")
    # a change to a document the client never opened is a protocol error: logged, nothing indexed, still serving
    lex.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=(workspace / "src/never_opened.py").as_uri(), version=1),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text="def ghost_function_x():\n    pass\n")]))
    # A save after it is a barrier: the writer applies pending changes in order (merged into one batch), so once
    # the saved function is findable, the change above has been handled too.
    path.write_text(on_disk + "\n\ndef barrier_after_ghost_change():\n    return 1\n", encoding="utf-8")
    lex.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    await poll_symbol(lex, "barrier after ghost change", "barrier_after_ghost_change")
    assert not [r for r in (await search(lex, "ghost function", mode="lexical"))["results"]
                if r["symbol"] == "ghost_function_x"]


def finished_walks(client: LanguageClient) -> int:
    return sum(1 for r in client.progress_reports.values() if r and isinstance(r[0], types.WorkDoneProgressBegin)
               and "sg: indexing" in r[0].title and isinstance(r[-1], types.WorkDoneProgressEnd))


async def poll_symbol(client: LanguageClient, query: str, symbol: str, present: bool = True,
                      timeout: float = 5.0) -> None:
    """Wait until a lexical search for `query` finds (or, with present=False, no longer finds) `symbol`."""
    await eventually(lambda: search(client, query, mode="lexical"),
                     lambda res: any(r["symbol"] == symbol for r in res["results"]) == present, timeout)


# -- servers of their own ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_request_and_progress_cancellation(tmp_path: Path):
    root = write_workspace(tmp_path)
    client = await start(config(SG_LSP_DEBUG_SEARCH_DELAY="3", SG_LSP_DEBUG_INDEX_DELAY="30"), root, LEXICAL)
    try:
        # The index waits (test hook); cancel it through its progress token.
        t0 = time.monotonic()
        await eventually(lambda: any(client.progress_reports.values()), interval=0.02)
        token = next(t for t, r in client.progress_reports.items() if r)
        assert (await request(client, "sg/status"))["state"] == "indexing"  # answered while indexing
        client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
        reports = await wait_progress_end(client, "sg: indexing")
        assert "cancelled" in reports[-1].message
        assert time.monotonic() - t0 < 8
        # A slow search (test hook) cancelled by the client gets RequestCancelled at once.
        for method, params in (("sg/search", {"query": "fibonacci"}), ("workspace/symbol", None)):
            t1 = time.monotonic()
            before = set(client.protocol._request_futures)
            if params is None:
                task = asyncio.ensure_future(client.workspace_symbol_async(
                    types.WorkspaceSymbolParams(query="fibonacci")))
            else:
                task = asyncio.ensure_future(request(client, method, params, msg_id=f"slow-{method}"))
            # the request is on its way once the client waits for its answer (the server reads messages in order,
            # so the cancel below always finds it in flight: the search hook holds it for 3 s)
            sent = await eventually(lambda: set(client.protocol._request_futures) - before, interval=0.01)
            (msg_id,) = sent
            client.cancel_request(types.CancelParams(id=msg_id))
            err = await error_of(task)
            assert err.code == -32800, err
            assert time.monotonic() - t1 < 2.0
        status = await request(client, "sg/status")
        assert status["state"] == "ready"
    finally:
        await stop(client)


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["utf-8", "utf-32"])
async def test_negotiated_position_encodings(tmp_path: Path, encoding: str):
    root = write_workspace(tmp_path)
    caps = types.ClientCapabilities(general=types.GeneralClientCapabilities(position_encodings=[encoding, "utf-16"]))
    client = await start(config(), root, LEXICAL, caps)
    try:
        await wait_ready(client)
        top = (await search(client, "greetUser", mode="lexical"))["results"][0]
        first, last = FILES["src/greet.js"].split("\n")[:2]
        prefix = first[:first.index("function")]
        units = (lambda s: len(s.encode())) if encoding == "utf-8" else len
        assert top["range"]["start"]["character"] == units(prefix)
        assert top["range"]["end"]["character"] == units(last)
        assert (await request(client, "sg/status"))["positionEncoding"] == encoding
        # positions are read in the same units: just past alphaSum, then betaJoin's first letter
        line, end_alpha = oneline_columns()
        for cp, want in ((end_alpha, "gammaSum"), (end_alpha + 1, "deltaJoin")):
            pos = {"line": 0, "character": units(line[:cp])}
            res = await request(client, "sg/similar", {"textDocument": {"uri": (root / "src/oneline.js").as_uri()},
                                                       "position": pos})
            assert res["results"][0]["symbol"] == want, (pos, res["results"][:2])
    finally:
        await stop(client)


@pytest.mark.asyncio
async def test_watchdog_fallback_without_dynamic_registration(tmp_path: Path):
    root = write_workspace(tmp_path)
    client = await start(config(), root, LEXICAL, types.ClientCapabilities())
    try:
        await wait_ready(client)
        (root / "src/outside_editor.py").write_text("def zebra_stripe_counter(n):\n    return n\n", encoding="utf-8")
        await poll_symbol(client, "zebra stripe counter", "zebra_stripe_counter", timeout=5.0)
        assert client.registrations == []  # type: ignore[attr-defined]
    finally:
        await stop(client)


@pytest.mark.asyncio
async def test_real_model_semantic_search_and_similar(tmp_path: Path):
    root = write_workspace(tmp_path)
    client = await start(config(), root, {"models": {"threads": 1}})
    try:
        # Answered at once while the index is built and the model loads (lexically, saying so).
        t0 = time.monotonic()
        early = await search(client, "fibonacci")
        assert time.monotonic() - t0 < 5.0
        if early["notes"]:
            assert any("indexing" in n or "loading" in n or "lexical" in n for n in early["notes"]), early
        await wait_ready(client, timeout=90)
        res = await search(client, "compute the fibonacci sequence", mode="semantic", limit=3)
        assert res["results"][0]["symbol"] == "fibonacci"
        assert res["model"] != "lexical" and res["results"][0]["space"]
        res = await search(client, "load settings from a file", mode="hybrid", explain=True)
        assert res["results"][0]["symbol"] == "read_config_file"
        assert any(k.startswith("sem:") for k in res["results"][0]["explanation"])
        res = await search(client, "設定ファイルを読み込む", limit=3)
        assert res["results"][0]["symbol"] == "read_config_file"
        sim = await request(client, "sg/similar", {"uri": (root / "src/mathutil.py").as_uri(),
                                                   "line": line_of(root, "src/mathutil.py", "def sum_of_cubes")})
        assert sim["results"][0]["symbol"] == "sum_of_squares"
        # A save is embedded too: semantically findable within ~1 s.
        p = root / "src/strings.js"
        p.write_text(p.read_text(encoding="utf-8") + "\nfunction isPalindrome(word) {\n"
                     "  return word === word.split('').reverse().join('');\n}\n", encoding="utf-8")
        client.text_document_did_save(types.DidSaveTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=p.as_uri())))
        await eventually(lambda: search(client, "check whether a word reads the same backwards", mode="semantic",
                                        limit=3),
                         lambda res: any(r["symbol"] == "isPalindrome" for r in res["results"]), timeout=3.0)
        status = await request(client, "sg/status")
        assert status["folders"][0]["modelsLoaded"] and status["models"]
    finally:
        await stop(client)


@pytest.mark.asyncio
async def test_pylate_model_serves_sg_search_through_maxsim(tmp_path: Path):
    """A PyLate ColBERT directory (models.model_path) answers sg/search through the multi-vector MaxSim path."""
    model = ROOT / "tests" / "fixtures" / "pylate" / "bert"
    root = tmp_path / "ws"
    write(root, MAXSIM_FILES)
    client = await start(config(), root, {"models": {"model_path": str(model), "threads": 1}})
    try:
        await wait_ready(client, timeout=90)
        status = await request(client, "sg/status")
        assert status["models"]["code"] == str(model), status["models"]
        for mode in ("semantic", "hybrid"):
            res = await search(client, "parse config json", mode=mode, explain=True)
            top = res["results"][0]
            assert top["path"].endswith("config.py"), res
            assert top["explanation"].get(f"sem:{model}", 0) > 0, top["explanation"]
            assert res["mode"] == mode and res["model"] != "lexical", res
    finally:
        await stop(client)


@pytest.mark.asyncio
async def test_models_warm_up_as_soon_as_the_folder_opens(tmp_path: Path):
    root = write_workspace(tmp_path)
    # The test hook holds the index before its lexical pass: the models must load meanwhile, not after it.
    client = await start(config(SG_LSP_DEBUG_INDEX_DELAY="100"), root, {"models": {"threads": 1}})
    try:
        status = await eventually(status_of(client), lambda st: st["folders"][0].get("modelState") == "ready",
                                  timeout=90, interval=0.2)
        assert status["state"] == "indexing" and status["files"] == 0, status
        res = await search(client, "compute the fibonacci sequence", mode="semantic")
        assert res["model"] != "lexical" and res["mode"] == "semantic", res
        assert not any("loading" in n for n in res["notes"]), res
        token = next(t for t, r in client.progress_reports.items() if r)
        client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
        await wait_progress_end(client, "sg: indexing")
    finally:
        await stop(client)


@pytest.mark.asyncio
async def test_settings_changes_apply(tmp_path: Path):
    root = write_workspace(tmp_path)
    client = await start(config(), root, LEXICAL)
    try:
        assert (await wait_ready(client))["files"] == len(FILES)
        # A search-only setting applies at once (no re-index).
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={"sg": {**LEXICAL, "search": {"max_results": 5}}}))
        err = await error_of(search(client, "fibonacci", limit=6))
        assert err.code == -32602 and "between 1 and 5" in err.message
        # An index setting re-opens and re-indexes the folder.
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={**LEXICAL, "index": {"excludes": ["docs/"]}}))
        await eventually(status_of(client), lambda st: st["files"] == len(FILES) - 1)
        assert (await search(client, "fibonacci", limit=20))["results"]
        # Bad values are reported and ignored.
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={**LEXICAL, "search": {"max_results": "many"}}))
        await eventually(lambda: any("max_results" in m.message for m in client.messages), timeout=5)
        # An out-of-range value is left out alone: the rest (models off) still holds.
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={**LEXICAL, "index": {"max_file_bytes": 0}}))
        await eventually(lambda: any("max_file_bytes must be" in m.message for m in client.messages), timeout=5)
        status = await wait_ready(client)
        assert not any(f.get("modelsLoaded") for f in status["folders"]), status
    finally:
        await stop(client)


@pytest.mark.asyncio
async def test_engine_failure_is_reported_not_fatal(tmp_path: Path):
    root = write_workspace(tmp_path)
    client = await start(config(SG_LSP_DEBUG_FAIL="sg/similar"), root, LEXICAL)
    try:
        await wait_ready(client)
        err = await error_of(request(client, "sg/similar", {"uri": (root / "src/mathutil.py").as_uri(), "line": 3}))
        assert err.code == -32603 and "injected failure" in err.message
        assert any(m.type == types.MessageType.Error and "injected failure" in m.message for m in client.messages)
        assert (await search(client, "fibonacci"))["results"]  # still serving
    finally:
        await stop(client)


@pytest.mark.asyncio
async def test_tune_request(tmp_path: Path):
    root = write_workspace(tmp_path)
    client = await start(config(), root, LEXICAL)
    try:
        await wait_ready(client)
        try:
            from engine.tune import run_tune  # noqa: F401
            available = True
        except ImportError:
            available = False
        if available:
            # A dry run (mining only) runs as a background job with progress, listed in sg/status.
            res = await request(client, "sg/tune", {"dryRun": True, "outDir": str(tmp_path / "tuned")})
            job = (await eventually(status_of(client), lambda st: st["jobs"][0]["state"] != "running", 30))["jobs"][0]
            assert job["id"] == res["jobId"] and job["state"] == "done", job
            assert job["result"]["stopped"] == "dry-run"
            await wait_progress_end(client, "sg: tuning")
        else:
            err = await error_of(request(client, "sg/tune", {}))
            assert "local tuning is not available in this build" in err.message
        err = await error_of(request(client, "sg/tune", {"outDir": 5}))
        assert err.code == -32602
    finally:
        await stop(client)


@pytest.mark.asyncio
async def test_tune_switches_the_workspace_to_the_tuned_model(tmp_path: Path):
    pytest.importorskip("peft")
    from tests.support.tuning import build_tiny_model, tiny_config, toy_files

    root = tmp_path / "toyproj"
    for rel, text in toy_files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    tiny = build_tiny_model(tmp_path / "tiny", list(toy_files().values()))
    client = await start(config(), root, {"models": {"model_path": str(tiny)},
                                          "index": {"index_dir": str(tmp_path / "idx")}})
    try:
        assert str(tiny) in str((await wait_ready(client, 60))["models"])
        res = await request(client, "sg/tune", {"configPath": tiny_config(tmp_path, tiny), "apply": True})
        job = (await eventually(status_of(client), lambda st: st["jobs"][0]["state"] != "running", 120))["jobs"][0]
        assert job["id"] == res["jobId"] and job["state"] == "done" and job["result"]["applied"] is True, job
        tuned = job["result"]["out_dir"]
        await eventually(status_of(client), lambda st: tuned in str(st["models"]) and st["state"] == "ready", 60)
        found = await search(client, "compute the checksum", mode="semantic")
        assert found["results"] and tuned in str(found["models"])
        assert any("now searches with it" in m.message for m in client.messages)
    finally:
        await stop(client)


# -- raw JSON-RPC: malformed messages and the lifecycle ---------------------------------------------------------
def test_raw_jsonrpc_errors_and_lifecycle(tmp_path: Path):
    root = write_workspace(tmp_path)
    srv = Raw()
    try:
        srv.send({"id": 1, "method": "workspace/symbol", "params": {"query": "x"}})
        srv.send({"method": "initialized", "params": {}})  # a notification before initialize: dropped
        assert srv.take({1})[1]["error"]["code"] == -32002
        srv.send_bytes(b'{"jsonrpc": "2.0", "id": 2, "method": ')  # malformed JSON
        assert srv.take({None})[None]["error"]["code"] == -32700
        srv.send({"id": 3, "method": "initialize", "params": {
            "processId": None, "rootUri": root.as_uri(), "capabilities": {},
            "initializationOptions": LEXICAL}})
        init = srv.take({3})[3]["result"]
        assert init["capabilities"]["workspaceSymbolProvider"] and init["serverInfo"]["name"] == "sg-lsp"
        srv.send({"method": "initialized", "params": {}})
        srv.send({"id": 4, "method": "textDocument/codeAction", "params": {"textDocument": 5}})
        srv.send({"id": 5, "method": "textDocument/codeAction", "params": {
            "textDocument": {"uri": 7}, "range": {"start": {"line": "a"}}, "context": {}}})
        srv.send({"id": 6, "method": "workspace/executeCommand", "params": {"command": 5}})
        srv.send({"id": 7, "method": "workspace/executeCommand", "params": {"command": "sg.findSimilar",
                                                                          "arguments": "abc"}})
        srv.send({"id": 8, "method": "workspace/executeCommand", "params": "nonsense"})
        srv.send({"id": 9, "method": "workspace/executeCommand", "params": {"command": "no.such.command"}})
        srv.send({"id": 10, "method": "sg/search", "params": {"query": "x", "limit": -1}})
        srv.send({"id": 11, "method": "no/suchMethod", "params": {}})
        srv.send({"id": 12.5, "method": "sg/status"})
        srv.send({"id": 13, "method": "initialize", "params": {"capabilities": {}}})
        srv.send({"id": "s", "method": "sg/status"})
        got = srv.take({4, 5, 6, 7, 8, 9, 10, 11, None, 13, "s"})
        for i in (4, 5, 6, 7, 8, 9, 10):
            assert got[i]["error"]["code"] == -32602, got[i]
        assert "params.textDocument" in got[4]["error"]["message"]
        assert "params.range" in got[5]["error"]["message"]
        assert got[11]["error"]["code"] == -32601
        assert got[None]["error"]["code"] == -32600  # the float id
        assert got[13]["error"]["code"] == -32600  # initialize twice
        assert got["s"]["result"]["state"] in ("indexing", "ready")
        srv.send({"id": 20, "method": "shutdown"})
        assert srv.take({20})[20]["result"] is None
        srv.send({"id": 21, "method": "sg/search", "params": {"query": "x"}})
        srv.send({"method": "textDocument/didSave", "params": {"textDocument": {"uri": root.as_uri()}}})
        assert srv.take({21})[21]["error"]["code"] == -32600
        srv.send({"method": "exit"})
        assert srv.close() == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()


def test_raw_exit_without_shutdown_exits_1():
    srv = Raw()
    srv.send({"method": "exit"})
    assert srv.close() == 1
