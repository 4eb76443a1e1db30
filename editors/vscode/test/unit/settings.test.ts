import assert from "node:assert/strict";
import { test } from "node:test";

import { buildServerSettings, expandVars, serverCommand, type Lookup } from "../../src/settings";

const lookupFrom = (values: Record<string, unknown>): Lookup => (key) => values[key];

test("nothing set sends nothing, so .sg.toml keeps its say", () => {
  assert.deepEqual(buildServerSettings(lookupFrom({})), {});
});

test("flat sg.* settings map onto the nested server tree", () => {
  const problems: string[] = [];
  const out = buildServerSettings(
    lookupFrom({
      model: "microsoft/unixcoder-base",
      modelPath: "~/models/tuned",
      trustRemoteCode: true,
      exclude: ["vendor/", "  ", "*.gen.go"],
      indexDir: "${workspaceFolder}/.cache/sg",
      searchMode: "lexical",
    }),
    { workspaceFolder: "/ws", home: "/home/me" },
    problems,
  );
  assert.deepEqual(out, {
    models: { code: "microsoft/unixcoder-base", model_path: "/home/me/models/tuned", trust_remote_code: true },
    index: { excludes: ["vendor/", "*.gen.go"], index_dir: "/ws/.cache/sg" },
    search: { mode: "lexical" },
  });
  assert.deepEqual(problems, []);
});

test('sg.model "off" turns models off (lexical only)', () => {
  assert.deepEqual(buildServerSettings(lookupFrom({ model: "OFF" })), { models: { enabled: false } });
});

test("an explicit trustRemoteCode false is forwarded", () => {
  assert.deepEqual(buildServerSettings(lookupFrom({ trustRemoteCode: false })), { models: { trust_remote_code: false } });
});

test("sg.settings passes nested tables through and the named settings win", () => {
  const out = buildServerSettings(
    lookupFrom({
      settings: { search: { fusion: "rrf", mode: "semantic" }, models: { enabled: false } },
      searchMode: "hybrid",
    }),
  );
  assert.deepEqual(out, { search: { fusion: "rrf", mode: "hybrid" }, models: { enabled: false } });
});

test("wrong types are skipped and reported, never thrown", () => {
  const problems: string[] = [];
  const out = buildServerSettings(
    lookupFrom({ model: 3, exclude: "vendor/", trustRemoteCode: "yes", searchMode: "fuzzy", settings: { bogus: {} } }),
    {},
    problems,
  );
  assert.deepEqual(out, {});
  assert.equal(problems.length, 5);
  assert.ok(problems.some((p) => p.startsWith("sg.exclude")));
  assert.ok(problems.some((p) => p.startsWith("sg.settings.bogus")));
});

test("sg.settings is deep-copied, not shared", () => {
  const settings = { index: { excludes: ["a/"] } };
  const out = buildServerSettings(lookupFrom({ settings }));
  (out.index.excludes as string[]).push("b/");
  assert.deepEqual(settings.index.excludes, ["a/"]);
});

test("serverCommand: default, list, string and bad values", () => {
  assert.deepEqual(serverCommand(lookupFrom({})), { command: "sg-lsp", args: ["--stdio"] });
  assert.deepEqual(
    serverCommand(lookupFrom({ serverCommand: ["${workspaceFolder}/.venv/bin/python", "-m", "sg_lsp", "--stdio"] }), {
      workspaceFolder: "/ws",
    }),
    { command: "/ws/.venv/bin/python", args: ["-m", "sg_lsp", "--stdio"] },
  );
  assert.deepEqual(serverCommand(lookupFrom({ serverCommand: "python -m sg_lsp --stdio" })), {
    command: "python",
    args: ["-m", "sg_lsp", "--stdio"],
  });
  const problems: string[] = [];
  assert.deepEqual(serverCommand(lookupFrom({ serverCommand: [] }), {}, problems), { command: "sg-lsp", args: ["--stdio"] });
  assert.equal(problems.length, 1);
});

test("expandVars handles ~, ${userHome} and leaves other text alone", () => {
  const vars = { workspaceFolder: "/ws", home: "/home/me" };
  assert.equal(expandVars("~", vars), "/home/me");
  assert.equal(expandVars("~/x", vars), "/home/me/x");
  assert.equal(expandVars("a~/x", vars), "a~/x");
  assert.equal(expandVars("${userHome}/m", vars), "/home/me/m");
  assert.equal(expandVars("${workspaceFolder}", {}), "${workspaceFolder}");
});
