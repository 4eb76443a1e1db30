"""Reading source text for the pair miner: doc comments and docstrings as plain text, a chunk without its
docstring, and the names a file imports. What differs by language is read from SOURCE_RULES in
engine/chunk/languages.py."""

from __future__ import annotations

import ast
import re
import textwrap

from ..chunk.languages import source_rules

_COMMENT_PREFIX = re.compile(r"^\s*(///?!?|//|/\*\*?|\*/|\*|#!?|--|;;+|%+)\s?")
_RST_ROLE = re.compile(r":[\w:+-]+:`(~?)([^`<]*?)(?:\s*<[^>]*>)?`")
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z0-9(\"'`\[]|\s*$)")


def clean_doc(doc: str) -> str:
    """A docstring or doc comment as plain text: comment markers and common indentation removed."""
    lines = doc.replace("\r\n", "\n").split("\n")
    if any(_COMMENT_PREFIX.match(ln) for ln in lines if ln.strip()) and all(
            _COMMENT_PREFIX.match(ln) or not ln.strip() for ln in lines):
        lines = [_COMMENT_PREFIX.sub("", ln, count=1).rstrip("*/ ").rstrip() for ln in lines]
    text = textwrap.dedent("\n".join(lines)).strip()
    return text.strip("\"'").strip()


def first_sentence(doc: str) -> str:
    """The first sentence of the first paragraph, with reST/Markdown markup reduced to plain words."""
    text = clean_doc(doc)
    if not text:
        return ""
    para = re.split(r"\n\s*\n", text, maxsplit=1)[0]
    para = " ".join(para.split())
    para = _RST_ROLE.sub(lambda m: m.group(2).split(".")[-1] if m.group(1) else m.group(2), para)
    para = para.replace("``", "").replace("`", "")
    m = _SENTENCE_END.search(para)
    return (para[: m.end()] if m else para).strip()


def first_paragraph(doc: str, max_words: int = 80) -> str:
    """The first paragraph as one line of plain words (reST/Markdown markup reduced), capped at `max_words`."""
    text = clean_doc(doc)
    para = " ".join(re.split(r"\n\s*\n", text, maxsplit=1)[0].split()) if text else ""
    para = _RST_ROLE.sub(lambda m: m.group(2).split(".")[-1] if m.group(1) else m.group(2), para)
    return " ".join(para.replace("``", "").replace("`", "").split()[:max_words])


def _python_tree(text: str) -> ast.Module | None:
    """Parse a chunk that may start mid-line (its first line lacks the indentation the rest keeps)."""
    lines = text.split("\n")
    rest = [len(ln) - len(ln.lstrip()) for ln in lines[1:] if ln.strip()]
    candidates = [text]
    if rest and lines and not lines[0][:1].isspace():
        low = min(rest)
        for pad in dict.fromkeys((low, max(0, low - 4), 0)):
            candidates.append(" " * pad + text)
    for cand in candidates:
        try:
            return ast.parse(textwrap.dedent(cand))
        except (SyntaxError, ValueError):
            continue
    return None


def python_docstring(text: str) -> tuple[str, tuple[int, int] | None]:
    """(docstring, (first line, last line) 0-based inclusive) of the first def/class in a Python chunk."""
    tree = _python_tree(text)
    if tree is None:
        return "", None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            d = node.body[0] if node.body else None
            if isinstance(d, ast.Expr) and isinstance(d.value, ast.Constant) and isinstance(d.value.value, str):
                return d.value.value, (d.lineno - 1, (d.end_lineno or d.lineno) - 1)
            return "", None
    return "", None


_PY_DOC_RE = re.compile(r'^[ \t]*[rRuUbB]{0,2}("""|\'\'\')(.*?)\1[ \t]*\n?', re.DOTALL | re.MULTILINE)


