/**
 * VS Code client for the sg language server: starts `sg-lsp --stdio`, forwards settings, and adds the
 * search, similar-functions, tune and status commands. Search logic lives in the server.
 */

import * as os from "os";
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  type FeatureState,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";

import { LatestQuery } from "./debounce";
import { pickRow, searchTitle, similarHits, similarTitle, statusBarLabel, statusSummary, toLocations, unmatchable } from "./format";
import {
  FIND_SIMILAR_COMMAND,
  findJob,
  Methods,
  type SearchHit,
  type SearchResponse,
  searchParams,
  similarCommandTarget,
  similarParams,
  type StatusResponse,
  type TuneResponse,
} from "./protocol";
import { buildServerSettings, FORWARDED_KEYS, type Lookup, serverCommand, type Vars } from "./settings";

const SEARCH_DEBOUNCE_MS = 150;
const TUNE_POLL_MS = 2000;
const STATUS_POLL_MS = 1000;
const MAX_RESTARTS = 4;
const CRASH_WINDOW_MS = 3 * 60 * 1000;

let crashes: number[] = [];

/** The status bar item: starting, indexing (polls sg/status until ready), ready with the file count, stopped. */
class StatusBar {
  private readonly item = vscode.window.createStatusBarItem("sg.status", vscode.StatusBarAlignment.Left, 0);
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor() {
    this.item.name = "sg";
    this.item.command = "sg.status";
    this.show("starting");
    this.item.show();
  }

  show(server: "starting" | "running" | "stopped" | "restarting", status?: StatusResponse): void {
    const label = statusBarLabel(status, server);
    this.item.text = label.text;
    this.item.tooltip = label.tooltip;
    this.item.command = server === "stopped" ? "sg.restart" : "sg.status";
  }

  /** Ask the server now, and keep asking while it indexes. */
  refresh(delayMs = 0): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), delayMs);
  }

  private async poll(): Promise<void> {
    this.timer = undefined;
    const c = client;
    if (!c || c.state !== State.Running || this.polling) return;
    this.polling = true;
    try {
      const status = await c.sendRequest<StatusResponse>(Methods.status, {});
      if (c !== client || c.state !== State.Running) return;
      this.show("running", status);
      if (status.state !== "ready") this.refresh(STATUS_POLL_MS);
    } catch (error) {
      output?.appendLine(`status: ${errorText(error)}`);
      if (c.state === State.Running) this.refresh(STATUS_POLL_MS * 5);
    } finally {
      this.polling = false;
    }
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.item.dispose();
  }
}

let statusBar: StatusBar | undefined;

let client: LanguageClient | undefined;
let output: vscode.OutputChannel | undefined;

/** The value the user set in any scope, or undefined when only the default applies. */
const lookup: Lookup = (key) => {
  const info = vscode.workspace.getConfiguration("sg").inspect(key);
  if (!info) return undefined;
  return info.workspaceFolderValue ?? info.workspaceValue ?? info.globalValue;
};

function configuredLimit(): number {
  const value = vscode.workspace.getConfiguration("sg").get<number>("maxResults", 50);
  return Number.isFinite(value) && value > 0 ? value : 50;
}

function vars(): Vars {
  const folder = vscode.workspace.workspaceFolders?.[0];
  return { workspaceFolder: folder?.uri.fsPath, home: os.homedir() };
}

function currentSettings(): { init: Record<string, unknown>; problems: string[] } {
  const problems: string[] = [];
  const init = buildServerSettings(lookup, vars(), problems);
  return { init, problems };
}

function folderUris(): string[] {
  return (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.toString());
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null && "message" in error) return String((error as { message: unknown }).message);
  return String(error);
}

function isCancellation(error: unknown): boolean {
  const code = (error as { code?: number } | undefined)?.code;
  return code === -32800 || error instanceof vscode.CancellationError;
}

const SIDE_BUTTON: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon("split-horizontal"), tooltip: "Open to the side" };
const PEEK_BUTTON: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon("references"), tooltip: "Show in the peek view" };

/**
 * Similar functions in rank order, like search results (symbol, short path, snippet). The peek view sorts by
 * file name, which hides the best match, so it is one button away instead of the default.
 */
