"""Split one file's text into searchable chunks: tree-sitter definitions for code, heading sections for prose,
pages for PDFs, line windows for everything else. Never raises on any input.

Positions: lines are 1-based and split the way editors (and LSP) do, on "\\r\\n", "\\r" and "\\n" only (a form
feed or U+2028 does not start a line); columns are code-point offsets (Python str indices) within the line.
`Chunk.text` is the exact slice of the source between (start_line, start_col) and (end_line, end_col), so the
original line endings are kept; chunks never end in whitespace.

Symbol naming (each language uses its own idiom for the separator):
  * Python, JS/TS, Java, C#, Kotlin, Swift, Scala: `Outer.Inner.method`; Go methods `Server.Start` whatever the
    receiver (pointer or value: the signature shows which).
  * Rust: inherent impl methods `Foo::bar`; trait impl methods `<Foo as Display>::fmt`; the impl block itself is a
    class chunk named `impl Foo` / `impl Display for Foo`; trait default methods `Shape::name`. Generic arguments
    are dropped from the type names.
  * C++: `Widget::size` (also for out-of-line definitions `void Widget::size() {...}`); PHP: `User::getName`.
  * Ruby: `Util::Greeter#hi` for instance methods, `Util::Greeter.make` for `def self.make`.
  * Swift extensions: the block is a class chunk `extension Foo`, its methods `Foo.bar`.
  * Namespaces and packages (C#/C++/PHP namespaces, Rust `mod`, TS `namespace`, Java/Go/Scala packages) never
    appear in symbols: like a Python module, the file path identifies them.
  * Functions nested in functions stay inside their parent's chunk; only type-like containers (class, struct,
    interface, trait, enum, impl, Ruby module, Kotlin/Scala object, Swift extension) qualify names.

What becomes a chunk:
  * code: one chunk per function/method (starting at its doc comment, decorators or attributes); a class chunk
    holds the class header up to its first member definition, and fields declared between or after members
    come as further class chunks with the same symbol, so each line of a method is in exactly one chunk.
    Top-level code outside definitions becomes `module` chunks (tiny leftovers such as a lone `package x` or
    closing braces are dropped). Spans longer than max_chunk_lines become overlapping windows of window_lines.
  * Markdown/reST: sections under their heading path ("Install > Linux"), long ones grouped by paragraphs;
    plain text: paragraph groups. PDF: one `page` chunk per page (lines are all 1, columns 0).
  * anything else, and files whose long lines (> MINIFIED_LINE chars) hold most of the text: windows.
  * `language` is language_for(path), except "cpp" for a `.h` file that looks like C++ and "unknown" for files
    language_for does not know. At most max_chunks_per_file chunks (the first ones by position) and
    MAX_CHUNK_CHARS characters per chunk (longer spans are cut at line boundaries into several chunks).
"""

from __future__ import annotations

import inspect
import io
import re
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from .records import Chunk
from .settings import IndexSettings

CHUNKER_VERSION = 1

MAX_CHUNK_CHARS = 16 * 1024  # no chunk text is longer; longer spans are cut at line boundaries
PROSE_MAX_CHARS = 4000  # a prose chunk groups paragraphs up to this size (and up to window_lines lines)
MINIFIED_LINE = 1000  # lines longer than this count as minified/generated
CHAR_WINDOW = 4096  # character windows for minified files
CHAR_OVERLAP = 256
MAX_TREE_NODES = 200_000  # stop looking for definitions after this many syntax nodes (huge generated files)
MAX_DEPTH = 64
PARSE_SECONDS = 3.0  # a parse that takes longer (pathological input) is abandoned for line windows

# --------------------------------------------------------------------------------------------------------------
# Languages by file name

_EXT: dict[str, str] = {}
for _lang, _exts in {
    "python": "py pyw pyi",
    "javascript": "js mjs cjs jsx",
    "typescript": "ts mts cts",
    "tsx": "tsx",
    "rust": "rs",
    "go": "go",
    "java": "java",
    "csharp": "cs",
    "c": "c h",
    "cpp": "cc cpp cxx c++ hpp hh hxx h++ ipp inl tpp cu cuh",
    "ruby": "rb rake gemspec ru",
    "kotlin": "kt kts",
    "swift": "swift",
    "php": "php phtml php5 php7 php8",
    "scala": "scala sc",
    "bash": "sh bash zsh ksh",
    "markdown": "md markdown mdown mkd mkdn mdx",
    "rst": "rst rest",
    "text": "txt text",
    "pdf": "pdf",
    # line windows only
    "json": "json jsonc json5 jsonl ndjson ipynb",
    "yaml": "yaml yml",
    "toml": "toml",
    "html": "html htm xhtml",
    "xml": "xml xsd xsl xslt plist csproj vbproj fsproj props targets svg",
    "css": "css",
    "scss": "scss sass",
    "less": "less",
    "sql": "sql",
    "ini": "ini cfg conf properties editorconfig",
    "lua": "lua",
    "perl": "pl pm t",
    "r": "r",
    "dart": "dart",
    "elixir": "ex exs",
    "erlang": "erl hrl",
    "haskell": "hs lhs",
    "ocaml": "ml mli",
    "fsharp": "fs fsi fsx",
    "clojure": "clj cljs cljc edn",
    "groovy": "groovy gradle",
    "julia": "jl",
    "zig": "zig",
    "nim": "nim",
    "vue": "vue",
    "svelte": "svelte",
    "proto": "proto",
    "graphql": "graphql gql",
    "latex": "tex sty cls bib",
    "csv": "csv tsv",
    "powershell": "ps1 psm1 psd1",
    "batch": "bat cmd",
    "fish": "fish",
    "vim": "vim",
    "cmake": "cmake",
    "make": "mk mak",
    "dockerfile": "dockerfile",
    "terraform": "tf tfvars hcl",
    "objc": "m mm",
    "asciidoc": "adoc asciidoc",
    "org": "org",
}.items():
    for _e in _exts.split():
        _EXT["." + _e] = _lang

