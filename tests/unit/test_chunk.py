"""engine.chunk: per-language definitions (kinds, qualified symbols, docs, spans, non-ASCII columns), prose
sections, PDF pages, windows, size bounds, and robustness on arbitrary input."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from engine.chunk import CHUNKER_VERSION, MAX_CHUNK_CHARS, chunk_file, language_for, pdf_pages
from engine.discover import read_text, walk
from engine.records import Chunk, FileEntry
from engine.settings import IndexSettings

BENCH = Path(__file__).parents[2] / ".." / "shared" / "bench"
KINDS = {"function", "method", "class", "section", "page", "window", "module"}


def lsp_lines(text: str) -> list[str]:
    """Lines as an editor counts them: split on \\r\\n, \\r and \\n only."""
    return re.split(r"\r\n|\r|\n", text)


def check_spans(text: str, chunks: list[Chunk], settings: IndexSettings | None = None) -> None:
    """Every chunk lies inside the file, and its text is exactly the source between its (line, col) positions."""
    lines = lsp_lines(text)
    starts = [0]
    for m in re.finditer(r"\r\n|\r|\n", text):
        starts.append(m.end())
    limit = (settings or IndexSettings()).max_chunks_per_file
    assert len(chunks) <= limit
    for c in chunks:
        assert c.kind in KINDS
        assert 1 <= c.start_line <= c.end_line <= len(lines), c
        assert 0 <= c.start_col <= len(lines[c.start_line - 1]), c
        assert 0 <= c.end_col <= len(lines[c.end_line - 1]), c
        s = starts[c.start_line - 1] + c.start_col
        e = starts[c.end_line - 1] + c.end_col
        assert text[s:e] == c.text, c
        assert c.text.strip() and c.text == c.text.rstrip()
        assert len(c.text) <= MAX_CHUNK_CHARS
    keys = [(c.start_line, c.start_col) for c in chunks]
    assert keys == sorted(keys)


def no_method_text_twice(chunks: list[Chunk]) -> None:
    """A definition's lines are never also inside a class chunk or another definition's chunk."""
    defs = [c for c in chunks if c.kind in ("function", "method")]
    for d in defs:
        for c in chunks:
            if c is d or c.kind not in ("function", "method", "class") or c.symbol == d.symbol:
                continue
            assert c.end_line < d.start_line or c.start_line > d.end_line, (c.symbol, d.symbol)


SAMPLES: dict[str, tuple[str, str, list[tuple[str, str, int, int]], dict[str, str]]] = {
    "python": (
        "text.py",
        r'''"""Text utilities."""
import re

SEPARATORS = ("、", "。", ",", ".")  # 区切り文字 🎉


class Text:
    """A piece of text — テキスト."""

    encoding = "utf-8"

    def split(self, sep: str = "、") -> list[str]:  # 分割 🎉
        """Split on sep.

        Returns the parts.
        """
        return self.value.split(sep)

    class Span:
        def length(self) -> int:
            return self.end - self.start

    @property
    def size(self):
        return len(self.value)


# Helper: count words.
def count_words(text):
    def inner():
        pass
    return len(text.split())
''',
        [
            ('module', '', 1, 4),
            ('class', 'Text', 7, 10),
            ('method', 'Text.split', 12, 17),
            ('class', 'Text.Span', 19, 19),
            ('method', 'Text.Span.length', 20, 21),
            ('method', 'Text.size', 23, 25),
            ('function', 'count_words', 28, 32),
        ],
        {
            'Text': 'A piece of text — テキスト.',
            'Text.split': 'Split on sep.\n\nReturns the parts.',
            'count_words': 'Helper: count words.',
        },
    ),
    "javascript": (
        "cache.js",
        r"""import fs from "fs";

/**
 * Reads a config — 設定を読む.
 */
export function readConfig(path) {
  return JSON.parse(fs.readFileSync(path, "utf8"));
}

class Cache extends Map {
  // Get or compute.
  getOr(key, make) {
    return this.has(key) ? this.get(key) : make();
  }
  clear = () => { super.clear(); };
}

const msg = "日本語🎉"; function greet() { return "こんにちは 🎉"; }
const double = (x) => x * 2;
""",
        [
            ('function', 'readConfig', 3, 8),
            ('class', 'Cache', 10, 10),
            ('method', 'Cache.getOr', 11, 14),
            ('method', 'Cache.clear', 15, 15),
            ('function', 'greet', 18, 18),
            ('function', 'double', 19, 19),
        ],
        {
            'readConfig': 'Reads a config — 設定を読む.',
            'Cache.getOr': 'Get or compute.',
        },
    ),
    "typescript": (
        "shape.ts",
        r"""/** A shape. */
