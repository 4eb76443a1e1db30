"""Repository navigation steps (engine/navigate.py): query kinds, definitions, path words, priors, diversity."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine import navigate
from engine.records import Hit


@dataclass
class R:
    path: str
    symbol: str = ""
    kind: str = "function"
    language: str = "python"
    start_line: int = 1
    end_line: int = 20
    start_col: int = 0
    end_col: int = 0
    text: str = ""


@pytest.mark.parametrize("query, kind, names", [
    ("APIRouter", "symbol", ("APIRouter",)),
    ("Rack::Builder", "symbol", ("Builder", "Rack::Builder")),
    ("http.Client", "symbol", ("Client", "http.Client")),
    ("useState()", "symbol", ("useState",)),
    ("_private_helper", "symbol", ("_private_helper",)),
    ("how are routes registered", "topic", ()),
    ("Return the names of all fixtures used by this node", "behaviour", ()),
    ("parses a date string", "behaviour", ()),
    ("how does APIRouter include routers", "topic", ("APIRouter",)),
    ("where is parse_args called", "topic", ("parse_args",)),
    ("where is parse_args() called", "topic", ()),
    ("session", "topic", ()),
])
def test_query_kinds(query: str, kind: str, names: tuple) -> None:
    it = navigate.read_intent(query)
    assert it.kind == kind and it.names == names


def test_query_flags_and_words() -> None:
    it = navigate.read_intent("how are the pytest fixtures documented in the docs")
    assert it.tests and it.docs and not it.examples
    assert "routes" in navigate.read_intent("how are routes registered").words
    assert "how" not in navigate.read_intent("how are routes registered").words


@pytest.mark.parametrize("text, name, symbol, kind", [
    ("class APIRouter(router.Router):\n    pass", "APIRouter", "", "class"),
    ("pub struct Router<S> {\n    inner: Arc<S>,\n}", "Router", "", "class"),
    ("type Engine struct {\n\tRouterGroup\n}", "Engine", "", "class"),
    ("defmodule Phoenix.Router do\n  end", "Router", "", "module"),
    ("local function pick(opts)\nend", "pick", "", "function"),
    ("nvm_ls_remote() {\n  echo\n}", "nvm_ls_remote", "", "function"),
    ("pub const Server = struct {\n};", "Server", "", "class"),
    ("export const createRouter = (opts) => {}", "createRouter", "", "function"),
    ("@decorator\ndef handle(request):\n    ...", "handle", "handle", "function"),
])
def test_definitions(text: str, name: str, symbol: str, kind: str) -> None:
    assert navigate.defines(R("x.py", symbol, kind, text=text), text, name)


def test_a_use_is_not_a_definition() -> None:
    text = "router = APIRouter()\napp.include_router(router)"
    assert not navigate.defines(R("main.py", "main", text=text), text, "APIRouter")
    # a later piece of a class carries its symbol but not its head
    text = "    def add(self):\n        return 1"
    assert not navigate.defines(R("routing.py", "APIRouter", "class", text=text), text, "APIRouter")


def test_path_share_matches_prefixes_and_stems() -> None:
    words = navigate.read_intent("how does dependency injection work").words
    assert navigate.path_share(words, "fastapi/dependencies/utils.py") > 0
    assert navigate.path_share(words, "fastapi/routing.py") == 0


@pytest.mark.parametrize("path, why", [
    ("tests/test_app.py", "test"), ("pkg/test_helpers.go", "test"), ("examples/basic/main.go", "example"),
    ("docs/routing.md", "docs"), ("README.md", "docs"), ("src/_compat.py", "compat"), ("api_pb2.py", "generated"),
    ("types/index.d.ts", "stub"), ("pkg/__init__.py", "reexport-module"), ("commands/set.json", "data"),
])
def test_priors_name_what_they_demote(path: str, why: str) -> None:
    row = R(path, kind="module") if why == "reexport-module" else R(path)
    why = why.split("-")[0]
    f, reason = navigate.prior(path, row, navigate.read_intent("how are routes registered"), navigate.Priors())
    assert f < 1 and why in reason.split("+")


def test_an_init_that_defines_things_is_a_module() -> None:
    it = navigate.read_intent("how is the config parsed")
    assert navigate.prior("config/__init__.py", R("config/__init__.py", "Config", "class"), it, navigate.Priors()) \
        == (1.0, "")


def test_priors_yield_to_the_query() -> None:
    p = navigate.Priors()
    assert navigate.prior("tests/test_app.py", R("tests/test_app.py"), navigate.read_intent("test fixtures"), p)[0] == 1
    assert navigate.prior("docs/a.md", R("docs/a.md"), navigate.read_intent("routing docs"), p)[0] == 1
    assert navigate.prior("src/app.py", R("src/app.py"), navigate.read_intent("routes"), p) == (1.0, "")


def test_rerank_lifts_the_definition_and_explains_it() -> None:
    rows = {1: R("routing.py", "APIRouter", "class", end_line=40), 2: R("main.py", "main", end_line=30)}
    texts = {1: "class APIRouter(Router):\n    ...", 2: "router = APIRouter()\nrouter.add()"}
    out = navigate.rerank({1: (0.4, {"lexical": 0.4}), 2: (1.0, {"lexical": 1.0})}, rows, texts,
                          navigate.read_intent("APIRouter"))
    assert out[1][0] > out[2][0] and out[1][1]["definition"] > 0


def hit(path: str, score: float, line: int = 1) -> Hit:
    return Hit(0, path, f"f{line}", "function", "python", line, line + 10, 0, 0, score, "")


def test_diversify_gives_diminishing_returns_per_file() -> None:
    hits = [hit("a.py", 1.0 - i * 0.01, i * 20) for i in range(10)]
    hits += [hit(f"b{i}.py", 0.6 - i * 0.01) for i in range(5)]
    top = navigate.diversify(hits, 10)
    assert len(top) == 10 and sum(h.path == "a.py" for h in top) < 10
    assert top[0].path == "a.py" and "diversity" in top[1].components or top[1].path != "a.py"