_NAMES = {
    "makefile": "make", "gnumakefile": "make", "dockerfile": "dockerfile", "containerfile": "dockerfile",
    "cmakelists.txt": "cmake", "rakefile": "ruby", "gemfile": "ruby", "podfile": "ruby", "vagrantfile": "ruby",
    "brewfile": "ruby", "jenkinsfile": "groovy", "justfile": "make", ".bashrc": "bash", ".zshrc": "bash",
    ".profile": "bash", ".bash_profile": "bash", "readme": "text", "license": "text", "licence": "text",
    "copying": "text", "notice": "text", "authors": "text", "contributors": "text", "changelog": "text",
    "changes": "text", "history": "text", "todo": "text", "news": "text", "install": "text",
}

PROSE = frozenset({"markdown", "rst", "text"})


def language_for(path: str) -> str | None:
    """Language name for a path, by file name then extension; None for unknown files (chunked as line windows)."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if name in _NAMES:
        return _NAMES[name]
    dot = name.rfind(".")
    if dot > 0:
        return _EXT.get(name[dot:])
    return None


# --------------------------------------------------------------------------------------------------------------
# Positions


_NL = re.compile(r"\r\n|\r|\n")


class _Source:
    """Line table over a text: char offset <-> (line, column), and tree-sitter byte offsets -> char offsets."""

    def __init__(self, text: str):
        self.text = text
        starts = [0]
        ends = []
        for m in _NL.finditer(text):
            ends.append(m.start())
            starts.append(m.end())
        ends.append(len(text))
        self.starts = starts
        self.ends = ends
        self.n = len(starts)
        self.ascii = text.isascii()
        self._data: bytes | None = None
        self._bstarts: list[int] | None = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self.text.encode("utf-8", "surrogatepass")
        return self._data

    def line_of(self, c: int) -> int:
        return bisect_right(self.starts, c) - 1

    def line(self, i: int) -> str:
        return self.text[self.starts[i]:self.ends[i]]

    def char(self, b: int) -> int:
        """Char offset of a UTF-8 byte offset (tree-sitter positions)."""
        if self.ascii:
            return b
        if self._bstarts is None:
            bstarts = []
            acc = 0
            text, starts = self.text, self.starts
            for i in range(self.n):
                bstarts.append(acc)
                nxt = starts[i + 1] if i + 1 < self.n else len(text)
                seg = text[starts[i]:nxt]
                acc += len(seg) if seg.isascii() else len(seg.encode("utf-8", "surrogatepass"))
            self._bstarts = bstarts
        i = bisect_right(self._bstarts, b) - 1
        piece = self.data[self._bstarts[i]:b]
        try:
            return self.starts[i] + len(piece.decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            return self.starts[i] + len(piece.decode("utf-8", "ignore"))

    def indent(self, i: int) -> int:
        s = self.line(i)
        return len(s) - len(s.lstrip())

    def blank(self, i: int) -> bool:
        return not self.line(i).strip()


# --------------------------------------------------------------------------------------------------------------
# Emitting chunks


class _Out:
    """Collects chunks for one file, applying the size caps every chunk must respect."""

    def __init__(self, path: str, language: str, src: _Source, settings: IndexSettings):
        self.path = path
        self.language = language
        self.src = src
        self.s = settings
        self.chunks: list[Chunk] = []
        self.limit = max(1, settings.max_chunks_per_file)
        # Stop collecting well past the cap; the sorted result is cut to the cap at the end.
        self.hard_limit = self.limit * 4 + 16

    @property
    def full(self) -> bool:
        return len(self.chunks) >= self.hard_limit

    def add(self, kind: str, symbol: str, start: int, end: int, doc: str = "", signature: str = "") -> bool:
        """One chunk for text[start:end] (trailing whitespace dropped), split at MAX_CHUNK_CHARS."""
        text = self.src.text
        while end > start and text[end - 1].isspace():
            end -= 1
        while start < end and text[start] in "\r\n":
            start += 1
        if end <= start or not text[start:end].strip():
            return False
        first = True
        for s, e in _cap_pieces(text, start, end):
            while e > s and text[e - 1].isspace():
                e -= 1
            while s < e and text[s] in "\r\n":
                s += 1
            if e <= s:
                continue
            if self.full:
                return not first
            self._make(kind, symbol, s, e, doc if first else "", signature if first else "")
            first = False
        return not first

    def _make(self, kind: str, symbol: str, start: int, end: int, doc: str, signature: str) -> None:
        src = self.src
        sl = src.line_of(start)
        el = src.line_of(end - 1) if end > start else sl
        self.chunks.append(Chunk(
            path=self.path, language=self.language, kind=kind, symbol=symbol,
            start_line=sl + 1, end_line=el + 1, text=src.text[start:end], doc=doc, signature=signature,
            start_col=start - src.starts[sl], end_col=end - src.starts[el]))

    def span(self, kind: str, symbol: str, start: int, end: int, doc: str = "", signature: str = "",
             threshold: int | None = None) -> None:
        """A span as one chunk, or as overlapping line windows if it has more than `threshold` lines."""
        src = self.src
        text = src.text
        while end > start and text[end - 1].isspace():
            end -= 1
        if end <= start:
            return
        sl, el = src.line_of(start), src.line_of(end - 1)
        threshold = self.s.max_chunk_lines if threshold is None else threshold
        if el - sl + 1 <= threshold:
            self.add(kind, symbol, start, end, doc, signature)
            return
        first = True
        for a, b in _line_windows(sl, el, self.s.window_lines, self.s.window_overlap):
            s = start if a == sl else src.starts[a]
            e = end if b == el else src.ends[b]
            if self.add(kind, symbol, s, e, doc if first else "", signature if first else ""):
                first = False
            if self.full:
                return

    def lines(self, kind: str, symbol: str, a: int, b: int, doc: str = "", signature: str = "",
              threshold: int | None = None) -> None:
        """Whole lines a..b (0-based, inclusive)."""
        if a > b:
            return
        self.span(kind, symbol, self.src.starts[a], self.src.ends[b], doc, signature, threshold)

    def result(self) -> list[Chunk]:
        chunks = sorted(self.chunks, key=lambda c: (c.start_line, c.start_col, -c.end_line))
        return chunks[:self.limit]


def _line_windows(a: int, b: int, size: int, overlap: int) -> list[tuple[int, int]]:
    size = max(1, size)
    step = max(1, size - max(0, overlap))
    out = []
    i = a
    while True:
        j = min(i + size - 1, b)
        out.append((i, j))
        if j >= b:
            return out
        i += step


def _cap_pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Cut [start, end) into pieces of at most MAX_CHUNK_CHARS, preferring line then space boundaries."""
    if end - start <= MAX_CHUNK_CHARS:
        return [(start, end)]
    out = []
    cur = start
    while cur < end:
        lim = cur + MAX_CHUNK_CHARS
        if lim >= end:
            out.append((cur, end))
            break
        cut = text.rfind("\n", cur + MAX_CHUNK_CHARS // 2, lim)
        if cut < 0:
            cut = _soft_break(text, cur + MAX_CHUNK_CHARS // 2, lim)
        else:
            cut += 1
        out.append((cur, cut))
        cur = cut
    return out


_BREAK_CHARS = " \t;,}\n"


def _soft_break(text: str, lo: int, hi: int) -> int:
    """A cut position in (lo, hi]: just after the last space/;/,/} in range, else hi."""
    best = -1
    for ch in _BREAK_CHARS:
        k = text.rfind(ch, lo, hi)
        if k > best:
            best = k
    return best + 1 if best >= 0 else hi


def _alnum(text: str, enough: int = 8) -> int:
    """Letters and digits in `text`, counted only as far as needed to reach `enough` (gaps can be huge)."""
    n = 0
    for k in range(0, len(text), 256):
        n += sum(ch.isalnum() for ch in text[k:k + 256])
        if n >= enough:
            break
    return n


def _substantial(text: str) -> bool:
    """Whether leftover code (imports, constants, closing braces) is worth a chunk of its own."""
    s = text.strip()
    alnum = _alnum(s)
    if alnum < 8:
        return False
    return len(s) >= 40 or sum(1 for ln in s.splitlines() if ln.strip()) >= 2


# --------------------------------------------------------------------------------------------------------------
# Tree-sitter definitions


@dataclass
class _Lang:
    grammar: str
    classes: frozenset[str]
    functions: frozenset[str]
    class_sep: str = "."
    method_sep: str = "."
    line_comments: tuple[str, ...] = ("//",)
    block_comments: bool = True
    indent_sensitive: bool = False  # a leading comment must be indented like its definition
    decorations: tuple[str, ...] = ()  # line prefixes of attribute lines above a definition (Rust #[...])
    wrappers: frozenset[str] = frozenset()  # nodes whose range belongs to the single definition inside
    skip: frozenset[str] = frozenset()  # never descend into these when looking for definitions
    descend: frozenset[str] | None = None  # if set, only descend into these
    require_body: frozenset[str] = frozenset()  # definitions without a body (abstract/interface) stay in the class
    class_requires_body: bool = False


_COMMON_SKIP = frozenset({
    "comment", "line_comment", "block_comment", "string", "string_literal", "raw_string_literal", "template_string",
    "number", "integer", "float", "number_literal", "identifier", "property_identifier", "type_identifier",
    "import_statement", "import_declaration", "import_from_statement", "use_declaration", "using_directive",
    "preproc_include", "package_clause", "package_declaration", "regex", "true", "false", "null",
})

_JS_FUNCS = frozenset({"function_declaration", "generator_function_declaration", "method_definition",
                       "variable_declarator", "assignment_expression", "pair", "field_definition",
                       "public_field_definition"})
_JS_WRAPPERS = frozenset({"export_statement", "lexical_declaration", "variable_declaration", "expression_statement",
                          "ambient_declaration"})

LANGS: dict[str, _Lang] = {
    "python": _Lang(
        "python", frozenset({"class_definition"}), frozenset({"function_definition"}),
        line_comments=("#",), block_comments=False, indent_sensitive=True,
        wrappers=frozenset({"decorated_definition"}),
        descend=frozenset({"module", "block", "decorated_definition", "if_statement", "elif_clause",
                           "else_clause", "try_statement", "except_clause", "except_group_clause",
                           "finally_clause", "with_statement", "for_statement", "while_statement",
                           "match_statement", "case_clause", "ERROR"})),
    "javascript": _Lang(
        "javascript", frozenset({"class_declaration", "class"}), _JS_FUNCS,
        wrappers=_JS_WRAPPERS, skip=_COMMON_SKIP),
    "typescript": _Lang(
        "typescript", frozenset({"class_declaration", "abstract_class_declaration", "class", "interface_declaration",
                                 "enum_declaration", "type_alias_declaration"}), _JS_FUNCS,
        wrappers=_JS_WRAPPERS, skip=_COMMON_SKIP),
    "rust": _Lang(
        "rust", frozenset({"struct_item", "enum_item", "union_item", "trait_item", "impl_item"}),
        frozenset({"function_item", "macro_definition"}), class_sep="::", method_sep="::",
        decorations=("#[",), skip=_COMMON_SKIP | {"use_declaration", "attribute_item"}),
    "go": _Lang(
        "go", frozenset({"type_spec", "type_alias"}), frozenset({"function_declaration", "method_declaration"}),
        wrappers=frozenset({"type_declaration"}), skip=_COMMON_SKIP | {"import_declaration"}),
    "java": _Lang(
        "java", frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
                           "annotation_type_declaration"}),
        frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration"}),
        skip=_COMMON_SKIP, require_body=frozenset({"method_declaration"})),
    "csharp": _Lang(
        "csharp", frozenset({"class_declaration", "struct_declaration", "interface_declaration", "enum_declaration",
                             "record_declaration", "record_struct_declaration"}),
        frozenset({"method_declaration", "constructor_declaration", "destructor_declaration", "operator_declaration",
                   "conversion_operator_declaration", "local_function_statement"}),
        wrappers=frozenset({"global_statement"}), skip=_COMMON_SKIP,
        require_body=frozenset({"method_declaration", "local_function_statement", "operator_declaration"})),
    "c": _Lang(
        "c", frozenset({"struct_specifier", "union_specifier", "enum_specifier"}),
        frozenset({"function_definition"}), wrappers=frozenset({"type_definition", "declaration"}),
        skip=_COMMON_SKIP | {"preproc_def", "preproc_function_def", "declaration"}, class_requires_body=True),
    "cpp": _Lang(
        "cpp", frozenset({"class_specifier", "struct_specifier", "union_specifier", "enum_specifier"}),
        frozenset({"function_definition"}), class_sep="::", method_sep="::",
        wrappers=frozenset({"type_definition", "declaration", "template_declaration"}),
        skip=_COMMON_SKIP | {"preproc_def", "preproc_function_def"}, class_requires_body=True),
    "ruby": _Lang(
        "ruby", frozenset({"class", "module", "singleton_class"}), frozenset({"method", "singleton_method"}),
        class_sep="::", method_sep="#", line_comments=("#",), block_comments=False, indent_sensitive=True,
        skip=_COMMON_SKIP),
    "kotlin": _Lang(
        "kotlin", frozenset({"class_declaration", "object_declaration"}),
        frozenset({"function_declaration", "secondary_constructor"}), skip=_COMMON_SKIP,
        require_body=frozenset({"function_declaration"})),
    "swift": _Lang(
        "swift", frozenset({"class_declaration", "protocol_declaration"}),
        frozenset({"function_declaration", "init_declaration", "deinit_declaration"}), skip=_COMMON_SKIP),
    "php": _Lang(
        "php", frozenset({"class_declaration", "interface_declaration", "trait_declaration", "enum_declaration"}),
        frozenset({"method_declaration", "function_definition"}), class_sep="::", method_sep="::",
        line_comments=("//", "#"), skip=_COMMON_SKIP, require_body=frozenset({"method_declaration"})),
    "scala": _Lang(
        "scala", frozenset({"class_definition", "object_definition", "trait_definition", "enum_definition"}),
        frozenset({"function_definition"}), skip=_COMMON_SKIP),
    "bash": _Lang(
        "bash", frozenset(), frozenset({"function_definition"}), line_comments=("#",), block_comments=False,
        skip=_COMMON_SKIP),
}
LANGS["tsx"] = LANGS["typescript"]