export interface Shape {
  area(): number;
}

export class Circle implements Shape {
  constructor(private r: number) {}

  /** Area of the circle. */
  area(): number {
    return Math.PI * this.r ** 2;
  }
}

export const unit = (): Circle => new Circle(1);
""",
        [
            ('class', 'Shape', 1, 4),
            ('class', 'Circle', 6, 6),
            ('method', 'Circle.constructor', 7, 7),
            ('method', 'Circle.area', 9, 12),
            ('function', 'unit', 15, 15),
        ],
        {
            'Shape': 'A shape.',
            'Circle.area': 'Area of the circle.',
        },
    ),
    "tsx": (
        "hello.tsx",
        r"""import React from "react";

/** Greets someone. */
export function Hello({ name }: { name: string }) {
  return <div className="hello">こんにちは {name} 🎉</div>;
}

export class Panel extends React.Component<{}, {}> {
  render() {
    return <section>{this.props.children}</section>;
  }
}
""",
        [
            ('function', 'Hello', 3, 6),
            ('class', 'Panel', 8, 8),
            ('method', 'Panel.render', 9, 11),
        ],
        {
            'Hello': 'Greets someone.',
        },
    ),
    "rust": (
        "point.rs",
        r"""use std::fmt;

/// A 2D point (二次元).
#[derive(Debug, Clone)]
pub struct Point {
    x: f64,
    y: f64,
}

impl Point {
    /// Creates a point.
    pub fn new(x: f64, y: f64) -> Self {
        Point { x, y }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "({}, {}) 🎉", self.x, self.y)
    }
}

pub trait Shape {
    fn area(&self) -> f64;
    /// Name of the shape.
    fn name(&self) -> String {
        "shape".to_string()
    }
}

// Distance between points.
pub fn distance(a: &Point, b: &Point) -> f64 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}
""",
        [
            ('class', 'Point', 3, 8),
            ('class', 'impl Point', 10, 10),
            ('method', 'Point::new', 11, 14),
            ('class', 'impl fmt::Display for Point', 17, 17),
            ('method', '<Point as fmt::Display>::fmt', 18, 20),
            ('class', 'Shape', 23, 24),
            ('method', 'Shape::name', 25, 28),
            ('function', 'distance', 31, 34),
        ],
        {
            'Point': 'A 2D point (二次元).',
            'Point::new': 'Creates a point.',
            'Shape::name': 'Name of the shape.',
            'distance': 'Distance between points.',
        },
    ),
    "go": (
        "server.go",
        r"""package server

import "net/http"

// Server は HTTP サーバー 🎉.
type Server struct {
	addr string
}

// Start starts listening.
func (s *Server) Start() error {
	return http.ListenAndServe(s.addr, nil)
}

func (s Server) Addr() string { return s.addr }

// New makes a server.
func New(addr string) *Server {
	return &Server{addr: addr}
}
""",
        [
            ('module', '', 1, 3),
            ('class', 'Server', 5, 8),
            ('method', 'Server.Start', 10, 13),
            ('method', 'Server.Addr', 15, 15),
            ('function', 'New', 17, 20),
        ],
        {
            'Server': 'Server は HTTP サーバー 🎉.',
            'Server.Start': 'Start starts listening.',
            'New': 'New makes a server.',
        },
    ),
    "java": (
        "Bank.java",
        r"""package demo;

import java.util.List;

/**
 * Keeps accounts — 口座.
 */
public class Bank {
    private final List<String> accounts;

    /** Creates a bank. */
    public Bank(List<String> accounts) {
        this.accounts = accounts;
    }

    public int size() {
        return accounts.size();
    }

    static class Audit {
        void run() { System.out.println("audit 🎉"); }
    }

    interface Listener {
        void changed();
    }
}
""",
        [
            ('module', '', 1, 3),
            ('class', 'Bank', 5, 9),
            ('method', 'Bank.Bank', 11, 14),
            ('method', 'Bank.size', 16, 18),
            ('class', 'Bank.Audit', 20, 20),
            ('method', 'Bank.Audit.run', 21, 21),
            ('class', 'Bank.Listener', 24, 26),
        ],
        {
            'Bank': 'Keeps accounts — 口座.',
            'Bank.Bank': 'Creates a bank.',
        },
    ),
    "csharp": (
        "Greeter.cs",
        r"""using System;

namespace Demo.Core
{
    /// <summary>A greeter — 挨拶.</summary>
    public class Greeter
    {
        private readonly string name;

        public Greeter(string name) { this.name = name; }

        /// <summary>Says hello.</summary>
        public string Hello() => $"Hello {name} 🎉";

