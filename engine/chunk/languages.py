"""Languages: file names and extensions -> language, and per tree-sitter language how definitions sit in the tree
(comment styles, wrappers, what to skip). How each language names its definitions is in naming.py."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


# --------------------------------------------------------------------------------------------------------------
# Tree-sitter definitions


@dataclass
class _Lang:
    grammar: str
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

_JS_WRAPPERS = frozenset({"export_statement", "lexical_declaration", "variable_declaration", "expression_statement",
                          "ambient_declaration"})

LANGS: dict[str, _Lang] = {
    "python": _Lang(
        "python", line_comments=("#",), block_comments=False, indent_sensitive=True,
        wrappers=frozenset({"decorated_definition"}),
        descend=frozenset({"module", "block", "decorated_definition", "if_statement", "elif_clause",
                           "else_clause", "try_statement", "except_clause", "except_group_clause",
                           "finally_clause", "with_statement", "for_statement", "while_statement",
                           "match_statement", "case_clause", "ERROR"})),
    "javascript": _Lang(
        "javascript", wrappers=_JS_WRAPPERS, skip=_COMMON_SKIP),
    "typescript": _Lang(
        "typescript", wrappers=_JS_WRAPPERS, skip=_COMMON_SKIP),
    "rust": _Lang(
        "rust", decorations=("#[",), skip=_COMMON_SKIP | {"use_declaration", "attribute_item"}),
    "go": _Lang(
        "go", wrappers=frozenset({"type_declaration"}), skip=_COMMON_SKIP | {"import_declaration"}),
    "java": _Lang(
        "java", skip=_COMMON_SKIP, require_body=frozenset({"method_declaration"})),
    "csharp": _Lang(
        "csharp", wrappers=frozenset({"global_statement"}), skip=_COMMON_SKIP,
        require_body=frozenset({"method_declaration", "local_function_statement", "operator_declaration"})),
    "c": _Lang(
        "c", wrappers=frozenset({"type_definition", "declaration"}),
        skip=_COMMON_SKIP | {"preproc_def", "preproc_function_def", "declaration"}, class_requires_body=True),
    "cpp": _Lang(
        "cpp", wrappers=frozenset({"type_definition", "declaration", "template_declaration"}),
        skip=_COMMON_SKIP | {"preproc_def", "preproc_function_def"}, class_requires_body=True),
    "ruby": _Lang(
        "ruby", line_comments=("#",), block_comments=False, indent_sensitive=True,
        skip=_COMMON_SKIP),
    "kotlin": _Lang(
        "kotlin", skip=_COMMON_SKIP,
        require_body=frozenset({"function_declaration"})),
    "swift": _Lang(
        "swift", skip=_COMMON_SKIP),
    "php": _Lang(
        "php", line_comments=("//", "#"), skip=_COMMON_SKIP, require_body=frozenset({"method_declaration"})),
    "scala": _Lang(
        "scala", skip=_COMMON_SKIP),
    "bash": _Lang(
        "bash", line_comments=("#",), block_comments=False,
        skip=_COMMON_SKIP),
}
LANGS["tsx"] = LANGS["typescript"]



_CPP_HINT = re.compile(r"^\s*(?:namespace\s+\w+\s*\{|template\s*<|class\s+\w+[^;]*\{|(?:public|private|protected):)"
                       r"|\bstd::|#include\s*<(?:vector|string|memory|map|iostream)>", re.M)


# --------------------------------------------------------------------------------------------------------------
# Documentation and imports, as the pair miner reads them (engine/tune/mine.py)


@dataclass(frozen=True)
class SourceRules:
    """Where a language documents a definition and how a file imports names."""

    doc_in_body: bool = False  # a string literal opening the body (Python docstrings); else a comment block above
    imports: re.Pattern[str] | None = None  # one match per import statement; None: imports are not read
    import_syntax: str = ""  # how a match splits into names: python | ecmascript | rust | java


_ECMA_IMPORT = re.compile(r"^\s*import\s+(?:type\s+)?(.+?)\s+from\s+['\"]([^'\"]+)['\"]", re.MULTILINE)
_JAVA_IMPORT = re.compile(r"^\s*import\s+(?:static\s+)?([\w.]+)\s*;?", re.MULTILINE)
_ECMA = SourceRules(imports=_ECMA_IMPORT, import_syntax="ecmascript")
_JVM = SourceRules(imports=_JAVA_IMPORT, import_syntax="java")

SOURCE_RULES: dict[str, SourceRules] = {
    "python": SourceRules(
        doc_in_body=True, import_syntax="python",
        imports=re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+)?import[ \t]+(\([^)]*\)|[^\n#;]+)", re.MULTILINE)),
    "javascript": _ECMA,
    "typescript": _ECMA,
    "tsx": _ECMA,
    "rust": SourceRules(imports=re.compile(r"^\s*(?:pub\s+)?use\s+([^;]+);", re.MULTILINE), import_syntax="rust"),
    "java": _JVM,
    "kotlin": _JVM,
    "scala": _JVM,
    "csharp": _JVM,
}
_NO_RULES = SourceRules()


def source_rules(language: str) -> SourceRules:
    """The language's row of SOURCE_RULES; comment documentation and no imports read for the others."""
    return SOURCE_RULES.get(language, _NO_RULES)