_tls = threading.local()  # tree-sitter parsers are not thread-safe: one cached parser per language per thread


def _parser(grammar: str) -> Any:
    cache = getattr(_tls, "parsers", None)
    if cache is None:
        cache = _tls.parsers = {}
    if grammar not in cache:
        try:
            from tree_sitter_language_pack import get_parser
            cache[grammar] = get_parser(grammar)  # type: ignore[arg-type]
        except Exception:  # a missing grammar degrades to line windows
            cache[grammar] = None
    return cache[grammar]


_CPP_HINT = re.compile(r"^\s*(?:namespace\s+\w+\s*\{|template\s*<|class\s+\w+[^;]*\{|(?:public|private|protected):)"
                       r"|\bstd::|#include\s*<(?:vector|string|memory|map|iostream)>", re.M)


def _parse(grammar: str, data: bytes) -> Any:
    """A syntax tree, or None when the grammar is missing or parsing exceeds PARSE_SECONDS."""
    parser = _parser(grammar)
    if parser is None:
        return None
    deadline = time.monotonic() + PARSE_SECONDS
    try:
        return parser.parse(lambda b, _point: data[b:b + 65536],
                            progress_callback=lambda _offset, _error: time.monotonic() > deadline)
    except ValueError:  # cancelled by the progress callback
        parser.reset()
        return None