        public struct Options
        {
            public void Reset() { }
        }
    }
}
""",
        [
            ('module', '', 1, 4),
            ('class', 'Greeter', 5, 8),
            ('method', 'Greeter.Greeter', 10, 10),
            ('method', 'Greeter.Hello', 12, 13),
            ('class', 'Greeter.Options', 15, 16),
            ('method', 'Greeter.Options.Reset', 17, 17),
        ],
        {
            'Greeter': '<summary>A greeter — 挨拶.</summary>',
            'Greeter.Hello': '<summary>Says hello.</summary>',
        },
    ),
    "c": (
        "list.c",
        r"""#include <stdio.h>

/* A node — ノード. */
typedef struct node {
    int value;
    struct node *next;
} Node;

/** Sums the list. */
int sum(const Node *n) {
    int s = 0;
    for (; n; n = n->next) s += n->value;
    return s;
}

static char *name(void) { return "名前 🎉"; }
""",
        [
            ('class', 'Node', 3, 7),
            ('function', 'sum', 9, 14),
            ('function', 'name', 16, 16),
        ],
        {
            'Node': 'A node — ノード.',
            'sum': 'Sums the list.',
        },
    ),
    "cpp": (
        "poly.cpp",
        r"""#include <vector>

namespace geo {

/// A polygon (多角形).
class Polygon {
public:
    explicit Polygon(std::vector<int> pts) : pts_(pts) {}
    int size() const { return pts_.size(); }
    double area() const;

private:
    std::vector<int> pts_;
};

double Polygon::area() const {
    return 0.0; // 🎉
}

int count(const Polygon &p) { return p.size(); }

}  // namespace geo
""",
        [
            ('module', '', 1, 3),
            ('class', 'Polygon', 5, 7),
            ('method', 'Polygon::Polygon', 8, 8),
            ('method', 'Polygon::size', 9, 9),
            ('class', 'Polygon', 10, 14),
            ('method', 'Polygon::area', 16, 18),
            ('function', 'count', 20, 20),
        ],
        {
            'Polygon': 'A polygon (多角形).',
        },
    ),
    "ruby": (
        "util.rb",
        r"""require "json"

# Utilities (ユーティリティ).
module Util
  # Greets people 🎉.
  class Greeter
    attr_reader :name

    # Says hi.
    def hi(other)
      "hi #{other}"
    end

    def self.build
      new
    end
  end
end
""",
        [
            ('class', 'Util', 3, 4),
            ('class', 'Util::Greeter', 5, 7),
            ('method', 'Util::Greeter#hi', 9, 12),
            ('method', 'Util::Greeter.build', 14, 16),
        ],
        {
            'Util': 'Utilities (ユーティリティ).',
            'Util::Greeter': 'Greets people 🎉.',
            'Util::Greeter#hi': 'Says hi.',
        },
    ),
    "kotlin": (
        "User.kt",
        r"""package demo

/** A user — ユーザー. */
data class User(val name: String) {
    val greeting = "hi"

    /** Display name. */
    fun display(): String = "User($name) 🎉"

    companion object {
        fun guest() = User("guest")
    }
}

object Registry {
    fun register(u: User) { println(u) }
}

fun main() {
    println(User("a").display())
}
""",
        [
            ('class', 'User', 3, 5),
            ('method', 'User.display', 7, 8),
            ('class', 'User', 10, 10),
            ('method', 'User.guest', 11, 11),
            ('class', 'Registry', 15, 15),
            ('method', 'Registry.register', 16, 16),
            ('function', 'main', 19, 21),
        ],
        {
            'User': 'A user — ユーザー.',
            'User.display': 'Display name.',
        },
    ),
    "swift": (
        "Counter.swift",
        r"""import Foundation

/// A counter — カウンター.
class Counter {
    var value = 0

    /// Increments.
    func increment() {
        value += 1
    }
}

extension Counter {
    func reset() { value = 0 } // 🎉
}

struct Point {
    var x: Double
    func norm() -> Double { return abs(x) }
}

func makeCounter() -> Counter { return Counter() }
""",
        [
            ('class', 'Counter', 3, 5),
            ('method', 'Counter.increment', 7, 10),
            ('class', 'extension Counter', 13, 13),
            ('method', 'Counter.reset', 14, 14),
            ('class', 'Point', 17, 18),
            ('method', 'Point.norm', 19, 19),
            ('function', 'makeCounter', 22, 22),
        ],
        {
            'Counter': 'A counter — カウンター.',
            'Counter.increment': 'Increments.',
        },
    ),
    "php": (
        "User.php",
        r"""<?php
namespace App\Models;

/**
 * A user model — ユーザー.
 */
class User extends Model
{
    protected $table = 'users';

