"""Lexical tokens for the FTS5 index: code-aware identifier splitting; CJK words from an analyser, or bigrams.

Every token is lower-cased and made only of characters SQLite's unicode61 tokenizer (with tokenchars '_') keeps
inside one token, so `" ".join(tokens)` goes into FTS5 and each token can be queried back as a quoted string.
Choices here were measured with BM25 on bench/ja and bench/cosqa (see bench/ref_lexical.py); bump
TOKENIZER_VERSION whenever the output for some input changes, and store `tokenizer_id()` with an index.
"""

from __future__ import annotations

import importlib.util
import re
import threading
import unicodedata
from functools import lru_cache

from .dist import dist_version

TOKENIZER_VERSION = 1

MAX_TOKEN_LEN = 64  # longer "words" are blobs (base64, hashes); nobody searches for them
MAX_QUERY_TOKENS = 64

# Han (incl. extensions and compatibility ideographs), kana, Hangul; only letters, so unicode61 keeps them whole.
# Punctuation such as the katakana middle dot (U+30FB) stays a separator.
_CJK = (
    "\u3005-\u3007\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0003134f\uac00-\ud7a3\u1100-\u11ff\u3131-\u318e\ua960-\ua97c\ud7b0-\ud7fb"
)
# Letters to Python's Unicode tables but separators to unicode61 (Unicode 6.1 categories; checked exhaustively).
_U61_SEPARATORS = "\u19b0-\u19c0\u19c8\u19c9\u1cf2\u1cf3"
_SEGMENT = re.compile(f"([{_CJK}]+)|([^\\W{_CJK}{_U61_SEPARATORS}]+)")
_ASCII_WORD = re.compile(r"[A-Za-z0-9_]+")
_WORD = re.compile(f"[^\\W{_U61_SEPARATORS}]+")
_HAS_CJK = re.compile(f"[{_CJK}\uff66-\uff9f\uffa0-\uffdc]")
_KANA = re.compile("[\u3041-\u3096\u30a1-\u30fa\u31f0-\u31ff]")
_HIRAGANA = re.compile("[\u3041-\u309f]")
_HANGUL = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3131-\u318e\ua960-\ua97c\ud7b0-\ud7fb]")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_PIECE = re.compile(r"\d+|[^\W\d_]+")

# Japanese grammatical morphemes: particles, auxiliary verbs, punctuation, whitespace (the usual Japanese IR
# stop classes). Dropping them in documents and queries measured as neutral on quality and keeps the index small.
_JA_DROP_POS = frozenset({"助詞", "助動詞", "補助記号", "記号", "空白"})
# Sudachi refuses inputs over 49,149 UTF-8 bytes; 12,000 characters stay below it even at 4 bytes each.
_SUDACHI_MAX_CHARS = 12_000


def has_cjk(text: str) -> bool:
    """True if the text holds Han, Hiragana, Katakana (incl. half-width) or Hangul characters."""
    return _HAS_CJK.search(text) is not None


def tokenize(text: str, *, analyser: bool = True) -> list[str]:
    """Tokens of a document (chunk body, docstring, prose), in text order, duplicates kept for term frequency.

    analyser=False uses character bigrams for all CJK text, as if no morphological analyser were installed.
    """
    return _tokens(text, analyser, query=False)


def tokenize_query(text: str, *, analyser: bool = True, limit: int | None = MAX_QUERY_TOKENS) -> list[str]:
    """Tokens of a search query: the document rules, de-duplicated in order and capped at `limit` (None: no cap).

    No English stop words are removed: on CoSQA that cost MRR (words like "is", "get", "to" name code), and
    BM25's IDF already discounts common words. Han text without kana is ambiguous in a query (Chinese, or short
    Japanese), so it gets both languages' words. For find-similar (a code snippet as the query) prefer limit=None
    or tokenize(): the 64-token cap costs P@1 on bench/clones (0.661 -> 0.625).
    """
    return _dedupe(_tokens(text, analyser, query=True))[:limit]


