import assert from "node:assert/strict";
import { test } from "node:test";

import { findJob, searchParams, similarCommandTarget, similarParams } from "../../src/protocol";

test("searchParams only sends what is set", () => {
  assert.deepEqual(searchParams("parse config"), { query: "parse config" });
  assert.deepEqual(searchParams("q", { limit: 20.7, mode: "lexical", paths: ["src/**"], explain: true }), {
    query: "q",
    limit: 20,
    mode: "lexical",
    paths: ["src/**"],
    explain: true,
  });
  assert.deepEqual(searchParams("q", { limit: 0, mode: "", paths: [] }), { query: "q" });
});

test("similar params carry plain positions", () => {
  const pos = { line: 3, character: 7, extra: true } as unknown as { line: number; character: number };
  assert.deepEqual(similarParams("file:///a.py", pos), { textDocument: { uri: "file:///a.py" }, position: { line: 3, character: 7 } });
});

test("similarCommandTarget reads the code action's argument forms", () => {
  const target = { uri: "file:///a.py", position: { line: 4, character: 0 } };
  assert.deepEqual(similarCommandTarget(["file:///a.py", 4]), target);
  assert.deepEqual(similarCommandTarget(["file:///a.py", { line: 4, character: 2 }]), {
    uri: "file:///a.py",
    position: { line: 4, character: 2 },
  });
  assert.deepEqual(similarCommandTarget([{ textDocument: { uri: "file:///a.py" }, position: { line: 4, character: 0 } }]), target);
  assert.equal(similarCommandTarget(["file:///a.py", -1]), undefined);
  assert.equal(similarCommandTarget(["file:///a.py", "4"]), undefined);
  assert.equal(similarCommandTarget([]), undefined);
});

test("findJob reads lists and maps of jobs", () => {
  assert.deepEqual(findJob([{ id: "7", state: "running", message: "epoch 1", percentage: 40 }], 7), {
    state: "running",
    message: "epoch 1",
    percentage: 40,
  });
  assert.deepEqual(findJob({ "7": { status: "finished" } }, "7"), { state: "done", message: "" });
  assert.deepEqual(findJob({ "7": "failed" }, "7"), { state: "failed", message: "" });
  assert.deepEqual(findJob([{ jobId: 8, state: "error", message: "", error: "no GPU" }], 8), { state: "failed", message: "no GPU" });
  assert.equal(findJob([], 1), undefined);
  assert.equal(findJob(undefined, 1), undefined);
});
