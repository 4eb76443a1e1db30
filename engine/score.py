"""Scoring as pure functions: MaxSim, score normalisation and fusion with per-component explanations, name and
test-path signals, and collapsing of split functions. No I/O, no state."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol, TypeVar

import numpy as np

from .tokenize import tokenize_path, tokenize_symbol

# MaxSim ------------------------------------------------------------------------------------------------------------


def unit(v: np.ndarray) -> np.ndarray:
    """A vector scaled to length 1 (a zero vector stays zero), as float32: every pooled vector sg stores or
    queries with."""
    return (v / (np.linalg.norm(v) or 1.0)).astype(np.float32)


def pool(tokens: np.ndarray) -> np.ndarray:
    """A multi-vector text's pooled vector: the unit-length mean of its (one or more) token vectors."""
    return unit(tokens.mean(axis=0))


def maxsim(q: np.ndarray, doc: np.ndarray) -> float:
    """Late-interaction score: sum over query tokens of the best dot product with any document token.

    An empty query or document scores 0.0.
    """
    q = np.asarray(q, dtype=np.float32)
    doc = np.asarray(doc, dtype=np.float32)
    if q.shape[0] == 0 or doc.shape[0] == 0:
        return 0.0
    return float((q @ doc.T).max(axis=1).sum())


