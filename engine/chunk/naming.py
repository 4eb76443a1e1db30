"""How each language names its definitions: one `NameRule` per tree-sitter grammar in `NAMING`.

A rule says which node types are classes and which are functions, which child field holds the name, and how a
qualified symbol is joined (`Outer.Inner.method`, `Foo::bar`, Ruby's `Greeter#hi`). Node types whose name is not
simply a field (Rust impl blocks, Go receivers, C declarators, JS `const f = () => ...`) get a small function in
`special`; a grammar whose names need their own lookup altogether (C, Kotlin) sets `namer`. Adding a language is one
entry here plus its parsing entry in languages.LANGS. A grammar without an entry uses DEFAULT_RULE, which names
nothing (a grammar has no known definitions until a rule says which node types they are).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tree import _Def, _TreeChunker

# A namer returns (role, name, prefix_override, symbol_override), or None when the node is not a definition
# after all (role may change: a JS `const C = class ...` is a class).
Namer = Callable[["_TreeChunker", Any, str, "_Def | None"], Any]


@dataclass(frozen=True)
class NameRule:
    classes: frozenset[str] = frozenset()  # node types that are type-like containers (qualify their members)
    functions: frozenset[str] = frozenset()  # node types that are functions or methods
    name_field: str = "name"  # the child field that holds the name
    strip_generics: bool = False  # `Box<T>` -> `Box`
    max_name: int = 0  # a longer (or multi-line) name means the node is not a definition; 0: no limit
    class_sep: str = "."  # joins a class to its container
    method_sep: str = "."  # joins a function to its container
    sep_for: Mapping[str, str] = field(default_factory=dict)  # node type -> separator overriding method_sep
    fixed: Mapping[str, str] = field(default_factory=dict)  # node type -> constant name (Swift `init`)
    special: Mapping[str, Namer] = field(default_factory=dict)  # node type -> its own naming function
    namer: Namer | None = None  # replaces the field lookup for every node type not in fixed/special

    def name(self, tc: _TreeChunker, node: Any, role: str, container: _Def | None) -> Any:
        ntype = node.type
        if ntype in self.special:
            return self.special[ntype](tc, node, role, container)
        if ntype in self.fixed:
            return role, self.fixed[ntype], "", None
        if self.namer is not None:
            return self.namer(tc, node, role, container)
        fname = node.child_by_field_name(self.name_field)
        if fname is None:
            return None
        name = tc.t(fname)
        if self.strip_generics:
            name = _strip_generics(name)
        if self.max_name and (len(name) > self.max_name or "\n" in name):
            return None
        return role, name, "", None

    def sep(self, role: str, ntype: str) -> str:
        if role == "class":
            return self.class_sep
        return self.sep_for.get(ntype, self.method_sep)


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


# -- special namers --------------------------------------------------------------------------------------------

def _js_binding(tc: _TreeChunker, node: Any, role: str, container: _Def | None) -> Any:
    """`const f = () => ...`, `{ f: function () {} }`, `this.f = ...`, class fields: named only when the value is a
    function (or, for `const C = class ...`, a class)."""
    value = node.child_by_field_name("value") or node.child_by_field_name("right")
    if value is None:
        return None
    vt = value.type
    if vt in ("arrow_function", "function_expression", "function", "generator_function"):
        role = "function"
    elif vt in ("class",) and node.type == "variable_declarator":
        role = "class"
    else:
        return None
    key = (node.child_by_field_name("name") or node.child_by_field_name("key")
           or node.child_by_field_name("property") or node.child_by_field_name("left"))
    if key is None:
        return None
    name = tc.t(key).strip("'\"`")
    if len(name) > 120 or "\n" in name:
        return None
    return role, name, "", None


def _rust_impl(tc: _TreeChunker, node: Any, role: str, container: _Def | None) -> Any:
    """`impl Foo` (methods `Foo::bar`) and `impl Display for Foo` (methods `<Foo as Display>::fmt`)."""
    ty = node.child_by_field_name("type")
    if ty is None:
        return None
    tname = _strip_generics(tc.t(ty))
    trait = node.child_by_field_name("trait")
    if trait is not None:
        tr = _strip_generics(tc.t(trait))
        return role, tname, f"<{tname} as {tr}>", f"impl {tr} for {tname}"
    return role, tname, tname, f"impl {tname}"


def _go_method(tc: _TreeChunker, node: Any, role: str, container: _Def | None) -> Any:
    """`func (s *Server) Start()` -> `Server.Start`, whatever the receiver."""
    recv = node.child_by_field_name("receiver")
    rtype = ""
    if recv is not None:
        for p in recv.named_children:
            ty = p.child_by_field_name("type")
            if ty is not None:
                rtype = _strip_generics(tc.t(ty).lstrip("*").strip())
                break
    fname = node.child_by_field_name("name")
    if fname is None:
        return None
    name = tc.t(fname)
    return role, name, "method", (f"{rtype}.{name}" if rtype else name)


_C_DECLARATORS = ("function_declarator", "pointer_declarator", "reference_declarator", "parenthesized_declarator",
                  "attributed_declarator")


def _c_family(tc: _TreeChunker, node: Any, role: str, container: _Def | None) -> Any:
    """Functions by their innermost declarator (`Widget::size` for out-of-line C++ methods); structs by name, or
    by the typedef that names them (`typedef struct { ... } Name;`)."""
    if role == "function":
        d = node.child_by_field_name("declarator")
        for _ in range(12):
            if d is None or d.type not in _C_DECLARATORS:
                break
            nxt = d.child_by_field_name("declarator")
            if nxt is None:
                break
            d = nxt
        if d is None:
            return None
        name = re.sub(r"\s+", "", tc.t(d))
        if len(name) > 200:
            return None
        if "::" in name and container is None:
            return role, name, "method", name
        return role, name, "", None
    fname = node.child_by_field_name("name")
    parent = node.parent
    if fname is None:
        if parent is not None and parent.type == "type_definition":
            decl = parent.child_by_field_name("declarator")
            if decl is not None:
                return role, tc.t(decl), "", None
        return None
    if parent is not None and parent.type == "type_definition":
        decl = parent.child_by_field_name("declarator")
        if decl is not None and decl.type == "type_identifier":
            return role, tc.t(decl), "", None
    return role, tc.t(fname), "", None


def _kotlin(tc: _TreeChunker, node: Any, role: str, container: _Def | None) -> Any:
    """The Kotlin grammar has no name field: the first identifier child names the definition."""
    for c in node.named_children:
        if c.type in ("type_identifier", "simple_identifier"):
            return role, tc.t(c), "", None
    if node.type == "secondary_constructor":
        return role, "constructor", "", None
    return None


def _swift_class(tc: _TreeChunker, node: Any, role: str, container: _Def | None) -> Any:
    """Swift `extension Foo` is a class_declaration too: the block is `extension Foo`, its methods `Foo.bar`."""
    fname = node.child_by_field_name("name")
    if fname is None:
        return None
    name = _strip_generics(tc.t(fname))
    if any(c.type == "extension" for c in node.children):
        return role, name, name, (container.prefix + "." if container else "") + f"extension {name}"
    return role, name, "", None


def _csharp_operator(tc: _TreeChunker, node: Any, role: str, container: _Def | None) -> Any:
    """`operator +`, and conversion operators by their target type (`operator int`)."""
    op = node.child_by_field_name("operator")
    label = "operator " + (tc.t(op) if op is not None else "")
    ty = node.child_by_field_name("type")
    if node.type == "conversion_operator_declaration" and ty is not None:
        label = "operator " + tc.t(ty)
    return role, label.strip(), "", None


# -- the rules -------------------------------------------------------------------------------------------------

DEFAULT_RULE = NameRule(max_name=200)

_JS_FUNCS = frozenset({"function_declaration", "generator_function_declaration", "method_definition",
                       "variable_declarator", "assignment_expression", "pair", "field_definition",
                       "public_field_definition"})
_JS_SPECIAL: dict[str, Namer] = {t: _js_binding for t in ("variable_declarator", "pair", "field_definition",
                                                          "public_field_definition", "assignment_expression")}

NAMING: dict[str, NameRule] = {
    "python": NameRule(frozenset({"class_definition"}), frozenset({"function_definition"}), max_name=200),
    "javascript": NameRule(frozenset({"class_declaration", "class"}), _JS_FUNCS, special=_JS_SPECIAL),
    "typescript": NameRule(
        frozenset({"class_declaration", "abstract_class_declaration", "class", "interface_declaration",
                   "enum_declaration", "type_alias_declaration"}), _JS_FUNCS, special=_JS_SPECIAL),
    "rust": NameRule(
        frozenset({"struct_item", "enum_item", "union_item", "trait_item", "impl_item"}),
        frozenset({"function_item", "macro_definition"}), class_sep="::", method_sep="::",
        special={"impl_item": _rust_impl}),
    "go": NameRule(
        frozenset({"type_spec", "type_alias"}), frozenset({"function_declaration", "method_declaration"}),
        special={"method_declaration": _go_method}),
    "java": NameRule(
        frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
                   "annotation_type_declaration"}),
        frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration"}),
        strip_generics=True, max_name=200),
    "csharp": NameRule(
        frozenset({"class_declaration", "struct_declaration", "interface_declaration", "enum_declaration",
                   "record_declaration", "record_struct_declaration"}),
        frozenset({"method_declaration", "constructor_declaration", "destructor_declaration", "operator_declaration",
                   "conversion_operator_declaration", "local_function_statement"}),
        strip_generics=True, max_name=200,
        special={"operator_declaration": _csharp_operator, "conversion_operator_declaration": _csharp_operator}),
    "c": NameRule(frozenset({"struct_specifier", "union_specifier", "enum_specifier"}),
                  frozenset({"function_definition"}), namer=_c_family),
    "cpp": NameRule(frozenset({"class_specifier", "struct_specifier", "union_specifier", "enum_specifier"}),
                    frozenset({"function_definition"}), class_sep="::", method_sep="::", namer=_c_family),
    "ruby": NameRule(frozenset({"class", "module", "singleton_class"}), frozenset({"method", "singleton_method"}),
                     class_sep="::", method_sep="#", sep_for={"singleton_method": "."}, max_name=200,
                     fixed={"singleton_class": "<< self"}),
    "kotlin": NameRule(frozenset({"class_declaration", "object_declaration"}),
                       frozenset({"function_declaration", "secondary_constructor"}), namer=_kotlin),
    "swift": NameRule(frozenset({"class_declaration", "protocol_declaration"}),
                      frozenset({"function_declaration", "init_declaration", "deinit_declaration"}),
                      strip_generics=True, fixed={"init_declaration": "init", "deinit_declaration": "deinit"},
                      special={"class_declaration": _swift_class}),
    "php": NameRule(
        frozenset({"class_declaration", "interface_declaration", "trait_declaration", "enum_declaration"}),
        frozenset({"method_declaration", "function_definition"}), class_sep="::", method_sep="::",
        strip_generics=True, max_name=200),
    "scala": NameRule(
        frozenset({"class_definition", "object_definition", "trait_definition", "enum_definition"}),
        frozenset({"function_definition"}), strip_generics=True, max_name=200),
    "bash": NameRule(frozenset(), frozenset({"function_definition"}), max_name=200),
}


def rule_for(grammar: str) -> NameRule:
    return NAMING.get(grammar, DEFAULT_RULE)
