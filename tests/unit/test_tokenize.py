"""Unit tests for the lexical tokenizer: code identifiers, CJK analysers and their fallback, FTS5 compatibility."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import threading
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.tokenize as T
from engine.tokenize import has_cjk, tokenize, tokenize_path, tokenize_query, tokenize_symbol

HAS_SUDACHI = T._SUDACHI.get() is not None
HAS_JIEBA = importlib.util.find_spec("jieba") is not None
needs_sudachi = pytest.mark.skipif(not HAS_SUDACHI, reason="sudachipy + sudachidict-core not installed")
needs_jieba = pytest.mark.skipif(not HAS_JIEBA, reason="jieba not installed")

JA = "argparse でハイフン付きの省略可能なオプションを追加するやり方"


# --- code -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("getUserName", ["get", "user", "name", "getusername"]),
        ("GetUserName", ["get", "user", "name", "getusername"]),
        ("HTTPServer", ["http", "server", "httpserver"]),
        ("XMLHttpRequest", ["xml", "http", "request", "xmlhttprequest"]),
        ("client_pool", ["client", "pool", "client_pool"]),
        ("MAX_RETRY_COUNT", ["max", "retry", "count", "max_retry_count"]),
        ("__init__", ["init"]),
        ("__set_name__", ["set", "name", "set_name"]),
        ("utf8Decode", ["utf", "8", "decode", "utf8decode"]),
        ("base64", ["base", "64", "base64"]),
        ("x", ["x"]),
        ("kebab-case-name", ["kebab", "case", "name"]),
        ("foo.bar(baz, qux=1)", ["foo", "bar", "baz", "qux", "1"]),
        ("ПриветМир", ["привет", "мир", "приветмир"]),
        ("naïveBayes", ["naïve", "bayes", "naïvebayes"]),
    ],
)
def test_identifiers(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_document_tokens_keep_term_frequency() -> None:
    assert tokenize("def f(x): return x + x") == ["def", "f", "x", "return", "x", "x"]


def test_path_and_symbol() -> None:
    assert tokenize_path("src/http/client_pool.py") == ["src", "http", "client", "pool", "client_pool", "py"]
    assert tokenize_path("a/a/a.py") == ["a", "py"]
    assert tokenize_symbol("HTTPServer.get_user") == ["http", "server", "httpserver", "get", "user", "get_user"]
    assert tokenize_symbol("impl Foo::bar") == ["impl", "foo", "bar"]


def test_query_dedupes_and_caps() -> None:
    assert tokenize_query("open file, open FILE") == ["open", "file"]
    many = " ".join("q" + chr(97 + i // 26) + chr(97 + i % 26) for i in range(200))  # 200 distinct words
    assert len(tokenize_query(many)) == T.MAX_QUERY_TOKENS
    assert len(tokenize_query(many, limit=None)) == 200
    assert tokenize_query("") == [] and tokenize_query("  ...  ") == []


def test_overlong_blobs_are_dropped() -> None:
    blob = "a" * 500
    assert tokenize(f"{blob} keep") == ["keep"]
    assert tokenize("x_" + "b" * 100) == ["x"]  # the part and the whole are too long; "x" stays


def test_full_width_latin_is_folded() -> None:
    assert tokenize("ＡＰＩ　Ｃｌｉｅｎｔ") == ["api", "client"]


# --- CJK --------------------------------------------------------------------------------------------------------


def test_has_cjk() -> None:
    assert has_cjk("ファイル") and has_cjk("中文") and has_cjk("한국어") and has_cjk("ｶﾀｶﾅ") and has_cjk("ひらがな")
    assert not has_cjk("plain ascii") and not has_cjk("naïve Привет") and not has_cjk("")


@needs_sudachi
def test_japanese_with_sudachi() -> None:
    toks = tokenize("ファイルを開く")
    assert toks == ["ファイル", "開く"]  # the particle を is dropped
    toks = tokenize(JA)
    assert {"argparse", "ハイフン", "省略", "可能", "オプション", "追加"} <= set(toks)
    assert not {"の", "を", "な"} & set(toks)
    # normalized forms: spelling variants meet
    assert tokenize("サーバに接続") == tokenize("サーバーに接続")
    assert tokenize("パラメータを渡す")[0] == tokenize("パラメーター")[0]


def test_japanese_bigram_fallback() -> None:
    assert tokenize("ファイルを開く", analyser=False) == ["ファ", "ァイ", "イル", "ルを", "を開", "開く"]
    # pairs of two hiragana (particles, inflections) and lone hiragana are skipped
    assert tokenize("これは", analyser=False) == []
    assert tokenize("`x` を `y`", analyser=False) == ["x", "y"]
    assert tokenize("型", analyser=False) == ["型"]


def test_analyser_import_failure_falls_back_to_bigrams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sudachipy", None)  # import sudachipy now raises ImportError
    monkeypatch.setattr(T, "_SUDACHI", T._Lazy(T._load_sudachi))
    assert tokenize(JA) == tokenize(JA, analyser=False)
    assert tokenize_query(JA) == tokenize_query(JA, analyser=False)
    assert "ja=bigram" in T.tokenizer_id()


def test_tokenizer_id() -> None:
    assert T.tokenizer_id(analyser=False) == f"sg-tok{T.TOKENIZER_VERSION}:ja=bigram,zh=bigram,ko=bigram"
    assert T.tokenizer_id().startswith(f"sg-tok{T.TOKENIZER_VERSION}:ja=")
    if HAS_SUDACHI:
        assert "ja=sudachi-A-" in T.tokenizer_id()


@pytest.mark.parametrize("analyser", [True, False])
def test_mixed_text(analyser: bool) -> None:
    toks = tokenize("ファイルを開く open() してから readLines で読む", analyser=analyser)
    assert {"open", "read", "lines", "readlines"} <= set(toks)
    assert any("ファ" in t for t in toks) and "開く" in toks


@needs_sudachi
def test_mixed_query_matches_document_words() -> None:
    doc = set(tokenize("`--verbosity` オプションを使うには、値を指定しなければなりません。"))
    q = tokenize_query("verbosity オプションの使い方")
    assert {"verbosity", "オプション"} <= doc & set(q)


@needs_jieba
def test_chinese_with_jieba() -> None:
    toks = tokenize("我们使用中文进行测试")
    assert {"使用", "中文", "测试"} <= set(toks)


def test_chinese_bigram_fallback() -> None:
    assert tokenize("中文测试", analyser=False) == ["中文", "文测", "测试"]


@needs_sudachi
def test_kana_free_han_query_gets_japanese_words_too() -> None:
    # "列挙型" alone could be Chinese or Japanese; the query covers the Japanese document's words either way.
    doc = set(tokenize("列挙型を継承する"))
    assert {"列挙", "型", "継承"} <= doc
    assert {"列挙", "型", "継承"} <= set(tokenize_query("列挙型 継承"))


def test_korean_bigram_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)
    monkeypatch.setattr(T, "_KIWI", T._Lazy(T._load_kiwi))
    assert tokenize("파일을 여는 방법") == ["파일", "일을", "여는", "방법"]
    assert "ko=bigram" in T.tokenizer_id()


def test_korean_with_an_analyser(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kiwipiepy path with a stand-in module (the real one is optional and large)."""

    class Kiwi:
        def tokenize(self, text: str):
            assert text == "파일을"
            return [types.SimpleNamespace(form="파일", tag="NNG"), types.SimpleNamespace(form="을", tag="JKO")]

    monkeypatch.setitem(sys.modules, "kiwipiepy", types.SimpleNamespace(Kiwi=Kiwi))
    monkeypatch.setattr(T, "_KIWI", T._Lazy(T._load_kiwi))
    assert tokenize("파일을 open") == ["파일", "open"]
    assert tokenize("파일을", analyser=False) == ["파일", "일을"]


