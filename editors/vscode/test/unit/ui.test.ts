// What the host test's screenshots showed and what changed because of them: snippets, status bar, titles.
import assert from "node:assert/strict";
import { test } from "node:test";

import { compactSnippet, searchTitle, similarHits, similarTitle, statusBarLabel } from "../../src/format";

const range = (l1: number, c1: number, l2: number, c2: number) => ({
  start: { line: l1, character: c1 },
  end: { line: l2, character: c2 },
});

test("compactSnippet drops docstring quotes and comment markers", () => {
  assert.equal(
    compactSnippet('def push(h, x):\n    """Push a new value into heap."""\n    h.push(x)'),
    "def push(h, x): Push a new value into heap. h.push(x)",
  );
  assert.equal(compactSnippet("def f():\n    r'''Raw doc.\n    '''"), "def f(): Raw doc.");
  assert.equal(
    compactSnippet("/** Adds two. */\nfunction add(a, b) {\n  // sum\n  return a + b;\n}"),
    "Adds two. function add(a, b) { sum return a + b; }",
  );
  assert.equal(compactSnippet("## Install\nRun it."), "Install Run it.");
  assert.equal(compactSnippet("x = a * b\n#include <x.h>"), "x = a * b #include <x.h>");
});

test("statusBarLabel: starting, indexing, ready with the file count, index error, stopped", () => {
  assert.equal(statusBarLabel(undefined, "starting").text, "$(sync~spin) sg: starting");
  assert.equal(statusBarLabel({ state: "indexing", files: 0 }, "running").text, "$(sync~spin) sg: indexing");
  assert.equal(statusBarLabel({ state: "indexing", files: 1234 }, "running").text, "$(sync~spin) sg: indexing (1,234 files so far)");
  const ready = statusBarLabel({ state: "ready", files: 6286, chunks: 6965 }, "running");
  assert.equal(ready.text, "$(search) sg: 6,286 files");
  assert.ok(ready.tooltip.startsWith("sg is ready: 6286 files, 6965 chunks."), ready.tooltip);
  const broken = statusBarLabel({ state: "ready", files: 0, folders: [{ name: "ws", state: "error", error: "disk full" }] }, "running");
  assert.equal(broken.text, "$(warning) sg: index error");
  assert.equal(broken.tooltip, "sg: ws: disk full");
  assert.equal(statusBarLabel(undefined, "restarting").text, "$(warning) sg: restarting");
  assert.equal(statusBarLabel({ state: "ready" }, "stopped").text, "$(error) sg: stopped");
});

test("searchTitle shows the count, the mode the server used, the time and a partial-index note", () => {
  assert.equal(searchTitle("q", { results: [1, 2, 3], mode: "lexical", elapsedMs: 16.6 }), "sg: 3 results · lexical · 17 ms");
  assert.equal(searchTitle("q", { results: [1], mode: "hybrid" }), "sg: 1 result · hybrid");
  assert.equal(
    searchTitle("q", { results: [1, 2], notes: ["ws: still indexing; results come from what is indexed so far"] }),
    "sg: 2 results · still indexing",
  );
  assert.equal(searchTitle("frob", { results: [] }), 'sg: nothing found for "frob"');
  assert.equal(searchTitle("frob", undefined), 'sg: nothing found for "frob"');
  // Without a model the server still says "hybrid"; the title says what really happened.
  assert.equal(searchTitle("q", { results: [1], mode: "hybrid", model: "lexical" }), "sg: 1 result · lexical (no model)");
  assert.equal(searchTitle("q", { results: [1], mode: "lexical", model: "lexical" }), "sg: 1 result · lexical");
  assert.equal(searchTitle("q", { results: [1], mode: "hybrid", model: "all-MiniLM-L6-v2" }), "sg: 1 result · hybrid");
});

test("similarHits keeps listable hits; similarTitle counts them", () => {
  const hit = { uri: "file:///ws/a.py", range: range(4, 0, 9, 0), symbol: "f", kind: "function", score: 0.4, snippet: "def f(): pass", space: "code" };
  assert.deepEqual(similarHits({ results: [hit, { uri: "file:///x" }, null] }), [hit]);
  assert.deepEqual(similarHits([hit]), []);
  assert.deepEqual(similarHits(null), []);
  assert.equal(similarTitle({ results: [hit], mode: "lexical" }), "sg: 1 similar function · lexical");
  assert.equal(similarTitle({ results: [hit, hit] }), "sg: 2 similar functions");
  assert.equal(similarTitle({ results: [hit], mode: "hybrid", model: "lexical" }), "sg: 1 similar function · lexical (no model)");
});
