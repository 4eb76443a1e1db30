"""End-to-end tests of `sg mcp`: the real server process, driven over stdio by the MCP SDK's own client
(mcp.client.stdio): its tools, searches, a file edited while it runs, tool errors for bad input, every
configuration snippet in docs/mcp.md, and one run with the default offline model."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import tomllib
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.support import eventually
from tests.unit.test_boundary import client_breaches, sources

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: sg, sg-mcp
pytestmark = pytest.mark.timeout(180)

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
''',
    "src/strings.js": '''// String helpers.

function reverseString(text) {
  return text.split("").reverse().join("");
}
''',
    "docs/guide.md": "# Installation guide\n\nRun the installer and follow the prompts.\n\n"
                     "## Troubleshooting network proxies\n\nSet HTTPS_PROXY before running the installer.\n",
}
LEXICAL_TOML = "[models]\nenabled = false\n"


def workspace(base: Path, lexical: bool = True) -> Path:
    root = base / "ws"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    if lexical:
        (root / ".sg.toml").write_text(LEXICAL_TOML, encoding="utf-8")
    (base / "secret.py").write_text("def leak():\n    return 'TOPSECRET'\n", encoding="utf-8")
    return root


def env(**extra: str) -> dict[str, str]:
    """The server's environment: the venv's bin first on PATH (the documented commands call `sg` by name), and
    the test session's model cache."""
    out = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "TOKENIZERS_PARALLELISM": "false"}
    for key in ("SG_CACHE_DIR", "HF_HOME", "HF_HUB_OFFLINE", "HOME"):
        if key in os.environ:
            out[key] = os.environ[key]
    return {**out, **extra}


@asynccontextmanager
async def serve(command: str, args: list[str], cwd: Path, **extra_env: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=command, args=args, cwd=str(cwd), env=env(**extra_env))
    with open(cwd.parent / "server.log", "a", encoding="utf-8") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    res = await session.call_tool(tool, arguments)
    assert not res.is_error, res.content[0].text
    return {"text": res.content[0].text, **(res.structured_content or {})}


async def error_of(session: ClientSession, tool: str, **arguments: Any) -> str:
    res = await session.call_tool(tool, arguments)
    assert res.is_error, f"{tool}({arguments}) should fail: {res.content[0].text}"
    return res.content[0].text


async def ready(session: ClientSession, models: bool = False, timeout: float = 30.0) -> dict[str, Any]:
    done = ("ready", "failed") if models else ("ready", "failed", "disabled", "not loaded", "loading")
    return await eventually(lambda: call(session, "status"),
                            lambda st: st["state"] == "ready" and st["model_state"] in done, timeout=timeout)


