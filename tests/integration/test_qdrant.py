"""The Qdrant backend: contract tests through qdrant-client's local mode, the same queries through the embedded
engine (qdrant-edge-py) and exact numpy, the one-process lock, a push killed with SIGKILL, and a real server
when SG_QDRANT_URL is set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

qdrant_client = pytest.importorskip("qdrant_client", reason="qdrant-client not installed (pip install '.[qdrant]')")
qdrant_edge = pytest.importorskip("qdrant_edge", reason="qdrant-edge-py not installed (pip install '.[qdrant]')")

from engine import tokenize  # noqa: E402
from engine.backends.local.ann import AnnIndex  # noqa: E402
from engine.backends.local.lexical import Lexical  # noqa: E402
from engine.backends.qdrant.index import (  # noqa: E402
    LEX,
    LEX_BODY,
    TERMS,
    BackendBusy,
    QdrantIndex,
    SpaceSpec,
    glob_prefixes,
    point_id,
    query_words,
)
from engine.backends.qdrant.sync import PushSpace, push  # noqa: E402
from engine.codec import get_codec  # noqa: E402
from engine.records import Chunk  # noqa: E402
from engine.store import Store  # noqa: E402
from tests.support import wait_until  # noqa: E402
from tests.support.stores import (  # noqa: E402
    DENSE_DIM,
    DENSE_NAME,
    MULTI_DIM,
    MULTI_NAME,
    make_store,
)
from tests.support.stores import unit as _unit  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DENSE, MULTI = SpaceSpec(DENSE_NAME, DENSE_DIM, False), SpaceSpec(MULTI_NAME, MULTI_DIM, True)


def push_spaces() -> list[PushSpace]:
    return [PushSpace(DENSE, ["code"]), PushSpace(MULTI, ["prose"], get_codec("int8"))]


def reference(store: Store):
    """Exact numpy views of the store: dense vectors, decoded token vectors, point id per chunk id."""
    rows = {r.id: r for r in store.iter_chunks()}
    pid = {cid: point_id("repo", r.path, r.hash) for cid, r in rows.items()}
    dense = {pid[c]: np.frombuffer(v, np.float32) for c, v in store.vectors_for_chunks(DENSE.name, ["code"])}
    blobs = store.token_blobs(MULTI.name, [c for c, r in rows.items() if r.route == "prose"])
    codec = get_codec("int8")
    toks = {pid[c]: codec.decode_many([b], MULTI.dim)[0] for c, b in blobs.items()}
    return rows, pid, dense, toks


def top(scores: dict, k: int) -> list:
    return [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def open_index(url: str, **kw) -> QdrantIndex:
    return QdrantIndex.open(url, "sg_test", [DENSE, MULTI], repository="repo", exact=kw.pop("exact", True), **kw)


@pytest.fixture
def store(tmp_path):
    s = make_store(tmp_path / "index.sqlite")
    yield s
    s.close()


@pytest.fixture(params=["client-local", "edge"])
def index(request, tmp_path, store):
    url = ":memory:" if request.param == "client-local" else str(tmp_path / "edge")
    ix = open_index(url)
    push(store, ix, "t", push_spaces(), repository="repo")
    yield ix
    ix.close()


# -- pure pieces ------------------------------------------------------------------------------------------------
def test_point_ids_are_stable_and_distinct():
    a = point_id("org/repo", "src/a.py", "h1")
    assert a == point_id("org/repo", "src/a.py", "h1") and uuid.UUID(a).version == 5
    assert len({a, point_id("org/other", "src/a.py", "h1"), point_id("org/repo", "src/b.py", "h1"),
                point_id("org/repo", "src/a.py", "h2")}) == 4


def test_glob_prefixes():
    assert glob_prefixes(["src/*.py", "docs"]) == ("src/", "docs")
    assert glob_prefixes(["src/**/test_*.py"]) == ("src/",)
    assert glob_prefixes(["*.py", "src/x"]) == ()  # a leading wildcard cannot be narrowed
    assert glob_prefixes(None) == ()


# -- contract (qdrant-client local mode and the embedded engine) -------------------------------------------------
def test_collection_layout():
    from qdrant_client import models as m

    ix = open_index(":memory:")
    try:
        info = ix.target.client.get_collection("sg_test").config.params
        multi = info.vectors[MULTI.name]
        assert multi.multivector_config.comparator == m.MultiVectorComparator.MAX_SIM
        assert multi.hnsw_config.m == 0 and multi.distance == m.Distance.DOT
        assert info.vectors[MULTI.candidates].distance == m.Distance.COSINE
        assert info.vectors[DENSE.name].size == 16 and info.vectors[DENSE.name].distance == m.Distance.COSINE
        assert {k: v.modifier for k, v in info.sparse_vectors.items()} == {n: m.Modifier.IDF for n in
                                                                           (LEX, LEX_BODY, TERMS)}
    finally:
        ix.close()


def test_payload_and_counts(index, store):
    rows = list(store.iter_chunks())
    assert index.count() == len({(r.path, r.hash) for r in rows})
    r = rows[3]
    got = index.payloads([point_id("repo", r.path, r.hash)])
    payload = next(iter(got.values()))
    for key in ("repository", "path", "symbol", "kind", "language", "start_line", "end_line", "start_col",
                "end_col", "hash", "text"):
        assert key in payload
    assert (payload["repository"], payload["path"], payload["symbol"], payload["start_line"]) == \
        ("repo", r.path, r.symbol, r.start_line)


def test_push_is_idempotent_and_deletes_by_file(index, store, tmp_path):
    n = index.count()
    again = push(store, index, "t", push_spaces(), repository="repo")
    assert again.files == 0 and again.points == 0 and index.count() == n
    # another target name re-sends everything: the stable ids make that a no-op in Qdrant
    other = push(store, index, "other", push_spaces(), repository="repo")
    assert other.points == 0 and other.skipped_points == n and index.count() == n
    # a file changes (new chunk bodies), another disappears
    changed, gone = "src/pkg1/mod1.py", "src/pkg2/mod2.py"
    old = {point_id("repo", r.path, r.hash) for r in store.chunks_of_file(changed)}
    fresh = make_store(tmp_path / "fresh.sqlite", version=" v2")
    new_rows = fresh.chunks_of_file(changed)
    with store.write() as con:
        store.put_file(con, changed, 1, 2, "file1 v2", "python",
                       [(Chunk(r.path, r.language, r.kind, r.symbol, r.start_line, r.end_line, r.text), r.route,
                         r.hash, (" ".join(tokenize.tokenize_path(r.path)), " ".join(tokenize.tokenize_symbol(r.symbol)),
                                  " ".join(tokenize.tokenize(r.text)))) for r in new_rows])
        store.put_vectors(con, DENSE.name, [(h, v, None) for c, v in fresh.vectors_for_chunks(DENSE.name, ["code"])
                                            for h in [fresh.chunks_by_id([c])[c].hash]])
        store.put_vectors(con, MULTI.name, [(fresh.chunks_by_id([c])[c].hash, v, fresh.token_blobs(MULTI.name, [c])[c])
                                            for c, v in fresh.vectors_for_chunks(MULTI.name, ["prose"])])
        n_gone = len(store.chunks_of_file(gone))
        store.delete_file(con, gone)
    rep = push(store, index, "t", push_spaces(), repository="repo")
    assert rep.deleted_files == 1 and rep.files == 1 and rep.waiting == 0
    assert index.count() == n - n_gone
    assert not index.existing(sorted(old))
    assert index.existing([point_id("repo", r.path, r.hash) for r in new_rows]) == \
        {point_id("repo", r.path, r.hash) for r in new_rows}
    fresh.close()


def test_lexical_equals_sg_bm25(index, store):
    """With the IDF weights sent per word, the sparse score is FTS5's bm25() (same avgdl: pushed in one go)."""
    rows, pid, _, _ = reference(store)
    for q in ("parse config w3", "http request retry", "w10 w11 w12 tokenizer handle"):
        tokens = query_words(tokenize.tokenize_query(q))
        want = Lexical(store).scores(tokens, 500, (1.0, 2.0, 1.0))
        got = index.lexical(tokens, 500)
        assert set(got) == {pid[c] for c in want}
        for c, s in want.items():
            assert got[pid[c]] == pytest.approx(s, rel=1e-4, abs=1e-5)
        body = Lexical(store).scores(tokens, 500, (0.0, 0.0, 1.0))
        got_body = index.lexical(tokens, 500, body_only=True)
        assert {pid[c]: pytest.approx(s, rel=1e-4, abs=1e-5) for c, s in body.items()} == got_body
        some = [pid[c] for c in list(want)[:7]] + [pid[c] for c in list(rows)[:3]]
        assert index.lexical_of(tokens, some) == {i: got[i] for i in some if i in got}
    words = ["parse", "w1", "w200", "absent"]
    assert index.doc_freqs(words) == Lexical(store).doc_freqs(words)


