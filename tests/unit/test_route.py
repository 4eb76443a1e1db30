"""Router: a small labelled set (English, Japanese, Chinese, Korean, code, mixed) that the thresholds in
engine/route.py were measured on, plus checks on the bench corpora when they are present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import route
from engine.embed.base import ROUTES
from engine.route import (CJK_CODE_SHARE, CJK_PROSE_SHARE, CJK_QUERY_SHARE, cjk_share, code_score, explain_route,
                          restrict, route_chunk, route_query)

BENCH = Path(__file__).resolve().parents[3] / "shared" / "bench"

# (text, language, expected route)
CHUNKS = [
    # English prose
    ("# Installation\n\nRun the installer and restart your editor. The index is built in the background.",
     "markdown", "prose"),
    ("Retries use exponential backoff with jitter so that clients do not stampede the server.", "text", "prose"),
    ("The original translation was contributed by 山田太郎 and reviewed by the documentation team.",
     "markdown", "prose"),
    ("Configuration\n=============\n\nSettings are read from ``.sg.toml`` in the workspace root.", "rst", "prose"),
    ("A short page of a PDF manual about installing the printer driver on a laptop.", "pdf", "prose"),
    # Japanese / Chinese / Korean prose, with the API names and code people mix in
    ("# ファイルを開く\n\n組み込み関数 open() はファイルオブジェクトを返します。encoding 引数で文字コードを指定します。",
     "markdown", "cjk"),
    ("Argument Clinic How-TOは、 `Python Developer's Guide <https://devguide.python.org/development-tools/clinic/>`__"
     " に移動しました。", "markdown", "cjk"),
    ("このドキュメントの最初の草稿は Andrew Kuchling によって書かれました。それからさらに Alexander Belopolsky, "
     "Georg Brandl, Ezio Melotti らで改訂が重ねられています。", "markdown", "cjk"),
    ("使用 json.loads() 将字符串解析为 Python 对象，如果格式错误会抛出 JSONDecodeError 异常。", "markdown", "cjk"),
    ("설정 파일은 작업 공간의 루트에 있는 .sg.toml 에서 읽습니다.", "text", "cjk"),
    ("ログ出力の設定方法について説明します。", "text", "cjk"),
    # source code, including code with some CJK in comments
    ("def read_lines(path):\n    with open(path) as fh:\n        return fh.readlines()\n", "python", "code"),
    ("def open_file(path):\n    \"\"\"ファイルを開いて内容を返す。\"\"\"\n    with open(path, encoding=\"utf-8\") as f:\n"
     "        return f.read()\n", "python", "code"),
    ("function retry(fn, n) {\n  // 失敗したら再試行する\n  for (let i = 0; i < n; i++) {\n    try { return fn(); }"
     " catch (e) {}\n  }\n}\n", "javascript", "code"),
    ("fn main() {\n    println!(\"hello\");\n}\n", "rust", "code"),
    ("# 設定を読み込む\n# ファイルがなければ既定値を使う\n# 読み込みに失敗したら警告を出す\nconfig = load()\n", "python", "cjk"),
    # markdown that is mostly a code block is code; text files that are code are code
    ("Example:\n\n```python\nimport os\nfor name in os.listdir('.'):\n    print(name)\n    os.remove(name)\n```\n",
     "markdown", "code"),
    ("Usage::\n\n    import sg\n    engine = sg.Engine('.')\n    hits = engine.search('retry')\n", "rst", "code"),
    ("#include <stdio.h>\nint main(void) {\n    printf(\"hi\\n\");\n    return 0;\n}\n", "text", "code"),
    ("See the `open()` function for details; it returns a file object you can iterate over line by line.",
     "markdown", "prose"),
]

# (query, expected dominant route)
QUERIES = [
    ("retry with exponential backoff", "code"),
    ("python check if a variable is iterable", "code"),
    ("how to sort a list of dictionaries by a key", "code"),
    ("def foo(x):", "code"),
    ("foo_bar.baz()", "code"),
    ("std::vector push_back", "code"),
    ("getUserById", "code"),
    ("ファイルを開く open()", "cjk"),
    ("pandas の read_csv で文字コードを指定", "cjk"),
    ("argparse でハイフン付きの省略可能なオプションを追加するやり方", "cjk"),
    ("如何读取文件", "cjk"),
    ("파일을 여는 방법", "cjk"),
    ("ログの設定", "cjk"),
    ("what does 山田 say about logging", "code"),
]


@pytest.mark.parametrize("text,language,expected", CHUNKS)
def test_route_chunk_labelled(text, language, expected):
    assert route_chunk(text, language) == expected, explain_route(text, language)


@pytest.mark.parametrize("query,expected", QUERIES)
def test_route_query_labelled(query, expected):
    weights = route_query(query)
    assert set(weights) == set(ROUTES)
    assert abs(sum(weights.values()) - 1) < 1e-9 and all(w >= 0 for w in weights.values())
    assert max(weights, key=weights.get) == expected, explain_route(query)


def test_thresholds_separate_the_labelled_set_with_margin():
    """The CJK thresholds sit in a gap of the labelled shares, not on top of an example."""
    prose_langs = route.PROSE_LANGUAGES | {"text"}
    prose = [(cjk_share(t), e) for t, lang, e in CHUNKS if lang in prose_langs]
    code = [(cjk_share(t), e) for t, lang, e in CHUNKS if lang not in prose_langs]
    assert max(s for s, e in prose if e != "cjk") < CJK_PROSE_SHARE - 0.05 < CJK_PROSE_SHARE + 0.0 <= min(
        s for s, e in prose if e == "cjk")
    assert max(s for s, e in code if e != "cjk") < CJK_CODE_SHARE - 0.1
    assert min(s for s, e in code if e == "cjk") > CJK_CODE_SHARE + 0.1
    q_cjk = [cjk_share(q) for q, e in QUERIES if e == "cjk"]
    q_other = [cjk_share(q) for q, e in QUERIES if e != "cjk"]
    assert max(q_other) < CJK_QUERY_SHARE < min(q_cjk) - 0.1


def test_natural_language_queries_still_weigh_code_high():
    w = route_query("retry with exponential backoff")
    assert w["code"] >= 0.6 and w["prose"] > 0.2 and w["cjk"] > 0  # small: a multilingual CJK model may match
    w = route_query("def foo(x):")
    assert w["code"] >= 0.85 and w["cjk"] == 0
    w = route_query("ファイルを開く open()")
    assert w["cjk"] >= 0.75 and w["code"] > w["prose"]


def test_code_score_examples():
    assert code_score("retry with exponential backoff") == 0
    assert code_score("where does import look for modules") == 0  # keywords in English are not code
    assert code_score("python function to reduce image size") == 0
    assert code_score("import numpy as np") >= 0.5
    assert code_score("foo_bar.baz()") == 1
    assert code_score("") == 0


def test_cjk_share_basics():
    assert cjk_share("") == 0 and cjk_share("1234 !?") == 0
    assert cjk_share("日本語") == 1
    assert cjk_share("ｶﾀｶﾅ and ひらがな") == pytest.approx(8 / 11)
    assert cjk_share("see https://example.com/very/long/english/path 日本") == pytest.approx(2 / 5)  # URL ignored


def test_restrict_renormalises_over_available_spaces():
    w = route_query("retry with exponential backoff")
    r = restrict(w, {"code", "prose"})
    assert set(r) == {"code", "prose"} and abs(sum(r.values()) - 1) < 1e-9
    assert r["code"] / r["prose"] == pytest.approx(w["code"] / w["prose"])
    assert restrict(w, set()) == {}


def test_explain_is_one_short_line():
    q = explain_route("ファイルを開く open()")
    assert q.startswith("query -> cjk") and "\n" not in q and len(q) < 160
    c = explain_route("def f(): pass", "python")
    assert c.startswith("chunk -> code") and "\n" not in c
    assert explain_route({"code": 0.6, "prose": 0.3, "cjk": 0.1}) == "query -> code 0.60, prose 0.30, cjk 0.10"


def _bench_files(name: str, pattern: str, limit: int) -> list[Path]:
    corpus = BENCH / name / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"bench corpus {corpus} not found")
    return sorted(corpus.glob(pattern))[:limit]


def test_bench_japanese_sections_route_to_cjk():
    paths = [p for p in _bench_files("ja", "*.md", 1000) if p.name != "LICENSE.txt"]
    routes = [route_chunk(p.read_text(encoding="utf-8"), "markdown") for p in paths]
    assert routes.count("cjk") == len(routes)


def test_bench_python_functions_route_to_code():
    paths = _bench_files("cosqa", "*.py", 300)
    assert all(route_chunk(p.read_text(encoding="utf-8", errors="replace"), "python") == "code" for p in paths)


def test_bench_queries():
    for name, expected in (("ja/dev.json", "cjk"), ("cosqa/dev.json", "code"), ("ja/mixed-dev.json", "code")):
        spec = BENCH / name
        if not spec.is_file():
            pytest.skip(f"{spec} not found")
        queries = [q["query"] for q in json.loads(spec.read_text(encoding="utf-8"))["queries"]]
        top = [max(w := route_query(q), key=w.get) for q in queries]
        assert top.count(expected) == len(top), name
