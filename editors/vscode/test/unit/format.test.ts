import assert from "node:assert/strict";
import { test } from "node:test";

import { compactSnippet, displayPath, kindIcon, pickRow, statusSummary, toLocations, unmatchable } from "../../src/format";
import type { SearchHit } from "../../src/protocol";

const range = (l1: number, c1: number, l2: number, c2: number) => ({
  start: { line: l1, character: c1 },
  end: { line: l2, character: c2 },
});

test("displayPath is relative to the workspace folder and decodes the URI", () => {
  assert.equal(displayPath("file:///ws/proj/src/a%20b.py", ["file:///ws/proj"]), "src/a b.py");
  assert.equal(displayPath("file:///ws/proj/src/x.py", ["file:///ws/proj/"]), "src/x.py");
  assert.equal(displayPath("file:///ws/projX/x.py", ["file:///ws/proj"]), "/ws/projX/x.py");
  assert.equal(displayPath("file:///ws/b/x.py", ["file:///ws/a", "file:///ws/b"]), "b/x.py");
  assert.equal(displayPath("file:///c%3A/w/x.py", ["file:///C:/w"]), "x.py");
  assert.equal(displayPath("untitled:Untitled-1", []), "untitled:Untitled-1");
});

test("compactSnippet keeps the first lines on one line and trims long text", () => {
  assert.equal(compactSnippet("def f(x):\n\n    return   x + 1\n"), "def f(x): return x + 1");
  const long = compactSnippet("x".repeat(500), 20);
  assert.equal(long.length, 20);
  assert.ok(long.endsWith("…"));
});

test("pickRow shows symbol, path:line and snippet, no raw score", () => {
  const hit: SearchHit = {
    uri: "file:///ws/src/config.py",
    range: range(9, 0, 20, 0),
    symbol: "load_config",
    kind: "function",
    score: 0.8312,
    snippet: "def load_config(path):\n    ...",
    space: "code",
  };
  assert.deepEqual(pickRow(hit, ["file:///ws"]), {
    label: "$(symbol-function) load_config",
    description: "src/config.py:10",
    detail: "def load_config(path): ...",
  });
  const noSymbol = pickRow({ ...hit, symbol: "", kind: "window" }, ["file:///ws"]);
  assert.equal(noSymbol.label, "$(symbol-snippet) config.py:10");
});

test("kindIcon has a fallback", () => {
  assert.equal(kindIcon("class"), "symbol-class");
  assert.equal(kindIcon("something-new"), "symbol-misc");
});

test("toLocations accepts Location[], LocationLink[] and search results", () => {
  const loc = { uri: "file:///a.py", range: range(1, 0, 2, 0) };
  assert.deepEqual(toLocations([loc]), [loc]);
  assert.deepEqual(
    toLocations([{ targetUri: "file:///b.py", targetRange: range(3, 0, 9, 0), targetSelectionRange: range(3, 4, 3, 8) }]),
    [{ uri: "file:///b.py", range: range(3, 4, 3, 8) }],
  );
  assert.deepEqual(toLocations({ results: [{ ...loc, symbol: "f", score: 1 }] }), [loc]);
  assert.deepEqual(toLocations(null), []);
  assert.deepEqual(toLocations([{ uri: "file:///x" }, 3, null]), []);
});

test("statusSummary reads counts, lists and models", () => {
  assert.equal(
    statusSummary({ state: "ready", files: 12, chunks: 1, skipped: [{ path: "x" }], models: { code: "minilm" }, jobs: [] }),
    "sg is ready: 12 files, 1 chunk, 1 skipped. Models: code=minilm.",
  );
  assert.equal(statusSummary({ state: "indexing" }), "sg is indexing.");
  assert.equal(
    statusSummary({ state: "ready", files: 1, models: [{ route: "code", model: "" }], jobs: { "1": { state: "running" } } }),
    "sg is ready: 1 file. Models: code=lexical only. 1 job.",
  );
});

test("unmatchable keeps the icon and hides the text from QuickPick's matcher", () => {
  const label = unmatchable("$(symbol-function) load_config");
  assert.ok(label.startsWith("$(symbol-function) l\u200Bo"));
  assert.equal(label.replace(/\u200B/g, ""), "$(symbol-function) load_config");
  assert.ok(!label.includes("config"));
  assert.equal(unmatchable("日本"), "日\u200B本");
  assert.equal(unmatchable(""), "");
});
