"""Which embedding space a chunk belongs to, and how much each space should count for a query.

Pure functions over text, explainable in one line (`sg search --explain`). Thresholds were measured on the
labelled set in tests/test_route.py and on the bench corpora (see the comments at each constant).
"""

from __future__ import annotations

import re

from .embed.base import ROUTES

# Share of CJK characters among letters (URLs ignored) above which a prose chunk is CJK. Measured: Japanese
# doc sections (bench ja corpus, which keeps API names, code and people's names inline) have 0.17-1.00
# (median 0.84; the lowest is a one-line "moved to <url>" notice); English prose that mentions a Japanese
# name stays below 0.06.
CJK_PROSE_SHARE = 0.15
# Source code is mostly identifiers: it goes to the CJK space only when CJK text dominates it, because the
# code model still reads the identifiers of a function with a Japanese docstring.
CJK_CODE_SHARE = 0.5
# Queries are short and a user who types any real Japanese phrase writes Japanese: "pandas の read_csv で
# 文字コードを指定" is 0.43, "ファイルを開く open()" 0.64; English with a stray CJK name stays below 0.1.
CJK_QUERY_SHARE = 0.15
# A markdown/rst/text chunk is code when at least this share of its non-blank lines is in code blocks.
CODE_BLOCK_SHARE = 0.5
# A chunk in a plain-text or unknown language is code when this share of its lines look like code.
CODE_LINE_SHARE = 0.5

PROSE_LANGUAGES = frozenset({
    "markdown", "md", "rst", "restructuredtext", "text", "txt", "plaintext", "pdf", "org", "asciidoc", "adoc",
    "tex", "latex", "textile", "rdoc", "pod", "man",
})
_PLAIN_LANGUAGES = frozenset({"", "text", "txt", "plaintext", "unknown"})

_CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3040, 0x30FF),  # Hiragana, Katakana (incl. the prolonged sound mark)
    (0x3100, 0x31FF),  # Bopomofo, Hangul compatibility Jamo, Katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # halfwidth Katakana
    (0x20000, 0x3134F),  # CJK extensions B-G
)


