"""The Backend and View contract (engine/backends/base.py's docstrings), run over every backend in the BACKENDS
table as make_backend builds it: local (SQLite + hnswlib or exact numpy), Qdrant embedded (qdrant-edge-py),
Qdrant through qdrant-client's local mode (a directory, so that it can be reopened), and a real Qdrant server
when SG_QDRANT_URL is set. One synthetic store with tiny random vectors (tests/support/stores.py): no model."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import uuid
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest

from engine import BACKENDS, tokenize
from engine.backends import make_backend
from engine.backends.local.lexical import Lexical
from engine.codec import get_codec
from engine.records import Chunk
from engine.settings import Settings
from engine.spaces import Space
from engine.store import Store
from tests.support.stores import DENSE_DIM, DENSE_NAME, MULTI_DIM, MULTI_NAME, make_store, unit

COLS = (1.0, 2.0, 1.0)
QDRANT = importlib.util.find_spec("qdrant_client") is not None
EDGE = importlib.util.find_spec("qdrant_edge") is not None
KINDS = [
    pytest.param("local", id="local"),
    pytest.param("edge", id="qdrant-edge",
                 marks=pytest.mark.skipif(not EDGE, reason="qdrant-edge-py not installed (pip install '.[qdrant]')")),
    pytest.param("client-local", id="qdrant-client-local",
                 marks=pytest.mark.skipif(not QDRANT, reason="qdrant-client not installed (pip install '.[qdrant]')")),
    pytest.param("server", id="qdrant-server", marks=pytest.mark.skipif(
        not os.environ.get("SG_QDRANT_URL") or not QDRANT,
        reason="SG_QDRANT_URL is not set: no Qdrant server to run the contract against (e.g. SG_QDRANT_URL="
               "http://localhost:6333 after docker compose -f deploy/docker-compose.qdrant.yml up)")),
]


def spaces() -> dict[str, Space]:
    """The engine's Space records for the store's two spaces; a stand-in embedder (dim, multi_vector) is all a
    backend reads of a model."""
    return {DENSE_NAME: Space(DENSE_NAME, NS(dim=DENSE_DIM, multi_vector=False), ["code"], None),
            MULTI_NAME: Space(MULTI_NAME, NS(dim=MULTI_DIM, multi_vector=True), ["prose"], get_codec("int8"))}


def settings_for(kind: str, tmp_path: Path, collection: str) -> Settings:
    s = Settings()
    if kind != "local":
        s.index.backend = "qdrant"
        s.qdrant.url = {"edge": str(tmp_path / "edge"), "client-local": f"local:{tmp_path / 'client'}",
                        "server": os.environ.get("SG_QDRANT_URL", "")}[kind]
        s.qdrant.collection, s.qdrant.repository, s.qdrant.exact = collection, "repo", True
        s.qdrant.api_key_env = "SG_QDRANT_API_KEY" if os.environ.get("SG_QDRANT_API_KEY") else ""
    return s.validate()


class Harness:
    """A store, and the backend the settings name over it (reopened by open())."""

    def __init__(self, kind: str, tmp_path: Path):
        self.kind, self.tmp = kind, tmp_path
        self.store = make_store(tmp_path / "index.sqlite")
        self.collection = f"sg_contract_{uuid.uuid4().hex[:8]}"
        self.settings = settings_for(kind, tmp_path, self.collection)
        self.backend = self.open()

    def open(self):
        be = make_backend(self.store, self.tmp / "idx", self.settings, self.tmp / "repo", lambda msg: None)
        be.open_spaces(spaces())
        return be

    def close(self) -> None:
        self.backend.close()
        if self.kind == "server":
            from qdrant_client import QdrantClient

            key = os.environ.get("SG_QDRANT_API_KEY") or None
            QdrantClient(url=os.environ["SG_QDRANT_URL"], api_key=key).delete_collection(self.collection)
        self.store.close()


@pytest.fixture(params=KINDS)
def h(request, tmp_path):
    harness = Harness(request.param, tmp_path)
    yield harness
    harness.close()


def rows_of(store: Store) -> dict:
    return {r.id: r for r in store.iter_chunks()}


def dense_of(store: Store) -> dict[int, np.ndarray]:
    return {c: np.frombuffer(v, np.float32) for c, v in store.vectors_for_chunks(DENSE_NAME, ["code"])}


def tokens_of(store: Store) -> dict[int, np.ndarray]:
    ids = [c for c, r in rows_of(store).items() if r.route == "prose"]
    codec = get_codec("int8")
    return {c: codec.decode_many([b], MULTI_DIM)[0] for c, b in store.token_blobs(MULTI_NAME, ids).items()}


def top(scores: dict, k: int) -> list:
    return [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], str(kv[0])))[:k]]


def test_every_backend_in_the_table_is_in_this_suite():
    """A new row in BACKENDS needs its parameter in KINDS (and settings_for) before it ships."""
    covered = {"local"} | {"qdrant" for p in KINDS if p.values[0] != "local"}
    assert set(BACKENDS) == covered
    assert all(importlib.util.find_spec(kind.module) is not None for kind in BACKENDS.values())


def test_candidates_and_fill_in_answer_as_the_store(h):
    store, be = h.store, h.backend
    rows, dense, toks = rows_of(store), dense_of(store), tokens_of(store)
    lex = Lexical(store)
    assert be.check() == []
    assert be.vector_counts() == {DENSE_NAME: len(dense), MULTI_NAME: len(toks)}
    with be.view() as v:
        assert v.chunk_count() == len(rows)
        assert v.space_size(DENSE_NAME) == len(dense) and v.space_size(MULTI_NAME) == len(toks)
        tokens = tokenize.tokenize_query("parse config w3 handle")
        assert v.doc_freqs(tokens) == lex.doc_freqs(tokens)
        assert v.lexical([], 10, COLS) == {}
        # BM25 top-k: the keys are the store's chunk ids, the scores FTS5's
        want = lex.scores(tokens, 50, COLS)
        got = v.lexical(tokens, 50, COLS)
        assert set(got) == set(want)
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5)
        some = list(rows)[:30]
        assert v.lexical(tokens, 0, COLS, keys=some) == pytest.approx(lex.scores(tokens, 0, COLS, ids=some),
                                                                       rel=1e-4, abs=1e-5)
        # dense candidates: the nearest by cosine, and the exact cosine as fill-in
        q = unit(np.random.default_rng(9).normal(size=DENSE_DIM))
        exact = {c: float(vec @ q) for c, vec in dense.items()}
        sem = v.semantic(DENSE_NAME, q, 10)
        assert len(sem) == 10 and top(sem, 10) == top(exact, 10)
        assert sem == pytest.approx({c: exact[c] for c in sem}, abs=1e-5)
        code = [c for c, r in rows.items() if r.route == "code"][:7]
        assert v.semantic_fill(DENSE_NAME, q, code) == pytest.approx({c: exact[c] for c in code}, abs=1e-5)
        # a multi-vector space: MaxSim over the stored (decoded) token vectors / the query's token count
        qt = unit(np.random.default_rng(10).normal(size=(3, MULTI_DIM)))
        ms = v.semantic(MULTI_NAME, unit(qt.mean(0)), len(toks) + 5, tokens=qt)
        ref = {c: float((qt @ t.T).max(axis=1).sum() / 3) for c, t in toks.items()}
        assert top(ms, 10) == top(ref, 10)
        assert ms == pytest.approx({c: ref[c] for c in ms}, abs=1e-4)
        assert v.semantic_fill(MULTI_NAME, qt.mean(0), code) == {}
        assert v.semantic("no-such-space", q, 10) == {} and v.space_size("no-such-space") == 0


def test_rows_with_and_without_text_and_keys_stable_within_a_view(h):
    store, be = h.store, h.backend
    rows, dense = rows_of(store), dense_of(store)
    target = next(c for c in dense if rows[c].path.startswith("src/"))
    words = tokenize.tokenize_query(rows[target].symbol)
    with be.view() as v:
        sem = v.semantic(DENSE_NAME, dense[target], 5)
        assert top(sem, 1) == [target]
        lex = v.lexical(words, 20, COLS)
        assert target in lex  # the same chunk has the same key whichever component found it
        assert v.lexical(words, 0, COLS, keys=[target]) == pytest.approx({target: lex[target]}, rel=1e-6)
        assert v.semantic_fill(DENSE_NAME, dense[target], list(lex))[target] == pytest.approx(1.0, abs=1e-5)
        keys = top(sem, 5)
        bare, full = v.rows(keys), v.rows(keys, text=True)
        for k in keys:
            r = rows[k]
            for got in (bare[k], full[k]):
                assert (got.path, got.symbol, got.kind, got.language, got.start_line, got.end_line) == \
                    (r.path, r.symbol, r.kind, r.language, r.start_line, r.end_line)
            assert full[k].text == r.text
        gone = max(rows) + 1000
        assert set(v.rows([*keys, gone])) == set(keys)  # a key no longer indexed is left out


def add_file(store: Store, path: str) -> tuple[list[int], dict[str, str]]:
    """A new file with a code chunk and a prose chunk holding a word nothing else holds: (chunk ids, route ->
    content hash)."""
    chunks = []
    for j, route in enumerate(("code", "prose")):
        sym, body = f"zanzibar_{route}", f"zanzibar quokka {route} w1 w2"
        h = hashlib.blake2b(f"{path}\0{sym}\0{body}".encode(), digest_size=16).hexdigest()
        fts = (" ".join(tokenize.tokenize_path(path)), " ".join(tokenize.tokenize_symbol(sym)),
               " ".join(tokenize.tokenize(body)))
        chunks.append((Chunk(path, "python", "function", sym, j * 5 + 1, j * 5 + 4, body), route, h, fts))
    with store.write() as con:
        _, ids = store.put_file(con, path, 100, 2, "added-file", "python", chunks)
    return ids, {route: h for _, route, h, _ in chunks}


def test_upkeep_follows_the_store(h):
    store, be = h.store, h.backend
    before = be.vector_counts()
    # a new file: its chunks, then their vectors
    added, hashes = add_file(store, "src/added/zanzibar.py")
    be.chunks_changed([], added)
    rng = np.random.default_rng(77)
    vec, tok = unit(rng.normal(size=DENSE_DIM)), unit(rng.normal(size=(4, MULTI_DIM)))
    with store.write() as con:
        store.put_vectors(con, DENSE_NAME, [(hashes["code"], vec.tobytes(), None)])
        store.put_vectors(con, MULTI_NAME, [(hashes["prose"], unit(tok.mean(0)).tobytes(),
                                             get_codec("int8").encode(tok))])
    be.vectors_added(DENSE_NAME, [hashes["code"]])
    be.vectors_added(MULTI_NAME, [hashes["prose"]])
    assert be.vector_counts() == {DENSE_NAME: before[DENSE_NAME] + 1, MULTI_NAME: before[MULTI_NAME] + 1}
    assert be.check() == []
    rows = rows_of(store)
    code_id = next(c for c in added if rows[c].route == "code")
    prose_id = next(c for c in added if rows[c].route == "prose")
    with be.view() as v:
        assert set(v.lexical(tokenize.tokenize_query("zanzibar"), 10, COLS)) == set(added)
        assert top(v.semantic(DENSE_NAME, vec, 3), 1) == [code_id]
        assert top(v.semantic(MULTI_NAME, unit(tok.mean(0)), 50, tokens=tok), 1) == [prose_id]
        assert v.chunk_count() == len(rows)
    # a file goes: its chunks leave every component
    gone_path = "src/pkg1/mod1.py"
    with store.write() as con:
        removed = store.delete_file(con, gone_path)
    assert removed
    be.chunks_changed(removed, [])
    assert be.check() == []
    dense = dense_of(store)
    assert be.vector_counts()[DENSE_NAME] == len(dense)
    q = unit(np.random.default_rng(5).normal(size=DENSE_DIM))
    with be.view() as v:
        found = set(v.semantic(DENSE_NAME, q, 1000)) | set(v.lexical(tokenize.tokenize_query("w1 w2 w3"), 1000, COLS))
        assert found and not found & set(removed)
        assert v.chunk_count() == len(rows_of(store))


def test_drop_space_then_reopen_after_close(h):
    store, be = h.store, h.backend
    be.drop_space(MULTI_NAME)
    assert set(be.vector_counts()) == {DENSE_NAME}
    q = unit(np.random.default_rng(3).normal(size=DENSE_DIM))
    tokens = tokenize.tokenize_query("parse config retry")
    with be.view() as v:
        sem, lex = v.semantic(DENSE_NAME, q, 10), v.lexical(tokens, 20, COLS)
    be.save()
    be.close()
    h.backend = be = h.open()  # persisted state (ANN files, the Qdrant collection) comes back
    assert be.check() == []
    assert be.vector_counts() == {DENSE_NAME: len(dense_of(store)), MULTI_NAME: len(tokens_of(store))}
    with be.view() as v:
        assert top(v.semantic(DENSE_NAME, q, 10), 10) == top(sem, 10)
        assert v.lexical(tokens, 20, COLS) == pytest.approx(lex, rel=1e-6)