def tokenize_path(path: str, *, analyser: bool = True) -> list[str]:
    """Tokens of a workspace-relative path: "src/http/client_pool.py" -> src, http, client, pool, client_pool, py."""
    return _dedupe(_tokens(path, analyser, query=False))


def tokenize_symbol(symbol: str, *, analyser: bool = True) -> list[str]:
    """Tokens of a qualified symbol: "HTTPServer.get_user" -> http, server, httpserver, get, user, get_user."""
    return _dedupe(_tokens(symbol, analyser, query=False))


def tokenizer_id(*, analyser: bool = True) -> str:
    """Names the tokenizer and the analysers in use; an index built under another id must be re-tokenized."""
    if not analyser:
        return f"sg-tok{TOKENIZER_VERSION}:ja=bigram,zh=bigram,ko=bigram"
    sudachi = _available(_SUDACHI, "sudachipy") and (_SUDACHI.tried or
                                                      importlib.util.find_spec("sudachidict_core") is not None)
    ja = f"sudachi-A-{_version('sudachidict_core')}" if sudachi else "bigram"
    zh = f"jieba-{_version('jieba')}" if _available(_JIEBA, "jieba") else "bigram"
    ko = f"kiwi-{_version('kiwipiepy')}" if _available(_KIWI, "kiwipiepy") else "bigram"
    return f"sg-tok{TOKENIZER_VERSION}:ja={ja},zh={zh},ko={ko}"


# --- pipeline -------------------------------------------------------------------------------------------------


def _tokens(text: str, analyser: bool, query: bool) -> list[str]:
    if not text:
        return []
    if text.isascii():
        return [t for run in _ASCII_WORD.findall(text) for t in _identifier(run)]
    # NFKC folds full-width Latin and digits to ASCII and half-width katakana to full-width before anything else.
    text = unicodedata.normalize("NFKC", text)
    slots: list[list[str] | tuple[str, ...]] = []
    cjk_runs: list[tuple[int, str]] = []
    for m in _SEGMENT.finditer(text):
        if m.group(2) is not None:
            slots.append(_identifier(m.group(2)))
        else:
            cjk_runs.append((len(slots), m.group(1)))
            slots.append([])
    if cjk_runs:
        _cjk(text, cjk_runs, slots, analyser, query)
    return [t for words in slots for t in words]


def _identifier(run: str) -> tuple[str, ...]:
    # Identifiers repeat heavily within a code base, so splitting is cached (halves the time on code corpora).
    return _split_identifier_cached(run) if len(run) <= MAX_TOKEN_LEN else _split_identifier(run)


def _split_identifier(run: str) -> tuple[str, ...]:
    """getUserName -> get, user, name, getusername; HTTP_server2 -> http, server, 2, http_server2."""
    if run.isascii():
        parts = [p.lower() for piece in run.split("_") if piece for p in _CAMEL.findall(piece)]
    else:
        parts = _unicode_parts(run)
    out = [p for p in parts if len(p) <= MAX_TOKEN_LEN]
    if len(parts) > 1:
        # The whole identifier too, so an exact-name query outranks documents that merely share its parts
        # (measured: bench/ja P@1 0.635 -> 0.647, bench/cosqa neutral).
        whole = _lower(run.strip("_"))
        if len(whole) <= MAX_TOKEN_LEN and _WORD.fullmatch(whole):
            out.append(whole)
    return tuple(out)


_split_identifier_cached = lru_cache(maxsize=1 << 16)(_split_identifier)


def _unicode_parts(run: str) -> list[str]:
    """Identifier parts for non-ASCII runs: split at "_", digit/letter edges and case changes, then lower-case."""
    parts = []
    for piece in _PIECE.findall(run):
        if piece.islower() or piece.isupper() or not piece.isalpha():
            parts.append(piece)
            continue
        start = 0
        for i in range(1, len(piece)):
            a, b = piece[i - 1], piece[i]
            if (a.islower() and b.isupper()) or (
                a.isupper() and b.isupper() and i + 1 < len(piece) and piece[i + 1].islower()
            ):
                parts.append(piece[start:i])
                start = i
        parts.append(piece[start:])
    return [w for p in parts for w in _WORD.findall(_lower(p))]


