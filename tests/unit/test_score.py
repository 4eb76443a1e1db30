"""Unit tests for the pure scoring functions: MaxSim, normalisation, fusion, name boost, test paths, dedupe."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.score import (Fused, dedupe, fuse_linear, fuse_rrf, is_test_path, maxsim, maxsim_many, maxsim_packed,
                          minmax, name_boost, query_mentions_tests, ranked, ranks, split_identifier)


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# MaxSim -----------------------------------------------------------------------------------------------------------


def test_maxsim_by_hand():
    q = np.array([[1, 0], [0, 1]], np.float32)
    doc = np.array([[0.6, 0.8], [1, 0], [-1, 0]], np.float32)
    assert maxsim(q, doc) == pytest.approx(1.0 + 0.8)


def test_maxsim_empty_sides_score_zero():
    q = np.ones((3, 4), np.float32)
    assert maxsim(q, np.zeros((0, 4), np.float32)) == 0.0
    assert maxsim(np.zeros((0, 4), np.float32), q) == 0.0


def test_maxsim_many_matches_the_loop_including_empty_docs():
    rng = np.random.default_rng(0)
    q = unit(rng, 7, 16)
    docs = [unit(rng, n, 16) for n in (5, 0, 1, 12, 0, 3)]
    got = maxsim_many(q, docs)
    assert got.dtype == np.float32 and got.shape == (6,)
    np.testing.assert_allclose(got, [maxsim(q, d) for d in docs], atol=1e-5)
    assert got[1] == 0.0 and got[4] == 0.0


def test_maxsim_many_edge_cases():
    rng = np.random.default_rng(1)
    q = unit(rng, 3, 8)
    assert maxsim_many(q, []).shape == (0,)
    np.testing.assert_array_equal(maxsim_many(q, [np.zeros((0, 8), np.float32)] * 2), [0.0, 0.0])
    np.testing.assert_array_equal(maxsim_many(np.zeros((0, 8), np.float32), [unit(rng, 2, 8)]), [0.0])


def test_maxsim_packed_matches_and_checks_lengths():
    rng = np.random.default_rng(2)
    q = unit(rng, 4, 8)
    docs = [unit(rng, n, 8) for n in (3, 0, 2)]
    flat = np.concatenate(docs)
    np.testing.assert_allclose(maxsim_packed(q, flat, [3, 0, 2]), maxsim_many(q, docs), atol=1e-6)
    with pytest.raises(ValueError):
        maxsim_packed(q, flat, [3, 0, 1])


# minmax -----------------------------------------------------------------------------------------------------------


def test_minmax_basic():
    assert minmax({1: 2.0, 2: 4.0, 3: 3.0}) == {1: 0.0, 2: 1.0, 3: 0.5}


@pytest.mark.parametrize("scores", [{1: 3.0}, {1: -2.0, 2: -2.0}, {1: 0.0, 2: 0.0, 3: 0.0}])
def test_minmax_all_equal_gives_one(scores):
    assert minmax(scores) == dict.fromkeys(scores, 1.0)


def test_minmax_empty_and_non_finite():
    assert minmax({}) == {}
    assert minmax({1: math.nan, 2: math.inf}) == {}
    assert minmax({1: 1.0, 2: math.nan, 3: 3.0, 4: -math.inf}) == {1: 0.0, 3: 1.0}


def test_minmax_huge_span_does_not_overflow():
    out = minmax({1: -1e308, 2: 1e308, 3: 0.0})
    assert out == {1: 0.0, 2: 1.0, 3: 0.5}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(0, 50), st.floats(allow_nan=True, allow_infinity=True), max_size=20))
def test_minmax_never_produces_nan_and_stays_in_unit_interval(scores):
    out = minmax(scores)
    assert all(0.0 <= v <= 1.0 for v in out.values())
    if out:
        assert max(out.values()) == 1.0


# fusion -----------------------------------------------------------------------------------------------------------


def test_fuse_linear_weighted_and_explained():
    comps = {"sem": {1: 0.9, 2: 0.5, 3: 0.1}, "lex": {2: 10.0, 4: 5.0}}
    fused = fuse_linear(comps, {"sem": 0.75, "lex": 0.25})
    assert fused[1].parts == {"sem": 0.75, "lex": 0.0}
    assert fused[2].score == pytest.approx(0.75 * 0.5 + 0.25 * 1.0)
    assert fused[4].parts == {"sem": 0.0, "lex": 0.0}  # worst lexical hit normalises to 0
    assert fused[3].score == 0.0
    for f in fused.values():
        assert f.score == pytest.approx(sum(f.parts.values()))
        assert 0.0 <= f.score <= 1.0
    assert [doc for doc, _ in ranked(fused)] == [1, 2, 3, 4]  # ties broken by id


def test_fuse_linear_divides_by_total_weight():
    fused = fuse_linear({"a": {1: 1.0, 2: 0.0}, "b": {1: 5.0, 2: 1.0}}, {"a": 2.0, "b": 2.0})
    assert fused[1].score == pytest.approx(1.0)


def test_fuse_zero_weights():
    comps = {"a": {1: 1.0, 2: 0.5}, "b": {2: 3.0}}
    fused = fuse_linear(comps, {"a": 1.0, "b": 0.0})
    assert fused[2].parts["b"] == 0.0 and fused[1].score == 1.0
    for fuse in (fuse_linear, fuse_rrf):
        allzero = fuse(comps, {"a": 0.0, "b": 0.0})
        assert set(allzero) == {1, 2} and all(f.score == 0.0 for f in allzero.values())


@pytest.mark.parametrize("fuse", [fuse_linear, fuse_rrf])
def test_fuse_empty_inputs(fuse):
    assert fuse({}, {}) == {}
    assert fuse({"a": {}, "b": {}}, {"a": 1.0, "b": 1.0}) == {}
    out = fuse({"a": {}, "b": {7: 2.0}}, {"a": 1.0, "b": 1.0})
    assert set(out) == {7} and out[7].parts["a"] == 0.0 and out[7].score == pytest.approx(0.5)


@pytest.mark.parametrize("fuse", [fuse_linear, fuse_rrf])
@pytest.mark.parametrize("weights", [{"a": 1.0, "b": -0.5}, {"a": 1.0, "b": math.nan}, {"a": math.inf}])
def test_fuse_rejects_bad_weights(fuse, weights):
    with pytest.raises(ValueError):
        fuse({"a": {1: 1.0}, "b": {1: 1.0}}, weights)


@pytest.mark.parametrize("fuse", [fuse_linear, fuse_rrf])
def test_fuse_missing_weight_counts_as_zero(fuse):
    out = fuse({"a": {1: 1.0, 2: 0.5}, "b": {3: 1.0}}, {"a": 1.0})
    assert out[1].score == pytest.approx(1.0) and out[1].parts == {"a": pytest.approx(1.0), "b": 0.0}
    assert out[3].score == 0.0


def test_fuse_ignores_weights_of_absent_components():
    out = fuse_linear({"a": {1: 1.0}}, {"a": 1.0, "unused": 5.0})
    assert out[1].score == 1.0 and out[1].parts == {"a": 1.0}


def test_ranks_share_ties():
    assert ranks({1: 5.0, 2: 3.0, 3: 3.0, 4: 1.0}) == {1: 1, 2: 2, 3: 2, 4: 4}
    assert ranks({}) == {}
    assert ranks({1: math.nan, 2: 1.0}) == {2: 1}


def test_fuse_rrf():
    comps = {"sem": {1: 0.9, 2: 0.8, 3: 0.7}, "lex": {3: 9.0, 1: 1.0}}
    fused = fuse_rrf(comps, {"sem": 1.0, "lex": 1.0}, k=60)
    scale = 61 / 2
    assert fused[1].parts["sem"] == pytest.approx(scale / 61)
    assert fused[1].parts["lex"] == pytest.approx(scale / 62)
    assert fused[2].parts["lex"] == 0.0
    assert fused[3].score == pytest.approx(scale * (1 / 63 + 1 / 61))
    assert [doc for doc, _ in ranked(fused)] == [1, 3, 2]
    top_everywhere = fuse_rrf({"a": {1: 1.0}, "b": {1: 2.0}}, {"a": 0.3, "b": 0.7})
    assert top_everywhere[1].score == pytest.approx(1.0)


ANY_SCORES = st.dictionaries(st.integers(0, 30), st.floats(allow_nan=True, allow_infinity=True), max_size=15)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), ANY_SCORES),
       st.floats(0, 10), st.floats(0, 10), st.floats(0, 10))
def test_fusion_never_produces_nan(comps, wa, wb, wc):
    weights = {"a": wa, "b": wb, "c": wc}
    for fused in (fuse_linear(comps, weights), fuse_rrf(comps, weights)):
        for f in fused.values():
            assert isinstance(f, Fused)
            assert math.isfinite(f.score) and -1e-9 <= f.score <= 1.0 + 1e-9
            assert all(math.isfinite(v) for v in f.parts.values())
            assert set(f.parts) == set(comps)


# names ------------------------------------------------------------------------------------------------------------


def test_split_identifier():
    assert split_identifier("parseHTTPResponse_v2") == ["parse", "http", "response", "v", "2"]
    assert split_identifier("Text.split") == ["text", "split"]
    assert split_identifier("ÉcoleNormale") == ["école", "normale"]
    assert split_identifier("日本語 テスト") == ["日本語", "テスト"]
    assert split_identifier("") == []


def test_name_boost_stem_symbol_and_directory():
    assert name_boost(["score"], "engine/score.py", []) == 1.0
    assert name_boost(["engine"], "engine/score.py", []) == 0.5
    assert name_boost(["split"], "rich/text.py", ["Text.split"]) == 1.0
    assert name_boost(["missing"], "engine/score.py", ["maxsim"]) == 0.0
    assert name_boost(["engine", "score"], "engine/score.py", []) == 0.75


def test_name_boost_ignores_stop_words_and_duplicates():
    assert name_boost(["how", "to", "the"], "a/b.py", ["how"]) == 0.0
    assert name_boost(["how", "to", "score", "score"], "engine/score.py", []) == 1.0
    assert name_boost([], "engine/score.py", []) == 0.0


def test_name_boost_splits_identifiers_and_prefixes():
    assert name_boost(["getUser"], "api/users.py", []) == 1.0  # get is a stop word; user ~ users
    assert name_boost(["token"], "engine/tokenizer.py", []) == 1.0
    assert name_boost(["form"], "engine/format.py", []) == 0.0  # too short for a prefix match
    assert name_boost(["deprecation"], "core.py", ["_format_deprecated_label"]) == 1.0  # derived forms
    assert name_boost(["validation"], "core.py", ["validate"]) == 1.0
    assert name_boost(["transform"], "core.py", ["transfer"]) == 0.0  # "trans" is not enough of "transform"
    assert name_boost(["parse"], "core.py", ["parallel"]) == 0.0
    assert name_boost(["general"], "core.py", ["generate"]) == 0.0
    assert name_boost(["pool", "http"], "src/http/clientPool.py", []) == 0.75


def test_name_boost_accepts_segments_and_tokenizer_word_lists():
    # segments
    assert name_boost(["pool"], ["src", "http", "client_pool.py"], []) == 1.0
    assert name_boost(["http"], ["src", "http", "client_pool.py"], []) == 0.5
    # an ordered word list with the extension last, as a path tokenizer produces it
    words = ["src", "http", "client", "pool", "client_pool", "py"]
    assert name_boost(["pool"], words, []) == 1.0
    assert name_boost(["client"], words, []) == 1.0
    assert name_boost(["http"], words, []) == 0.5
    assert name_boost(["py"], words, []) == 0.0
    assert name_boost(["score"], ["engine", "score", "py"], []) == 1.0
    assert name_boost(["engine"], ["engine", "score", "py"], []) == 0.5
    assert name_boost(["makefile"], ["makefile"], []) == 1.0
    assert name_boost(["x"], [], []) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=6), st.text(max_size=30), st.lists(st.text(max_size=12), max_size=4))
def test_name_boost_in_unit_interval(query, path, symbols):
    assert 0.0 <= name_boost(query, path, symbols) <= 1.0
    assert 0.0 <= name_boost(query, path.split("/"), symbols) <= 1.0


# tests ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "tests/test_score.py", "pkg/tests/helpers.py", "test_score.py", "score_test.py", "conftest.py", "src/tests.py",
    "server/handler_test.go", "web/src/app.spec.ts", "web/src/app.test.tsx", "web/__tests__/app.js",
    "src/test/java/org/x/FooTest.java", "src/main/java/TestFoo.java", "FooTests.cs", "FooIT.java",
    "spec/models/user_spec.rb", "lib/foo_unittest.cc", "t/basic.t", "testing/test_main.py", "Sources\\AppTests.swift",
])
def test_is_test_path_true(path):
    assert is_test_path(path, "")


@pytest.mark.parametrize("path,symbol", [
    ("engine/score.py", ""), ("src/_pytest/reports.py", "TestReport"), ("src/_pytest/legacypath.py", "Testdir.tmpdir"),
    ("src/_pytest/legacypath.py", "Testdir.test_tmproot"), ("src/contest.py", ""), ("src/latest.go", ""),
    ("src/Testament.java", ""), ("src/attestation.ts", ""), ("src/testing.py", ""), ("", ""), ("numpy/testing/", ""),
    ("src/app.py", "test_connection"), ("src/protest/main.py", ""),
])
def test_is_test_path_false(path, symbol):
    assert not is_test_path(path, symbol)


@pytest.mark.parametrize("symbol", ["TestParser.test_empty", "ParserTest.testEmpty", "ParserTests.test",
                                    "mod::TestX::test_y"])
def test_is_test_path_test_method_in_test_class(symbol):
    assert is_test_path("src/checks.py", symbol)


@pytest.mark.parametrize("query", ["unit tests for the parser", "pytest fixture for tmp dirs", "test_parse",
                                   "how do I mock the clock", "TestCase setUp", "パーサーの単体テスト", "解析器的测试"])
def test_query_mentions_tests_true(query):
    assert query_mentions_tests(query)


@pytest.mark.parametrize("query", ["latest version of file", "parse the contest results", "attestation signature",
                                   "read a json file", "", "テキストを分割する"])
def test_query_mentions_tests_false(query):
    assert not query_mentions_tests(query)


# dedupe -----------------------------------------------------------------------------------------------------------


@dataclass
class H:
    path: str
    symbol: str
    score: float
    start_line: int = 1
    end_line: int = 10


@dataclass
class Bare:
    path: str
    symbol: str
    score: float


def test_dedupe_keeps_best_window_of_a_function():
    hits = [H("a.py", "f", 0.5, 1, 60), H("a.py", "f", 0.9, 50, 110), H("a.py", "g", 0.7), H("b.py", "f", 0.6)]
    out = dedupe(hits)
    assert [(h.path, h.symbol, h.score) for h in out] == [("a.py", "f", 0.9), ("a.py", "g", 0.7), ("b.py", "f", 0.6)]


def test_dedupe_unnamed_hits_are_kept_unless_near_duplicates():
    hits = [H("d.md", "", 0.9, 1, 60), H("d.md", "", 0.8, 51, 110), H("d.md", "", 0.7, 5, 58),
            H("d.md", "", 0.6, 20, 90), H("e.md", "", 0.5, 1, 60)]
    # 51-110 shares 10 lines with 1-60: a neighbouring window, kept; 5-58 and 20-90 mostly repeat kept ones
    assert [(h.path, h.start_line) for h in dedupe(hits)] == [("d.md", 1), ("d.md", 51), ("e.md", 1)]


def test_dedupe_generic_objects_without_lines():
    hits = [Bare("a", "", 0.1), Bare("a", "", 0.3), Bare("a", "s", 0.2), Bare("a", "s", 0.25), Bare("b", "", 0.0)]
    assert [(h.path, h.symbol, h.score) for h in dedupe(hits)] == [
        ("a", "", 0.3), ("a", "s", 0.25), ("a", "", 0.1), ("b", "", 0.0)]


def test_dedupe_is_stable_and_handles_empty_and_nan():
    assert dedupe([]) == []
    a, b = Bare("x", "f", 0.5), Bare("y", "f", 0.5)
    assert dedupe([a, b]) == [a, b]
    assert dedupe([b, a]) == [b, a]
    nan = Bare("z", "g", math.nan)
    assert dedupe([nan, a]) == [a, nan]
