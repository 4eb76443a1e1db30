"""The tree-sitter walk: parse a file, find its definitions (without descending into function bodies) and emit
their chunks, with leading comments, docstrings and signatures."""

from __future__ import annotations

import inspect
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .base import _alnum, _Out, _Source, _substantial, _trim
from .languages import _Lang
from .naming import _JS_FUNCS, rule_for

MAX_TREE_NODES = 200_000  # stop looking for definitions after this many syntax nodes (huge generated files)
MAX_DEPTH = 64
PARSE_SECONDS = 3.0  # a parse that takes longer (pathological input) is abandoned for line windows

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
    children: list[_Def] = field(default_factory=list)


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
        self.rule = rule_for(lang.grammar)
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
        lang, rule = self.lang, self.rule
        ntype = node.type
        role = "class" if ntype in rule.classes else "function" if ntype in rule.functions else None
        if role is None:
            return None
        info = rule.name(self, node, role, container)
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
            symbol = container.prefix + rule.sep(role, ntype) + name
        if role == "function":
            kind = "method" if container is not None or prefix_override == "method" else "function"
        else:
            kind = "class"
        prefix = symbol if role == "class" else ""
        if role == "class" and prefix_override:
            prefix = prefix_override if container is None else container.prefix + rule.class_sep + prefix_override
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