async function showSimilar(c: LanguageClient, uri: vscode.Uri, position: vscode.Position, answer: unknown): Promise<void> {
  const hits = similarHits(answer);
  if (hits.length === 0) {
    await showLocationsAt(c, uri, position, answer);
    return;
  }
  const folders = folderUris();
  const qp = vscode.window.createQuickPick<HitItem>();
  qp.title = similarTitle(answer as SearchResponse);
  qp.placeholder = "Functions like the one at the cursor, most similar first. Type to filter, Enter to open.";
  qp.matchOnDescription = true;
  qp.buttons = [PEEK_BUTTON];
  qp.items = hits.map((hit) => ({ ...pickRow(hit, folders), hit, buttons: [SIDE_BUTTON] }));
  openHitsFrom(c, qp);
  qp.onDidTriggerButton(() => {
    qp.hide();
    void showLocationsAt(c, uri, position, answer);
  });
  qp.onDidHide(() => qp.dispose());
  qp.show();
}

async function showLocationsAt(c: LanguageClient, uri: vscode.Uri, position: vscode.Position, answer: unknown): Promise<void> {
  const locations = toLocations(answer).map((l) => c.protocol2CodeConverter.asLocation(l));
  if (locations.length === 0) {
    void vscode.window.showInformationMessage("sg: no similar functions found.");
    return;
  }
  await vscode.commands.executeCommand("editor.action.showReferences", uri, position, locations);
}