    /** Full name. */
    public function fullName(): string
    {
        return $this->first . ' ' . $this->last . ' 🎉';
    }
}

function helper($x) { return $x * 2; }
""",
        [
            ('module', '', 1, 2),
            ('class', 'User', 4, 9),
            ('method', 'User::fullName', 11, 15),
            ('function', 'helper', 18, 18),
        ],
        {
            'User': 'A user model — ユーザー.',
            'User::fullName': 'Full name.',
        },
    ),
    "scala": (
        "Stack.scala",
        r"""package demo

/** A stack — スタック. */
class Stack[A] {
  private var items: List[A] = Nil

  /** Pushes an item. */
  def push(a: A): Unit = { items = a :: items }

  def size: Int = items.length
}

object Stack {
  def empty[A]: Stack[A] = new Stack[A] // 🎉
}
""",
        [
            ('class', 'Stack', 3, 5),
            ('method', 'Stack.push', 7, 8),
            ('method', 'Stack.size', 10, 10),
            ('class', 'Stack', 13, 13),
            ('method', 'Stack.empty', 14, 14),
        ],
        {
            'Stack': 'A stack — スタック.',
            'Stack.push': 'Pushes an item.',
        },
    ),
    "bash": (
        "greet.sh",
        r"""#!/usr/bin/env bash
set -euo pipefail

# Prints a greeting (挨拶) 🎉.
greet() {
  echo "hello $1"
}

function cleanup {
  rm -rf "$TMP"
}

greet world
""",
        [
            ('module', '', 1, 2),
            ('function', 'greet', 4, 7),
            ('function', 'cleanup', 9, 11),
        ],
        {
            'greet': 'Prints a greeting (挨拶) 🎉.',
        },
    ),
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_language_samples(language: str) -> None:
    path, text, expected, docs = SAMPLES[language]
    assert language_for(path) == language
    chunks = chunk_file(path, text, IndexSettings())
    assert [(c.kind, c.symbol, c.start_line, c.end_line) for c in chunks] == expected
    assert {c.symbol: c.doc for c in chunks if c.doc} == docs
    assert {c.language for c in chunks} == {language}
    check_spans(text, chunks)
    no_method_text_twice(chunks)
    for c in chunks:
        if c.kind in ("function", "method") or (c.kind == "class" and c.signature):
            assert c.signature and "\n" not in c.signature
            assert c.signature.split()[-1].rstrip(")") in c.text  # the signature comes from the chunk itself
    # A chunk that starts at a leading doc comment includes it in its text.
    for c in chunks:
        if c.doc and c.kind != "class":
            assert c.doc.splitlines()[0] in c.text


def test_python_details() -> None:
    _, text, _, _ = SAMPLES["python"]
    by = {c.symbol: c for c in chunk_file("text.py", text, IndexSettings())}
    split = by["Text.split"]
    assert split.signature == 'def split(self, sep: str = "、") -> list[str]'
    assert split.text.startswith("def split") and split.text.endswith("return self.value.split(sep)")
    assert '"""Split on sep.' in split.text  # the docstring stays in the text too
    assert by["Text.size"].text.startswith("@property")  # decorators belong to the definition
    assert "def inner" in by["count_words"].text  # closures stay inside their function
    assert by["count_words"].text.startswith("# Helper: count words.")
    assert by["Text"].text == 'class Text:\n    """A piece of text — テキスト."""\n\n    encoding = "utf-8"'
    assert by[""].kind == "module" and "SEPARATORS" in by[""].text


def test_rust_and_go_conventions() -> None:
    _, text, _, _ = SAMPLES["rust"]
    by = {c.symbol: c for c in chunk_file("point.rs", text, IndexSettings())}
    assert by["Point"].text.startswith("/// A 2D point (二次元).\n#[derive(Debug, Clone)]\npub struct Point {")
    assert by["impl fmt::Display for Point"].kind == "class"
    assert by["<Point as fmt::Display>::fmt"].kind == "method"
    assert "fn area(&self) -> f64;" in by["Shape"].text  # required trait methods stay in the trait chunk
    _, text, _, _ = SAMPLES["go"]
    by = {c.symbol: c for c in chunk_file("server.go", text, IndexSettings())}
    assert by["Server.Start"].signature == "func (s *Server) Start() error"
    assert by["Server.Addr"].signature == "func (s Server) Addr() string"