@dataclass
class _Def:
    kind: str  # class | function | method
    symbol: str
    prefix: str  # how children qualify themselves (a class's symbol, Rust impl "<Foo as Bar>")
    start: int  # chars, including leading comments/decorators
    end: int
    start_line: int  # 0-based
    end_line: int
    node_line: int  # line of the definition keyword (after comments)
    doc: str
    signature: str
    children: list["_Def"] = field(default_factory=list)


_SIG_FROM_OUTER = frozenset({"export_statement", "lexical_declaration", "variable_declaration", "type_declaration",
                             "template_declaration", "global_statement", "ambient_declaration",
                             "expression_statement"})

_BODY_TYPES = frozenset({
    "block", "class_body", "function_body", "enum_class_body", "field_declaration_list", "declaration_list",
    "statement_block", "compound_statement", "template_body", "body_statement", "protocol_body", "interface_body",
    "enum_body", "constructor_body", "enum_variant_list", "object_type", "enum_member_declaration_list",
})


class _TreeChunker:
    """Finds definitions in a syntax tree (without descending into function bodies) and emits their chunks."""

    def __init__(self, lang: _Lang, src: _Source, out: _Out):
        self.lang = lang
        self.src = src
        self.out = out
        self.budget = MAX_TREE_NODES
        self.data = src.data

    # -- helpers on nodes -------------------------------------------------------------------------------------
    def t(self, node: Any) -> str:
        return self.data[node.start_byte:node.end_byte].decode("utf-8", "replace")

    def c0(self, node: Any) -> int:
        return self.src.char(node.start_byte)

    def c1(self, node: Any) -> int:
        return self.src.char(node.end_byte)

    # -- traversal --------------------------------------------------------------------------------------------
    def run(self, root: Any) -> list[_Def]:
        top: list[_Def] = []
        self._visit(root, None, top, 0)
        return top

    def _visit(self, node: Any, container: _Def | None, sink: list[_Def], depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        lang = self.lang
        for child in node.named_children:
            self.budget -= 1
            if self.budget <= 0:
                return
            ctype = child.type
            if ctype in lang.skip:
                continue
            d = self._make_def(child, container)
            if d is None:
                if lang.descend is not None and ctype not in lang.descend:
                    continue
                self._visit(child, container, sink, depth + 1)
                continue
            sink.append(d)
            if d.kind == "class":
                self._visit(child, d, d.children, depth + 1)

    # -- definitions ------------------------------------------------------------------------------------------
    def _make_def(self, node: Any, container: _Def | None) -> _Def | None:
        lang = self.lang
        ntype = node.type
        role = "class" if ntype in lang.classes else "function" if ntype in lang.functions else None
        if role is None:
            return None
        info = self._name(node, role, container)
        if info is None:
            return None
        role, name, prefix_override, symbol_override = info
        if role == "function" and ntype in lang.require_body and not self._has_body(node):
            return None
        if role == "class" and lang.class_requires_body and node.child_by_field_name("body") is None:
            return None
        if not name:
            return None
        # Qualified symbol
        if symbol_override is not None:
            symbol = symbol_override
        elif container is None:
            symbol = name
        else:
            sep = lang.class_sep if role == "class" else lang.method_sep
            if lang.grammar == "ruby" and ntype == "singleton_method":
                sep = "."
            symbol = container.prefix + sep + name
        if role == "function":
            kind = "method" if container is not None or prefix_override == "method" else "function"
        else:
            kind = "class"
        prefix = symbol if role == "class" else ""
        if role == "class" and prefix_override:
            prefix = prefix_override if container is None else container.prefix + lang.class_sep + prefix_override
        outer = self._outer(node)
        start_char, end_char = self.c0(outer), self.c1(outer)
        node_line = self.src.line_of(self.c0(node))
        lead_start, comment_doc = self._leading(outer)
        if lead_start is not None:
            start_char = lead_start
        doc = self._docstring(node) if lang.grammar == "python" else ""
        doc = doc or comment_doc
        sig = self._signature(node, outer)
        text = self.src.text
        while end_char > start_char and text[end_char - 1].isspace():
            end_char -= 1
        return _Def(kind, symbol, prefix, start_char, end_char, self.src.line_of(start_char),
                    self.src.line_of(max(start_char, end_char - 1)), node_line, doc, sig)

    def _has_body(self, node: Any) -> bool:
        if node.child_by_field_name("body") is not None:
            return True
        return any(c.type in ("function_body", "block") for c in node.named_children)

    def _outer(self, node: Any) -> Any:
        """The node whose range the definition owns: decorators, export, template<...>, `const f = ...;`."""
        wrappers = self.lang.wrappers
        cur = node
        for _ in range(4):
            parent = cur.parent
            if parent is None or parent.type not in wrappers:
                break
            # A wrapper owns the definition only if it holds nothing else of substance.
            named = [c for c in parent.named_children if c.type not in ("comment", "decorator")]
            if parent.type in ("lexical_declaration", "variable_declaration", "type_declaration", "declaration",
                               "expression_statement") and len(named) != 1:
                break
            cur = parent
        return cur

    def _leading(self, outer: Any) -> tuple[int | None, str]:
        """Comment and attribute lines directly above a definition: (new start char, cleaned doc text)."""
        src, lang = self.src, self.lang
        first = src.line_of(self.c0(outer))
        # Never reach above the previous sibling that is real code.
        prev = outer.prev_named_sibling
        while prev is not None and ("comment" in prev.type or prev.type in ("attribute_item", "decorator")):
            prev = prev.prev_named_sibling
        floor = self._code_end_line(prev) if prev is not None else -1
        indent = src.indent(first)
        i = first - 1
        taken: list[int] = []
        comment_lines: list[int] = []
        while i > floor:
            s = src.line(i).strip()
            if not s:
                break
            if lang.indent_sensitive and src.indent(i) != indent:
                break
            if lang.decorations and s.startswith(lang.decorations):
                taken.append(i)
                i -= 1
                continue
            if lang.block_comments and s.endswith("*/"):
                j = i
                while j > floor and "/*" not in src.line(j):
                    j -= 1
                if j <= floor:
                    break
                for k in range(i, j - 1, -1):
                    taken.append(k)
                    comment_lines.append(k)
                i = j - 1
                continue
            if s.startswith(lang.line_comments) and not s.startswith("#!") and "coding" not in s[:30]:
                taken.append(i)
                comment_lines.append(i)
                i -= 1
                continue
            break
        if not taken:
            return None, ""
        top = min(taken)
        start = src.starts[top] + src.indent(top)
        doc = _clean_comment([src.line(k) for k in sorted(comment_lines)])
        return start, doc

    def _code_end_line(self, node: Any) -> int:
        """Last line of a node's code, not counting comments some grammars attach to its end (Kotlin)."""
        kids = node.named_children
        n = len(kids)
        while kids and "comment" in kids[-1].type:
            kids.pop()
        last = kids[-1] if kids and len(kids) < n else node
        return self.src.line_of(max(0, self.c1(last) - 1))

    def _docstring(self, node: Any) -> str:
        body = node.child_by_field_name("body")
        if body is None:
            return ""
        for stmt in body.named_children:
            if stmt.type == "comment":
                continue
            if stmt.type == "expression_statement" and stmt.named_child_count == 1:
                stmt = stmt.named_children[0]
            if stmt.type in ("string", "concatenated_string"):
                return _clean_docstring(self.t(stmt))
            return ""
        return ""

    def _signature(self, node: Any, outer: Any) -> str:
        start = outer.start_byte if outer.type in _SIG_FROM_OUTER else node.start_byte
        value = node.child_by_field_name("value") or node.child_by_field_name("right")
        if value is not None and node.type in _JS_FUNCS:
            node = value
        body = node.child_by_field_name("body")
        if body is None:
            for c in node.named_children:
                if c.type in _BODY_TYPES:
                    body = c
                    break
                if c.type in ("struct_type", "interface_type"):  # Go type specs
                    body = next((g for g in c.named_children if g.type in _BODY_TYPES), None)
                    if body is not None:
                        break
        if body is not None and body.start_byte > start:
            stop = body.start_byte
            marks = (":", "=") if self.lang.grammar == "python" else ("=",)
            for c in node.children:  # stop at Python's ':' / Scala's '=' before the body (comments may follow)
                if c.start_byte >= body.start_byte:
                    break
                if not c.is_named and c.type in marks:
                    stop = c.start_byte
            raw = self.data[start:stop].decode("utf-8", "replace")
        else:
            raw = self.data[start:node.end_byte].decode("utf-8", "replace").split("\n", 1)[0]
        lang = self.lang
        prefixes = lang.line_comments + (("/*", "*") if lang.block_comments else ())
        raw = "\n".join(ln for ln in raw.splitlines() if not ln.strip().startswith(prefixes))
        sig = re.sub(r"\s+", " ", raw).strip().rstrip("{:=;").strip()
        sig = sig.replace("( ", "(").replace(" )", ")")
        return sig[:400]

    # -- names ------------------------------------------------------------------------------------------------
    def _name(self, node: Any, role: str, container: _Def | None) -> tuple[str, str, str, str | None] | None:
        """(role, name, prefix_override, symbol_override) or None when this node is not a definition after all."""
        g = self.lang.grammar
        ntype = node.type
        fname = node.child_by_field_name("name")
        if g in ("javascript", "typescript"):
            if ntype in ("variable_declarator", "pair", "field_definition", "public_field_definition",
                         "assignment_expression"):
                value = node.child_by_field_name("value") or node.child_by_field_name("right")
                if value is None:
                    return None
                vt = value.type
                if vt in ("arrow_function", "function_expression", "function", "generator_function"):
                    role = "function"
                elif vt in ("class",) and ntype == "variable_declarator":
                    role = "class"
                else:
                    return None
                key = (node.child_by_field_name("name") or node.child_by_field_name("key")
                       or node.child_by_field_name("property") or node.child_by_field_name("left"))
                if key is None:
                    return None
                name = self.t(key).strip("'\"`")
                if len(name) > 120 or "\n" in name:
                    return None
                return role, name, "", None
            if fname is None:
                return None
            return role, self.t(fname), "", None
        if g == "rust":
            if ntype == "impl_item":
                ty = node.child_by_field_name("type")
                if ty is None:
                    return None
                tname = _strip_generics(self.t(ty))
                trait = node.child_by_field_name("trait")
                if trait is not None:
                    tr = _strip_generics(self.t(trait))
                    return role, tname, f"<{tname} as {tr}>", f"impl {tr} for {tname}"
                return role, tname, tname, f"impl {tname}"
            if fname is None:
                return None
            return role, self.t(fname), "", None
        if g == "go":
            if ntype == "method_declaration":
                recv = node.child_by_field_name("receiver")
                rtype = ""
                if recv is not None:
                    for p in recv.named_children:
                        ty = p.child_by_field_name("type")
                        if ty is not None:
                            rtype = _strip_generics(self.t(ty).lstrip("*").strip())
                            break
                if fname is None:
                    return None
                name = self.t(fname)
                return role, name, "method", (f"{rtype}.{name}" if rtype else name)
            if fname is None:
                return None
            return role, self.t(fname), "", None
        if g in ("c", "cpp"):
            if role == "function":
                d = node.child_by_field_name("declarator")
                for _ in range(12):
                    if d is None or d.type not in ("function_declarator", "pointer_declarator",
                                                   "reference_declarator", "parenthesized_declarator",
                                                   "attributed_declarator"):
                        break
                    nxt = d.child_by_field_name("declarator")
                    if nxt is None:
                        break
                    d = nxt
                if d is None:
                    return None
                name = re.sub(r"\s+", "", self.t(d))
                if len(name) > 200:
                    return None
                if "::" in name and container is None:
                    return role, name, "method", name
                return role, name, "", None
            if fname is None:
                # typedef struct { ... } Name;
                parent = node.parent
                if parent is not None and parent.type == "type_definition":
                    decl = parent.child_by_field_name("declarator")
                    if decl is not None:
                        return role, self.t(decl), "", None
                return None
            parent = node.parent
            if parent is not None and parent.type == "type_definition":
                decl = parent.child_by_field_name("declarator")
                if decl is not None and decl.type == "type_identifier":
                    return role, self.t(decl), "", None
            return role, self.t(fname), "", None
        if g == "kotlin":
            for c in node.named_children:
                if c.type in ("type_identifier", "simple_identifier"):
                    return role, self.t(c), "", None
            if ntype == "secondary_constructor":
                return role, "constructor", "", None
            return None
        if g == "swift":
            if ntype == "init_declaration":
                return role, "init", "", None
            if ntype == "deinit_declaration":
                return role, "deinit", "", None
            if fname is None:
                return None
            name = _strip_generics(self.t(fname))
            if ntype == "class_declaration" and any(c.type == "extension" for c in node.children):
                return role, name, name, (container.prefix + "." if container else "") + f"extension {name}"
            return role, name, "", None
        if g == "csharp" and ntype in ("operator_declaration", "conversion_operator_declaration"):
            op = node.child_by_field_name("operator")
            label = "operator " + (self.t(op) if op is not None else "")
            ty = node.child_by_field_name("type")
            if ntype == "conversion_operator_declaration" and ty is not None:
                label = "operator " + self.t(ty)
            return role, label.strip(), "", None
        if g == "ruby" and ntype == "singleton_class":
            return role, "<< self", "", None
        if fname is None:
            return None
        name = self.t(fname)
        if g in ("csharp", "java", "scala", "kotlin", "php", "typescript"):
            name = _strip_generics(name)
        if len(name) > 200 or "\n" in name:
            return None
        return role, name, "", None

    # -- emitting ---------------------------------------------------------------------------------------------
    def emit(self, top: list[_Def]) -> None:
        out, src = self.out, self.src
        covered_upto = -1
        gaps: list[tuple[int, int]] = []
        for d in sorted(top, key=lambda d: (d.start_line, d.end_line)):
            if d.start_line > covered_upto + 1:
                gaps.append((covered_upto + 1, d.start_line - 1))
            covered_upto = max(covered_upto, d.end_line)
        if covered_upto < src.n - 1:
            gaps.append((covered_upto + 1, src.n - 1))
        for d in top:
            self._emit_def(d)
            if out.full:
                return
        for a, b in gaps:
            a, b = _trim(src, a, b)
            if a > b:
                continue
            text = src.text[src.starts[a]:src.ends[b]]
            if not _substantial(text):
                continue
            out.lines("module", "", a, b)
            if out.full:
                return

    def _emit_def(self, d: _Def) -> None:
        out, src = self.out, self.src
        children = sorted(d.children, key=lambda c: (c.start_line, c.end_line))
        if d.kind != "class" or not children or children[0].start_line <= d.node_line:
            out.span(d.kind, d.symbol, d.start, d.end, d.doc, d.signature)
            return
        # Header: class line(s), docstring, fields up to the first member definition.
        a, b = _trim(src, d.start_line, children[0].start_line - 1)
        out.span("class", d.symbol, d.start, src.ends[max(a, b)], d.doc, d.signature)
        # Leftovers between and after members (fields declared later, nested statements): same class symbol.
        prev_end = children[0].end_line
        for i, c in enumerate(children):
            if i:
                self._gap(d, prev_end + 1, c.start_line - 1)
                prev_end = max(prev_end, c.end_line)
            self._emit_def(c)
            if out.full:
                return
        last = src.line_of(max(d.start, d.end - 1))
        self._gap(d, prev_end + 1, last)

    def _gap(self, d: _Def, a: int, b: int) -> None:
        src = self.src
        a, b = _trim(src, a, b)
        if a > b:
            return
        end = min(src.ends[b], d.end)
        text = src.text[src.starts[a]:end]
        if _alnum(text) >= 8:
            self.out.span("class", d.symbol, src.starts[a] + src.indent(a), end)


def _trim(src: _Source, a: int, b: int) -> tuple[int, int]:
    while a <= b and src.blank(a):
        a += 1
    while b >= a and src.blank(b):
        b -= 1
    return a, b


def _strip_generics(name: str) -> str:
    name = re.sub(r"\s+", "", name)
    depth = 0
    out = []
    for ch in name:
        if ch in "<[":
            depth += 1
        elif ch in ">]":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out) or name