function createClient(): LanguageClient {
  output ??= vscode.window.createOutputChannel("sg");
  const problems: string[] = [];
  const v = vars();
  const { command, args } = serverCommand(lookup, v, problems);
  problems.push(...currentSettings().problems);
  for (const p of problems) output.appendLine(`settings: ${p}`);
  if (problems.length > 0) {
    void vscode.window.showWarningMessage(`sg: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more, see the sg output)` : ""}`);
  }

  // No `transport` here: with TransportKind.stdio the client would append a second `--stdio`.
  const serverOptions: ServerOptions = { command, args, options: { cwd: v.workspaceFolder } };

  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }],
    // A function, so that a restart after a crash sends the settings as they are now, not as they were at start.
    initializationOptions: () => currentSettings().init,
    outputChannel: output,
    errorHandler: {
      error: () => ({ action: ErrorAction.Continue }),
      // The default handler restarts silently; say so, and stop after a few crashes in a row.
      closed: () => {
        const now = Date.now();
        crashes = crashes.filter((t) => now - t < CRASH_WINDOW_MS);
        crashes.push(now);
        if (crashes.length > MAX_RESTARTS) {
          statusBar?.show("stopped");
          return {
            action: CloseAction.DoNotRestart,
            message: `sg: the language server stopped ${crashes.length} times in 3 minutes and will not be restarted. See the sg output; 'sg: Restart Server' tries again.`,
          };
        }
        statusBar?.show("restarting");
        void vscode.window.showWarningMessage("sg: the language server stopped unexpectedly; restarting it.");
        return { action: CloseAction.Restart, handled: true };
      },
    },
    middleware: {
      // The server's "Find similar functions" code action runs sg.findSimilar; show its answer in the peek view.
      executeCommand: async (cmd, cmdArgs, next) => {
        const answer = await next(cmd, cmdArgs);
        const target = cmd === FIND_SIMILAR_COMMAND ? similarCommandTarget(cmdArgs) : undefined;
        if (target && client) {
          await showSimilar(
            client,
            client.protocol2CodeConverter.asUri(target.uri),
            new vscode.Position(target.position.line, target.position.character),
            answer,
          );
        }
        return answer;
      },
      workspace: {
        // If the server pulls its settings, give it the same nested tree as initializationOptions.
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (!Array.isArray(answers)) return answers;
          return params.items.map((item, i) => (item.section === "sg" ? currentSettings().init : answers[i]));
        },
      },
    },
  };
  const c = new LanguageClient("sg", "sg", serverOptions, clientOptions);
  // The status bar item shows indexing and the tune command its own notification: without this, VS Code would
  // also show the server's $/progress as a second sg entry in the status bar.
  c.registerFeature({
    fillClientCapabilities: (capabilities) => {
      if (capabilities.window) capabilities.window.workDoneProgress = false;
    },
    initialize: () => {},
    getState: (): FeatureState => ({ kind: "static" }),
    clear: () => {},
  });
  c.onDidChangeState((e) => {
    if (e.newState === State.Running) {
      statusBar?.refresh();
    } else if (e.newState === State.Starting) {
      statusBar?.show("starting");
    }
  });
  return c;
}

async function startClient(): Promise<void> {
  client = createClient();
  statusBar?.show("starting");
  try {
    await client.start();
  } catch (error) {
    statusBar?.show("stopped");
    const { command, args } = serverCommand(lookup, vars());
    // Not awaited: activation must not wait for the user to dismiss the message.
    void vscode.window
      .showErrorMessage(
        `sg: could not start the language server (${[command, ...args].join(" ")}): ${errorText(error)}. ` +
          "Install the sg-search Python package (it provides sg-lsp) or set sg.serverCommand.",
        "Open Settings",
      )
      .then((pick) => {
        if (pick === "Open Settings") {
          void vscode.commands.executeCommand("workbench.action.openSettings", "sg.serverCommand");
        }
      });
  }
}

async function stopClient(): Promise<void> {
  const c = client;
  client = undefined;
  if (c && c.state !== State.Stopped) {
    try {
      await c.stop();
    } catch (error) {
      output?.appendLine(`stopping the server: ${errorText(error)}`);
    }
  }
  statusBar?.show("stopped");
}

/** Waits while the client is (re)starting, e.g. right after a crash, instead of failing the command. */
function settled(c: LanguageClient, timeoutMs = 60000): Promise<void> {
  if (c.state !== State.Starting) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    const sub = c.onDidChangeState((e) => {
      if (e.newState !== State.Starting) done();
    });
    function done(): void {
      clearTimeout(timer);
      sub.dispose();
      resolve();
    }
  });
}

async function readyClient(): Promise<LanguageClient | undefined> {
  if (!client) await startClient();
  if (client) await settled(client);
  if (!client || client.state !== State.Running) {
    void vscode.window.showErrorMessage("sg: the language server is not running. See the sg output, or run 'sg: Restart Server'.");
    return undefined;
  }
  return client;
}

interface HitItem extends vscode.QuickPickItem {
  hit: SearchHit;
}

/** Enter opens the chosen hit; its side button opens it beside the current editor. */
function openHitsFrom(c: LanguageClient, qp: vscode.QuickPick<HitItem>): void {
  qp.onDidAccept(() => {
    const item = qp.selectedItems[0] ?? qp.activeItems[0];
    if (!item) return;
    qp.hide();
    void openHit(c, item.hit);
  });
  qp.onDidTriggerItemButton((e) => {
    qp.hide();
    void openHit(c, e.item.hit, true);
  });
}

async function openHit(c: LanguageClient, hit: SearchHit, sideBySide = false): Promise<void> {
  const uri = c.protocol2CodeConverter.asUri(hit.uri);
  const range = c.protocol2CodeConverter.asRange(hit.range);
  const editor = await vscode.window.showTextDocument(uri, {
    selection: new vscode.Range(range.start, range.start),
    viewColumn: sideBySide ? vscode.ViewColumn.Beside : undefined,
  });
  editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
}

async function searchCommand(): Promise<void> {
  const c = await readyClient();
  if (!c) return;
  const qp = vscode.window.createQuickPick<HitItem>();
  qp.title = "sg: Search";
  qp.placeholder = "Describe the code you are looking for, e.g. \"parse the config file\"";
  qp.matchOnDescription = false;
  qp.matchOnDetail = false;

  const runner = new LatestQuery<SearchResponse>({
    delayMs: SEARCH_DEBOUNCE_MS,
    start: (query) => {
      const cts = new vscode.CancellationTokenSource();
      const promise = c.sendRequest<SearchResponse>(Methods.search, searchParams(query, { limit: configuredLimit() }), cts.token);
      return { promise, cancel: () => cts.cancel() };
    },
    deliver: (query, answer) => {
      const folders = folderUris();
      const results = Array.isArray(answer?.results) ? answer.results : [];
      // The server already ranked these: alwaysShow stops QuickPick's filter from hiding them, unmatchable()
      // stops it from re-sorting them.
      qp.items = results.map((hit) => {
        const row = pickRow(hit, folders);
        return { ...row, label: unmatchable(row.label), alwaysShow: true, hit, buttons: [SIDE_BUTTON] };
      });
      qp.title = searchTitle(query, answer);
    },
    fail: (_query, error) => {
      if (isCancellation(error)) return;
      qp.items = [];
      qp.title = `sg: ${errorText(error)}`;
    },
    busy: (busy) => {
      qp.busy = busy;
    },
  });

  qp.onDidChangeValue((value) => {
    if (value.trim() === "") {
      runner.cancel();
      qp.items = [];
      qp.title = "sg: Search";
    } else {
      runner.update(value);
    }
  });
  openHitsFrom(c, qp);
  qp.onDidHide(() => {
    runner.dispose();
    qp.dispose();
  });

  // Start from the selected text, if it is a single line.
  const editor = vscode.window.activeTextEditor;
  const selected = editor && !editor.selection.isEmpty ? editor.document.getText(editor.selection) : "";
  if (selected && !selected.includes("\n") && selected.length <= 200) {
    qp.value = selected;
    runner.update(selected);
  }
  qp.show();
}

async function findSimilarCommand(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    void vscode.window.showInformationMessage("sg: put the cursor in a function first.");
    return;
  }
  const c = await readyClient();
  if (!c) return;
  const position = editor.selection.active;
  const uri = c.code2ProtocolConverter.asUri(editor.document.uri);
  try {
    const answer = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: "sg: finding similar functions" },
      () => c.sendRequest(Methods.similar, similarParams(uri, { line: position.line, character: position.character })),
    );
    await showSimilar(c, editor.document.uri, position, answer);
  } catch (error) {
    void vscode.window.showErrorMessage(`sg: ${errorText(error)}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function tuneCommand(): Promise<void> {
  const c = await readyClient();
  if (!c) return;
  let job: TuneResponse;
  try {
    job = await c.sendRequest<TuneResponse>(Methods.tune, {});
  } catch (error) {
    void vscode.window.showWarningMessage(`sg: tuning is not available: ${errorText(error)}`);
    return;
  }
  const jobId = job?.jobId;
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: "sg: tuning the model on this workspace", cancellable: false },
    async (progress) => {
      let reported = 0;
      let unseen = 0;
      for (;;) {
        await sleep(TUNE_POLL_MS);
        if (c.state !== State.Running) return;
        let status: StatusResponse;
        try {
          status = await c.sendRequest<StatusResponse>(Methods.status, {});
        } catch (error) {
          void vscode.window.showErrorMessage(`sg: ${errorText(error)}`);
          return;
        }
        const info = findJob(status.jobs, jobId);
        if (!info) {
          // A job that is no longer listed has ended; the server reports its outcome itself.
          if (++unseen >= 3) {
            void vscode.window.showInformationMessage(`sg: tune job ${jobId} is no longer running.`);
            return;
          }
          continue;
        }
        unseen = 0;
        const increment = info.percentage !== undefined ? Math.max(0, info.percentage - reported) : undefined;
        if (info.percentage !== undefined) reported = Math.max(reported, info.percentage);
        progress.report({ message: info.message || undefined, increment });
        // The server announces the outcome itself (window/showMessage); here the notification just closes.
        if (info.state !== "running") return;
      }
    },
  );
}