def maxsim_packed(q: np.ndarray, flat: np.ndarray, lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """MaxSim of `q` (tq, d) against documents stored back to back in `flat` (sum lengths, d).

    One matmul, then a segment max with np.maximum.reduceat; documents with 0 tokens score 0.0.
    `codec.Codec.decode_many` returns exactly this layout.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(len(lengths), dtype=np.float32)
    q = np.asarray(q, dtype=np.float32)
    if (lengths < 0).any() or int(lengths.sum()) != flat.shape[0]:
        raise ValueError("lengths do not add up to the number of packed token vectors")
    if q.shape[0] == 0 or int(lengths.sum()) == 0:
        return out
    sims = np.asarray(flat, dtype=np.float32) @ q.T  # (sum td, tq): rows contiguous per document
    nonempty = lengths > 0
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    out[nonempty] = np.maximum.reduceat(sims, starts, axis=0).sum(axis=1)
    return out


def maxsim_many(q: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim of `q` against each document matrix (float32 array, one score per document)."""
    if len(docs) == 0:
        return np.zeros(0, dtype=np.float32)
    lengths = np.fromiter((d.shape[0] for d in docs), dtype=np.int64, count=len(docs))
    if int(lengths.sum()) == 0:
        return np.zeros(len(docs), dtype=np.float32)
    dim = np.asarray(q).shape[1]
    flat = np.concatenate([np.asarray(d, dtype=np.float32).reshape(-1, dim) for d in docs], axis=0)
    return maxsim_packed(q, flat, lengths)


# normalisation and fusion ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fused:
    """A fused score and how each component contributed to it (the contributions sum to `score`)."""

    score: float
    parts: dict[str, float] = field(default_factory=dict)


def _finite(scores: Mapping[Hashable, float]) -> dict[Hashable, float]:
    return {doc: float(s) for doc, s in scores.items() if s is not None and math.isfinite(float(s))}


def minmax(scores: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """Scale scores to [0, 1] (best 1.0, worst 0.0). Non-finite scores are dropped.

    When every score is equal (including a single score) each becomes 1.0: every document present is the
    best this component has; absent documents get 0 in fusion.
    """
    clean = _finite(scores)
    if not clean:
        return {}
    lo, hi = min(clean.values()), max(clean.values())
    span = hi - lo
    if span <= 0.0 or not math.isfinite(span):
        if span <= 0.0:
            return dict.fromkeys(clean, 1.0)
        # the span overflows (e.g. -1e308 .. 1e308): scale both ends down first
        return {doc: (s / 2 - lo / 2) / (hi / 2 - lo / 2) for doc, s in clean.items()}
    return {doc: (s - lo) / span for doc, s in clean.items()}


Components = Mapping[str, Mapping[Hashable, float]]  # component name -> key -> score


def _check_weights(components: Components, weights: Mapping[str, float]) -> dict[str, float]:
    """Weights of the components, validated and scaled to sum to 1 (all 0 if every weight is 0)."""
    out = {}
    for name in components:
        w = float(weights.get(name, 0.0))
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"weight of {name!r} must be a finite number >= 0, not {weights[name]!r}")
        out[name] = w
    # normalise to sum 1 via the largest weight, so neither tiny (subnormal) nor huge weights overflow
    top = max(out.values(), default=0.0)
    if top <= 0.0:
        return dict.fromkeys(out, 0.0)
    scaled = {name: w / top for name, w in out.items()}
    total = sum(scaled.values())
    return {name: w / total for name, w in scaled.items()}


def _assemble(contributions: dict[Hashable, dict[str, float]], names: Iterable[str]) -> dict[Hashable, Fused]:
    names = list(names)
    fused = {}
    for doc, parts in contributions.items():
        full = {name: parts.get(name, 0.0) for name in names}
        fused[doc] = Fused(sum(full.values()), full)
    return fused


def fuse_linear(components: Components, weights: Mapping[str, float]) -> dict[Hashable, Fused]:
    """Weighted sum of min-max normalised components, divided by the sum of weights: scores in [0, 1].

    A document missing from a component gets 0 for it. A component without a weight has weight 0 (weights
    of absent components are ignored); negative or NaN weights raise ValueError; all weights 0 gives every
    document 0.0 (documents are still listed). Non-finite input scores are dropped. `Fused.parts` holds each
    component's weighted contribution, every component listed.
    """
    w = _check_weights(components, weights)
    contributions: dict[Hashable, dict[str, float]] = {}
    for name, scores in components.items():
        for doc, value in minmax(scores).items():
            contributions.setdefault(doc, {})[name] = w[name] * value
    return _assemble(contributions, components)


def ranks(scores: Mapping[Hashable, float]) -> dict[Hashable, int]:
    """1-based competition ranks (equal scores share the better rank: 1, 2, 2, 4). Non-finite dropped."""
    clean = _finite(scores)
    values = np.fromiter(clean.values(), dtype=np.float64, count=len(clean))
    ordered = np.sort(values)[::-1]
    # rank = 1 + number of strictly greater scores
    greater = len(ordered) - np.searchsorted(ordered[::-1], values, side="right")
    return {doc: int(g) + 1 for doc, g in zip(clean, greater.tolist())}


def fuse_rrf(components: Components, weights: Mapping[str, float],
             k: int = 60) -> dict[Hashable, Fused]:
    """Weighted reciprocal-rank fusion: sum of w / (k + rank), scaled so that ranking first in every
    weighted component gives 1.0. Missing documents contribute 0; ties share a rank. Same contract as
    `fuse_linear` for weights and `Fused.parts`.
    """
    if k < 0:
        raise ValueError("rrf k must be >= 0")
    w = _check_weights(components, weights)
    contributions: dict[Hashable, dict[str, float]] = {}
    for name, scores in components.items():
        for doc, rank in ranks(scores).items():
            contributions.setdefault(doc, {})[name] = w[name] * (k + 1) / (k + rank)
    return _assemble(contributions, components)


def ranked(fused: Mapping[Hashable, Fused]) -> list[tuple[Hashable, Fused]]:
    """Best first; equal scores in ascending id order so results are deterministic."""
    return sorted(fused.items(), key=lambda item: (-item[1].score, item[0]))


# names -------------------------------------------------------------------------------------------------------------

STOP_WORDS = frozenset("""
a an and are as at be by can do does for from get how i if in into is it its me my of on or that the their then
there these this those to use using via was what when where which while who why will with without you your
code function functions method methods class implement implementation example python
""".split())

def _camel_words(run: str) -> list[str]:
    """Split one alphanumeric run at case and digit boundaries (Unicode-aware): HTTPResponse2 -> HTTP Response 2."""
    words, start = [], 0
    for i in range(1, len(run)):
        prev, cur = run[i - 1], run[i]
        nxt = run[i + 1] if i + 1 < len(run) else ""
        if ((prev.islower() and cur.isupper()) or (prev.isdigit() != cur.isdigit())
                or (prev.isupper() and cur.isupper() and nxt.islower())):
            words.append(run[start:i])
            start = i
    words.append(run[start:])
    return words


def split_identifier(text: str) -> list[str]:
    """Lower-case words of identifiers and prose: "parseHTTPResponse_v2" -> ["parse", "http", "response", "v", "2"]."""
    return list(_split_cached(text))


@functools.lru_cache(maxsize=65536)  # the same path and symbol words recur in every search
def _split_cached(text: str) -> tuple[str, ...]:
    return tuple(w.lower() for part in re.split(r"[\W_]+", text) if part for w in _camel_words(part))


@functools.lru_cache(maxsize=1)
def _stemmer():
    """Snowball's English stemmer, imported on first use (the package imports all its languages: ~20 ms that
    index, status and models never need)."""
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def _terms_match(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) >= 3 and long in (short + "s", short + "es"):  # "user" ~ "users", "class" ~ "classes"
        return True
    # "token" ~ "tokenizer"; the 5-letter minimum keeps "form" from matching "format"
    return len(short) >= 5 and long.startswith(short)


def _stems(words: Iterable[str]) -> frozenset[str]:
    """English (Snowball) stems of the words of 5+ letters: derived forms share one ("deprecation" ~ "deprecated",
    "validate" ~ "validation")."""
    return frozenset(_stem(w) for w in words if len(w) >= 5)


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)  # ~10 us; names reuse few words, so nearly every call is a cache hit