@pytest.mark.asyncio
async def test_tools_search_edit_and_errors(tmp_path: Path) -> None:
    """Models off (the plumbing): started with no path in the workspace folder, as agents start it."""
    root = workspace(tmp_path)
    async with serve(str(BIN / "sg"), ["mcp"], cwd=root) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert set(tools) == {"search", "similar", "status", "reindex"}
        props = tools["search"].input_schema["properties"]
        assert tools["search"].input_schema["required"] == ["query"]
        assert set(props) == {"query", "k", "mode", "paths", "snippet_lines", "max_bytes"}
        assert all(p.get("description") for p in props.values()), props
        assert props["k"]["default"] == 5 and props["k"]["minimum"] == 1
        assert {"path", "line", "code"} <= set(tools["similar"].input_schema["properties"])
        assert all(t.description for t in tools.values())
        assert tools["search"].annotations.read_only_hint

        st = await ready(s)
        assert st["root"] == str(root.resolve()) and st["files"] == 4 and st["watching"]  # .sg.toml too

        res = await call(s, "search", query="fibonacci number")
        top = res["results"][0]
        assert (top["path"], top["symbol"], top["kind"], top["start_line"]) == \
            ("src/mathutil.py", "fibonacci", "function", 4)
        assert top["end_line"] == 9 and top["snippet"].startswith("def fibonacci(n):")
        assert "src/mathutil.py:4-9  fibonacci  (function," in res["text"]
        assert "     4  def fibonacci(n):" in res["text"]

        # Budgets: location only; a byte budget cuts snippets, then leaves hits out (and says how many).
        res = await call(s, "search", query="sum values total", snippet_lines=0, k=3)
        assert all(h["snippet"] == "" for h in res["results"]) and "total +=" not in res["text"]
        full = await call(s, "search", query="sum values total", k=3)
        assert len(full["results"]) == 2 and full["omitted"] == 0
        res = await call(s, "search", query="sum values total", k=3, max_bytes=280)
        assert len(res["text"].encode()) <= 280 and len(res["results"]) == 1 and res["omitted"] == 1
        assert "(1 more left out to stay within max_bytes=280)" in res["text"]
        assert 0 < res["results"][0]["snippet"].count("\n") < full["results"][0]["snippet"].count("\n")
        res = await call(s, "search", query="installer", paths=["docs/**"], mode="lexical")
        assert res["results"] and all(h["path"] == "docs/guide.md" for h in res["results"])

        # similar: path + line, 'file:line', a pasted snippet; the unit itself is never its own answer.
        for args in ({"path": "src/mathutil.py", "line": 13}, {"path": "src/mathutil.py:13"},
                     {"path": str(root / "src/mathutil.py"), "line": 14}):
            res = await call(s, "similar", **args)
            assert res["results"][0]["symbol"] == "sum_of_cubes", (args, res["text"])
            assert "sum_of_squares" not in [h["symbol"] for h in res["results"]]
        res = await call(s, "similar", code="function flip(s) { return s.split('').reverse().join(''); }")
        assert res["results"][0]["symbol"] == "reverseString"

        # Bad input: a clear tool error each, and the index is as it was.
        before = await call(s, "status")
        assert "the query is empty" in await error_of(s, "search", query="  ")
        assert "k" in await error_of(s, "search", query="x", k=0)
        assert "k" in await error_of(s, "search", query="x", k=1000)
        assert "'hybrid', 'semantic' or 'lexical'" in await error_of(s, "search", query="x", mode="fuzzy")
        assert "outside the workspace" in await error_of(s, "search", query="x", paths=["../*"])
        assert "outside the workspace" in await error_of(s, "similar", path="../secret.py", line=1)
        assert "outside the workspace" in await error_of(s, "similar", path=str(tmp_path / "secret.py"), line=1)
        assert "line 999 is past the end of src/mathutil.py (24 lines)" in await error_of(
            s, "similar", path="src/mathutil.py", line=999)
        assert "no indexed function at src/mathutil.py:2" in await error_of(s, "similar", path="src/mathutil.py:2")
        assert "line" in await error_of(s, "similar", path="src/mathutil.py", line=0)
        assert "no line given" in await error_of(s, "similar", path="src/mathutil.py")
        assert "no such file in the workspace: src/nope.py" in await error_of(s, "similar", path="src/nope.py",
                                                                              line=1)
        assert "not both" in await error_of(s, "similar", path="src/mathutil.py", line=4, code="x = 1")
        assert "give path and line" in await error_of(s, "similar")
        assert "the code snippet is empty" in await error_of(s, "similar", code="")
        after = await call(s, "status")
        assert (after["files"], after["chunks"]) == (before["files"], before["chunks"])
        assert (await call(s, "search", query="fibonacci"))["results"][0]["symbol"] == "fibonacci"

        # Edits while it runs: a new file, a changed function, a deleted file; found with no reindex call.
        (root / "src/text_distance.py").write_text(
            "def levenshtein_distance(a, b):\n    return edit_ops(a, b)\n", encoding="utf-8")
        res = await eventually(lambda: call(s, "search", query="levenshtein distance", k=1),
                               lambda r: r["results"] and r["results"][0]["symbol"] == "levenshtein_distance")
        assert res["results"][0]["path"] == "src/text_distance.py"
        text = (root / "src/mathutil.py").read_text(encoding="utf-8")
        (root / "src/mathutil.py").write_text(text.replace("def sum_of_cubes", "def total_of_cubes"),
                                              encoding="utf-8")
        await eventually(lambda: call(s, "search", query="total_of_cubes", k=1, mode="lexical"),
                         lambda r: r["results"] and r["results"][0]["symbol"] == "total_of_cubes")
        (root / "src/strings.js").unlink()
        await eventually(lambda: call(s, "search", query="reverseString", mode="lexical"),
                         lambda r: all(h["path"] != "src/strings.js" for h in r["results"]))

        rep = await call(s, "reindex", wait_seconds=60)
        assert rep["finished"] and rep["files"] == 4 and rep["state"] == "ready"