async function statusCommand(): Promise<void> {
  const c = await readyClient();
  if (!c) return;
  try {
    const status = await c.sendRequest<StatusResponse>(Methods.status, {});
    output?.appendLine(`status: ${JSON.stringify(status, null, 2)}`);
    const pick = await vscode.window.showInformationMessage(statusSummary(status), "Show Details");
    if (pick === "Show Details") output?.show(true);
  } catch (error) {
    void vscode.window.showErrorMessage(`sg: ${errorText(error)}`);
  }
}

async function reindexCommand(): Promise<void> {
  const c = await readyClient();
  if (!c) return;
  try {
    await c.sendRequest(Methods.reindex, {});
    statusBar?.refresh(STATUS_POLL_MS);
  } catch (error) {
    void vscode.window.showErrorMessage(`sg: ${errorText(error)}`);
  }
}

async function restartCommand(): Promise<void> {
  crashes = [];
  await stopClient();
  await startClient();
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  statusBar = new StatusBar();
  context.subscriptions.push(
    statusBar,
    // A save re-indexes that file; show it in the status bar if it takes a while.
    vscode.workspace.onDidSaveTextDocument(() => statusBar?.refresh(STATUS_POLL_MS)),
    vscode.commands.registerCommand("sg.search", searchCommand),
    vscode.commands.registerCommand("sg.findSimilarAtCursor", findSimilarCommand),
    vscode.commands.registerCommand("sg.tune", tuneCommand),
    vscode.commands.registerCommand("sg.status", statusCommand),
    vscode.commands.registerCommand("sg.reindex", reindexCommand),
    vscode.commands.registerCommand("sg.restart", restartCommand),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("sg.serverCommand")) {
        await restartCommand();
        return;
      }
      if (client && client.state === State.Running && FORWARDED_KEYS.some((k) => e.affectsConfiguration(`sg.${k}`))) {
        const { init, problems } = currentSettings();
        for (const p of problems) output?.appendLine(`settings: ${p}`);
        await client.sendNotification(DidChangeConfigurationNotification.type, { settings: init });
        statusBar?.refresh(STATUS_POLL_MS);
      }
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(async () => {
      // The server follows added and removed folders itself; it only has to be started once there is one.
      if (!client && (vscode.workspace.workspaceFolders?.length ?? 0) > 0) await startClient();
    }),
  );
  // Without a folder there is nothing to index: start when one is opened (or when a command needs the server).
  if ((vscode.workspace.workspaceFolders?.length ?? 0) > 0) await startClient();
}

export async function deactivate(): Promise<void> {
  await stopClient();
}