@needs_sudachi
def test_sudachi_is_safe_across_threads() -> None:
    texts = [JA, "ファイルを開く", "デスクリプタが自分に割り当てられた属性名を知る方法", "列挙型を継承する"] * 25
    expected = [tokenize(t) for t in texts]
    results: dict[int, list[list[str]]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            results[n] = [tokenize(t) for t in texts]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert all(r == expected for r in results.values())


# --- robustness -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("analyser", [True, False])
def test_garbage_and_huge_input_never_crash(analyser: bool) -> None:
    for text in [
        "😀" * 1000,
        "\x00\x01\ufffd\ud800\udcff" * 100,  # control characters, replacement char, lone surrogates
        "🇯🇵ファイル👍🏽開く",
        "a" * 1_000_000,
        "getUserName " * 20_000,
        "あいうえお漢字カタカナ" * 5_000,  # one 55,000-character CJK run: more than Sudachi accepts at once
        "\u0301\u200d\u2028\u3000\ufeff",
    ]:
        toks = tokenize(text, analyser=analyser)
        assert all(_VALID(t) for t in toks)
        assert len(tokenize_query(text, analyser=analyser)) <= T.MAX_QUERY_TOKENS
    long_run = tokenize("あいうえお漢字カタカナ" * 5_000, analyser=analyser)
    assert "漢字" in long_run
    if analyser and HAS_SUDACHI:
        assert "字カ" not in long_run  # analysed in pieces, not handed to the bigram fallback


def _VALID(token: str) -> bool:
    return bool(token) and token == token.lower() and T._WORD.fullmatch(token) is not None


# --- FTS5 -------------------------------------------------------------------------------------------------------

_SAMPLES = [
    "getUserName HTTPServer client_pool __init__ utf8Decode",
    JA,
    "ファイルを開く open() ｶﾀｶﾅ ＡＰＩ",
    "我们使用中文进行测试",
    "파일을 여는 방법",
    "ΣΊΣΥΦΟΣ İstanbul Straße naïve ПРИВЕТ ǅemal ᦰ ᧈ",  # final sigma, dotted I, titlecase, New Tai Lue vowels
    "½ ① ㎏ ﬁle x²",
]

_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from("あいうをのアイウー漢字中文한국어_ aB1.-"),
    ),
    max_size=60,
)


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize=\"unicode61 remove_diacritics 0 tokenchars '_'\")")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    return db


