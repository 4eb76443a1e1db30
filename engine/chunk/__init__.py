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

Layout: languages.py (file name -> language; per grammar how definitions sit in the tree), naming.py (per grammar
which node types are definitions and how they are named and qualified: one NameRule entry each), tree.py (the
tree-sitter walk), prose.py (Markdown/reST/text), pdf.py (pages), base.py (line table, chunk caps, windows).
"""


from ..records import Chunk
from ..settings import IndexSettings
from .base import (
    CHAR_OVERLAP,
    CHAR_WINDOW,
    CHUNKER_VERSION,
    MAX_CHUNK_CHARS,
    MINIFIED_LINE,
    PROSE_MAX_CHARS,
    _char_windows,
    _is_minified,
    _Out,
    _Source,
    _trim,
    _windows,
)
from .languages import _CPP_HINT, LANGS, PROSE, language_for
from .naming import NAMING, NameRule
from .pdf import _chunk_pdf, pdf_pages
from .prose import _chunk_prose
from .tree import MAX_DEPTH, MAX_TREE_NODES, PARSE_SECONDS, _parse, _TreeChunker

__all__ = ["CHAR_OVERLAP", "CHAR_WINDOW", "CHUNKER_VERSION", "LANGS", "MAX_CHUNK_CHARS", "MAX_DEPTH",
           "MAX_TREE_NODES", "MINIFIED_LINE", "NAMING", "PARSE_SECONDS", "PROSE", "PROSE_MAX_CHARS", "NameRule",
           "chunk_file", "language_for", "pdf_pages"]


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