_EXTENSIONS = frozenset("""
py pyi pyx js jsx ts tsx mjs cjs go rs java kt kts scala groovy gradle c h cc cpp cxx hpp hh hxx cs fs vb rb php
swift m mm lua sh bash zsh fish ps1 md mdx rst txt adoc json jsonc yaml yml toml ini cfg conf xml html htm css
scss sass less vue svelte sql r jl dart ex exs erl hrl hs ml mli clj cljs el vim pdf ipynb proto pl pm t zig nim
""".split())


def _split_path(path_tokens: Sequence[str] | str) -> tuple[set[str], set[str]]:
    """(file-stem words, directory words) from a path string, its segments, or an ordered word list."""
    if isinstance(path_tokens, str):
        parts = PurePosixPath(path_tokens.replace("\\", "/")).parts
        if not parts:
            return set(), set()
        *dirs, name = parts
        stem = PurePosixPath(name).stem or name
        dir_words = {w for d in dirs for w in split_identifier(d)}
        return set(split_identifier(stem)), dir_words
    tokens = [t for t in path_tokens if t]
    if not tokens:
        return set(), set()
    if "/" in "".join(tokens):  # segments that still hold separators: treat as a path
        return _split_path("/".join(tokens))
    last = tokens[-1]
    if "." in last.strip("."):  # a file name segment: "client_pool.py"
        stem = PurePosixPath(last).stem
    elif len(tokens) >= 2 and last.lower() in _EXTENSIONS:  # a word list ending in the extension
        tokens = tokens[:-1]
        stem = tokens[-1]
    else:
        stem = last
    stem_words = set(split_identifier(stem))
    rest = tokens[:-1]
    # A tokenizer's word list ("client", "pool", "client_pool"): words inside the stem belong to it.
    joined = "".join(split_identifier(stem))
    stem_words.update(w for t in rest for w in split_identifier(t) if len(w) >= 3 and w in joined)
    dir_words = {w for t in rest for w in split_identifier(t)} - stem_words
    return stem_words, dir_words


