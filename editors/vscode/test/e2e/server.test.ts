/**
 * End-to-end: spawn the real sg language server and send exactly what the extension sends
 * (same initializationOptions builder, same request builders), on a small temporary workspace.
 *
 * Server command: env SG_LSP_CMD (a JSON list, or words split on spaces); default: the repo's
 * .venv python with `-m sg_lsp --stdio`.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import {
  createMessageConnection,
  type MessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
} from "vscode-jsonrpc/node";

import { toLocations } from "../../src/format";
import {
  FIND_SIMILAR_COMMAND,
  Methods,
  type SearchResponse,
  searchParams,
  similarCommandTarget,
  similarParams,
  type StatusResponse,
} from "../../src/protocol";
import { buildServerSettings } from "../../src/settings";

// out/test/e2e -> editors/vscode -> repo root
const EXTENSION_DIR = path.resolve(__dirname, "..", "..", "..");
const REPO_ROOT = path.resolve(EXTENSION_DIR, "..", "..");
const READY_TIMEOUT_MS = Number(process.env.SG_E2E_READY_TIMEOUT_MS ?? 90_000);

function serverCommandFromEnv(): { command: string; args: string[]; env: NodeJS.ProcessEnv } | { skip: string } {
  const raw = process.env.SG_LSP_CMD?.trim();
  const env = { ...process.env };
  if (raw) {
    const parts = raw.startsWith("[") ? (JSON.parse(raw) as string[]) : raw.split(/\s+/);
    return { command: parts[0], args: parts.slice(1), env };
  }
  const python = path.join(REPO_ROOT, ".venv", "bin", "python");
  if (!fs.existsSync(python)) return { skip: `no SG_LSP_CMD and no ${python}` };
  // The workspace is a temp dir, so make the repo's packages importable from there.
  env.PYTHONPATH = [REPO_ROOT, env.PYTHONPATH].filter(Boolean).join(path.delimiter);
  return { command: python, args: ["-m", "sg_lsp", "--stdio"], env };
}

const FILES: Record<string, string> = {
  "src/config.py": `"""Configuration loading."""

import tomllib


def load_config(path):
    """Read the TOML configuration file at path and return a dict of settings."""
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    data.setdefault("name", "default")
    return data


class ConfigError(Exception):
    """Raised when the configuration file is invalid."""
`,
  "src/settings_reader.py": `import json


def read_settings_file(path):
    """Read the JSON settings file at path and return a dict of settings."""
    with open(path, "r", encoding="utf-8") as handle:
        data = json.load(handle)
    data.setdefault("name", "default")
    return data
`,
  "src/net.py": `import urllib.request


def download_file(url, destination):
    """Download url over HTTP and write the bytes to destination."""
    with urllib.request.urlopen(url) as response:
        payload = response.read()
    with open(destination, "wb") as out:
        out.write(payload)
    return len(payload)
`,
  "web/format.js": `// Formatting helpers for the web page.

function formatPrice(amount, currency) {
  const rounded = Math.round(amount * 100) / 100;
  return currency + " " + rounded.toFixed(2);
}

module.exports = { formatPrice };
`,
  "docs/guide.md": `# Guide

## Installing

Run the installer and restart the editor.
`,
};

function uriOf(root: string, rel: string): string {
  return pathToFileURL(path.join(root, rel)).href;
}

function endsWithPath(uri: string, rel: string): boolean {
  return decodeURIComponent(uri).endsWith("/" + rel);
}

function lineOf(text: string, needle: string): number {
  const i = text.split("\n").findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `${needle} not found`);
  return i;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const resolved = serverCommandFromEnv();

describe("sg-lsp end to end (the extension's requests)", { skip: "skip" in resolved ? resolved.skip : false }, () => {
  let root = "";
  let proc: ChildProcess | undefined;
  let conn: MessageConnection;
  let stderr = "";
  const progress: unknown[] = [];
  const created: unknown[] = [];
  const messages: Array<{ type: number; message: string }> = [];
  // The same settings the extension would send for sg.model = "off".
  const initializationOptions = buildServerSettings((key) => (key === "model" ? "off" : undefined));
  let initResult: { capabilities?: Record<string, unknown> } = {};
  let statusAtReady: StatusResponse | undefined;

  before(async () => {
    if ("skip" in resolved) return;
    assert.deepEqual(initializationOptions, { models: { enabled: false } });
    root = fs.mkdtempSync(path.join(os.tmpdir(), "sg-vscode-e2e-"));
    for (const [rel, text] of Object.entries(FILES)) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), text);
    }
    fs.mkdirSync(path.join(root, ".git"));

    proc = spawn(resolved.command, resolved.args, { cwd: root, env: resolved.env, stdio: ["pipe", "pipe", "pipe"] });
    proc.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    conn = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
    // What vscode-languageclient answers on the extension's behalf.
    conn.onRequest("window/workDoneProgress/create", (params: unknown) => {
      created.push(params);
      return null;
    });
    conn.onRequest("client/registerCapability", () => null);
    conn.onRequest("client/unregisterCapability", () => null);
    conn.onRequest("window/showMessageRequest", () => null);
    conn.onRequest("workspace/configuration", (params: { items: Array<{ section?: string }> }) =>
      params.items.map((item) => (item.section === "sg" ? initializationOptions : null)),
    );
    conn.onNotification("$/progress", (params: unknown) => {
      progress.push(params);
    });
    conn.onNotification("window/showMessage", (params: { type: number; message: string }) => {
      messages.push(params);
    });
    conn.onNotification("window/logMessage", () => {});
    conn.listen();

    initResult = await conn.sendRequest("initialize", {
      processId: process.pid,
      clientInfo: { name: "sg-vscode-e2e", version: "0.1.0" },
      rootUri: pathToFileURL(root).href,
      rootPath: root,
      workspaceFolders: [{ uri: pathToFileURL(root).href, name: path.basename(root) }],
      initializationOptions,
      capabilities: {
        window: { workDoneProgress: true, showMessage: {} },
        workspace: {
          configuration: true,
          workspaceFolders: true,
          didChangeConfiguration: { dynamicRegistration: true },
          executeCommand: { dynamicRegistration: true },
          symbol: { dynamicRegistration: true },
        },
        textDocument: {
          synchronization: { didSave: true, dynamicRegistration: true },
          codeAction: {
            dynamicRegistration: true,
            codeActionLiteralSupport: {
              codeActionKind: { valueSet: ["", "quickfix", "refactor", "source"] },
            },
          },
        },
      },
    });
    await conn.sendNotification("initialized", {});
    const rel = "src/settings_reader.py";
    await conn.sendNotification("textDocument/didOpen", {
      textDocument: { uri: uriOf(root, rel), languageId: "python", version: 1, text: FILES[rel] },
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const status = await conn.sendRequest<StatusResponse>(Methods.status, {});
      if (status.state === "ready") {
        statusAtReady = status;
        break;
      }
      const failed = ((status.folders as Array<{ error?: string }> | undefined) ?? []).find((f) => f.error);
      if (failed) {
        throw new Error(`indexing failed: ${failed.error}\n${stderr.slice(-2000)}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`server not ready after ${READY_TIMEOUT_MS} ms: ${JSON.stringify(status)}\n${stderr.slice(-2000)}`);
      }
      await sleep(200);
    }
  });

  after(async () => {
    if (proc && proc.exitCode === null) {
      const exited = new Promise<void>((resolve) => proc!.once("exit", () => resolve()));
      try {
        await Promise.race([conn.sendRequest("shutdown"), sleep(5000)]);
        await conn.sendNotification("exit");
      } catch {
        // the server may already be gone; the kill below covers it
      }
      await Promise.race([exited, sleep(5000)]);
      if (proc.exitCode === null) proc.kill("SIGKILL");
    }
    conn?.dispose();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it("advertises what the extension relies on", () => {
    const caps = initResult.capabilities ?? {};
    assert.ok(caps.workspaceSymbolProvider, "workspace/symbol");
    assert.ok(caps.codeActionProvider, "code actions");
    const commands = (caps.executeCommandProvider as { commands?: string[] } | undefined)?.commands ?? [];
    assert.ok(commands.includes(FIND_SIMILAR_COMMAND), `executeCommandProvider lists ${FIND_SIMILAR_COMMAND}: ${JSON.stringify(commands)}`);
  });

  it("sg/status reports the indexed workspace", () => {
    const status = statusAtReady!;
    assert.equal(status.state, "ready");
    assert.equal(status.files, Object.keys(FILES).length, JSON.stringify(status));
    assert.ok(typeof status.chunks === "number" && status.chunks >= 5, JSON.stringify(status));
    assert.ok("models" in status && "jobs" in status && "skipped" in status, JSON.stringify(status));
  });

  it("indexing progress came as work-done progress", () => {
    const kinds = progress.map((p) => (p as { value?: { kind?: string } }).value?.kind);
    assert.ok(kinds.includes("begin") && kinds.includes("end"), `progress kinds: ${JSON.stringify(kinds)}`);
  });

  it("sg/search finds the function and answers in the documented shape", async () => {
    const answer = await conn.sendRequest<SearchResponse>(Methods.search, searchParams("load config", { limit: 50 }));
    assert.ok(Array.isArray(answer.results) && answer.results.length > 0, JSON.stringify(answer));
    assert.ok(typeof answer.elapsedMs === "number");
    assert.ok("model" in answer);
    const top = answer.results[0];
    assert.ok(endsWithPath(top.uri, "src/config.py"), JSON.stringify(top));
    assert.equal(top.symbol, "load_config");
    assert.equal(top.kind, "function");
    assert.equal(top.range.start.line, lineOf(FILES["src/config.py"], "def load_config"));
    assert.ok(top.range.end.line >= top.range.start.line + 5);
    assert.ok(top.snippet.includes("def load_config"), top.snippet);
    assert.ok(typeof top.score === "number" && typeof top.space === "string");
    assert.ok(answer.results.length <= 50);
  });

  it("sg/search honours limit, paths and explain", async () => {
    const one = await conn.sendRequest<SearchResponse>(Methods.search, searchParams("file", { limit: 1 }));
    assert.equal(one.results.length, 1);
    const scoped = await conn.sendRequest<SearchResponse>(Methods.search, searchParams("file", { paths: ["src/net.py"], explain: true }));
    assert.ok(scoped.results.length > 0);
    for (const hit of scoped.results) assert.ok(endsWithPath(hit.uri, "src/net.py"), hit.uri);
    assert.ok(scoped.results[0].explanation !== undefined, JSON.stringify(scoped.results[0]));
    const lexical = await conn.sendRequest<SearchResponse>(Methods.search, searchParams("formatPrice", { mode: "lexical" }));
    assert.ok(endsWithPath(lexical.results[0].uri, "web/format.js"));
  });

  it("sg/search rejects a bad request with a JSON-RPC error, not a crash", async () => {
    await assert.rejects(conn.sendRequest(Methods.search, { query: "x", mode: "telepathic" }));
    const status = await conn.sendRequest<StatusResponse>(Methods.status, {});
    assert.equal(status.state, "ready");
  });

  it("workspace/symbol finds symbols by name", async () => {
    const symbols = await conn.sendRequest<Array<{ name: string; location: { uri: string } }>>("workspace/symbol", {
      query: "download",
    });
    const hit = symbols.find((s) => s.name.includes("download_file"));
    assert.ok(hit, JSON.stringify(symbols));
    assert.ok(endsWithPath(hit.location.uri, "src/net.py"));
  });

  it("the code action runs sg.findSimilar and returns locations", async () => {
    const rel = "src/settings_reader.py";
    const uri = uriOf(root, rel);
    const line = lineOf(FILES[rel], "data = json.load");
    const position = { line, character: 8 };
    const actions = await conn.sendRequest<Array<{ title: string; command?: unknown; kind?: string }>>("textDocument/codeAction", {
      textDocument: { uri },
      range: { start: position, end: position },
      context: { diagnostics: [] },
    });
    const action = actions.find((a) => a.title.toLowerCase().includes("similar"));
    assert.ok(action, JSON.stringify(actions));
    // A Command, or a CodeAction literal carrying one.
    const command = (typeof action.command === "string" ? action : action.command) as { command: string; arguments: unknown[] };
    assert.equal(command.command, FIND_SIMILAR_COMMAND);
    // The extension's middleware must be able to tell where the peek view opens.
    const target = similarCommandTarget(command.arguments);
    assert.ok(target, `arguments the extension understands: ${JSON.stringify(command.arguments)}`);
    assert.equal(target.uri, uri);
    assert.equal(target.position.line, lineOf(FILES[rel], "def read_settings_file"));

    const answer = await conn.sendRequest("workspace/executeCommand", { command: command.command, arguments: command.arguments });
    const locations = toLocations(answer);
    assert.ok(Array.isArray(answer));
    assert.equal(locations.length, (answer as unknown[]).length, "every entry is a Location");
    // The other "read a settings file into a dict" function is the closest one (lexically, with models off).
    assert.ok(locations.length > 0 && endsWithPath(locations[0].uri, "src/config.py"), JSON.stringify(answer));
    assert.equal(locations[0].range.start.line, lineOf(FILES["src/config.py"], "def load_config"));
    for (const loc of locations) {
      const own = endsWithPath(loc.uri, rel) && loc.range.start.line <= line && loc.range.end.line >= line;
      assert.ok(!own, "the function itself is not among its similar functions");
    }
  });

  it("sg/similar answers with search-shaped results", async () => {
    const rel = "src/settings_reader.py";
    const line = lineOf(FILES[rel], "def read_settings_file");
    const answer = await conn.sendRequest<SearchResponse>(Methods.similar, similarParams(uriOf(root, rel), { line, character: 4 }));
    assert.ok(Array.isArray(answer.results) && answer.results.length > 0, JSON.stringify(answer));
    assert.equal(answer.results[0].symbol, "load_config");
    for (const hit of answer.results) {
      assert.ok(typeof hit.uri === "string" && typeof hit.score === "number");
      assert.ok(!(endsWithPath(hit.uri, rel) && hit.range.start.line === line), "not itself");
    }
  });

  it("a settings change through workspace/didChangeConfiguration is accepted", async () => {
    const changed = buildServerSettings((key) => (key === "model" ? "off" : key === "exclude" ? ["web/"] : undefined));
    await conn.sendNotification("workspace/didChangeConfiguration", { settings: changed });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let status: StatusResponse;
    for (;;) {
      status = await conn.sendRequest<StatusResponse>(Methods.status, {});
      if (status.state === "ready" && status.files === Object.keys(FILES).length - 1) break;
      if (Date.now() > deadline) break;
      await sleep(200);
    }
    assert.equal(status.state, "ready");
    assert.equal(status.files, Object.keys(FILES).length - 1, `web/ excluded after the change: ${JSON.stringify(status)}`);
    const errors = messages.filter((m) => m.type === 1);
    assert.deepEqual(errors, [], "no error messages shown to the user");
  });
});
