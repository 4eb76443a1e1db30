"""Engine with real model code: tiny random XTR (multi-vector, MaxSim over compressed token vectors) and tiny BERT
through the same loaders as real checkpoints; the real offline MiniLM for quality on a CoSQA slice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.embed import load_embedders
from engine.eval import run_eval
from engine.search import Engine
from engine.settings import load_settings
from tests.support.corpus import FILES, write
from tests.support.models import build_st_bert, build_xtr, hub_snapshot

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("hub")
    build_xtr(hub_snapshot(cache, "google/xtr-base-en"))
    return cache


def engine_with(root: Path, overrides: dict) -> Engine:
    settings = load_settings(root, overrides)
    return Engine(root, settings, embedders=load_embedders(settings.models))


@pytest.mark.parametrize("codec", ["fp32", "fp16", "int8", "pq"])
def test_multi_vector_space_reranks_with_maxsim(hub: Path, tmp_path: Path, monkeypatch, codec: str) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    write(tmp_path, FILES)
    eng = engine_with(tmp_path, {"models": {"code": "google/xtr-base-en", "prose": "google/xtr-base-en",
                                            "threads": 1},
                                 "index": {"token_codec": codec}})
    rep = eng.index()
    assert rep.embedded >= 5 and eng.check() == []
    sp = next(iter(eng.spaces.values()))
    assert sp.embedder.multi_vector and sp.codec is not None
    res = eng.search("retry with exponential backoff", mode="semantic", k=5)
    assert res.hits and all(any(k.startswith("sem:") for k in h.components) for h in res.hits)
    # the MaxSim the engine used equals MaxSim over freshly computed token vectors (up to the codec's loss)
    q = sp.embedder.embed_queries(["retry with exponential backoff"])[0]
    top = res.hits[0]
    row = eng.store.chunks_by_id([top.chunk_id])[top.chunk_id]
    from engine.embed.render import render_for_embedding

    d = sp.embedder.embed_documents([render_for_embedding(row, eng.settings.index.embed_render)])[0]
    exact = float((q @ d.T).max(axis=1).sum() / len(q))
    assert res.hits[0].components  # explained
    stored = sp.codec.decode(eng.store.token_blobs(sp.name, [top.chunk_id])[top.chunk_id], sp.embedder.dim)
    assert stored.shape == d.shape
    tol = {"fp32": 1e-5, "fp16": 1e-3, "int8": 2e-2, "pq": 0.35}[codec]
    assert abs(float((q @ stored.T).max(axis=1).sum() / len(q)) - exact) < tol
    eng.close()
    # reopening finds the saved ANN (same generation) and the PQ codebook in the store
    eng = engine_with(tmp_path, {"models": {"code": "google/xtr-base-en", "prose": "google/xtr-base-en",
                                            "threads": 1}, "index": {"token_codec": codec}})
    assert eng.index().embedded == 0 and eng.check() == []
    assert eng.search("retry with exponential backoff", mode="semantic", k=5).hits[0].chunk_id == top.chunk_id
    eng.close()


def test_token_vectors_are_read_by_chunk_id_not_by_scanning_the_space(hub: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """The rerank reads its candidates' token vectors by chunk id. SQLite once planned that join from the vectors
    side, reading every token blob of the space for each query (50-100 ms at 3K chunks, growing with the store)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    write(tmp_path, FILES)
    eng = engine_with(tmp_path, {"models": {"code": "google/xtr-base-en", "prose": "google/xtr-base-en",
                                            "threads": 1}})
    eng.index()
    sp = next(iter(eng.spaces.values()))
    ids = sorted({row.id for row in eng.store.iter_chunks()} | set(range(1, 101)))  # a rerank's 100 candidates
    sql = eng.store.TOKENS_SQL.format(marks=",".join("?" * len(ids)))
    plan = [row[-1] for row in eng.store.connection().execute("EXPLAIN QUERY PLAN " + sql, (sp.name, *ids))]
    assert plan[0].startswith("SEARCH c USING INTEGER PRIMARY KEY"), plan
    assert plan[1].startswith("SEARCH v USING PRIMARY KEY (space=? AND hash=?)"), plan
    assert set(eng.store.token_blobs(sp.name, ids)) <= set(ids) and eng.store.token_blobs(sp.name, ids)
    eng.close()


def test_model_change_reembeds_that_space_only(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws, FILES)
    a = build_st_bert(tmp_path / "model-a")
    b = build_st_bert(tmp_path / "model-b", dense=False)
    eng = engine_with(ws, {"models": {"model_path": str(a), "threads": 1}})
    first = eng.index()
    ids = sorted(r.id for r in eng.store.iter_chunks())
    eng.close()
    eng = engine_with(ws, {"models": {"model_path": str(b), "threads": 1}})
    second = eng.index()
    assert second.changed == 0  # the lexical index is not rebuilt for a model change
    assert sorted(r.id for r in eng.store.iter_chunks()) == ids
    assert second.embedded == first.embedded  # every chunk embedded again, in the new model's own space
    assert len(eng.store.spaces()) == 2 and eng.check() == []
    eng.close()