def test_dense_and_maxsim_equal_numpy(index, store):
    rng = np.random.default_rng(7)
    _, _, dense, toks = reference(store)
    ids = list(dense)
    mat = np.stack([dense[i] for i in ids])
    for _ in range(10):
        q = _unit(rng.normal(size=DENSE.dim))
        exact = dict(zip(ids, (mat @ q).tolist()))
        got = index.dense(DENSE.name, q, 10)
        assert top(got, 10) == top(exact, 10)
        assert all(got[i] == pytest.approx(exact[i], abs=1e-5) for i in got)
        some = ids[:5]
        assert index.dense_of(DENSE.name, q, some) == pytest.approx({i: exact[i] for i in some}, abs=1e-5)
        qtok = _unit(rng.normal(size=(4, MULTI.dim)))
        ms = {i: float((qtok @ t.T).max(axis=1).sum() / len(qtok)) for i, t in toks.items()}
        # candidates from the pooled vectors: with a limit past the collection, the rerank sees every point
        got_ms = index.maxsim(MULTI.name, qtok, _unit(qtok.mean(0)), len(toks) + 10)
        assert top(got_ms, 10) == top(ms, 10)
        assert all(got_ms[i] == pytest.approx(ms[i], abs=1e-4) for i in top(ms, 10))