def test_columns_on_non_ascii_lines() -> None:
    """Columns are code points: a definition after Japanese text and emoji on the same line starts where a
    Python str index says, not at its UTF-8 byte offset."""
    cases = {
        "a.js": 'const msg = "日本語🎉"; function greet() { return "こんにちは 🎉"; }\n',
        "a.rs": "/* 日本語 🎉 */ fn f() -> &'static str { \"🎉\" }\n",
        "a.c": "/* ノード 🎉 */ int f(void) { return 1; } /* 終 */\n",
        "a.go": "package p\n\nvar 名前 = \"🎉\"; func g() string { return \"🎉\" }\n",
        "a.ts": "let ü = 1; export class Ä { m(): string { return 'ö🎉'; } }\n",
    }
    for path, text in cases.items():
        chunks = chunk_file(path, text, IndexSettings())
        check_spans(text, chunks)
        defs = [c for c in chunks if c.kind in ("function", "class")]
        assert len(defs) == 1, (path, chunks)
        d = defs[0]
        line = lsp_lines(text)[d.start_line - 1]
        keyword = {"a.js": "function", "a.rs": "fn", "a.c": "int", "a.go": "func", "a.ts": "export"}[path]
        assert d.start_col == line.index(keyword)
        assert d.start_col != len(line[:d.start_col].encode("utf-8"))  # bytes would differ
        assert d.end_col == len(line.rstrip().removesuffix("/* 終 */").rstrip())


def test_crlf_and_lone_cr_keep_editor_lines() -> None:
    text = "import os\r\n\r\ndef f():\r\n    '''Doc — ドキュメント.'''\r\n    return 1\r\n\rdef g():\r    return 2\r"
    chunks = chunk_file("m.py", text, IndexSettings())
    check_spans(text, chunks)
    by = {c.symbol: c for c in chunks}
    assert (by["f"].start_line, by["f"].end_line, by["f"].end_col) == (3, 5, 12)
    assert by["f"].text == "def f():\r\n    '''Doc — ドキュメント.'''\r\n    return 1"
    assert by["f"].doc == "Doc — ドキュメント."
    assert (by["g"].start_line, by["g"].end_line) == (7, 8)


def test_python2_code_still_chunks() -> None:
    text = ('def greet(name):\n    print "hello %s" % name\n    exec "x = 1"\n\n'
            'class Old:\n    def m(self):\n        print >>sys.stderr, "x"\n')
    chunks = chunk_file("old.py", text, IndexSettings())
    check_spans(text, chunks)
    assert [(c.kind, c.symbol) for c in chunks] == [("function", "greet"), ("class", "Old"), ("method", "Old.m")]


def test_long_function_windows() -> None:
    s = IndexSettings(max_chunk_lines=20, window_lines=10, window_overlap=3)
    body = "\n".join(f"    total += {i}  # ステップ {i} 🎉" for i in range(45))
    text = f'x = 1\n\n\ndef long(total):\n    """Sum it."""\n{body}\n    return total\n'
    chunks = [c for c in chunk_file("l.py", text, s) if c.symbol == "long"]
    check_spans(text, chunks, s)
    spans = [(c.start_line, c.end_line) for c in chunks]
    assert spans[0][0] == 4 and spans[-1][1] == 51  # def line .. return line
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 - a0 + 1 == 10 and b0 == a0 + 7  # windows of 10 lines, 3 lines of overlap
    assert all(c.kind == "function" for c in chunks)
    assert chunks[0].doc == "Sum it." and chunks[0].signature == "def long(total)"
    assert all(not c.doc and not c.signature for c in chunks[1:])
    # A short function stays whole.
    assert [c.end_line for c in chunk_file("s.py", "def f():\n" + "    x = 1\n" * 19, s)] == [20]


def test_long_class_header_and_module_are_windowed() -> None:
    s = IndexSettings(max_chunk_lines=20, window_lines=10, window_overlap=2)
    fields = "\n".join(f"    FIELD_{i} = {i}" for i in range(40))
    consts = "\n".join(f"CONST_{i} = {i}" for i in range(40))
    text = f"{consts}\n\n\nclass Big:\n{fields}\n\n    def m(self):\n        return 1\n"
    chunks = chunk_file("b.py", text, s)
    check_spans(text, chunks, s)
    assert all(c.end_line - c.start_line + 1 <= 10 for c in chunks if c.kind in ("module", "class"))
    assert {c.kind for c in chunks} == {"module", "class", "method"}


