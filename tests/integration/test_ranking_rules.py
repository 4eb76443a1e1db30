"""The repository-navigation ranking rules, pinned on a small workspace made here (models off: the lexical tier
with the full ranking, as a folder is searchable before its embeddings exist)."""

from __future__ import annotations

import pytest

from engine.search import Engine
from engine.settings import load_settings

ROUTER = '''"""Routing."""

from .params import Depends


def include_router(app, router):
    """Mount a router on the app."""
    app.routers.append(router)


class APIRouter:
    """Group routes and mount them on an app."""

    def __init__(self, prefix=""):
        self.prefix = prefix
        self.routes = []
'''

USES = "\n\n".join(f'''def handler_{i}(app):
    """Handler {i} registers a route on an APIRouter."""
    router = APIRouter(prefix="/v{i}")
    router.routes.append(("/items/{i}", "get"))
    include_router(app, router)
    return router''' for i in range(14))

TESTS = '''from app.routing import APIRouter


def test_router_routes():
    """Routes added to an APIRouter are kept in order."""
    router = APIRouter(prefix="/x")
    router.routes.append(("/a", "get"))
    assert router.routes == [("/a", "get")]
'''

SESSIONS = '''class SessionStore:
    """Keep session data between requests: load, save and expire sessions."""

    def load(self, sid):
        return self.data.get(sid)

    def save(self, sid, value):
        self.data[sid] = value
'''


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("ws")
    files = {"app/routing.py": ROUTER, "app/handlers.py": USES, "tests/test_routing.py": TESTS,
             "app/sessions.py": SESSIONS, "docs/routing.md": "# Routing\n\nAn APIRouter groups routes.\n"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    e = Engine(root, load_settings(root, {"models": {"enabled": False}}))
    e.index()
    yield e
    e.close()


def test_the_definition_of_a_queried_symbol_comes_first(eng: Engine) -> None:
    res = eng.search("APIRouter", k=10, explain=True)
    top = res.hits[0]
    assert (top.path, top.symbol) == ("app/routing.py", "APIRouter")
    assert top.components["definition"] > 0  # the boost shows in --explain


def test_tests_are_demoted_unless_asked_for(eng: Engine) -> None:
    paths = [h.path for h in eng.search("router prefix routes append", k=10).hits]
    assert paths[0] != "tests/test_routing.py"
    assert "tests/test_routing.py" in paths  # demoted, not dropped
    asked = eng.search("test that router routes are kept in order", k=10).hits
    assert asked[0].path == "tests/test_routing.py"
    assert not any(k.startswith("prior:") for k in asked[0].components)


def test_one_file_does_not_fill_the_top_ten(eng: Engine) -> None:
    res = eng.search("handler registers a route on a router", k=10)
    assert len(res.hits) == 10
    assert len({h.path for h in res.hits}) >= 3
    assert any("diversity" in h.components for h in res.hits)


def test_file_names_count_for_natural_language(eng: Engine) -> None:
    res = eng.search("session management", k=5)
    assert res.hits[0].path == "app/sessions.py" and "path" in res.hits[0].components


def test_the_answer_says_which_tiers_served_it(eng: Engine) -> None:
    assert eng.search("APIRouter", k=3).tiers == ["lexical"]