def _lower(s: str) -> str:
    # Made to agree with unicode61's case folding, so tokens are stored exactly as emitted (checked for every code
    # point): "İ".lower() is "i" + U+0307, a mark unicode61 splits on; Python writes a word-final sigma as "ς",
    # unicode61 folds it to "σ".
    return s.replace("\u0130", "i").lower().replace("\u03c2", "\u03c3")


def _dedupe(tokens: list[str]) -> list[str]:
    return list(dict.fromkeys(tokens))


# --- CJK ------------------------------------------------------------------------------------------------------


def _cjk(text: str, runs: list[tuple[int, str]], slots: list, analyser: bool, query: bool) -> None:
    """Fill the slots of CJK runs. Kana anywhere in the text makes its Han runs Japanese; Hangul runs are Korean;
    Han runs in kana-free text are Chinese, except that a kana-free *query* may be short Japanese, so it also
    gets the Japanese tokens (an OR query: the extra words only widen the match)."""
    japanese = _KANA.search(text) is not None
    ja: list[tuple[int, str]] = []
    zh: list[tuple[int, str]] = []
    for slot, run in runs:
        if _HANGUL.search(run):
            slots[slot].extend(_korean(run) if analyser else _bigrams(run))
        elif japanese:
            ja.append((slot, run))
        else:
            zh.append((slot, run))
            if query:
                ja.append((slot, run))
    if ja:
        words = _japanese([r for _, r in ja]) if analyser else None
        for i, (slot, run) in enumerate(ja):
            slots[slot].extend(words[i] if words is not None else _bigrams(run))
    for slot, run in zh:
        slots[slot].extend(_chinese(run) if analyser else _bigrams(run))


def _bigrams(run: str) -> list[str]:
    """Overlapping character bigrams; a lone character stands for itself. Pairs of two hiragana are skipped:
    they are mostly particles and inflections (measured on bench/ja: P@1 0.553 -> 0.624 without them)."""
    if len(run) == 1:
        return [] if _HIRAGANA.match(run) else [run]
    return [
        run[i : i + 2]
        for i in range(len(run) - 1)
        if not (_HIRAGANA.match(run[i]) and _HIRAGANA.match(run[i + 1]))
    ]


@lru_cache(maxsize=1 << 16)
def _words(surface: str) -> tuple[str, ...]:
    """Index words of an analyser's output form (cached: the same few thousand words recur)."""
    return tuple(w for w in _WORD.findall(_lower(surface)) if len(w) <= MAX_TOKEN_LEN)


class _Lazy:
    """An analyser loaded on first use, once, by whichever thread gets there first; None if it cannot load."""

    def __init__(self, load):
        self._load = load
        self._lock = threading.Lock()
        self._done = False
        self._value = None

    def get(self):
        if not self._done:
            with self._lock:
                if not self._done:
                    try:
                        self._value = self._load()
                    except Exception:  # noqa: BLE001 - not installed or broken: the caller falls back to bigrams
                        self._value = None
                    self._done = True
        return self._value

    @property
    def tried(self) -> bool:
        return self._done


def _load_sudachi():
    from sudachipy import Dictionary

    dictionary = Dictionary(dict="core")
    return dictionary, dictionary.pos_matcher(lambda pos: pos[0] in _JA_DROP_POS)


def _load_jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # it announces its dictionary build on stderr otherwise
    jieba.initialize()
    return jieba


def _load_kiwi():
    from kiwipiepy import Kiwi

    return Kiwi(), threading.Lock()


_SUDACHI = _Lazy(_load_sudachi)
_JIEBA = _Lazy(_load_jieba)
_KIWI = _Lazy(_load_kiwi)
_local = threading.local()  # a Sudachi Tokenizer must not be used by two threads at once: one per thread