_DOC_PREFIX = re.compile(r"^[rRuUbBfF]{0,2}(\"\"\"|'''|\"|')")


def _clean_docstring(raw: str) -> str:
    m = _DOC_PREFIX.match(raw)
    if m is None:
        return ""
    q = m.group(1)
    body = raw[m.end():]
    if body.endswith(q):
        body = body[:-len(q)]
    return inspect.cleandoc(body).strip()


def _clean_comment(lines: list[str]) -> str:
    out = []
    for line in lines:
        s = line.strip()
        for p in ("/**", "/*!", "/*", "///", "//!", "//", "##", "#", "--"):
            if s.startswith(p):
                s = s[len(p):]
                break
        else:
            if s.startswith("*") and not s.startswith("*/"):
                s = s[1:]
        if s.endswith("*/"):
            s = s[:-2]
        s = s.rstrip()
        if s.startswith(" "):
            s = s[1:]
        out.append(s)
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------------------
# Prose


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RST_ADORN = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")


def _markdown_headings(src: _Source) -> list[tuple[int, int, int, str]]:
    """(first line, heading lines, level, title) for ATX and setext headings outside code fences."""
    out = []
    fence = ""
    i = 0
    n = src.n
    if n and src.line(0).strip() == "---":  # YAML front matter
        for j in range(1, min(n, 300)):
            if src.line(j).strip() in ("---", "..."):
                i = j + 1
                break
    while i < n:
        line = src.line(i)
        m = _FENCE.match(line)
        if m:
            tok = m.group(1)
            if not fence:
                fence = tok
            elif tok[0] == fence[0] and len(tok) >= len(fence) and not line.strip()[len(tok):].strip():
                fence = ""
            i += 1
            continue
        if fence:
            i += 1
            continue
        m = _ATX.match(line)
        if m:
            title = re.sub(r"[ \t]+#+$", "", m.group(2) or "").strip()
            out.append((i, 1, len(m.group(1)), title))
            i += 1
            continue
        if (i + 1 < n and line.strip() and not line.startswith("    ") and _SETEXT.match(src.line(i + 1))
                and (i == 0 or src.blank(i - 1) or (out and out[-1][0] + out[-1][1] == i))
                and not line.lstrip().startswith(("-", "*", "+", ">", "|"))):
            level = 1 if src.line(i + 1).strip()[0] == "=" else 2
            out.append((i, 2, level, line.strip()))
            i += 2
            continue
        i += 1
    return out