def test_path_filters(index, store):
    q = _unit(np.random.default_rng(1).normal(size=DENSE.dim))
    got = index.dense(DENSE.name, q, 1000, index.cond(["tests/*"]))
    paths = {p["path"] for p in index.payloads(got).values()}
    assert got and all(p.startswith("tests/") for p in paths)
    both = index.dense(DENSE.name, q, 1000, index.cond(["src/pkg1", "tests/pkg0/*"]))
    assert {p["path"].split("/")[1] for p in index.payloads(both).values()} <= {"pkg1", "pkg0"}
    assert index.dense(DENSE.name, q, 1000, index.cond(["*.py"])).keys() == \
        index.dense(DENSE.name, q, 1000).keys()  # not narrowed here: sg filters such globs after fetching
    assert index.dense(DENSE.name, q, 10, index.cond(ids=[])) == {}


def test_repositories_share_a_collection(tmp_path, store):
    ix = open_index(str(tmp_path / "edge"))
    try:
        push(store, ix, "a", push_spaces(), repository="repo")
        other = QdrantIndex(ix.target, [DENSE, MULTI], repository="other")
        push(store, other, "b", push_spaces(), repository="other")
        n = len({(r.path, r.hash) for r in store.iter_chunks()})
        assert ix.count() == 2 * n and ix.stats()["repository_points"] == n
        q = _unit(np.random.default_rng(2).normal(size=DENSE.dim))
        assert {p["repository"] for p in ix.payloads(ix.dense(DENSE.name, q, 50)).values()} == {"repo"}
        other.delete_file("src/pkg1/mod1.py")
        assert ix.count() == 2 * n - len(store.chunks_of_file("src/pkg1/mod1.py"))
    finally:
        ix.close()


# -- cross-engine: the embedded engine with HNSW, and hnswlib, against exact numpy ------------------------------
def test_hnsw_recall_edge_and_hnswlib(tmp_path):
    rng = np.random.default_rng(3)
    n, dim = 3000, 32
    vecs = _unit(rng.normal(size=(n, dim)))
    spec = SpaceSpec("d", dim, False)
    from engine.backends.qdrant.index import ChunkPoint
    ix = QdrantIndex.open(str(tmp_path / "edge"), "hnsw", [spec], exact=False, hnsw_ef=128, hnsw=(16, 200, 1))
    try:
        ix.upsert([ChunkPoint(str(uuid.UUID(int=i + 1)), {"path": f"f{i}"}, {"d": vecs[i]}) for i in range(n)])
        ix.flush()
        ix.optimize()
        ann = AnnIndex.build(dim, np.arange(n), vecs, m=16, ef_construction=200, ef_search=128)
        same_edge = same_hnswlib = 0
        for _ in range(100):
            q = _unit(rng.normal(size=dim))
            exact = set(np.argsort(-(vecs @ q))[:10].tolist())
            got = {uuid.UUID(i).int - 1 for i in top(ix.dense("d", q, 10), 10)}
            same_edge += got == exact
            same_hnswlib += set(ann.search(q, 10)[0].tolist()) == exact
        assert same_edge >= 85 and same_hnswlib >= 85, (same_edge, same_hnswlib)
    finally:
        ix.close()