def _sudachi():
    """(this thread's Tokenizer, PosMatcher of dropped morphemes) or None without Sudachi."""
    loaded = _SUDACHI.get()
    if loaded is None:
        return None
    dictionary, drop = loaded
    cached = getattr(_local, "sudachi", None)
    if cached is None or cached[0] is not dictionary:
        # Mode A (short units) with normalized forms (サーバ/サーバー, できる/出来る agree) measured best
        # on bench/ja: P@1 0.647 vs 0.600 for mode C surfaces.
        cached = (dictionary, dictionary.tokenizer(mode="A", fields={"pos", "normalized_form"}))
        _local.sudachi = cached
    return cached[1], drop


def _japanese(runs: list[str]) -> list[list[str]] | None:
    """Sudachi words (normalized form, grammatical morphemes dropped) per run, or None without Sudachi."""
    try:
        got = _sudachi()
    except Exception:  # noqa: BLE001
        got = None
    if got is None:
        return None
    tok, drop = got
    # Pieces of at most _SUDACHI_MAX_CHARS, then batches of pieces joined by "\n": one call per batch is cheaper
    # than one per run, and runs hold no whitespace, so each "\n" comes back as exactly one morpheme.
    step = _SUDACHI_MAX_CHARS
    pieces = [(i, run[j : j + step]) for i, run in enumerate(runs) for j in range(0, len(run), step)]
    result: list[list[str]] = [[] for _ in runs]
    start = 0
    while start < len(pieces):
        end, size = start + 1, len(pieces[start][1])
        while end < len(pieces) and size + 1 + len(pieces[end][1]) <= _SUDACHI_MAX_CHARS:
            size += 1 + len(pieces[end][1])
            end += 1
        batch = pieces[start:end]
        try:
            words = _sudachi_batch(tok, drop, [p for _, p in batch])
        except Exception:  # noqa: BLE001 - never let the analyser break indexing: bigrams for this batch
            words = [_bigrams(p) for _, p in batch]
        for (i, _), ws in zip(batch, words):
            result[i].extend(ws)
        start = end
    return result


def _sudachi_batch(tok, drop, texts: list[str]) -> list[list[str]]:
    words: list[list[str]] = [[] for _ in texts]
    k = 0
    for m in tok.tokenize("\n".join(texts)):
        if m.surface() == "\n":
            k += 1
        elif k < len(texts) and not drop(m):
            words[k].extend(_words(m.normalized_form()))
    if k == len(texts) - 1:
        return words
    # The separators were segmented unexpectedly: one call per text instead.
    return [[w for m in tok.tokenize(t) if not drop(m) for w in _words(m.normalized_form())] for t in texts]


def _chinese(run: str) -> list[str]:
    """jieba search-mode words (words plus their sub-words) if jieba is installed, else bigrams."""
    jieba = _JIEBA.get()
    if jieba is not None:
        try:
            return [w for s in jieba.lcut_for_search(run) for w in _words(s)]
        except Exception:  # noqa: BLE001
            pass
    return _bigrams(run)


def _korean(run: str) -> list[str]:
    """kiwipiepy morphemes without particles, endings, suffixes and symbols if installed, else bigrams."""
    loaded = _KIWI.get()
    if loaded is not None:
        kiwi, lock = loaded
        try:
            with lock:  # one shared model (it is large); calls are serialised rather than trusting its threading
                toks = kiwi.tokenize(run)
            return [w for t in toks if not str(t.tag).startswith(("J", "E", "S", "XS")) for w in _words(t.form)]
        except Exception:  # noqa: BLE001
            pass
    return _bigrams(run)


def _available(lazy: _Lazy, module: str) -> bool:
    # Without loading a large model just to name it: once tried, the real outcome; before, whether it is installed.
    return lazy.get() is not None if lazy.tried else importlib.util.find_spec(module) is not None


def _version(module: str) -> str:
    # from the dist-info folder's name: importlib.metadata costs ~20 ms of every one-shot search's engine open
    found = dist_version(module)
    return "?" if found == "none" else found
