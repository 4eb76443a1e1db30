// Runs the sg extension inside a real VS Code (code-server) in headless Chromium and does what a user does:
// the seven steps of editors/vscode/README.md ("Test inside VS Code"), asserting on what the page shows, with a
// screenshot after each step.
//
//   node run.mjs            (after install.sh; `npm run test:host` in editors/vscode does both and builds the .vsix)
//
// Environment: SG_LSP_CMD (JSON list or words; default: sg-lsp on PATH, by its absolute path, else
// <repo>/.venv/bin/python -m sg_lsp --stdio with PYTHONPATH=<repo>), SG_BENCH (default <repo>/../shared/bench: repo-click and cosqa corpora make the workspace),
// CHROMIUM (default /usr/bin/chromium), SG_HOST_ARTEFACTS (default ./artefacts), SG_HOST_KEEP=1 keeps the temp dir,
// SG_HOST_TRACE=1 logs the JSON-RPC traffic, SG_CODE_SERVER another code-server's out/node/entry.js.

import { spawn, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXT_ROOT = path.resolve(HERE, "../..");
const REPO_ROOT = path.resolve(EXT_ROOT, "../..");
const VSIX = path.join(EXT_ROOT, "sg-search.vsix");
// SG_CODE_SERVER: another code-server's out/node/entry.js (to try other VS Code versions; see README).
const CODE_SERVER = process.env.SG_CODE_SERVER || path.join(HERE, "node_modules/code-server/out/node/entry.js");
const BENCH = path.resolve(process.env.SG_BENCH || path.join(REPO_ROOT, "../shared/bench"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARTEFACTS = path.resolve(process.env.SG_HOST_ARTEFACTS || path.join(HERE, "artefacts"));
const ZWSP = /\u200B/g;

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
function log(msg) {
  console.log(`[${secs().padStart(6)}s] ${msg}`);
}

function fail(msg) {
  throw new Error(msg);
}

/** A failure that waiting cannot mend (the server stopped): `eventually` passes it on at once. */
class Abort extends Error {}

let watched; // the page whose status bar says whether the sg server stopped (set once the workbench is up)

/** Throws Abort, with what the extension told the user, as soon as the status bar says "sg: stopped". */
async function assertServerUp() {
  if (!watched) return;
  const text = await statusBarText(watched).catch(() => "");
  if (!/\bsg: stopped\b/.test(text)) return;
  const said = (await notifications(watched).catch(() => [])).filter((t) => /\bsg\b/.test(t));
  throw new Abort(`the sg server stopped (status bar: "sg: stopped"); the extension says: ${said.join(" | ") || "nothing"}`);
}

/** Polls `probe` until it returns a truthy value; the last value or error goes into the failure message. */
async function eventually(what, probe, { timeout = 30000, interval = 250 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    await assertServerUp();
    try {
      const value = await probe();
      if (value) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > end) fail(`timed out after ${timeout} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** The first executable `name` on PATH, as an absolute path (what `command -v` prints), or undefined. */
function onPath(name) {
  for (const dir of (process.env.PATH || "").split(path.delimiter)) {
    if (!dir) continue;
    const file = path.resolve(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The server as a user installs it: `sg-lsp` on PATH, passed by its absolute path, because code-server is a remote
 * window whose extension host rebuilds PATH from a login shell (a virtualenv's bin/ is then gone). Else the
 * repository's own .venv; SG_LSP_CMD overrides both.
 */
function serverCommand() {
  const raw = process.env.SG_LSP_CMD?.trim();
  if (raw) return { cmd: raw.startsWith("[") ? JSON.parse(raw) : raw.split(/\s+/), pythonPath: process.env.PYTHONPATH };
  const installed = onPath("sg-lsp");
  if (installed) return { cmd: [installed, "--stdio"], pythonPath: process.env.PYTHONPATH };
  const python = path.join(REPO_ROOT, ".venv/bin/python");
  if (!fs.existsSync(python)) {
    fail(`sg-lsp is not on PATH and there is no ${python}: install sg (pip install -e '${REPO_ROOT}[ann]') or set SG_LSP_CMD`);
  }
  return { cmd: [python, "-m", "sg_lsp", "--stdio"], pythonPath: [REPO_ROOT, process.env.PYTHONPATH].filter(Boolean).join(":") };
}

/**
 * A workspace from real code: click's package source (functions deep in big files) and the CoSQA functions.
 * Models are off in it (folder settings), so indexing 6,000 files takes seconds, not minutes.
 */
function makeWorkspace(root) {
  const ws = path.join(root, "workspace");
  const click = path.join(BENCH, "repo-click/corpus/click");
  const cosqa = path.join(BENCH, "cosqa/corpus");
  for (const dir of [click, cosqa]) if (!fs.existsSync(dir)) fail(`corpus not found: ${dir} (set SG_BENCH)`);
  fs.cpSync(click, path.join(ws, "click"), { recursive: true });
  fs.cpSync(cosqa, path.join(ws, "cosqa"), { recursive: true });
  fs.writeFileSync(path.join(ws, ".gitignore"), ".sg/\n.vscode/\n");
  fs.mkdirSync(path.join(ws, ".vscode"));
  fs.writeFileSync(path.join(ws, ".vscode/settings.json"), JSON.stringify({ "sg.model": "off" }, null, 2));
  return ws;
}

// Step 7: the first 300 CoSQA functions (embedded in well under a minute) and a CoSQA dev query that BM25 alone
// does not rank in the top 10 there, while hybrid search with the default model ranks its function first.
const MODEL_SLICE = 300;
const MODEL_QUERY = { query: "code to create folders in python", expect: "00054_mkdir.py" };

/** A second workspace, with the default model (no sg settings): the first CoSQA files and the expected one. */
function makeModelWorkspace(root) {
  const ws = path.join(root, "model-workspace");
  const cosqa = path.join(BENCH, "cosqa/corpus");
  fs.mkdirSync(ws, { recursive: true });
  const names = fs.readdirSync(cosqa).sort().slice(0, MODEL_SLICE);
  if (!names.includes(MODEL_QUERY.expect)) names.push(MODEL_QUERY.expect);
  for (const name of names) fs.copyFileSync(path.join(cosqa, name), path.join(ws, name));
  fs.writeFileSync(path.join(ws, ".gitignore"), ".sg/\n");
  return ws;
}

function writeUserSettings(userData, cmd) {
  const dir = path.join(userData, "User");
  fs.mkdirSync(dir, { recursive: true });
  // code-server is a remote window: settings with machine scope (sg.serverCommand, sg.model, ...) belong in the
  // Remote tab (<user-data>/Machine/settings.json). VS Code applies them from User settings at start-up but drops
  // them at the next settings change, so the server would lose them when step 5 changes sg.searchMode.
  const machine = path.join(userData, "Machine");
  fs.mkdirSync(machine, { recursive: true });
  // No sg.model here: the default model is what a user gets (step 7); the big workspace turns it off in its folder.
  fs.writeFileSync(path.join(machine, "settings.json"), JSON.stringify({ "sg.serverCommand": cmd }, null, 2));
  const settings = {
    "extensions.autoUpdate": false,
    "extensions.autoCheckUpdates": false,
    "extensions.ignoreRecommendations": true,
    "update.mode": "none",
    "telemetry.telemetryLevel": "off",
    "workbench.enableExperiments": false,
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "security.workspace.trust.enabled": false,
    "git.enabled": false,
    "editor.acceptSuggestionOnEnter": "off",
    "editor.suggestOnTriggerCharacters": false,
    "editor.quickSuggestions": { other: false, comments: false, strings: false },
    "files.autoSave": "off",
    "window.restoreWindows": "none",
  };
  // SG_HOST_TRACE=1: the JSON-RPC traffic goes to the sg output channel (artefacts/logs/**/N-sg.log).
  if (process.env.SG_HOST_TRACE) settings["sg.trace.server"] = "verbose";
  fs.writeFileSync(path.join(dir, "settings.json"), JSON.stringify(settings, null, 2));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

/** Child pids of `pid`, recursively, from /proc (only processes this harness started). */
function descendants(pid) {
  const children = new Map();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  const out = [];
  const stack = [pid];
  while (stack.length) {
    for (const c of children.get(stack.pop()) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

function serverPids(codeServerPid) {
  return descendants(codeServerPid).filter((p) => /sg_lsp|sg-lsp/.test(cmdline(p)) && !/\bsh -c\b/.test(cmdline(p)));
}

// ---------------------------------------------------------------- page helpers

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = path.join(ARTEFACTS, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file });
  log(`screenshot ${path.relative(process.cwd(), file)}`);
}

async function statusBarText(page) {
  return (await page.locator(".statusbar").innerText()).replace(/\s+/g, " ");
}

/** The status bar entries that speak for sg (its own item, and any progress VS Code shows for the server). */
async function sgStatusItems(page) {
  const items = page.locator(".statusbar .statusbar-item");
  const n = await items.count();
  const out = [];
  for (let i = 0; i < n; i++) {
    const text = (await items.nth(i).innerText().catch(() => "")).replace(/\s+/g, " ").trim();
    if (/\bsg\b/.test(text)) out.push(text);
  }
  return out;
}

async function runCommand(page, title) {
  await page.keyboard.press("Escape");
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget .quick-input-box input");
  await input.waitFor({ state: "visible" });
  await input.fill(`>${title}`);
  // The palette sorts fuzzily: pick the row whose label is the title, wherever it is.
  const row = await eventually(`"${title}" in the command palette`, async () => {
    const rows = page.locator(".quick-input-widget .quick-input-list .monaco-list-row");
    const n = await rows.count();
    for (let i = 0; i < n; i++) {
      const label = (await rows.nth(i).locator(".label-name").first().innerText()).replace(/\s+/g, " ").trim();
      if (label === title) return rows.nth(i);
    }
    return false;
  });
  await row.click();
}

async function quickPickRows(page) {
  const rows = page.locator(".quick-input-widget .quick-input-list .monaco-list-row");
  const n = await rows.count();
  const out = [];
  for (let i = 0; i < n; i++) out.push((await rows.nth(i).innerText()).replace(ZWSP, "").replace(/\s+/g, " ").trim());
  return out;
}

async function quickPickTitle(page) {
  return (await page.locator(".quick-input-widget .quick-input-title").innerText()).replace(ZWSP, "");
}

/** sg: Search, type the query, wait for a result title; returns { title, rows }. */
async function search(page, query, expectFirst, titleOk = () => true) {
  await runCommand(page, "sg: Search");
  const input = page.locator(".quick-input-widget .quick-input-box input");
  await eventually("the sg: Search input", async () => (await quickPickTitle(page)).startsWith("sg"));
  await input.fill(query);
  let attempt = 0;
  let seen = "nothing";
  return eventually(`"${expectFirst}" first for "${query}"`, async () => {
    const title = await quickPickTitle(page);
    const rows = await quickPickRows(page);
    seen = `${title} | first: ${rows[0] ?? "none"}`;
    if (rows.length > 0 && rows[0].includes(expectFirst) && /results?/.test(title) && titleOk(title)) return { title, rows };
    // A settings change reaches the server asynchronously: ask again, as a user would by retyping.
    if (++attempt % 8 === 0) await input.fill(attempt % 16 === 0 ? query : `${query} `);
    return false;
  }).catch((error) => {
    if (error instanceof Abort) throw error;
    fail(`${error.message}; the list showed: ${seen}`);
  });
}

async function activeTab(page) {
  return (await page.locator(".tabs-container .tab.active").innerText()).trim();
}

async function cursorPosition(page) {
  const text = await statusBarText(page);
  const m = /Ln (\d+), Col (\d+)/.exec(text);
  return m ? { line: Number(m[1]), col: Number(m[2]) } : undefined;
}

async function goToLine(page, line) {
  await page.keyboard.press("Control+G");
  const input = page.locator(".quick-input-widget .quick-input-box input");
  await input.waitFor({ state: "visible" });
  await input.fill(`:${line}`);
  await page.keyboard.press("Enter");
  await eventually(`the cursor on line ${line}`, async () => (await cursorPosition(page))?.line === line);
}

async function notifications(page) {
  const toasts = page.locator(".notifications-toasts .notification-toast");
  const n = await toasts.count();
  const out = [];
  for (let i = 0; i < n; i++) out.push((await toasts.nth(i).innerText()).replace(/\s+/g, " "));
  return out;
}

// ---------------------------------------------------------------- the scenario

async function scenario(page, codeServer, ws) {
  // 1. Open the workspace: the status bar shows sg indexing, then ready.
  await page.locator(".monaco-workbench").waitFor({ state: "visible", timeout: 60000 });
  watched = page;
  const indexing = await eventually("sg indexing in the status bar", async () => {
    const text = await statusBarText(page);
    return /sg.*index/i.test(text) ? text : false;
  }, { timeout: 60000, interval: 100 });
  log(`status bar while indexing: ${indexing}`);
  await oneSgItem(page, "while indexing");
  await screenshot(page, "indexing");
  const ready = await eventually("sg ready in the status bar", async () => {
    const text = await statusBarText(page);
    return /sg: [\d,]+ files/.test(text) && !/index/i.test(text) ? text : false;
  }, { timeout: 90000 });
  log(`status bar when ready: ${ready}`);
  await screenshot(page, "ready");

  // 2. sg: Search with a natural-language query: the expected function first; choosing it opens it at its line.
  const found = await search(page, "push a new context onto the stack", "push_context");
  log(`search: ${found.title} | first: ${found.rows[0]}`);
  // Models are off here: the title must not claim a hybrid search.
  if (!/· lexical \(no model\)/.test(found.title)) fail(`title does not say lexical (no model): ${found.title}`);
  if (!found.rows[0].includes("click/globals.py")) fail(`first row does not show click/globals.py: ${found.rows[0]}`);
  await screenshot(page, "search");
  await page.keyboard.press("Enter");
  await eventually("globals.py to open", async () => (await activeTab(page)).includes("globals.py"));
  await eventually("the cursor on push_context (line 44)", async () => (await cursorPosition(page))?.line === 44);
  await screenshot(page, "search-opened");

  // 3. Find Similar Functions at a function: the peek view lists a known near-duplicate.
  // Opened the way a user would here (Quick Open needs ripgrep, which code-server's npm package lacks offline).
  await search(page, "prompts for confirmation yes no question", "cosqa/04634_confirm.py");
  await page.keyboard.press("Enter");
  await eventually("04634_confirm.py to open", async () => (await activeTab(page)).includes("04634_confirm.py"));
  await goToLine(page, 3);
  await runCommand(page, "sg: Find Similar Functions");
  // Ranked like search results; ask_bool and _user_yes_no_query are the near-duplicates (checked with `sg similar`).
  const similar = await eventually("the similar-functions list with ask_bool first", async () => {
    const title = await quickPickTitle(page).catch(() => "");
    const rows = await quickPickRows(page);
    return /similar function/.test(title) && rows[0]?.includes("ask_bool") && rows.some((r) => r.includes("_user_yes_no_query"))
      ? { title, rows } : false;
  });
  log(`similar: ${similar.title} | ${similar.rows.slice(0, 2).join(" | ")}`);
  await screenshot(page, "similar");
  await page.keyboard.press("Escape");

  // 4. Edit a file, save, search for the new function's name: found.
  await search(page, "push a new context onto the stack", "push_context");
  await page.keyboard.press("Enter");
  await eventually("globals.py to be active", async () => (await activeTab(page)).includes("globals.py"));
  await page.keyboard.press("Control+End");
  await page.keyboard.press("Enter");
  await page.keyboard.press("Enter");
  await page.keyboard.type("def zanzibar_quota_tally(rows):\n", { delay: 5 });
  await page.keyboard.type("return sum(r.quota for r in rows)\n", { delay: 5 });
  await page.keyboard.press("Control+S");
  await eventually("the file to be saved", async () => !(await page.locator(".tabs-container .tab.active.dirty").count()));
  const edited = await search(page, "zanzibar quota tally", "zanzibar_quota_tally");
  log(`after edit: ${edited.title} | first: ${edited.rows[0]}`);
  await screenshot(page, "edit-found");
  await page.keyboard.press("Escape");

  // 5. Settings changed in the UI (limit, mode) reach the server: visible in the results.
  await runCommand(page, "Preferences: Open User Settings");
  const searchBox = page.locator(".settings-editor .settings-header .monaco-editor").first();
  await searchBox.waitFor({ state: "visible" });
  // The settings search box is a small Monaco editor: replace its text by typing, as a user does.
  const findSetting = async (text) => {
    await searchBox.click();
    await page.keyboard.press("Control+A");
    await page.keyboard.type(text);
  };
  await findSetting("sg.maxResults");
  const limitInput = page.locator(".setting-item-contents", { hasText: "Max Results" }).locator("input").first();
  await limitInput.waitFor({ state: "visible" });
  await limitInput.fill("3");
  await limitInput.press("Tab");
  await findSetting("sg.searchMode");
  const modeSelect = page.locator(".setting-item-contents", { hasText: "Search Mode" }).locator("select").first();
  await modeSelect.waitFor({ state: "attached" });
  await modeSelect.selectOption("lexical");
  await screenshot(page, "settings");
  const limited = await search(page, "push a new context onto the stack", "push_context",
    (title) => /sg: 3 results · lexical ·/.test(title));
  log(`after settings: ${limited.title} | ${limited.rows.length} rows`);
  if (limited.rows.length !== 3 || !/sg: 3 results/.test(limited.title)) fail(`maxResults 3 not applied: ${limited.title}, ${limited.rows.length} rows`);
  await screenshot(page, "settings-applied");
  await page.keyboard.press("Escape");

  // 6. Kill the server: the extension says so and restarts it; search works again.
  const before = serverPids(codeServer.pid);
  if (before.length === 0) fail("no sg_lsp process under code-server");
  log(`killing sg server ${before.join(", ")}`);
  for (const pid of before) process.kill(pid, "SIGKILL");
  const report = await eventually("the extension to report the stopped server", async () => {
    const texts = (await notifications(page)).join(" | ") + " | " + (await statusBarText(page));
    return /sg.*(stopped|crashed|restart)/i.test(texts) ? texts : false;
  });
  log(`reported: ${report}`);
  await screenshot(page, "killed");
  await eventually("a new sg server process", async () => {
    const now = serverPids(codeServer.pid);
    return now.length > 0 && now.every((p) => !before.includes(p));
  });
  await oneSgItem(page, "after the restart");
  const again = await search(page, "push a new context onto the stack", "push_context");
  log(`after restart: ${again.title}`);
  await screenshot(page, "restarted-search");
  await page.keyboard.press("Escape");
}

/** The status bar shows one sg item, sampled for a second (the server's progress must not add a second one). */
async function oneSgItem(page, when) {
  for (let i = 0; i < 10; i++) {
    const items = await sgStatusItems(page);
    if (items.length > 1) fail(`${items.length} sg items in the status bar ${when}: ${items.join(" | ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** 7. A second workspace with the default model, as a user gets it: a search only the model can answer. */
async function modelScenario(page, ws, userData, cmd) {
  watched = undefined; // the first window's status bar is gone
  writeUserSettings(userData, cmd); // step 5's Max Results and Search Mode (lexical) were user settings: undo them
  await page.goto(`${new URL(page.url()).origin}/?folder=${encodeURIComponent(ws)}`);
  await page.locator(".monaco-workbench").waitFor({ state: "visible", timeout: 60000 });
  watched = page;
  const ready = await eventually("sg ready with the default model", async () => {
    const text = await statusBarText(page);
    return /sg: [\d,]+ files/.test(text) && !/index/i.test(text) ? text : false;
  }, { timeout: 300000, interval: 500 });
  log(`status bar with the default model: ${ready}`);
  const found = await search(page, MODEL_QUERY.query, MODEL_QUERY.expect,
    (title) => /· hybrid ·/.test(title) && !/no model|still indexing/.test(title));
  log(`model search: ${found.title} | first: ${found.rows[0]}`);
  await screenshot(page, "model-search");
  await page.keyboard.press("Escape");
}

async function main() {
  if (!fs.existsSync(CODE_SERVER)) fail(`code-server is not installed: run ${path.join(HERE, "install.sh")}`);
  if (!fs.existsSync(VSIX)) fail(`no ${VSIX}: run npm run package in ${EXT_ROOT}`);
  if (!fs.existsSync(CHROMIUM)) fail(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  fs.rmSync(ARTEFACTS, { recursive: true, force: true });
  fs.mkdirSync(ARTEFACTS, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sg-host-"));
  const userData = path.join(tmp, "user-data");
  const extensions = path.join(tmp, "extensions");
  const config = path.join(tmp, "config.yaml");
  fs.writeFileSync(config, "auth: none\ncert: false\n");
  const { cmd, pythonPath } = serverCommand();
  log(`sg server: ${cmd.join(" ")}`);
  const ws = makeWorkspace(tmp);
  const modelWs = makeModelWorkspace(tmp);
  writeUserSettings(userData, cmd);
  const env = { ...process.env, PYTHONPATH: pythonPath ?? "", SG_HOST_TEST: "1" };
  const csArgs = ["--config", config, "--user-data-dir", userData, "--extensions-dir", extensions];
  log(`code-server ${execFileSync("node", [CODE_SERVER, "--config", config, "--version"], { encoding: "utf8" }).trim()}`);
  execFileSync("node", [CODE_SERVER, ...csArgs, "--install-extension", VSIX], { stdio: "inherit", env });
  const port = await freePort();
  const csLog = fs.openSync(path.join(ARTEFACTS, "code-server.log"), "w");
  const codeServer = spawn("node", [CODE_SERVER, ...csArgs, "--auth", "none", "--bind-addr", `127.0.0.1:${port}`,
    "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", "--disable-getting-started-override",
    "--ignore-last-opened", ws], { env, stdio: ["ignore", csLog, csLog] });
  let browser;
  try {
    await eventually("code-server to listen", async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, { timeout: 60000 });
    log(`code-server on 127.0.0.1:${port}, workspace ${ws}`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on("pageerror", (e) => log(`page error: ${e.message}`));
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`);
    try {
      await scenario(page, codeServer, ws);
      await modelScenario(page, modelWs, userData, cmd);
    } catch (error) {
      await page.screenshot({ path: path.join(ARTEFACTS, "failure.png") }).catch(() => {});
      throw error;
    }
    log(`PASS: seven steps in ${secs()} s`);
  } finally {
    // The extension's output channel and the server's stderr end up in the window logs: keep them with the pictures.
    const logs = path.join(userData, "logs");
    if (fs.existsSync(logs)) fs.cpSync(logs, path.join(ARTEFACTS, "logs"), { recursive: true });
    await browser?.close().catch(() => {});
    for (const pid of descendants(codeServer.pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    codeServer.kill("SIGKILL");
    if (!process.env.SG_HOST_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`FAIL after ${secs()} s: ${error.stack || error}`);
  process.exit(1);
});