def is_cjk_char(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


_URL = re.compile(r"\w+://\S+")


def cjk_share(text: str) -> float:
    """Share of CJK characters among the letters of `text`, URLs left out (0.0 when it has no letters)."""
    if "://" in text:
        text = _URL.sub(" ", text)
    letters = cjk = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            if ord(ch) >= 0x1100 and is_cjk_char(ch):
                cjk += 1
    return cjk / letters if letters else 0.0


# -- code-likeness -----------------------------------------------------------------------------------

_STRONG = re.compile(
    r"\b(def|function|fn|func|class|struct|impl|interface|enum|trait)\s+\w+\s*[(:{<]"  # a definition
    r"|^\s*(import\s+[\w.]+(\s+as\s+\w+)?|from\s+[\w.]+\s+import\s+[\w*, ]+)\s*;?\s*$"  # a whole import
    r"|[\w\]\)]\((?:[^()]*)\)"  # a call or signature: open(), foo(x, y)
    r"|[{};]\s*$|::|->|=>|==|!=|&&|\|\||\+=|:=|</?\w+>",
    re.MULTILINE,
)
_CODE_TOKEN = re.compile(
    r"^[A-Za-z_]\w*_\w+$"  # snake_case / __dunder__
    r"|^[a-z]+[A-Z]\w*$"  # camelCase
    r"|^[A-Z][a-z0-9]+[A-Z]\w*$"  # PascalCase with an inner capital
    r"|^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+\(?\)?$"  # dotted.name, foo.bar()
    r"|[(){}\[\];=<>]|::|->|\$\w"
)
_CODE_LINE = re.compile(
    r"[;{}]\s*$|^\s*(def|class|return|import|from|if|for|while|elif|else|try|except|function|const|let|var|"
    r"public|private|#include|#define|fn|func|package|using)\b|^\s*[\w.\[\]]+\s*[-+*/]?=\s*\S|^\s*@\w+"
    r"|^\s*(//|#|/\*|\*)|\w\(.*\)\s*:?$"
)
_FENCE = re.compile(r"^\s*(```|~~~)")
_RST_BLOCK = re.compile(r"(::\s*$|^\s*\.\.\s+(code-block|code|sourcecode|literalinclude)::)")


def code_score(text: str) -> float:
    """0..1: how much a short text (a query) reads as code rather than natural language."""
    tokens = text.split()
    if not tokens:
        return 0.0
    codey = sum(1 for t in tokens if _CODE_TOKEN.search(t.strip(",.?!:'\"")) or _CODE_TOKEN.search(t))
    score = codey / len(tokens)
    if _STRONG.search(text):
        score += 0.7
    return min(1.0, score)


def code_line_share(text: str) -> float:
    """Share of non-blank lines that look like source code (for text files of unknown kind)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return 0.0
    return sum(1 for ln in lines if _CODE_LINE.search(ln)) / len(lines)


def code_block_share(text: str) -> float:
    """Share of non-blank lines inside fenced (markdown), literal (rst ``::``) or indented code blocks."""
    lines = text.splitlines()
    nonblank = sum(1 for ln in lines if ln.strip())
    if not nonblank:
        return 0.0
    inside = 0
    fenced = False
    literal_indent: int | None = None  # rst literal block after "::" or a code-block directive
    prev_blank = True
    for ln in lines:
        stripped = ln.strip()
        if _FENCE.match(ln):
            fenced = not fenced
            inside += 1
            continue
        if fenced:
            inside += bool(stripped)
            continue
        indent = len(ln) - len(ln.lstrip())
        if literal_indent is not None:
            if not stripped:
                continue
            if indent > literal_indent:
                inside += 1
                continue
            literal_indent = None
        if stripped and _RST_BLOCK.search(ln):
            literal_indent = indent
            if stripped.startswith(".."):
                inside += 1
        elif stripped and (ln.startswith("\t") or (indent >= 4 and prev_blank and not stripped.startswith(("-", "*")))):
            inside += 1  # markdown indented code block
            prev_blank = True  # the following indented lines continue it
            continue
        prev_blank = not stripped
    return inside / nonblank


# -- routing -------------------------------------------------------------------------------------------

def _why_chunk(text: str, language: str) -> tuple[str, str]:
    lang = (language or "").lower()
    share = cjk_share(text)
    if lang in PROSE_LANGUAGES or lang in _PLAIN_LANGUAGES:
        if share >= CJK_PROSE_SHARE:
            return "cjk", f"CJK letters {share:.0%} >= {CJK_PROSE_SHARE:.0%} of a {lang or 'text'} chunk"
        blocks = code_block_share(text)
        if blocks >= CODE_BLOCK_SHARE:
            return "code", f"{blocks:.0%} of its lines are code blocks"
        if lang in _PLAIN_LANGUAGES:
            lines = code_line_share(text)
            if lines >= CODE_LINE_SHARE:
                return "code", f"{lines:.0%} of its lines look like code"
        return "prose", f"{lang or 'text'} prose (CJK {share:.0%}, code blocks {blocks:.0%})"
    if share >= CJK_CODE_SHARE:
        return "cjk", f"CJK letters {share:.0%} >= {CJK_CODE_SHARE:.0%} of a {lang} chunk"
    return "code", f"{lang} source (CJK {share:.0%})"


def route_chunk(text: str, language: str) -> str:
    """The embedding space of a chunk: "cjk", "code" or "prose"."""
    return _why_chunk(text, language)[0]


def _query_weights(query: str) -> tuple[dict[str, float], float, float]:
    share = cjk_share(query)
    codey = code_score(query)
    if share >= CJK_QUERY_SHARE:
        cjk = 0.7 + 0.2 * share
        code = (1 - cjk) * (0.5 + 0.4 * codey)
        weights = {"code": code, "prose": 1 - cjk - code, "cjk": cjk}
    else:
        # Natural-language queries against code are the main use case, so code leads even for plain
        # English; the small CJK weight lets a multilingual CJK model match English queries cross-language.
        cjk = 0.1 * (1 - codey)
        code = 0.6 + 0.3 * codey
        weights = {"code": code, "prose": 1 - cjk - code, "cjk": cjk}
    weights = {r: round(max(0.0, weights[r]), 4) for r in ROUTES}
    total = sum(weights.values())
    return {r: w / total for r, w in weights.items()}, share, codey


def route_query(query: str) -> dict[str, float]:
    """Weight per route (summing to 1) saying how much each embedding space should count for this query."""
    return _query_weights(query)[0]


def restrict(weights: dict[str, float], available: set[str] | list[str]) -> dict[str, float]:
    """Renormalise weights over the routes that have an embedder; {} when none has."""
    kept = {r: w for r, w in weights.items() if r in available and w > 0}
    total = sum(kept.values())
    return {r: w / total for r, w in kept.items()} if total else {}


def explain_route(text: str | dict[str, float], language: str | None = None) -> str:
    """One line for `sg search --explain`: a chunk's space (when `language` is given) or a query's weights.

    Pass the query text to get the reasons too; a weights dict (from route_query) is only formatted.
    """
    if isinstance(text, dict):
        return "query -> " + ", ".join(f"{r} {w:.2f}" for r, w in sorted(text.items(), key=lambda kv: -kv[1]))
    if language is not None:
        route, why = _why_chunk(text, language)
        return f"chunk -> {route}: {why}"
    weights, share, codey = _query_weights(text)
    parts = ", ".join(f"{r} {weights[r]:.2f}" for r in sorted(weights, key=lambda r: -weights[r]))
    kind = "CJK" if share >= CJK_QUERY_SHARE else ("code-like" if codey >= 0.5 else "natural language")
    return f"query -> {parts} ({kind}: CJK letters {share:.0%}, code-likeness {codey:.2f})"
