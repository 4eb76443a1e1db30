"""Repository navigation: the ranking steps after fusion that let a code base's own structure count. Pure steps over
the candidates' fused scores and rows; each adds a named part to a hit's explanation.

- query kinds (`Intent`): a bare symbol ("APIRouter", "Rack::Builder"), a topic ("how are routes registered"; it
  may name symbols: "how does APIRouter include routers"), a behaviour sentence that asks for one function
  ("Return the names of all fixtures used by this node"), or a pasted snippet (find-similar skips these steps);
- definitions: the chunk that defines a queried symbol is lifted, more when its file is named after it;
- paths: a topic's words in a file's stem or its folder lift that file's chunks;
- file coherence: several matching chunks lift their file's best chunk;
- priors: tests, examples, docs and prose, compat shims, generated files, type stubs, data and templates and an
  __init__'s re-export code count for less unless the query asks for them, and so do one-line units;
- diversity: each further chunk of one file in the top k counts for less.
Behaviour sentences get the priors only: the file-level steps would push the one function they ask for down.

Anchors: semble's ranking stack (MinishLab/semble, ranking/boosting.py and penalties.py: query kinds, the
definition, stem and file boosts as shares of the best score, the path penalties and per-file saturation). sg
differs where it knows more: definitions come from the chunker's symbols as well as from definition keywords,
path words match through stems and prefixes, candidates are also fetched by name (not only by BM25 over the
body), prose is a kind of its own, and every step shows in --explain. Sizes: bench/repo_search.py."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from . import score
from .backends.base import Row

Scored = dict[Hashable, tuple[float, dict[str, float]]]

# -- query kinds --------------------------------------------------------------------------------------------------
_SEP = r"(?:::|\\|->|\.|#|/)"
_SYMBOL_QUERY = re.compile(
    r"^(?:[A-Za-z_$][\w$]*(?:" + _SEP + r"[A-Za-z_$][\w$]*)+"  # qualified: Rack::Builder, http.Client
    r"|_\w*"  # leading underscore
    r"|[A-Za-z][A-Za-z0-9]*[A-Z_][\w]*"  # camelCase, PascalCase inside, snake_case
    r"|[A-Z][A-Za-z0-9]*)(?:\(\))?$")  # Capitalised; a trailing "()" is allowed
_EMBEDDED = re.compile(
    r"`([^`\s]+)`"  # `quoted`
    r"|\b([A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*"  # PascalCase
    r"|[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*"  # camelCase
    r"|[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+"  # snake_case
    r"|[A-Z]{2,}[a-z][A-Za-z0-9]*"  # HTTPServer
    r"|[A-Za-z_]\w*(?:::|->|\.)[A-Za-z_]\w*(?:(?:::|->|\.)[A-Za-z_]\w*)*)\b")  # qualified
_DOC_WORDS = frozenset({"doc", "docs", "documentation", "readme", "guide", "guides", "tutorial", "tutorials",
                        "changelog", "manual", "markdown", "howto", "faq", "explained", "explanation"})
_EXAMPLE_WORDS = frozenset({"example", "examples", "demo", "demos", "sample", "samples", "tutorial"})


# Words that frame a question rather than name what it looks for ("how are routes registered"). In code they are
# rare (comments only), so BM25 gives them a high IDF and a short comment that says "how" outranks the code.
# Words that also name code ("is", "to", "get", "for", "in") stay.
QUESTION_WORDS = frozenset("""
how does do did what where which who whose why when the a an and or of are was were this that these those its
""".split())


def content_tokens(tokens: list[str]) -> list[str]:
    """A natural-language query's BM25 tokens without the words that only frame the question (all of them when
    nothing else is left)."""
    kept = [t for t in tokens if t not in QUESTION_WORDS]
    return kept or tokens


# A sentence that starts with what a piece of code does ("Return the names of all fixtures used by this node",
# "parse a date string") asks for one function, like a docstring's first line does; a topic ("session
# management", "how are routes registered") asks for the place in the code base: its file.
BEHAVIOUR_VERBS = frozenset("""
return get set add create make build compute calculate find check convert parse read write load save remove delete
update handle call invoke run execute register generate format print raise validate determine apply open close
start stop wrap emit send show display initialize reset resolve render store collect copy compare merge split join
filter sort match yield fetch list count append insert replace extract encode decode serialize deserialize
normalize escape strip wait schedule evaluate test assert ensure mark skip report configure install import export
attach push pop detect prompt produce iterate enable disable truncate move restore cancel look turn change clean
cleanup highlight point use accept allow attempt bind cache clear connect construct consume declare define dispatch
drop dump echo exit expand fill flush forward hash hide ignore include inject inspect issue keep kill lock log
lookup map modify notify override pass patch pick post prepare process prune put queue receive record reduce
refresh reject release reload rename repeat request require retry reverse search select serve setup signal sleep
spawn stream submit subscribe swap sync take tear teardown terminate throw toggle track transform translate trigger
try unlock unregister unwrap upload verify visit walk warn watch perform obtain suspend resume
""".split())
# Docstring openings that are not verbs: "The value of ...", "Whether to ...", "Called when ...".
_BEHAVIOUR_OPENERS = frozenset("the this a an whether called if given helper for".split())


# After a verb these make it one: "Return the names", "Check if", "Create a new" (while "request validation" or
# "stream handling" is a topic: most code verbs are nouns too).
_OBJECT_WORDS = frozenset("the a an all this its each every given new one any some it them if whether that to "
                          "whose which what how".split())


def _behaviour(written: list[str]) -> bool:
    """Whether a sentence starts as a docstring does: a verb that is capitalised or takes an object ("Return the
    names", "parse a date", "Writes ..."; not "request validation"), a third-person verb ("returns"), or an opener
    such as "the", "whether", "called"."""
    words = [w.lower() for w in written]
    first = words[0]
    if first in _BEHAVIOUR_OPENERS:
        return True
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):  # third person: returns, pushes, applies
        if first.endswith(suffix) and first[:-len(suffix)] + repl in BEHAVIOUR_VERBS:
            return True
    if first not in BEHAVIOUR_VERBS:
        return False
    return written[0][:1].isupper() or (len(words) > 1 and words[1] in _OBJECT_WORDS)


@dataclass(frozen=True)
class Intent:
    """What a search query asks for, read from its text."""

    kind: str  # symbol | topic (a place in the code base: file-level steps apply) | behaviour (one function)
    names: tuple[str, ...] = ()  # symbol names the query asks to be defined (last component first)
    words: tuple[str, ...] = ()  # natural-language keywords (stop words dropped) for path matches
    tests: bool = False
    docs: bool = False
    examples: bool = False


def read_intent(text: str) -> Intent:
    q = text.strip()
    words = score.split_identifier(q)
    tests, docs = score.query_mentions_tests(q), any(w in _DOC_WORDS for w in words)
    examples = any(w in _EXAMPLE_WORDS for w in words)
    if _SYMBOL_QUERY.match(q):
        full = q[:-2] if q.endswith("()") else q
        last = re.split(_SEP, full)[-1]
        return Intent("symbol", tuple(dict.fromkeys([last, full])), (), tests, docs, examples)
    names = []
    for m in _EMBEDDED.finditer(q):
        name = m.group(1) or m.group(2)
        if name.endswith("()") or q[m.end():m.end() + 1] == "(":
            continue  # a call in a sentence ("like addoption()", "where is parse() called") is a use, not the ask
        names.append(re.split(_SEP, name)[-1])
    keywords = tuple(dict.fromkeys(w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", q.lower())
                                   if len(w) > 2 and w not in score.STOP_WORDS))
    # "this node", "this request": a sentence about a member in its context, as docstrings say it
    written = q.split()  # as written: "ACursor" is one word here, not "a cursor"
    kind = "behaviour" if written and (_behaviour(written) or "this" in written) else "topic"
    return Intent(kind, tuple(dict.fromkeys(n for n in names if len(n) > 1)), keywords, tests, docs, examples)


# -- definitions --------------------------------------------------------------------------------------------------
_DEF_KEYWORDS = ("class", "module", "defmodule", "def", "defp", "defmacro", "defstruct", "defprotocol", "interface",
                 "struct", "enum", "union", "trait", "type", "func", "function", "object", "fn", "fun", "package",
                 "namespace", "protocol", "record", "typedef", "impl", "macro_rules!", "data", "newtype", "typealias",
                 "extension", "actor", "let", "const", "var", "val", "#define", "local function", "local", "alias",
                 "case class", "sealed trait", "abstract class", "data class")


@functools.lru_cache(maxsize=512)
def _definition_re(name: str) -> re.Pattern[str]:
    kw = "|".join(re.escape(k) for k in _DEF_KEYWORDS)
    ns = r"(?:[A-Za-z_][\w]*(?:\.|::|:))*"
    n = re.escape(name)
    return re.compile(
        r"(?:^|[\s(])(?:" + kw + r")\s+(?:<[^>\n]*>\s*|\([^)\n]*\)\s*)?" + ns + n
        + r"(?=[\s<({:\[;=,!]|$)"  # class Foo, pub fn foo, fun <T> foo, func (r *R) Foo
        r"|^\s*(?:export\s+)?(?:[\w.]+\.)?" + n + r"\s*(?:=|:=)\s*(?:function|\(|async|class|struct|[\w.]*\.extend)"
        r"|^\s*" + n + r"\s*\(\)\s*\{"  # shell: name() {
        r"|^\s*(?:pub\s+)?(?:const|var)\s+" + n + r"\s*=\s*(?:struct|enum|union|@import|fn)"  # zig
        r"|^" + n + r"\s*::",  # haskell signature
        re.MULTILINE)


def defines(row: Row, text: str, name: str) -> bool:
    """Whether this chunk is the definition of `name`: a function or method chunk of that name, or a chunk where
    a definition keyword precedes the name (a class head, not a later piece of the class)."""
    head = text[:4000]
    if name not in head:
        return False
    last = _SYMBOL_PARTS.split(row.symbol)[-1] if row.symbol else ""
    if last == name and row.kind in ("function", "method"):
        return True  # a function's chunk (or the first window of a long one) names it in its signature
    # a class's chunks all carry its symbol: only the head has the definition keyword before the name
    return _definition_re(name).search(head) is not None


_SYMBOL_PARTS = re.compile(r"::|\.|#|/|\\|->")


def _stem(path: str) -> str:
    return PurePosixPath(path).name.split(".")[0].lower()


def _stem_named(path: str, name: str) -> bool:
    stem, n = _stem(path), name.lower()
    norm = stem.replace("_", "").replace("-", "")
    return n in (stem, norm, stem.rstrip("s"), norm.rstrip("s"))


# -- paths --------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=65536)
def _path_words(path: str) -> frozenset[str]:
    p = PurePosixPath(path)
    words = set(score.split_identifier(p.name.split(".")[0]))
    if len(p.parts) > 1:
        words.update(score.split_identifier(p.parts[-2]))
    return frozenset(words)


@functools.lru_cache(maxsize=65536)
def path_share(words: tuple[str, ...], path: str) -> float:
    """Share of the query's keywords found in the file's stem or its folder's name (prefixes of 3+ letters and
    English stems match: "dependency" ~ "dependencies")."""
    if not words:
        return 0.0
    parts = _path_words(path)
    n = 0
    for w in words:
        if w in parts or any(_prefix_match(w, p) for p in parts):
            n += 1
    return n / len(words)


def _prefix_match(a: str, b: str) -> bool:
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) >= 4 and long.startswith(short):
        return True
    return len(short) >= 5 and score._stem(a) == score._stem(b)


# -- priors -------------------------------------------------------------------------------------------------------
_PROSE_EXT = frozenset({"md", "mdx", "rst", "txt", "adoc", "asciidoc", "org", "textile", "rdoc", "pod", "html",
                        "htm", "tex"})
_TEST_HELPER = re.compile(r"(?:^|/)(?:test_?helpers?|test_?utils?|testutils?|testing_?utils?)[^/]*\.\w+$", re.I)
_EXAMPLE_DIR = re.compile(r"(?:^|/)(?:_?examples?|samples?|demos?|docs?_src|benchmarks?|bench)(?:/|$)", re.I)
_DOC_DIR = re.compile(r"(?:^|/)(?:docs?|documentation|guides?|\.agents|\.github)(?:/|$)", re.I)
_COMPAT_DIR = re.compile(r"(?:^|/)(?:_?compat|legacy|deprecated|shims?)(?:/|$)|(?:^|/)_?compat\.\w+$", re.I)
_GENERATED = re.compile(r"(?:^|/)(?:generated|gen|vendor|third_party|dist)(?:/|$)|_pb2\.py$|\.pb\.go$|\.min\.js$"
                        r"|\.generated\.\w+$|_generated\.\w+$", re.I)
_STUB = re.compile(r"\.d\.ts$|\.pyi$")
_DATA_EXT = frozenset({"json", "jsonc", "yaml", "yml", "toml", "xml", "ini", "cfg", "conf", "lock", "csv", "tsv",
                       "def", "properties", "plist", "svg", "tt", "erb", "mustache", "hbs", "tmpl", "tpl", "j2", "in"})
_DOC_NAMES = re.compile(r"^(?:readme|usage|changelog|changes|history|news|license|licence|copying|authors|"
                        r"contributing|notice|todo|makefile|dockerfile|gemfile|rakefile|cmakelists)(?:\.|$)", re.I)
_TEMPLATE_DIR = re.compile(r"(?:^|/)(?:templates?|fixtures?|stubs?|skeletons?)(?:/|$)", re.I)
_REEXPORT = frozenset({"__init__.py", "package-info.java"})


@dataclass(frozen=True)
class Priors:
    test: float = 0.3
    example: float = 0.3
    docs: float = 0.3
    compat: float = 0.3
    generated: float = 0.5
    reexport: float = 0.5
    stub: float = 0.7
    data: float = 0.5  # data, configuration and template files
    tiny: float = 0.5  # one-line units: a lone class line, an assignment between definitions


def prior(path: str, row: Row, intent: Intent, p: Priors) -> tuple[float, str]:
    """The multiplicative prior of a chunk and the name of what set it ("" for 1.0)."""
    f, why = _path_prior(path, intent.tests, intent.docs, intent.examples, p)
    if not intent.tests and not why.startswith("test") and row.symbol and score.is_test_path(path, row.symbol):
        f, why = f * p.test, "+".join(x for x in ("test", why) if x)  # a test method in a test class
    if row.kind == "module" and path.rsplit("/", 1)[-1] in _REEXPORT:
        # a package's __init__ that only re-exports; one that defines things is a module like any other
        f, why = f * p.reexport, "+".join(x for x in (why, "reexport") if x)
    if row.end_line == row.start_line:
        f, why = f * p.tiny, "+".join(x for x in (why, "tiny") if x)
    return f, why


@functools.lru_cache(maxsize=65536)
def _path_prior(path: str, tests: bool, docs: bool, examples: bool, p: Priors) -> tuple[float, str]:
    f, why = 1.0, list[str]()
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if not tests and (score.is_test_path(path) or _TEST_HELPER.search(path)):
        f, why = f * p.test, why + ["test"]
    if not examples and _EXAMPLE_DIR.search(path):
        f, why = f * p.example, why + ["example"]
    if not docs and (ext in _PROSE_EXT or _DOC_DIR.search(path) or _DOC_NAMES.match(name)):
        f, why = f * p.docs, why + ["docs"]
    if ext in _DATA_EXT or _TEMPLATE_DIR.search(path):
        f, why = f * p.data, why + ["data"]
    if _COMPAT_DIR.search(path):
        f, why = f * p.compat, why + ["compat"]
    if _GENERATED.search(path):
        f, why = f * p.generated, why + ["generated"]
    if _STUB.search(path):
        f, why = f * p.stub, why + ["stub"]
    return f, "+".join(why)


# -- the steps ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """Each boost as a share of the best fused score among the candidates."""

    definition: float = 3.0
    definition_named_file: float = 1.5  # x definition when the file is named after the symbol
    definition_type: float = 1.3  # x definition for a type (class, struct, ...) named like a capitalised query
    embedded: float = 0.5  # x definition for a name inside a natural-language query
    path: float = 1.0
    path_min_share: float = 0.1
    file: float = 0.2
    saturation: float = 0.5  # a file's 2nd chunk in the top k counts x0.5, its 3rd x0.25, ...
    priors: Priors = field(default_factory=Priors)


def rerank(scored: Scored, rows: Mapping[Hashable, Row], texts: Mapping[Hashable, str], intent: Intent,
           sizes: Sizes = Sizes()) -> Scored:
    """Definitions, paths, file coherence and priors applied to fused scores (total, parts)."""
    if not scored:
        return scored
    top = max(t for t, _ in scored.values()) or 1.0
    out = {k: (t, dict(parts)) for k, (t, parts) in scored.items()}

    def add(key: Hashable, name: str, amount: float) -> None:
        t, parts = out[key]
        parts[name] = parts.get(name, 0.0) + amount
        out[key] = (t + amount, parts)

    if intent.kind == "behaviour":
        # one function is wanted: no file-level step, and a name in the sentence is context, not the answer
        return _apply_priors(out, rows, intent, sizes.priors)
    # several matching chunks lift their file's best chunk (before the boosts below, as the fused scores say)
    file_sum: dict[str, float] = {}
    best: dict[str, Hashable] = {}
    for key, (t, _) in scored.items():
        path = rows[key].path
        file_sum[path] = file_sum.get(path, 0.0) + t
        if path not in best or t > scored[best[path]][0]:
            best[path] = key
    most = max(file_sum.values()) or 1.0
    for path, key in best.items():
        add(key, "file", sizes.file * top * file_sum[path] / most)
    # definitions of the queried names
    if intent.names:
        unit = sizes.definition * top * (1.0 if intent.kind == "symbol" else sizes.embedded)
        for key in out:
            row, text = rows[key], texts.get(key, "")
            hit = [n for n in intent.names if defines(row, text, n)]
            if not hit and intent.kind == "topic":
                # "ConfigLoader load yaml": the members of a named class count as much as its head
                owners = _SYMBOL_PARTS.split(row.symbol)[:-1] if row.symbol else []
                hit = [n for n in intent.names if n in owners]
            if hit:
                named = any(_stem_named(row.path, n) for n in hit)
                # a bare capitalised name asks for a type before a function or method of the same name
                typed = intent.kind == "symbol" and row.kind == "class" and any(n[:1].isupper() for n in hit)
                add(key, "definition", unit * (sizes.definition_named_file if named else 1.0)
                    * (sizes.definition_type if typed else 1.0))
    # query words in file names (natural language). Only a file with several candidate chunks is a topic named
    # by its path: a file of one unit is named after that unit, which the name boost already counts.
    if intent.kind == "topic" and intent.words:
        per_file = Counter(rows[key].path for key in out)
        for key in out:
            if per_file[rows[key].path] < 2:
                continue
            share = path_share(intent.words, rows[key].path)
            if share >= sizes.path_min_share:
                add(key, "path", sizes.path * top * share)
    return _apply_priors(out, rows, intent, sizes.priors)


def _apply_priors(out: Scored, rows: Mapping[Hashable, Row], intent: Intent, priors: Priors) -> Scored:
    for key in out:
        f, why = prior(rows[key].path, rows[key], intent, priors)
        if f < 1.0:
            t, parts = out[key]
            parts[f"prior:{why}"] = t * (f - 1.0)
            out[key] = (t * f, parts)
    return out


def diversify(hits: list, k: int, saturation: float = Sizes.saturation) -> list:
    """The top k with diminishing returns per file: greedily, each further chunk of a file already chosen counts
    x saturation per chunk before it (its `diversity` part says how much it lost). Hits must be best first."""
    chosen: list = []
    per_file: dict[str, int] = {}
    floor = float("-inf")
    for h in hits:
        if len(chosen) >= k and h.score <= floor:
            break
        n = per_file.get(h.path, 0)
        if n:
            lost = h.score * (1 - saturation ** n)
            h.components = {**h.components, "diversity": -lost}
            h.score -= lost
        chosen.append(h)
        per_file[h.path] = n + 1
        if len(chosen) >= k:
            floor = sorted((c.score for c in chosen), reverse=True)[k - 1]
    chosen.sort(key=lambda h: (-h.score, h.path, h.start_line))
    return chosen[:k]