def _docstring_lines(text: str) -> tuple[list[str], tuple[int, int] | None]:
    """A Python chunk's lines and the (first, last) line of its docstring when the docstring fills those lines
    alone; None when there is none or code shares its lines."""
    _, span = python_docstring(text)
    lines = text.split("\n")
    if span is not None and re.match(r"\s*[rRuUbB]{0,2}[\"']", lines[span[0]]) \
            and re.search(r"[\"']\s*$", lines[span[1]]):
        return lines, span
    return lines, None


def strip_doc(text: str, doc: str, language: str) -> str:
    """The chunk text without its docstring / leading doc comment (so a docstring query cannot be copied)."""
    if source_rules(language).doc_in_body:
        lines, span = _docstring_lines(text)
        if span is not None:
            return "\n".join(lines[:span[0]] + lines[span[1] + 1:])
        m = _PY_DOC_RE.search(text)  # code shares the docstring's lines: cut just the string
        if m and m.start() < 400:
            return text[: m.start()] + text[m.end():]
        return text
    if not doc:
        return text
    # a leading comment block (///, /** */, //, #) before the signature
    lines = text.split("\n")
    i = 0
    while i < len(lines) and (not lines[i].strip() or _COMMENT_PREFIX.match(lines[i])
                              and not re.match(r"^\s*#\s*\[", lines[i])):
        i += 1
    if i:
        return "\n".join(lines[i:])
    if doc in text:  # a doc string inside the body (Elixir @doc, Julia, ...)
        return text.replace(doc, "", 1)
    return text


def doc_rest(text: str, doc: str, language: str) -> str:
    """The chunk text with its docstring cut to what follows the first paragraph (where a doc query comes from).

    Code as search sees it keeps its docstrings, so a positive that keeps the rest of one looks like it; the first
    paragraph goes because the query was taken from it. Without a rest (or outside Python) the docstring goes."""
    parts = re.split(r"\n\s*\n", clean_doc(doc), maxsplit=1)
    if not source_rules(language).doc_in_body or len(parts) < 2 or not parts[1].strip():
        return strip_doc(text, doc, language)
    lines, span = _docstring_lines(text)
    if span is None:
        return strip_doc(text, doc, language)
    a, b = span
    indent = lines[a][: len(lines[a]) - len(lines[a].lstrip(" \t"))]
    body = [indent + ln if ln.strip() else "" for ln in parts[1].strip().split("\n")]
    return "\n".join(lines[:a] + [indent + '"""'] + body + [indent + '"""'] + lines[b + 1:])


def imported_names(text: str, language: str) -> list[tuple[str, str]]:
    """(name as used in code, module it came from) for a file's imports; cheap regexes (the language's
    SOURCE_RULES in engine/chunk/languages.py), not a parser."""
    rules = source_rules(language)
    if rules.imports is None:
        return []
    out: list[tuple[str, str]] = []
    if rules.import_syntax == "python":
        for module, names in rules.imports.findall(text):
            for item in names.strip().strip("()").replace("\\", " ").split(","):
                parts = item.split()
                if not parts or parts[0] == "*":
                    continue
                alias = parts[2] if len(parts) == 3 and parts[1] == "as" else None
                if module:
                    out.append((alias or parts[0], module))
                else:  # import a.b (used as a.b.x) / import a.b as c
                    out.append((alias or parts[0].split(".")[0], parts[0]))
    elif rules.import_syntax == "ecmascript":
        for names, module in rules.imports.findall(text):
            for n in re.findall(r"[A-Za-z_$][\w$]*", names.replace(" as ", " ")):
                if n not in ("type", "from"):
                    out.append((n, module))
    elif rules.import_syntax == "rust":
        for spec in rules.imports.findall(text):
            module = spec.split("::{")[0]
            names = spec.split("::")[-1] if "{" not in spec else spec.split("{", 1)[1]
            for n in re.findall(r"\b[A-Za-z_]\w*\b", names):
                if n not in ("self", "super", "crate", "as"):
                    out.append((n, module))
    elif rules.import_syntax == "java":
        for spec in rules.imports.findall(text):
            out.append((spec.split(".")[-1], spec))
    return [(n, m) for n, m in out if len(n) >= 3]