@pytest.mark.asyncio
async def test_documented_configs_start_the_server(tmp_path: Path) -> None:
    """Every configuration snippet in docs/mcp.md parses, and its command line starts the server, which serves the
    right folder (editors substitute ${workspaceFolder}; Claude Code and Codex start it in the project)."""
    root = workspace(tmp_path)
    doc = (ROOT / "docs" / "mcp.md").read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}
    for m in re.finditer(r"^claude mcp add (\S+) -- (.+)$", doc, re.M):
        found[f"claude mcp add {m[1]}"] = shlex.split(m[2])
    for lang, body in re.findall(r"```(json|toml)\n(.*?)```", doc, re.S):
        if lang == "json":
            data = json.loads(body)
            servers = data.get("mcpServers") or data["servers"]
            key = "mcpServers" if "mcpServers" in data else "servers"
        else:
            servers, key = tomllib.loads(body)["mcp_servers"], "mcp_servers"
        cfg = servers["sg"]
        assert cfg.get("type", "stdio") == "stdio"
        found[f"{key}: {json.dumps(cfg)}"] = [cfg["command"], *cfg.get("args", [])]
    assert len(found) == 5, found  # claude mcp add, .mcp.json, Codex, Cursor, VS Code
    assert sum(k.startswith("servers") for k in found) == 1  # VS Code's key

    for what, argv in found.items():
        # Editors name the folder (started elsewhere here, so the argument must do it); agents start it inside.
        cwd = tmp_path if "${workspaceFolder}" in argv else root
        argv = [a.replace("${workspaceFolder}", str(root)) for a in argv]
        async with serve(argv[0], argv[1:], cwd=cwd) as s:
            assert {t.name for t in (await s.list_tools()).tools} == {"search", "similar", "status", "reindex"}, what
            st = await call(s, "status")
            assert st["root"] == str(root.resolve()), what


@pytest.mark.asyncio
async def test_default_model_answers_lexically_then_semantically(tmp_path: Path) -> None:
    """The default offline model: answers at once (lexical with a note while the models load), then hybrid."""
    root = workspace(tmp_path, lexical=False)
    async with serve(str(BIN / "sg-mcp"), [str(root)], cwd=tmp_path) as s:
        first = await call(s, "search", query="fibonacci number")  # before the first index has even finished
        if not first["results"]:
            assert "still indexing; results come from what is indexed so far" in first["text"]
        first = await eventually(lambda: call(s, "search", query="fibonacci number"), lambda r: r["results"])
        assert first["results"][0]["symbol"] == "fibonacci"
        if first["mode"] == "lexical":
            assert "models are still loading: lexical results only" in first["text"]
        st = await ready(s, models=True, timeout=150)
        assert st["model_state"] == "ready" and sum(st["vectors"].values()) > 0, st
        res = await call(s, "search", query="numbers in the golden ratio sequence", mode="semantic", k=3)
        assert res["mode"] == "semantic" and not any("lexical" in n for n in res["notes"]), res["text"]
        assert res["results"][0]["symbol"] == "fibonacci", res["text"]
        (root / "src/geometry.py").write_text("def circle_area(radius):\n    return 3.14159 * radius ** 2\n",
                                              encoding="utf-8")
        await eventually(lambda: call(s, "search", query="area of a round shape", mode="semantic", k=1),
                         lambda r: r["results"] and r["results"][0]["symbol"] == "circle_area", timeout=30)


@pytest.mark.asyncio
async def test_started_in_the_home_directory_it_serves_nothing_and_says_why(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    async with serve(str(BIN / "sg"), ["mcp"], cwd=root, HOME=str(root)) as s:
        assert "not in a project: start it in the project folder or name it (sg mcp PATH)" in \
            await error_of(s, "search", query="fibonacci")
    assert not (root / ".sg").exists()  # nothing was indexed
    async with serve(str(BIN / "sg"), ["mcp", "."], cwd=root, HOME=str(root)) as s:  # named: served
        assert (await ready(s))["files"] == 4


def test_engine_never_imports_the_mcp_server_and_it_uses_only_the_public_api() -> None:
    found = [str(p) for p in sources("engine") if re.search(r"^\s*(from|import) sg_mcp", p.read_text(), re.M)]
    assert not found
    breaches = [b for path in sources("sg_mcp") for b in client_breaches(path)]
    assert not breaches, "\n".join(breaches)


def test_sg_mcp_is_a_subcommand_of_sg() -> None:
    import subprocess

    t0 = time.monotonic()
    out = subprocess.run([str(BIN / "sg"), "mcp", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "usage: sg mcp" in out.stdout, out
    assert "mcp" in subprocess.run([str(BIN / "sg"), "--help"], capture_output=True, text=True, timeout=60).stdout
    bad = subprocess.run([str(BIN / "sg"), "mcp", "/no/such/dir"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "is not a directory" in bad.stderr
    assert time.monotonic() - t0 < 30