# -- one process per embedded directory --------------------------------------------------------------------------
HOLDER = """
import sys
sys.path.insert(0, {repo!r})
from engine.backends.qdrant.index import QdrantIndex, SpaceSpec
ix = QdrantIndex.open({url!r}, "sg_test", [SpaceSpec("dense-t", 16, False), SpaceSpec("multi-t", 8, True)])
print("open", flush=True)
sys.stdin.read()
ix.close()
"""


def test_second_process_is_refused_at_once(tmp_path):
    url = str(tmp_path / "edge")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(repo=str(REPO), url=url)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(BackendBusy) as err:
            open_index(url)
        msg = str(err.value)
        assert "\n" not in msg and f"pid {holder.pid}" in msg
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    ix = open_index(url)  # released when the holder closed: usable, nothing damaged
    assert ix.count() == 0
    ix.close()


# -- a push killed with SIGKILL resumes without duplicates or losses --------------------------------------------
PUSHER = """
import sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
from test_qdrant import open_index, push_spaces
from engine.backends.qdrant.sync import push
from engine.store import Store
store = Store({store!r})
ix = open_index({url!r}, batch=3)
push(store, ix, "t", push_spaces(), repository="repo", files_per_batch=1,
     progress=lambda phase, done, total: print(done, total, flush=True))
print("finished", flush=True)
"""


@pytest.mark.parametrize("kind", ["edge", "client-local"])
def test_kill_during_push_then_resume(tmp_path, kind):
    store = make_store(tmp_path / "index.sqlite", n_files=60)
    url = str(tmp_path / "edge") if kind == "edge" else f"local:{tmp_path / 'local'}"
    script = PUSHER.format(repo=str(REPO), tests=str(Path(__file__).resolve().parent), store=str(store.path), url=url)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = []
    wait_until(lambda: lines.append(child.stdout.readline()) or len(lines) >= 5 or not lines[-1])
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert "finished\n" not in lines, "the push ended before the kill; make the store bigger"
    recorded = len(store.connection().execute("SELECT path FROM qdrant_pushed").fetchall())
    assert 0 < recorded < 60
    ix = open_index(url)
    try:
        rep = push(store, ix, "t", push_spaces(), repository="repo")
        assert rep.files == 60 - recorded
        want = {point_id("repo", r.path, r.hash) for r in store.iter_chunks()}
        assert ix.count() == len(want)  # no duplicates and no strays
        assert ix.existing(sorted(want)) == want  # nothing lost
        assert push(store, ix, "t", push_spaces(), repository="repo").points == 0
    finally:
        ix.close()
        store.close()


# -- a real server ------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not os.environ.get("SG_QDRANT_URL"),
                    reason="SG_QDRANT_URL is not set: no Qdrant server to test against (e.g. "
                           "SG_QDRANT_URL=http://localhost:6333 after docker compose -f deploy/docker-compose.qdrant.yml up)")
def test_real_server(tmp_path, store):
    collection = f"sg_test_{uuid.uuid4().hex[:8]}"
    ix = QdrantIndex.open(os.environ["SG_QDRANT_URL"], collection, [DENSE, MULTI], repository="repo",
                          api_key_env="SG_QDRANT_API_KEY" if os.environ.get("SG_QDRANT_API_KEY") else "", exact=True)
    try:
        push(store, ix, "t", push_spaces(), repository="repo")
        rows, pid, dense, _ = reference(store)
        assert ix.count() == len({(r.path, r.hash) for r in rows.values()})
        tokens = query_words(tokenize.tokenize_query("parse config w3"))
        want = Lexical(store).scores(tokens, 500, (1.0, 2.0, 1.0))
        got = ix.lexical(tokens, 500)
        assert {pid[c]: pytest.approx(s, rel=1e-4, abs=1e-5) for c, s in want.items()} == got
        q = _unit(np.random.default_rng(5).normal(size=DENSE.dim))
        ids = list(dense)
        exact = dict(zip(ids, (np.stack([dense[i] for i in ids]) @ q).tolist()))
        assert top(ix.dense(DENSE.name, q, 10), 10) == top(exact, 10)
        paths = {p["path"] for p in ix.payloads(ix.dense(DENSE.name, q, 100, ix.cond(["tests/*"]))).values()}
        assert paths and all(p.startswith("tests/") for p in paths)
    finally:
        ix.target.client.delete_collection(collection)
        ix.close()