def test_minified_files_are_bounded() -> None:
    s = IndexSettings()
    line = "var a=function(b){return b+1},c=[1,2,3].map(function(x){return x*2});" * 30  # ~2,100 chars
    text = "\n".join(line for _ in range(10_000))  # 21 MB minified JS
    t = time.perf_counter()
    chunks = chunk_file("app.min.js", text, s)
    assert time.perf_counter() - t < 10
    assert 0 < len(chunks) <= s.max_chunks_per_file
    assert all(c.kind == "window" and len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    one = "x=1;" * (2 * 1024 * 1024 // 4)  # one 2 MB line
    s2 = IndexSettings(max_chunks_per_file=50)
    chunks = chunk_file("one.js", one, s2)
    assert len(chunks) == 50 and all(len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    check_spans(one, chunks, s2)
    assert chunks[0].start_line == chunks[-1].end_line == 1 and chunks[1].start_col > 0


def test_long_lines_in_normal_code_are_capped() -> None:
    body = "\n".join(f'    s{i} = "{"x" * 240}"' for i in range(100))  # 100 lines, 25 KB: not minified
    text = f'def f():\n{body}\n    return s\n\n\ndef g():\n    return 1\n'
    chunks = chunk_file("big.py", text, IndexSettings())
    check_spans(text, chunks)
    assert [c.symbol for c in chunks] == ["f", "f", "g"]
    assert sum(len(c.text) for c in chunks if c.symbol == "f") >= 25_000  # split at a line, nothing dropped
    assert chunks[1].start_line == chunks[0].end_line + 1 and chunks[1].start_col == 0


def test_chunk_cap_per_file() -> None:
    s = IndexSettings(max_chunks_per_file=25)
    text = "\n".join(f"def f{i}():\n    return {i}\n" for i in range(100))
    chunks = chunk_file("many.py", text, s)
    assert [c.symbol for c in chunks] == [f"f{i}" for i in range(25)]


MARKDOWN = """\
---
title: front matter
---
Intro before any heading.

# Install

Some install text.

## Linux

```sh
# not a heading
apt install sg
```

## Windows
Use the installer.

Usage
-----

Run `sg`. 日本語のテキスト 🎉.

# Empty

## Deep
deep text
"""


def test_markdown_sections() -> None:
    chunks = chunk_file("README.md", MARKDOWN, IndexSettings())
    check_spans(MARKDOWN, chunks)
    assert [(c.kind, c.symbol, c.start_line, c.end_line) for c in chunks] == [
        ("section", "", 1, 4),
        ("section", "Install", 6, 8),
        ("section", "Install > Linux", 10, 15),
        ("section", "Install > Windows", 17, 18),
        ("section", "Install > Usage", 20, 23),
        ("section", "Empty > Deep", 27, 28),
    ]
    assert chunks[2].signature == "## Linux" and "# not a heading" in chunks[2].text


def test_long_markdown_section_split_by_paragraphs() -> None:
    s = IndexSettings(window_lines=12, window_overlap=2)
    paras = "\n\n".join(f"Paragraph {i} line one.\nParagraph {i} line two — 二行目." for i in range(20))
    text = f"# Guide\n\n{paras}\n\n## Next\n\nshort\n"
    chunks = chunk_file("guide.md", text, s)
    check_spans(text, chunks, s)
    guide = [c for c in chunks if c.symbol == "Guide"]
    assert len(guide) > 3 and all(c.kind == "section" for c in guide)
    assert all(c.end_line - c.start_line + 1 <= 12 for c in guide)
    assert guide[0].text.startswith("# Guide") and guide[0].signature == "# Guide"
    assert all(not c.text.startswith("line two") for c in guide)  # cuts fall between paragraphs
    covered = set()
    for c in guide:
        covered.update(range(c.start_line, c.end_line + 1))
    para_lines = {i + 1 for i, ln in enumerate(lsp_lines(text)) if ln.startswith("Paragraph")}
    assert para_lines <= covered
    assert [c.symbol for c in chunks if c.symbol != "Guide"] == ["Guide > Next"]


def test_rst_and_plain_text() -> None:
    rst = ("=====\nTitle\n=====\n\nIntro.\n\nSection A\n---------\n\nText A.\n\n"
           "Sub\n~~~\n\nText sub.\n\nSection B\n---------\n\nText B.\n")
    chunks = chunk_file("doc.rst", rst, IndexSettings())
    check_spans(rst, chunks)
    assert [(c.symbol, c.start_line) for c in chunks] == [
        ("Title", 1), ("Title > Section A", 7), ("Title > Section A > Sub", 12), ("Title > Section B", 17)]
    s = IndexSettings(window_lines=5, window_overlap=1)
    txt = "\n\n".join(f"para {i}\nmore {i}" for i in range(6))
    chunks = chunk_file("notes.txt", txt, s)
    check_spans(txt, chunks, s)
    assert [(c.kind, c.start_line, c.end_line) for c in chunks] == [
        ("section", 1, 5), ("section", 7, 11), ("section", 13, 17)]


def test_other_files_are_line_windows() -> None:
    s = IndexSettings(window_lines=10, window_overlap=2)
    data = json.dumps({f"key{i}": i for i in range(30)}, indent=1)
    chunks = chunk_file("data.json", data, s)
    check_spans(data, chunks, s)
    assert {c.kind for c in chunks} == {"window"} and {c.language for c in chunks} == {"json"}
    assert chunks[0].start_line == 1 and chunks[-1].end_line == len(lsp_lines(data))
    assert [c.start_line for c in chunks[:3]] == [1, 9, 17]
    assert chunk_file("x.unknownext", "hello\nworld\n", s)[0].language == "unknown"
    assert chunk_file("empty.py", "", s) == [] and chunk_file("blank.py", " \n\n", s) == []
    tiny = chunk_file("tiny.py", "print(1)\n", s)  # loose code still gets a chunk
    assert [(c.kind, c.text) for c in tiny] == [("module", "print(1)")]


def test_language_for() -> None:
    assert language_for("a/b/c.py") == "python"
    assert language_for("X.TSX") == "tsx"
    assert language_for("lib.rs") == "rust"
    assert language_for("include/x.hpp") == "cpp"
    assert language_for("Makefile") == "make"
    assert language_for("README") == "text"
    assert language_for("docs/guide.md") == "markdown"
    assert language_for("paper.pdf") == "pdf"
    assert language_for("conf.yml") == "yaml"
    assert language_for("noext") is None and language_for(".hidden") is None
    assert isinstance(CHUNKER_VERSION, int)


def make_pdf(pages: list[str]) -> bytes:
    """A minimal but valid PDF with one line of Helvetica text per page."""
    objs = ["<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages))),
                                                        len(pages)),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
                    f" /Contents {5 + 2 * i} 0 R >>")
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for k, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{k} 0 obj\n{o}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{off:010d} 00000 n \n" for off in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_pdf_pages(tmp_path: Path) -> None:
    data = make_pdf(["Hello from page one", "", "Third page text"])
    assert pdf_pages(data) == ["Hello from page one", "", "Third page text"]
    chunks = chunk_file("doc.pdf", "", IndexSettings(), data=data)
    assert [(c.kind, c.symbol, c.start_line, c.end_line, c.text) for c in chunks] == [
        ("page", "page 1", 1, 1, "Hello from page one"), ("page", "page 3", 1, 1, "Third page text")]
    # Through discover: read_text gives the pages joined by form feeds, which chunk_file splits back.
    (tmp_path / "doc.pdf").write_bytes(data)
    (entry,) = [e for e in walk(tmp_path, IndexSettings()) if isinstance(e, FileEntry)]
    text = read_text(entry, IndexSettings())
    assert text == "Hello from page one\f\fThird page text"
    assert chunk_file("doc.pdf", text, IndexSettings()) == chunks
    # Broken PDFs: no chunks, no exception.
    assert chunk_file("bad.pdf", "", IndexSettings(), data=b"%PDF-1.4\n garbage") == []
    assert chunk_file("bad.pdf", "", IndexSettings(), data=data[: len(data) // 2]) in ([], chunks[:1])
    assert pdf_pages(b"not a pdf") is None


CODE_ALPHABET = st.sampled_from(list("abcdefXYZ_ (){}[]:;,.=+-*/#\"'`<>\\@$!?&|%\t\n\r") +
                                ["def ", "class ", "fn ", "func ", "function ", "struct ", "impl ", "return ",
                                 "end\n", "    ", "/**", "*/", "///", "\"\"\"", "日本語", "🎉", "\x00", "\ufeff",
                                 "\u2028", "\f", "# H\n", "```\n", "===\n"])


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ext=st.sampled_from([".py", ".js", ".ts", ".tsx", ".rs", ".go", ".java", ".cs", ".c", ".cpp", ".rb",
                            ".kt", ".swift", ".php", ".scala", ".sh", ".md", ".rst", ".txt", ".json", ".xyz"]),
       parts=st.lists(CODE_ALPHABET, max_size=120))
def test_never_raises_and_spans_hold(ext: str, parts: list[str]) -> None:
    text = "".join(parts)
    s = IndexSettings(max_chunk_lines=8, window_lines=4, window_overlap=1)
    chunks = chunk_file("f" + ext, text, s)
    check_spans(text, chunks, s)


def test_cosqa_slice() -> None:
    corpus = BENCH / "cosqa" / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"bench data not present at {corpus}")
    files = sorted(corpus.iterdir())[:300]
    named = 0
    s = IndexSettings()
    t = time.perf_counter()
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        chunks = chunk_file(f.name, text, s)
        check_spans(text, chunks, s)
        assert chunks, f.name
        name = f.stem.split("_", 1)[1]  # NNNNN_<func>.py
        named += any(c.kind == "function" and c.symbol == name for c in chunks)
    assert time.perf_counter() - t < 5
    assert named >= 0.95 * len(files)


def test_bench_symbols_match_chunk_symbols() -> None:
    """The eval specs name targets as path::Qualified.name; every one must be a chunk symbol."""
    spec_path = BENCH / "repo-click" / "dev.json"
    if not spec_path.is_file():
        pytest.skip(f"bench data not present at {spec_path}")
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    root = spec_path.parent / spec["corpus"]
    s = IndexSettings()
    symbols = set()
    for e in walk(root, s):
        if isinstance(e, FileEntry) and e.path.endswith(".py"):
            text = read_text(e, s)
            assert isinstance(text, str)
            chunks = chunk_file(e.path, text, s)
            check_spans(text, chunks, s)
            symbols.update(f"{c.path}::{c.symbol}" for c in chunks)
    wanted = {r for q in spec["queries"] for r in q["relevant"] if "::" in r}
    assert wanted and wanted <= symbols


def test_cpp_header_detection() -> None:
    c_header = "/* list.h */\nstruct node { int v; struct node *next; };\nint sum(const struct node *n);\n"
    cpp_header = ("#include <vector>\nnamespace geo {\nclass Poly {\npublic:\n"
                  "    int size() const { return 0; }\n};\n}\n")
    assert {c.language for c in chunk_file("list.h", c_header, IndexSettings())} == {"c"}
    chunks = chunk_file("poly.h", cpp_header, IndexSettings())
    assert {c.language for c in chunks} == {"cpp"}
    assert ("method", "Poly::size") in {(c.kind, c.symbol) for c in chunks}


def test_parse_time_budget_falls_back_to_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parse over budget is really cancelled by tree-sitter (budget set to zero here) and the file still
    gets line windows; the cached parser stays usable afterwards."""
    import engine.chunk.tree as chunk_mod

    _, text, expected, _ = SAMPLES["rust"]
    monkeypatch.setattr(chunk_mod, "PARSE_SECONDS", 0.0)
    chunks = chunk_file("point.rs", text, IndexSettings())
    assert chunks and {c.kind for c in chunks} == {"window"}
    check_spans(text, chunks)
    monkeypatch.setattr(chunk_mod, "PARSE_SECONDS", 3.0)
    assert [(c.kind, c.symbol, c.start_line, c.end_line) for c in chunk_file("point.rs", text, IndexSettings())] \
        == expected


def test_every_language_has_a_naming_rule_or_is_not_parsed() -> None:
    """Each language of the extension table is either parsed by tree-sitter and named by its own NAMING entry, or
    knowingly left to prose sections, PDF pages or line windows (where nothing is named). No rule is orphaned."""
    from engine.chunk.languages import _EXT, _NAMES, LANGS, PROSE
    from engine.chunk.naming import DEFAULT_RULE, NAMING

    tree_grammars = {LANGS[lang].grammar for lang in LANGS}
    for lang in sorted(set(_EXT.values()) | set(_NAMES.values())):
        if lang in LANGS:
            assert LANGS[lang].grammar in NAMING, f"{lang} is parsed but has no naming rule"
        else:
            assert lang in PROSE or lang == "pdf" or lang not in tree_grammars, lang
    assert set(NAMING) == tree_grammars
    # A grammar without an entry names nothing: its files get module/window chunks, never guessed symbols.
    assert not DEFAULT_RULE.classes and not DEFAULT_RULE.functions


def test_a_rule_entry_alone_names_a_new_node_type(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering a NameRule for a grammar is enough to make a new node type a definition and to name it: here
    Bash variable assignments, first by their `name` field, then by a special namer."""
    from engine.chunk.naming import NAMING, NameRule

    text = "GREETING=hello\n\ngreet() {\n  echo \"$GREETING\"\n}\n"
    before = {(c.kind, c.symbol) for c in chunk_file("greet.sh", text, IndexSettings())}
    assert ("function", "greet") in before and ("function", "GREETING") not in before
    rule = NameRule(functions=frozenset({"function_definition", "variable_assignment"}), max_name=200)
    monkeypatch.setitem(NAMING, "bash", rule)
    chunks = chunk_file("greet.sh", text, IndexSettings())
    check_spans(text, chunks)
    assert [(c.kind, c.symbol, c.start_line, c.end_line) for c in chunks] == [
        ("function", "GREETING", 1, 1), ("function", "greet", 3, 5)]
    monkeypatch.setitem(NAMING, "bash", NameRule(
        functions=rule.functions,
        special={"variable_assignment": lambda tc, node, role, _container:
                 (role, "$" + tc.t(node.child_by_field_name("name")), "", None)}))
    assert {c.symbol for c in chunk_file("greet.sh", text, IndexSettings())} == {"$GREETING", "greet"}