def test_update_files_embeds_only_new_chunks(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    model = build_st_bert(tmp_path.parent / f"{tmp_path.name}-model")
    eng = engine_with(tmp_path, {"models": {"model_path": str(model), "threads": 1}})
    eng.index()
    (tmp_path / "net/retry.py").write_text(FILES["net/retry.py"] + "\n\ndef jitter(x):\n    return x * 1.1\n")
    rep = eng.update_files(["net/retry.py"])
    # only the new function (and the file's changed leftover code) is embedded; unchanged functions reuse vectors
    assert 1 <= rep.embedded <= 2 and eng.check() == []
    assert any(h.symbol == "jitter" for h in eng.search("jitter", mode="hybrid", k=3).hits)
    eng.close()


def test_real_minilm_beats_lexical_on_paraphrased_queries(bench_dir: Path, tmp_path: Path) -> None:
    """30 CoSQA queries against their gold functions plus 270 other functions."""
    spec = json.loads((bench_dir / "cosqa" / "dev.json").read_text())
    queries = spec["queries"][:30]
    src = bench_dir / "cosqa" / "corpus"
    gold = {r for q in queries for r in q["relevant"]}
    others = [p.name for p in sorted(src.iterdir()) if p.name not in gold][:270]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in sorted(gold) + others:
        shutil.copy(src / name, corpus / name)
    (tmp_path / "spec.json").write_text(json.dumps({"name": "cosqa-slice", "corpus": "corpus", "mode": "search",
                                                   "queries": queries}))
    settings = load_settings(None, {"models": {"threads": 1}})
    lex = run_eval(tmp_path / "spec.json", mode="lexical", settings=settings, index_dir=tmp_path / "idx")
    settings = load_settings(None, {"models": {"threads": 1}})
    sem = run_eval(tmp_path / "spec.json", mode="semantic", settings=settings, index_dir=tmp_path / "idx")
    hyb = run_eval(tmp_path / "spec.json", mode="hybrid", settings=load_settings(None, {"models": {"threads": 1}}),
                   index_dir=tmp_path / "idx")
    assert sem.mrr_at_10 > lex.mrr_at_10 + 0.1, (sem.as_dict(), lex.as_dict())
    assert hyb.mrr_at_10 >= max(sem.mrr_at_10, lex.mrr_at_10) - 0.05, (hyb.as_dict(), sem.as_dict())
    assert np.isfinite(hyb.p_at_1)


def test_bm25_share_of_an_english_query_without_a_cjk_model(tmp_path: Path) -> None:
    """An English query's small cross-language weight for the (unserved) cjk route does not go to BM25: BM25 keeps
    search.lexical_weight. A Japanese query with no CJK model is served by BM25 for its own route."""
    write(tmp_path, FILES)
    model = build_st_bert(tmp_path.parent / f"{tmp_path.name}-model")
    eng = engine_with(tmp_path, {"models": {"model_path": str(model), "threads": 1}})
    eng.index()
    lw = eng.settings.search.lexical_weight
    sp = next(iter(eng.spaces.values()))
    coverage = eng.backend.vector_counts()[sp.name] / eng.store.chunk_count()  # the space's weight shrinks with the share of chunks it holds
    hits = eng.search("retry with exponential backoff", mode="hybrid", k=5).hits
    share = max(h.components.get("lexical", 0.0) for h in hits)
    assert share == pytest.approx(lw / (lw + (1 - lw) * coverage))
    ja = eng.search("ファイルを開く", mode="hybrid", k=5).hits
    assert ja and ja[0].path == "docs/guide.md" and ja[0].components["lexical"] > 0.5
    eng.close()


def _vector_rows(eng: Engine) -> int:
    import sqlite3

    with sqlite3.connect(eng.status()["index"]) as con:
        return con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]


def test_store_stays_bounded_under_repeated_edits(tmp_path: Path) -> None:
    """Vectors are keyed by content: each save of an edited function used to leave the old version's vector in the
    store forever (Store.gc_vectors existed, nothing called it). 300 saves must not leave 300 dead vectors."""
    from engine.indexer import GC_MIN

    model = tmp_path / "model"
    build_st_bert(model)
    root = tmp_path / "ws"
    root.mkdir()
    write(root, FILES)
    eng = engine_with(root, {"models": {"model_path": str(model), "threads": 1}})
    try:
        eng.index()
        live = _vector_rows(eng)
        for i in range(300):
            (root / "edited.py").write_text(f"def edited_{i}(x):\n    return x + {i}\n")
            eng.update_files(["edited.py"])
        assert eng.search("edited_299", k=1, mode="semantic").hits
        assert _vector_rows(eng) <= live + 1 + GC_MIN
        assert eng.check() == []
    finally:
        eng.close()


def test_settings_problems_are_reported_when_the_engine_reads_them(tmp_path: Path) -> None:
    """Engine.problems used to be written and never read: a typo in .sg.toml vanished silently."""
    (tmp_path / ".sg.toml").write_text('[search]\nmode = "semantic"\nbogus_key = 1\n[index]\nmax_file_bytes = 0\n')
    said: list[str] = []
    eng = Engine(tmp_path, log=said.append)
    try:
        problems = eng.status()["problems"]
        assert any("bogus_key" in p for p in problems) and any("max_file_bytes" in p for p in problems)
        assert all(any(p in s for s in said) for p in problems)
        assert eng.settings.search.mode == "semantic"  # the good value is kept, the bad ones dropped
    finally:
        eng.close()