def name_boost(query_tokens: Sequence[str], path_tokens: Sequence[str] | str,
               symbol_tokens: Sequence[str]) -> float:
    """Share in [0, 1] of distinct query terms (stop words dropped) found in the file name, path or symbol.

    A term found in the file stem or the symbol counts 1, one found only in a directory name counts 0.5.
    `path_tokens` may be the path itself (most exact), its segments (`PurePosixPath(path).parts`), or an
    ordered word list such as `tokenize.tokenize_path(path)`; for a word list the stem is recovered as the
    last word before a trailing file extension, plus words contained in it ("client", "pool" of
    "client_pool"). Query tokens and symbols are split into words (camelCase, snake_case, dots); a query
    word of 5+ letters also matches words it is a prefix of ("token" ~ "tokenizer") and words with the same
    English stem ("deprecation" ~ "deprecated").
    """
    return _name_share(name_terms(query_tokens), *_name_words(path_tokens, symbol_tokens))


def _name_words(path_tokens: Sequence[str] | str, symbol_tokens: Sequence[str]) -> tuple[set[str], set[str]]:
    """(file-stem and symbol words, directory words) that a name boost matches query terms against."""
    stem_words, dir_words = _split_path(path_tokens)
    for sym in symbol_tokens:
        stem_words.update(split_identifier(sym))
    return stem_words, dir_words


def name_terms(query_tokens: Sequence[str]) -> tuple[str, ...]:
    """The distinct query words a name boost looks for (stop words dropped)."""
    terms: list[str] = []
    for token in query_tokens:
        for word in split_identifier(token):
            if word not in STOP_WORDS and word not in terms:
                terms.append(word)
    return tuple(terms)


def _name_share(terms: Sequence[str], stem_words: set[str] | frozenset[str], dir_words: set[str] | frozenset[str],
                stems: tuple[frozenset[str], frozenset[str]] | None = None) -> float:
    if not terms:
        return 0.0
    stem_stems, dir_stems = stems or (_stems(stem_words), _stems(dir_words))
    score = 0.0
    for term, st in zip(terms, _term_stems(tuple(terms))):
        if term in stem_words or st in stem_stems or any(_terms_match(term, w) for w in stem_words):
            score += 1.0
        elif term in dir_words or st in dir_stems or any(_terms_match(term, w) for w in dir_words):
            score += 0.5
    return score / len(terms)


@functools.lru_cache(maxsize=1024)
def _term_stems(terms: tuple[str, ...]) -> tuple[str | None, ...]:
    return tuple(_stem(t) if len(t) >= 5 else None for t in terms)


def chunk_name_boost(terms: tuple[str, ...], path: str, symbol: str) -> float:
    """name_boost of a chunk for pre-split query `terms` (name_terms), as search ranks it: the chunk's name
    words come from the tokenizer's path and symbol tokens and are cached, since the same files recur in
    every search."""
    stem_words, dir_words, stems = _chunk_name_words(path, symbol)
    return _name_share(terms, stem_words, dir_words, stems)


@functools.lru_cache(maxsize=65536)
def _chunk_name_words(path: str, symbol: str) -> tuple[frozenset[str], frozenset[str],
                                                       tuple[frozenset[str], frozenset[str]]]:
    stem_words, dir_words = _name_words(tokenize_path(path), tokenize_symbol(symbol))
    return frozenset(stem_words), frozenset(dir_words), (_stems(stem_words), _stems(dir_words))


# tests -------------------------------------------------------------------------------------------------------------

_TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "__test__", "spec", "specs", "testdata",
                        "test_data", "e2e", "__mocks__", "androidtest"})
