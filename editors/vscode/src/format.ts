/**
 * Turns server answers into what the editor shows: QuickPick rows, locations, a status summary.
 * No `vscode` import: unit-tested with node.
 */

import type { Location, Range, SearchHit, StatusResponse } from "./protocol";

export interface PickRow {
  label: string;
  description: string;
  detail: string;
}

const KIND_ICONS: Record<string, string> = {
  function: "symbol-function",
  method: "symbol-method",
  class: "symbol-class",
  struct: "symbol-struct",
  interface: "symbol-interface",
  enum: "symbol-enum",
  module: "symbol-module",
  section: "symbol-key",
  page: "file-pdf",
  window: "symbol-snippet",
};

export function kindIcon(kind: string): string {
  return KIND_ICONS[kind] ?? "symbol-misc";
}

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** Folder URIs compare without a trailing slash; Windows drive letters are case-insensitive. */
function normaliseFolder(uri: string): string {
  return uri.replace(/\/+$/, "").replace(/^file:\/\/\/([A-Za-z])(:|%3A)/, (_m, d: string) => `file:///${d.toLowerCase()}:`);
}

/**
 * A short path for display: relative to the workspace folder that holds `uri` (prefixed with the folder's
 * name when there are several folders), else the decoded file path.
 */
export function displayPath(uri: string, folderUris: readonly string[]): string {
  const target = normaliseFolder(uri);
  for (const folder of folderUris) {
    const base = normaliseFolder(folder);
    if (target.startsWith(base + "/")) {
      const rel = decodePath(target.slice(base.length + 1));
      if (folderUris.length > 1) {
        const name = decodePath(base.slice(base.lastIndexOf("/") + 1));
        return `${name}/${rel}`;
      }
      return rel;
    }
  }
  if (uri.startsWith("file://")) {
    return decodePath(uri.slice("file://".length)).replace(/^\/([A-Za-z]:)/, "$1");
  }
  return uri;
}

