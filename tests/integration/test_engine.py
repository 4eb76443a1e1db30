"""Engine integration without models: incremental indexing by content hash, skips, lexical search, store integrity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine import tokenize
from engine.backends.local.lexical import Lexical
from engine.errors import BadQuery
from engine.search import Engine
from engine.settings import load_settings
from tests.support.corpus import FILES, write


def lexical_engine(root: Path) -> Engine:
    return Engine(root, load_settings(root, {"models": {"enabled": False}}))


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    write(tmp_path, FILES)
    return tmp_path


def test_index_and_lexical_search(ws: Path) -> None:
    eng = lexical_engine(ws)
    rep = eng.index()
    assert rep.files == 4 and rep.changed == 4 and rep.chunks >= 5
    res = eng.search("exponential backoff retry", mode="lexical")
    assert res.hits[0].path == "net/retry.py" and res.hits[0].symbol == "retry_with_backoff"
    assert res.hits[0].start_line >= 1 and "lexical" in res.hits[0].components
    res = eng.search("ConfigLoader load yaml", mode="lexical")
    assert res.hits[0].symbol == "ConfigLoader.load_yaml"
    res = eng.search("ファイルを開く", mode="lexical")
    assert res.hits[0].path == "docs/guide.md"
    # hybrid without models degrades to lexical, and says so
    res = eng.search("parse query string", k=3)
    assert res.hits[0].path == "web/app.js" and res.notes
    eng.close()


def test_common_words_leave_bm25(tmp_path: Path, monkeypatch) -> None:
    """From PRUNE_FROM_CHUNKS chunks on, query words in more than max_token_share of the chunks are left out of
    BM25; the two rarest words always stay, and so do CJK words. Lowered here for a small corpus."""
    import engine.rank as rank_mod
    from engine.rank import prune_common

    files = {f"m{i}.py": f"def helper_{i}(value):\n    return value + {i}\n" for i in range(30)}
    files["net/retry.py"] = "def retry_with_backoff(value):\n    return value\n"
    write(tmp_path, files)
    eng = lexical_engine(tmp_path)
    eng.index()
    share = eng.settings.search.max_token_share
    with eng.backend.view() as v:
        assert prune_common(["value", "retry", "backoff"], v, share) == ["value", "retry", "backoff"]  # 31 chunks
    monkeypatch.setattr(rank_mod, "PRUNE_FROM_CHUNKS", 0)
    with eng.backend.view() as v:
        assert v.doc_freqs(["value", "backoff", "nosuchword"]) == {"value": 31, "backoff": 1, "nosuchword": 0}
        assert prune_common(["value", "retry", "backoff"], v, share) == ["retry", "backoff"]
        assert prune_common(["value", "return", "backoff"], v, share) == ["value", "backoff"]  # rarest two
        assert prune_common(["value", "return", "backoff", "値"], v, share) == ["value", "backoff", "値"]
    assert eng.search("retry value with backoff", mode="lexical").hits[0].path == "net/retry.py"
    eng.close()


def test_bm25_of_given_rows_equals_fts5(ws: Path) -> None:
    """Hybrid fill-in scores chosen rows with the store's own BM25; it must be FTS5's bm25() exactly."""
    eng = lexical_engine(ws)
    eng.index()
    con = eng.store.connection()
    lex = eng.backend.lexical
    assert lex.fts_totals(con) == (con.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0],
                                         con.execute("SELECT SUM(cnt) FROM temp.chunks_vocab").fetchone()[0])
    for query, weights in (("retry with exponential backoff", (1.0, 2.0, 1.0)), ("load yaml config", (0.5, 1.0, 2.0)),
                           ("ファイルを開く", (0.0, 0.0, 1.0))):
        tokens = tokenize.tokenize_query(query)
        top = lex.scores(tokens, 50, weights)
        assert top
        ids = list(top) + [999_999]
        mine = lex._bm25_of(tokens, ids, weights, con)
        assert set(mine) == set(top) and all(abs(mine[i] - top[i]) < 1e-9 * max(1, top[i]) for i in top)
    eng.close()


def test_memory_postings_equal_fts5_through_edits(ws: Path) -> None:
    """The in-memory postings (warm_lexical) rank and score as FTS5 does, and stay exact while files change
    under them: rows added later come from FTS5, rows deleted later never surface, chunk ids are not reused."""
    write(ws, {f"pkg/m{i}.py": f"def load_config_{i}(path):\n    return open(path).read() + '{i}'\n" for i in range(8)})
    eng = lexical_engine(ws)
    eng.index()
    store, lex = eng.store, eng.backend.lexical
    queries = (("retry with exponential backoff", (1.0, 2.0, 1.0)), ("load config file path", (0.5, 1.0, 2.0)),
               ("ファイルを開く", (0.0, 0.0, 1.0)), ("open read json", (1.0, 2.0, 1.0)))

    def same(got: dict[int, float], want: dict[int, float]) -> bool:
        return set(got) == set(want) and all(abs(got[i] - want[i]) < 1e-9 * max(1, want[i]) for i in want)

    def check() -> None:
        con = store.connection()
        for query, weights in queries:
            tokens = tokenize.tokenize_query(query)
            want = Lexical._fts_top(tokens, 1000, weights, con)
            assert same(lex.scores(tokens, 1000, weights, con=con), want)
            top3 = lex.scores(tokens, 3, weights, con=con)
            assert sorted(top3.values(), reverse=True) == pytest.approx(sorted(want.values(), reverse=True)[:3])
            assert same(lex.scores(tokens, 0, weights, con=con, ids=list(want) + [10**9]), want)

    eng.warm(wait=True)
    snap = lex._postings
    assert snap is not None and len(snap) == store.counts()["chunks"]
    check()
    before = max(i for ids in _ids(eng).values() for i in ids)
    last = max(_ids(eng).items(), key=lambda kv: max(kv[1]))[0]  # SQLite alone would hand its ids out again
    write(ws, {last: "def load_config_fresh(path):\n    return json.load(open(path))\n",
               "pkg/new.py": "def read_config_file(path):\n    return open(path).read()\n"})
    (ws / "pkg/m0.py").unlink()
    eng.update_files([last, "pkg/new.py", "pkg/m0.py"])
    assert min(_ids(eng)["pkg/new.py"] | _ids(eng)[last]) > before
    assert lex._postings is snap  # the same snapshot, now behind the store
    check()
    eng.close()


def _ids(eng: Engine) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for row in eng.store.iter_chunks():
        out.setdefault(row.path, set()).add(row.id)
    return out


def test_incremental_add_change_delete_rename(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    before = _ids(eng)
    gen = eng.store.generation

    rep = eng.index()  # nothing changed: no writes of files or chunks
    assert rep.changed == 0 and rep.removed == 0 and _ids(eng) == before

    (ws / "io/files.py").write_text(FILES["io/files.py"] + "\n\ndef write_csv_rows(path, rows):\n    pass\n")
    rep = eng.index()
    after = _ids(eng)
    assert rep.changed == 1
    assert after["net/retry.py"] == before["net/retry.py"] and after["web/app.js"] == before["web/app.js"]
    assert after["io/files.py"] != before["io/files.py"]
    assert eng.search("write csv rows", mode="lexical").hits[0].symbol == "write_csv_rows"
    assert eng.store.generation > gen

    (ws / "web/app.js").unlink()
    rep = eng.index()
    assert rep.removed == 1 and "web/app.js" not in _ids(eng)
    assert all(h.path != "web/app.js" for h in eng.search("parseQueryString", mode="lexical").hits)

    (ws / "net/retry.py").rename(ws / "net/backoff.py")
    eng.index()
    paths = set(_ids(eng))
    assert "net/backoff.py" in paths and "net/retry.py" not in paths
    assert eng.store.integrity() == []
    eng.close()


def test_touch_without_change_keeps_chunks(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    before = _ids(eng)
    p = ws / "net/retry.py"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    rep = eng.index()
    assert rep.changed == 0 and _ids(eng) == before
    eng.close()


def test_update_files_touches_only_that_file(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    before = _ids(eng)
    (ws / "net/retry.py").write_text("def jitter_delay(base):\n    return base * 1.5\n")
    rep = eng.update_files(["net/retry.py"])
    after = _ids(eng)
    assert rep.changed == 1 and rep.seconds < 1.0
    assert {p: v for p, v in after.items() if p != "net/retry.py"} == \
        {p: v for p, v in before.items() if p != "net/retry.py"}
    assert eng.search("jitter delay", mode="lexical").hits[0].path == "net/retry.py"
    (ws / "net/retry.py").unlink()
    eng.update_files(["net/retry.py"])
    assert "net/retry.py" not in _ids(eng)
    eng.close()


def test_skips_are_recorded(ws: Path) -> None:
    (ws / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    (ws / "big.py").write_text("x = 1\n" * 400_000)
    (ws / "bad.py").write_bytes(b"def f():\n    return '\xff\xfe'\n")
    eng = lexical_engine(ws)
    eng.index()
    reasons = {s.path: s.reason for s in eng.skipped()}
    assert reasons.get("blob.bin") == "binary"
    assert reasons.get("big.py") == "too-large"
    assert reasons.get("bad.py") == "undecodable"
    assert eng.status()["skipped"] == len(reasons)
    eng.close()


def test_index_dir_inside_workspace_is_not_indexed(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    assert not any(p.startswith(".sg") for p in _ids(eng))
    eng.close()


def test_bad_queries_are_rejected(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    with pytest.raises(BadQuery):
        eng.search("")
    with pytest.raises(BadQuery):
        eng.search("x" * 100_000)
    with pytest.raises(BadQuery):
        eng.search("retry", k=0)
    with pytest.raises(BadQuery):
        eng.search("retry", k=10**9)
    with pytest.raises(BadQuery):
        eng.search("retry", paths=["../../etc"])
    with pytest.raises(BadQuery):
        eng.search("retry", mode="telepathy")
    res = eng.search("retry json", mode="lexical", paths=["io"])
    assert res.hits and all(h.path.startswith("io/") for h in res.hits)
    eng.close()


def test_similar_excludes_itself(ws: Path) -> None:
    write(ws, {"io/more.py": 'def load_json(path):\n    import json\n    with open(path) as fh:\n'
                             '        return json.load(fh)\n'})
    eng = lexical_engine(ws)
    eng.index()
    res = eng.similar("io/files.py", 3, k=3, mode="lexical")
    assert res.hits and res.hits[0].path == "io/more.py"
    assert all(not (h.path == "io/files.py" and h.symbol == "read_json_file") for h in res.hits)
    with pytest.raises(BadQuery):
        eng.similar("../outside.py", 1)
    eng.close()


def test_unsaved_buffer_is_indexed_until_the_disk_is_read_again(tmp_path: Path) -> None:
    """An editor's unsaved text is searchable in place of the file; the next scan of the folder reads the disk again
    (an editor closed without saving, or a killed server, leaves nothing behind); a buffer meets the file rules."""
    write(tmp_path, {"src/geo.py": "def haversine(a, b):\n    return 0\n", "src/other.py": "x = 1\n"})
    eng = Engine(tmp_path, load_settings(tmp_path, {"models": {"enabled": False}, "index": {"max_file_bytes": 4096}}))
    eng.index()
    typed = "def haversine(a, b):\n    return 0\n\n\ndef zebra_stripe_counter(rows):\n    return len(rows)\n"
    rep = eng.update_files([], buffers={"src/geo.py": typed})
    assert rep.changed == 1
    assert eng.search("zebra stripe counter", mode="lexical").hits[0].symbol == "zebra_stripe_counter"
    assert (tmp_path / "src/geo.py").read_text() != typed  # nothing was written to the file
    eng.index()  # a scan: the stored mtime never matches the disk, so the file is read again
    assert not [h for h in eng.search("zebra stripe counter", mode="lexical").hits if h.symbol == "zebra_stripe_counter"]
    assert [h.symbol for h in eng.search("haversine", mode="lexical").hits] == ["haversine"]
    # the rules a file on disk meets
    eng.update_files([], buffers={"src/geo.py": "x = '" + "a" * 5000 + "'\n"})
    assert {s.path: s.reason for s in eng.skipped()} == {"src/geo.py": "too-large"}
    eng.update_files([], buffers={"src/geo.py": "x = '\x00'\n"})
    assert {s.path: s.reason for s in eng.skipped()} == {"src/geo.py": "binary"}
    eng.update_files(["src/geo.py"])  # the disk again
    assert not eng.skipped() and eng.search("haversine", mode="lexical").hits
    eng.close()


def test_a_word_searched_before_it_is_written_is_found_once_written(tmp_path: Path) -> None:
    """Document counts are cached per index state: an edit that keeps the row and token totals (one word replaced
    by another) must still make a word that was searched before it existed findable (in-memory postings too)."""
    write(tmp_path, {"a.py": "def alpha():\n    return 'zqbxa'\n", "b.py": "def beta():\n    return 'other'\n"})
    eng = lexical_engine(tmp_path)
    eng.index()
    eng.warm(wait=True)
    assert eng.search("zqbxb", mode="lexical").hits == []
    write(tmp_path, {"a.py": "def alpha():\n    return 'zqbxb'\n"})
    eng.update_files(["a.py"])
    assert [h.path for h in eng.search("zqbxb", mode="lexical").hits] == ["a.py"]
    eng.close()


# -- the public API the server and the CLI use ------------------------------------------------------------------
def test_chunk_at_one_rule_for_lines_and_columns(ws: Path) -> None:
    """The innermost function, method or class chunk that encloses the position (a column before a chunk's start
    on its first line is outside it), else the innermost chunk of any kind; similar() starts from the same chunk."""
    eng = lexical_engine(ws)
    eng.index()
    method = eng.chunk_at("io/files.py", 13)  # inside ConfigLoader.load_yaml (lines 12-14, from column 4)
    assert method is not None and method.symbol == "ConfigLoader.load_yaml" and method.kind == "method"
    assert (method.start_line, method.start_col, method.end_line) == (12, 4, 14)
    assert eng.chunk_at(str(ws / "io/files.py"), 13) == method  # an absolute path inside the workspace
    assert eng.chunk_at("io/files.py", 12, 4) == method and eng.chunk_at("io/files.py", 12) == method
    assert eng.chunk_at("io/files.py", 12, 3) is None  # the indentation before `def` is outside the method
    assert eng.chunk_at("io/files.py", 14, method.end_col + 1) is None
    assert eng.chunk_at("io/files.py", 9).kind == "class"
    assert eng.chunk_at("io/files.py", 3).symbol == "read_json_file"
    assert eng.chunk_at("io/files.py", 999) is None and eng.chunk_at("nowhere.py", 1) is None
    with pytest.raises(BadQuery):
        eng.chunk_at("../outside.py", 1)
    res = eng.similar("io/files.py", 13, k=3, mode="lexical")
    assert all(h.symbol != "ConfigLoader.load_yaml" for h in res.hits)
    eng.close()


def test_needs_rescan_only_for_a_deleted_folder_of_indexed_files(ws: Path) -> None:
    eng = lexical_engine(ws)
    eng.index()
    assert eng.needs_rescan(["net"]) and eng.needs_rescan(["io/"])
    assert not eng.needs_rescan(["net/retry.py"]) and not eng.needs_rescan(["ne", "nothing/here"])
    eng.close()


def test_configure_applies_search_settings_in_place_and_refuses_index_changes(ws: Path) -> None:
    eng = lexical_engine(ws)
    new = load_settings(ws, {"models": {"enabled": False}, "search": {"max_results": 5}})
    assert eng.configure(new) and eng.settings.search.max_results == 5
    with pytest.raises(BadQuery, match="between 1 and 5"):
        eng.search("retry", k=6, mode="lexical")
    changed = load_settings(ws, {"models": {"enabled": False}, "index": {"max_chunk_lines": 40}})
    assert not eng.configure(changed) and eng.settings.search.max_results == 5
    eng.close()


def test_search_answers_lexically_while_models_are_not_ready(ws: Path) -> None:
    """With wait_for_models=False a search never blocks on the models: lexical results, said in a note."""
    eng = Engine(ws, load_settings(ws))  # models enabled, not loaded yet
    eng.index(embed=False)
    assert eng.model_state()[0] == "not loaded"
    res = eng.search("retry with exponential backoff", k=3, wait_for_models=False)
    assert res.mode == "lexical" and res.hits[0].symbol == "retry_with_backoff"
    assert "models are still loading: lexical results only" in res.notes
    assert eng.model_state()[0] == "not loaded"  # and it did not start loading them either
    eng.close()


def test_search_many_merges_folders_and_scopes_paths(tmp_path: Path) -> None:
    from engine import MultiResult, Target, scope_patterns, search_many

    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {"net/retry.py": FILES["net/retry.py"]})
    write(b, {"io/files.py": FILES["io/files.py"], "net/backoff.py": "def backoff_delay(i):\n    return 2 ** i\n"})
    ea, eb = lexical_engine(a), lexical_engine(b)
    ea.index()
    eb.index()
    targets = [Target("a", ea), Target("b", eb, indexing=True)]
    res = search_many(targets, "retry backoff", k=5, mode="lexical")
    assert isinstance(res, MultiResult) and {i for i, _ in res.hits} == {0, 1}
    assert [h.score for _, h in res.hits] == sorted((h.score for _, h in res.hits), reverse=True)
    assert "b: still indexing; results come from what is indexed so far" in res.notes
    only_b = search_many(targets, "retry backoff", k=5, mode="lexical", paths=[str(b / "net")])
    assert only_b.hits and {i for i, _ in only_b.hits} == {1}
    assert scope_patterns(["net/*.py", str(b / "io")], [a, b]) == [["net/*.py"], ["net/*.py", "io"]]
    for bad in (["../x"], [str(tmp_path / "elsewhere")], "net", [""]):
        with pytest.raises(BadQuery):
            scope_patterns(bad, [a, b])
    broken = search_many([Target("a", ea), Target("b", eb, error="index is locked")], "retry", k=3, mode="lexical")
    assert broken.hits and "b: not searched: index is locked" in broken.notes
    ea.close()
    eb.close()