def _rst_headings(src: _Source) -> list[tuple[int, int, int, str]]:
    out = []
    styles: list[tuple[str, bool]] = []
    n = src.n
    i = 0
    while i < n - 1:
        title = src.line(i)
        under = src.line(i + 1)
        t = title.strip()
        m = _RST_ADORN.match(under)
        if t and m and not _RST_ADORN.match(title) and not title[:1].isspace() and len(under.rstrip()) >= len(t) - 1:
            over = i > 0 and src.line(i - 1).rstrip() == under.rstrip()
            style = (m.group(1), over)
            if style not in styles:
                styles.append(style)
            first = i - 1 if over else i
            out.append((first, (3 if over else 2), styles.index(style) + 1, t))
            i += 2
            continue
        i += 1
    return out


def _paragraphs(src: _Source, a: int, b: int) -> list[tuple[int, int]]:
    """Blank-line separated blocks in lines a..b; a fenced code block stays one block."""
    out = []
    i = a
    while i <= b:
        while i <= b and src.blank(i):
            i += 1
        if i > b:
            break
        j = i
        fence = ""
        while j <= b:
            line = src.line(j)
            m = _FENCE.match(line)
            if m:
                fence = "" if fence else m.group(1)
            if not fence and j + 1 <= b and src.blank(j + 1):
                break
            j += 1
        j = min(j, b)
        out.append((i, j))
        i = j + 1
    return out