/** Docstring quotes and comment markers: noise on a one-line preview. */
const DOC_MARKERS = /[rRbBuU]?("""|\'\'\')|\/\*\*?|\*\/|^\s*\*(?=\s|$)|^\s*\/\/\/?|^\s*#+(?=\s|$)/g;

/**
 * One line from a snippet: the first lines that say something, whitespace collapsed, docstring quotes and
 * comment markers dropped (so `def f(x): """Add one."""` reads `def f(x): Add one.`).
 */
export function compactSnippet(snippet: string, maxChars = 160): string {
  const lines = snippet
    .split(/\r?\n/)
    .map((l) => l.replace(DOC_MARKERS, " ").trim())
    .filter((l) => l !== "");
  let text = lines.join(" ").replace(/\s+/g, " ");
  if (text.length > maxChars) {
    text = text.slice(0, maxChars - 1).trimEnd() + "…";
  }
  return text;
}

function baseName(path: string): string {
  const i = path.lastIndexOf("/");
  return i >= 0 ? path.slice(i + 1) : path;
}

const ZWSP = "\u200B";

/**
 * VS Code's QuickPick re-sorts items whose label matches the typed text, and the stable API has no way to turn
 * that off (microsoft/vscode#73904). A zero-width space between the characters keeps the label from matching,
 * so the server's ranking stays as it is. `$(icon)` prefixes are kept intact.
 */
export function unmatchable(label: string): string {
  const m = /^(\$\([\w-]+\)\s*)?(.*)$/s.exec(label);
  const icon = m?.[1] ?? "";
  const text = m?.[2] ?? label;
  return icon + Array.from(text).join(ZWSP);
}

/** Scores are only comparable within one answer; lexical-only ones can be tiny, so keep two significant digits. */
export function formatScore(score: number): string {
  if (score === 0) return "0";
  if (Math.abs(score) >= 0.01) return score.toFixed(2);
  return score.toExponential(1);
}

export function pickRow(hit: SearchHit, folderUris: readonly string[]): PickRow {
  const path = displayPath(hit.uri, folderUris);
  const line = (hit.range?.start?.line ?? 0) + 1;
  const name = hit.symbol && hit.symbol.trim() !== "" ? hit.symbol : `${baseName(path)}:${line}`;
  // No score: the list is already in rank order, and a bare number (1.02, 0.0003) means nothing to a reader.
  return {
    label: `$(${kindIcon(hit.kind)}) ${name}`,
    description: `${path}:${line}`,
    detail: compactSnippet(hit.snippet ?? ""),
  };
}

function isRange(value: unknown): value is Range {
  const r = value as Range;
  return (
    typeof r === "object" && r !== null &&
    typeof r.start?.line === "number" && typeof r.start?.character === "number" &&
    typeof r.end?.line === "number" && typeof r.end?.character === "number"
  );
}

/**
 * Locations from any answer the server may give for "similar": Location[], LocationLink[],
 * or a search-shaped {results: [...]}.
 */
export function toLocations(answer: unknown): Location[] {
  const list = Array.isArray(answer)
    ? answer
    : typeof answer === "object" && answer !== null && Array.isArray((answer as { results?: unknown }).results)
      ? (answer as { results: unknown[] }).results
      : [];
  const out: Location[] = [];
  for (const item of list) {
    if (typeof item !== "object" || item === null) continue;
    const o = item as Record<string, unknown>;
    if (typeof o.uri === "string" && isRange(o.range)) {
      out.push({ uri: o.uri, range: o.range });
    } else if (typeof o.targetUri === "string") {
      const range = isRange(o.targetSelectionRange) ? o.targetSelectionRange : o.targetRange;
      if (isRange(range)) out.push({ uri: o.targetUri, range });
    }
  }
  return out;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function describeModels(models: unknown): string {
  if (models === undefined || models === null) return "";
  if (Array.isArray(models)) {
    const parts = models.map((m) => {
      if (typeof m !== "object" || m === null) return String(m);
      const r = m as Record<string, unknown>;
      const route = r.route ?? r.space ?? "";
      const name = r.model || r.name || "lexical only";
      return route ? `${route}=${name}` : String(name);
    });
    return parts.join(", ");
  }
  if (typeof models === "object") {
    return Object.entries(models as Record<string, unknown>)
      .map(([k, v]) => `${k}=${typeof v === "object" && v !== null ? ((v as Record<string, unknown>).model ?? JSON.stringify(v)) : String(v)}`)
      .join(", ");
  }
  return String(models);
}

function countOf(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (Array.isArray(value)) return value.length;
  return undefined;
}

/** A one-line summary for a notification, e.g. "sg is ready: 12 files, 80 chunks, 1 skipped. Models: …". */
export function statusSummary(status: StatusResponse): string {
  const parts: string[] = [];
  const files = countOf(status.files);
  const chunks = countOf(status.chunks);
  const skipped = countOf(status.skipped);
  if (files !== undefined) parts.push(plural(files, "file"));
  if (chunks !== undefined) parts.push(plural(chunks, "chunk"));
  if (skipped !== undefined) parts.push(`${skipped} skipped`);
  let text = `sg is ${status.state ?? "unknown"}`;
  if (parts.length > 0) text += `: ${parts.join(", ")}`;
  text += ".";
  const models = describeModels(status.models);
  if (models) text += ` Models: ${models}.`;
  const jobs = countOf(status.jobs) ?? (typeof status.jobs === "object" && status.jobs !== null ? Object.keys(status.jobs).length : 0);
  if (jobs > 0) text += ` ${plural(jobs, "job")}.`;
  return text;
}

/** Thousands separators, the same on every locale (the status bar is read at a glance). */
function count(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export interface StatusBarLabel {
  text: string;
  tooltip: string;
}

/** The status bar item: what sg is doing now, in a few words; details in the tooltip. */
export function statusBarLabel(status: StatusResponse | undefined, server: "starting" | "running" | "stopped" | "restarting"): StatusBarLabel {
  if (server === "starting") return { text: "$(sync~spin) sg: starting", tooltip: "sg: starting the language server" };
  if (server === "restarting") {
    return { text: "$(warning) sg: restarting", tooltip: "sg: the language server stopped unexpectedly and is being restarted" };
  }
  if (server === "stopped" || !status) {
    return { text: "$(error) sg: stopped", tooltip: "sg: the language server is not running. Click to restart it." };
  }
  const folders = Array.isArray(status.folders) ? (status.folders as Record<string, unknown>[]) : [];
  const failed = folders.find((f) => f.state === "error");
  const files = countOf(status.files) ?? 0;
  if (status.state === "indexing") {
    const sofar = files > 0 ? ` (${count(files)} files so far)` : "";
    return {
      text: `$(sync~spin) sg: indexing${sofar}`,
      tooltip: "sg is indexing the workspace; searches meanwhile use what is indexed so far.",
    };
  }
  if (failed) {
    return { text: "$(warning) sg: index error", tooltip: `sg: ${String(failed.name ?? "")}: ${String(failed.error ?? "error")}` };
  }
  return { text: `$(search) sg: ${count(files)} files`, tooltip: `${statusSummary(status)}\nClick for details.` };
}

/**
 * The mode as the user should read it: the server answers "hybrid" even when no model is loaded (its `model`
 * is then "lexical"), which would suggest a semantic search that did not happen.
 */
export function modeLabel(answer: { mode?: unknown; model?: unknown } | undefined): string {
  const mode = typeof answer?.mode === "string" ? answer.mode : "";
  if (mode && mode !== "lexical" && answer?.model === "lexical") return "lexical (no model)";
  return mode;
}

/** The QuickPick title after a search, e.g. "sg: 3 results · lexical · 27 ms · still indexing". */
export function searchTitle(
  query: string,
  answer: { results?: unknown[]; mode?: unknown; model?: unknown; elapsedMs?: unknown; notes?: unknown } | undefined,
): string {
  const n = Array.isArray(answer?.results) ? answer.results.length : 0;
  const parts = [n > 0 ? `sg: ${plural(n, "result")}` : `sg: nothing found for "${query}"`];
  const mode = modeLabel(answer);
  if (mode) parts.push(mode);
  if (typeof answer?.elapsedMs === "number") parts.push(`${Math.round(answer.elapsedMs)} ms`);
  const notes = Array.isArray(answer?.notes) ? answer.notes.map(String) : [];
  if (notes.some((t) => t.includes("still indexing"))) parts.push("still indexing");
  return parts.join(" · ");
}

/** Hits from a "similar" answer that can be listed like search results ({results: [...]}); [] for bare locations. */
export function similarHits(answer: unknown): SearchHit[] {
  const results = typeof answer === "object" && answer !== null ? (answer as { results?: unknown }).results : undefined;
  if (!Array.isArray(results)) return [];
  return results.filter(
    (h): h is SearchHit => typeof h === "object" && h !== null && typeof (h as SearchHit).uri === "string" && isRange((h as SearchHit).range),
  );
}

/** The title of the similar-functions list, e.g. "sg: 10 similar functions · lexical". */
export function similarTitle(answer: { results?: unknown[]; mode?: unknown; model?: unknown } | undefined): string {
  const n = Array.isArray(answer?.results) ? answer.results.length : 0;
  const parts = [`sg: ${n} similar function${n === 1 ? "" : "s"}`];
  const mode = modeLabel(answer);
  if (mode) parts.push(mode);
  return parts.join(" · ");
}