def _check_fts5(db: sqlite3.Connection, tokens: list[str]) -> None:
    """Stored as emitted, one term per token, in order; and each token finds its row as a quoted query."""
    db.execute("DELETE FROM t")
    db.execute("INSERT INTO t(rowid, body) VALUES (1, ?)", (" ".join(tokens),))
    stored = [term for term, in db.execute("SELECT term FROM v WHERE doc = 1 ORDER BY offset")]
    assert stored == tokens
    for tok in set(tokens):
        assert db.execute("SELECT rowid FROM t WHERE t MATCH ?", ('"%s"' % tok,)).fetchall() == [(1,)]


@pytest.mark.parametrize("analyser", [True, False])
@pytest.mark.parametrize("text", _SAMPLES)
def test_tokens_survive_fts5(fts: sqlite3.Connection, text: str, analyser: bool) -> None:
    tokens = tokenize(text, analyser=analyser)
    assert tokens
    _check_fts5(fts, tokens)
    _check_fts5(fts, tokenize_query(text, analyser=analyser))


@settings(max_examples=150, deadline=None)
@given(text=_TEXT, analyser=st.booleans())
def test_random_text_survives_fts5(fts: sqlite3.Connection, text: str, analyser: bool) -> None:
    _check_fts5(fts, tokenize(text, analyser=analyser))
    _check_fts5(fts, tokenize_path(text, analyser=analyser))