_TEST_FILE = re.compile(
    r"""^(
        test_.+\.py | .+_tests?\.py | tests?\.py | conftest\.py      # pytest / unittest / Django
      | .+_test\.go                                                  # Go
      | .+\.(test|spec)\.[cm]?[jt]sx?                                # Jest, Vitest, Mocha, Jasmine
      | .+_(test|spec)\.rb | test_.+\.rb                             # Ruby
      | (Test[A-Z0-9_].*|.+Tests?|.+IT)\.(java|kt|kts|scala|groovy)  # JUnit, Kotlin, Scala
      | .+Tests?\.(cs|fs|vb|swift|php|m|mm)                          # .NET, Swift/XCTest, PHPUnit, ObjC
      | .+_(test|unittest)\.(c|cc|cpp|cxx|rs|ex|exs|dart|py)         # C++ gtest, Rust, Elixir, Dart
      | test_.+\.(c|cc|cpp|cxx|rs|lua|sh) | .+_spec\.lua | .+\.t      # misc, Perl .t
    )$""",
    re.VERBOSE,
)
_TEST_CLASS = re.compile(r"^(Test[A-Z0-9_]\w*|\w+Tests?)$")


@functools.lru_cache(maxsize=65536)
def is_test_path(path: str, symbol: str = "") -> bool:
    """True for test code: a test directory (tests/, __tests__/, src/test/...), a test file name (test_*.py,
    *_test.go, *.spec.ts, FooTest.java, ...), or a test method in a test class ("TestParser.test_empty").

    A symbol alone is deliberately weak evidence: pytest's own `TestReport` or `Testdir.test_tmproot` are
    production code, so only the class + test-method pair counts.
    """
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if not parts:
        return False
    if any(seg.lower() in _TEST_DIRS for seg in parts[:-1]):
        return True
    if _TEST_FILE.match(parts[-1]):
        return True
    names = [n for n in re.split(r"\.|::", symbol) if n]
    for cls, meth in zip(names, names[1:]):
        if _TEST_CLASS.match(cls) and re.match(r"^test(_|[A-Z0-9]|$)", meth):
            return True
    return False


_TEST_WORDS = frozenset({"test", "tests", "testing", "tested", "unittest", "unittests", "pytest", "testcase",
                         "testcases", "mock", "mocks", "mocking", "fixture", "fixtures", "jest", "junit", "mocha",
                         "vitest", "rspec", "e2e", "conftest", "testsuite"})
_TEST_CJK = ("テスト", "测试", "測試", "单测", "單測", "테스트", "試験")


def query_mentions_tests(query: str) -> bool:
    """Does the query ask for test code ("pytest fixture for tmp dirs", "test_parse", "単体テスト")?"""
    if any(w in query for w in _TEST_CJK):
        return True
    return any(word in _TEST_WORDS for word in split_identifier(query))


# dedupe ------------------------------------------------------------------------------------------------------------


class Scored(Protocol):
    path: str
    symbol: str
    score: float


H = TypeVar("H", bound=Scored)


def _near_duplicate(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Spans sharing more than half of the shorter one (1-based inclusive lines)."""
    overlap = min(a[1], b[1]) - max(a[0], b[0]) + 1
    shorter = min(a[1] - a[0], b[1] - b[0]) + 1
    return overlap > 0 and 2 * overlap > shorter


def dedupe(hits: Iterable[H]) -> list[H]:
    """Best hit per (path, symbol), best first (stable among equal scores).

    Windows of one long function share its symbol and collapse to the best window. Hits without a symbol
    (plain windows, unnamed sections) are different places and are kept, unless they have
    `start_line`/`end_line` and cover more than half of an already kept unnamed hit in the same file
    (near-duplicates; neighbouring windows that share only their overlap lines are both kept).
    """
    ordered = sorted(hits, key=lambda h: -h.score if math.isfinite(h.score) else math.inf)
    kept: list[H] = []
    named: set[tuple[str, str]] = set()
    unnamed: dict[str, list[tuple[int, int]]] = {}
    for hit in ordered:
        if hit.symbol:
            key = (hit.path, hit.symbol)
            if key in named:
                continue
            named.add(key)
        else:
            start, end = getattr(hit, "start_line", None), getattr(hit, "end_line", None)
            if isinstance(start, int) and isinstance(end, int):
                spans = unnamed.setdefault(hit.path, [])
                if any(_near_duplicate((start, end), span) for span in spans):
                    continue
                spans.append((start, end))
        kept.append(hit)
    return kept