# -- engine.backends.base's Protocols on Qdrant (the rest: tests/integration/test_backend_contract.py) -------
@pytest.mark.parametrize("kind", ["edge", "client-local"])
def test_view_scope_narrows_candidates_by_path_prefix(tmp_path, store, kind):
    """A view's scope is a hint the ranker filters by anyway; Qdrant turns it into a payload filter."""
    from types import SimpleNamespace as NS

    from engine.backends.qdrant.backend import QdrantBackend

    url = str(tmp_path / "edge") if kind == "edge" else ":memory:"
    be = QdrantBackend(store, url, "sg_test", repository="repo", exact=True)
    try:
        be.open_spaces({DENSE.name: NS(name=DENSE.name, embedder=NS(dim=DENSE.dim, multi_vector=False),
                                       routes=["code"], codec=None)})
        rows, _, _, _ = reference(store)
        q = _unit(np.random.default_rng(9).normal(size=DENSE.dim))
        with be.view(["tests/*"]) as v:
            got = v.semantic(DENSE.name, q, 100)
        assert got and all(rows[c].path.startswith("tests/") for c in got)
    finally:
        be.close()


def test_settings_and_cli_flags(tmp_path):
    from engine.cli import _overrides, build_parser
    from engine.errors import ConfigError
    from engine.settings import load_settings

    for cmd in (["index", str(tmp_path)], ["search", "retry", str(tmp_path)], ["eval", "--spec", "x.json"]):
        args = build_parser().parse_args([*cmd, "--backend", "qdrant", "--qdrant-url", "rel/dir"])
        s = load_settings(tmp_path, _overrides(args))
        assert s.index.backend == "qdrant" and Path(s.qdrant.url).is_absolute()
    args = build_parser().parse_args(["search", "q", "--backend", "qdrant", "--qdrant-url", "https://q.example:6333"])
    assert load_settings(None, _overrides(args)).qdrant.url == "https://q.example:6333"
    (tmp_path / ".sg.toml").write_text('[index]\nbackend = "qdrant"\n[qdrant]\nurl = "edge"\napi_key_env = "K"\n')
    s = load_settings(tmp_path)
    assert s.qdrant.url == str((tmp_path / "edge").resolve()) and s.qdrant.api_key_env == "K"
    with pytest.raises(ConfigError):
        load_settings(None, {"index": {"backend": "qdrant"}})
    with pytest.raises(ConfigError):
        load_settings(None, {"index": {"backend": "elastic"}})


def test_api_key_comes_from_the_named_variable(monkeypatch):
    from engine.backends.qdrant.index import BackendError, open_target

    monkeypatch.delenv("SG_TEST_QDRANT_KEY", raising=False)
    with pytest.raises(BackendError, match="SG_TEST_QDRANT_KEY"):
        open_target("http://127.0.0.1:9", "c", api_key_env="SG_TEST_QDRANT_KEY")


def test_cli_says_in_one_line_that_the_directory_is_held(tmp_path):
    """A second sg process on an embedded directory exits at once with one line (before any model loads)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.py").write_text("def f():\n    return 1\n")
    url = str(tmp_path / "edge")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(repo=str(REPO), url=url).replace(
        '"sg_test"', '"sg"')], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        res = subprocess.run([sys.executable, "-m", "engine.cli", "search", "f", str(ws), "--backend", "qdrant",
                              "--qdrant-url", url, "--no-models"], capture_output=True, text=True, timeout=120,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert res.returncode == 2
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "open in another sg process" in lines[0], res.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    res = subprocess.run([sys.executable, "-m", "engine.cli", "search", "f", str(ws), "--backend", "qdrant",
                          "--qdrant-url", url, "--no-models", "--json"], capture_output=True, text=True, timeout=120,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    assert "a.py" in res.stdout