def _prose_groups(src: _Source, a: int, b: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Group paragraphs of lines a..b into runs of at most `window` lines and PROSE_MAX_CHARS chars."""
    groups: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    for p0, p1 in _paragraphs(src, a, b):
        if p1 - p0 + 1 > window:  # one huge paragraph: line windows
            if cur:
                groups.append(cur)
                cur = None
            groups.extend(_line_windows(p0, p1, window, overlap))
            continue
        if cur is None:
            cur = (p0, p1)
            continue
        chars = src.ends[p1] - src.starts[cur[0]]
        if p1 - cur[0] + 1 <= window and chars <= PROSE_MAX_CHARS:
            cur = (cur[0], p1)
        else:
            groups.append(cur)
            cur = (p0, p1)
    if cur:
        groups.append(cur)
    return groups


def _chunk_prose(language: str, src: _Source, out: _Out) -> None:
    s = out.s
    window = max(1, s.window_lines)
    if language == "text":
        for g0, g1 in _prose_groups(src, 0, src.n - 1, window, s.window_overlap):
            out.lines("section", "", g0, g1, threshold=window)
            if out.full:
                return
        return
    heads = _markdown_headings(src) if language == "markdown" else _rst_headings(src)
    sections: list[tuple[int, int, int, str, str]] = []  # (first, body_first, last, symbol, heading)
    stack: list[tuple[int, str]] = []
    if not heads or heads[0][0] > 0:
        sections.append((0, 0, (heads[0][0] - 1) if heads else src.n - 1, "", ""))
    for k, (first, nlines, level, title) in enumerate(heads):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        last = heads[k + 1][0] - 1 if k + 1 < len(heads) else src.n - 1
        heading = " ".join(src.line(j).strip() for j in range(first, first + nlines)
                           if not _RST_ADORN.match(src.line(j)) and not _SETEXT.match(src.line(j)))
        sections.append((first, first + nlines, last, " > ".join(t for _, t in stack if t), heading or title))
    for first, body, last, symbol, heading in sections:
        a, b = _trim(src, body, last)
        if a > b:  # heading without a body of its own
            continue
        start = _trim(src, first, last)[0]
        if b - start + 1 <= window and src.ends[b] - src.starts[start] <= PROSE_MAX_CHARS:
            out.lines("section", symbol, start, b, signature=heading, threshold=window)
        else:
            groups = _prose_groups(src, a, b, window, s.window_overlap)
            if groups and start < a:
                groups[0] = (start, groups[0][1])
            for k, (g0, g1) in enumerate(groups):
                out.lines("section", symbol, g0, g1, signature=heading if k == 0 else "", threshold=window)
                if out.full:
                    return
        if out.full:
            return


# --------------------------------------------------------------------------------------------------------------
# PDF


def pdf_pages(data: bytes) -> list[str] | None:
    """Text of each page (pypdf), or None when the bytes are not a readable PDF. Never raises."""
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                return None
        pages = []
        for page in reader.pages:
            try:
                pages.append((page.extract_text() or "").replace("\x00", ""))
            except Exception:
                pages.append("")
        return pages
    except Exception:
        return None


def _chunk_pdf(path: str, text: str, data: bytes | None, settings: IndexSettings) -> list[Chunk]:
    if data is not None:
        pages = pdf_pages(data)
        if pages is None:
            return []
    else:
        pages = text.split("\f") if text else []
    chunks: list[Chunk] = []
    limit = max(1, settings.max_chunks_per_file)
    for n, page in enumerate(pages, 1):
        body = page.strip()
        if not body:
            continue
        for s, e in _cap_pieces(body, 0, len(body)):
            piece = body[s:e].strip()
            if piece:
                chunks.append(Chunk(path=path, language="pdf", kind="page", symbol=f"page {n}", start_line=1,
                                    end_line=1, text=piece))
            if len(chunks) >= limit:
                return chunks
    return chunks


# --------------------------------------------------------------------------------------------------------------
# Entry point


def _is_minified(src: _Source) -> bool:
    total = len(src.text)
    if total < MINIFIED_LINE:
        return False
    long_chars = 0
    for s, e in zip(src.starts, src.ends):
        if e - s > MINIFIED_LINE:
            long_chars += e - s
    return long_chars * 2 > total


def _char_windows(src: _Source, out: _Out) -> None:
    text = src.text
    n = len(text)
    cur = 0
    while cur < n and not out.full:
        lim = cur + CHAR_WINDOW
        if lim >= n:
            out.add("window", "", cur, n)
            break
        cut = _soft_break(text, lim - CHAR_OVERLAP, lim)
        out.add("window", "", cur, cut)
        cur = max(cur + 1, cut - CHAR_OVERLAP)
        cur = _soft_break(text, cur, min(n, cur + CHAR_OVERLAP)) if cur < n else cur


def _windows(src: _Source, out: _Out) -> None:
    s = out.s
    for a, b in _line_windows(0, src.n - 1, s.window_lines, s.window_overlap):
        a2, b2 = _trim(src, a, b)
        if a2 <= b2:
            out.lines("window", "", a2, b2, threshold=max(1, s.window_lines))
        if out.full:
            return


def chunk_file(path: str, text: str, settings: IndexSettings, data: bytes | None = None) -> list[Chunk]:
    """Chunks of one file, ordered by position, at most settings.max_chunks_per_file of them.

    `data` (raw bytes) is used for PDFs only; without it a PDF's `text` is taken as pages separated by form
    feeds (what discover.read_text returns for a PDF). Never raises: anything unexpected degrades to windows.
    """
    language = language_for(path)
    try:
        if language == "pdf":
            return _chunk_pdf(path, text, data, settings)
        return _chunk(path, language, text, settings)
    except Exception:  # a chunker bug must not stop indexing; windows are always possible
        try:
            src = _Source(text)
            out = _Out(path, language or "unknown", src, settings)
            _windows(src, out)
            return out.result()
        except Exception:
            return []


def _chunk(path: str, language: str | None, text: str, settings: IndexSettings) -> list[Chunk]:
    if not text or not text.strip():
        return []
    src = _Source(text)
    out = _Out(path, language or "unknown", src, settings)
    if language in PROSE:
        _chunk_prose(language, src, out)
    elif _is_minified(src):
        _char_windows(src, out)
    elif language in LANGS:
        if language == "c" and path.endswith(".h") and _CPP_HINT.search(text):
            language = out.language = "cpp"  # a C++ header: the C grammar would stumble (and crawl) over it
        lang = LANGS[language]
        tree = _parse(lang.grammar if language != "tsx" else "tsx", src.data)
        if tree is None:
            _windows(src, out)
        else:
            tc = _TreeChunker(lang, src, out)
            tc.emit(tc.run(tree.root_node))
    else:
        _windows(src, out)
    if not out.chunks:  # a small file of loose code still deserves one chunk
        a, b = _trim(src, 0, src.n - 1)
        if a <= b:
            out.lines("module" if language in LANGS else "window", "", a, b)
    return out.result()
