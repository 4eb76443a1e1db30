/**
 * The sg server's custom requests: method names, parameter builders and result shapes.
 * No `vscode` import, so the extension and the end-to-end test send exactly the same messages.
 */

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export interface Location {
  uri: string;
  range: Range;
}

export type SearchMode = "hybrid" | "semantic" | "lexical";

export interface SearchParams {
  query: string;
  limit?: number;
  paths?: string[];
  mode?: SearchMode;
  explain?: boolean;
}

export interface SearchHit {
  uri: string;
  range: Range;
  symbol: string;
  kind: string;
  score: number;
  snippet: string;
  space: string;
  explanation?: unknown;
}

export interface SearchResponse {
  results: SearchHit[];
  /** The models' names, or "lexical" when none was used. */
  model?: unknown;
  /** The mode the server actually used (it falls back to lexical without a model). */
  mode?: string;
  /** Why results may be partial, e.g. "proj: still indexing; results come from what is indexed so far". */
  notes?: string[];
  elapsedMs?: number;
}

export interface SimilarParams {
  textDocument: { uri: string };
  position: Position;
}

export interface TuneResponse {
  jobId: string | number;
}

export interface StatusResponse {
  state: "indexing" | "ready" | string;
  files?: number;
  chunks?: number;
  skipped?: number | unknown[];
  models?: unknown;
  jobs?: unknown;
  [key: string]: unknown;
}

export const Methods = {
  search: "sg/search",
  similar: "sg/similar",
  tune: "sg/tune",
  status: "sg/status",
  reindex: "sg/reindex",
} as const;

/** The server command behind the "Find similar functions" code action (arguments: [uri, position]). */
export const FIND_SIMILAR_COMMAND = "sg.findSimilar";
export const FIND_SIMILAR_TITLE = "Find similar functions";

export function searchParams(
  query: string,
  opts: { limit?: number; mode?: string; paths?: string[]; explain?: boolean } = {},
): SearchParams {
  const params: SearchParams = { query };
  if (opts.limit !== undefined && opts.limit > 0) {
    params.limit = Math.floor(opts.limit);
  }
  if (opts.mode === "hybrid" || opts.mode === "semantic" || opts.mode === "lexical") {
    params.mode = opts.mode;
  }
  if (opts.paths && opts.paths.length > 0) {
    params.paths = [...opts.paths];
  }
  if (opts.explain) {
    params.explain = true;
  }
  return params;
}

export function similarParams(uri: string, position: Position): SimilarParams {
  return { textDocument: { uri }, position: { line: position.line, character: position.character } };
}

/**
 * Where an sg.findSimilar command points, from its arguments as the server's code action carries them:
 * [uri, line] (0-based line), [uri, position], or [{textDocument: {uri}, position}].
 */
export function similarCommandTarget(args: readonly unknown[]): { uri: string; position: Position } | undefined {
  const [first, second] = args;
  if (typeof first === "string") {
    if (typeof second === "number" && Number.isInteger(second) && second >= 0) {
      return { uri: first, position: { line: second, character: 0 } };
    }
    const pos = second as Position | undefined;
    if (typeof pos === "object" && pos !== null && typeof pos.line === "number") {
      return { uri: first, position: { line: pos.line, character: typeof pos.character === "number" ? pos.character : 0 } };
    }
    return undefined;
  }
  const params = first as Partial<SimilarParams> | undefined;
  if (typeof params === "object" && params !== null && typeof params.textDocument?.uri === "string" && params.position) {
    return { uri: params.textDocument.uri, position: similarParams("", params.position).position };
  }
  return undefined;
}

export type JobState = "running" | "done" | "failed" | "cancelled" | "unknown";

export interface JobInfo {
  state: JobState;
  message: string;
  percentage?: number;
}

const DONE_WORDS = new Set(["done", "finished", "complete", "completed", "succeeded", "success", "ok"]);
const FAILED_WORDS = new Set(["failed", "error", "errored"]);
const CANCELLED_WORDS = new Set(["cancelled", "canceled", "aborted"]);

function normaliseState(raw: unknown): JobState {
  const word = String(raw ?? "").toLowerCase();
  if (DONE_WORDS.has(word)) return "done";
  if (FAILED_WORDS.has(word)) return "failed";
  if (CANCELLED_WORDS.has(word)) return "cancelled";
  if (word === "") return "unknown";
  return "running";
}

/**
 * Find a tune job in `sg/status`'s `jobs`, which may be a list of job objects or a map from id to job.
 * Returns undefined when the job is not listed.
 */
export function findJob(jobs: unknown, jobId: string | number): JobInfo | undefined {
  let job: Record<string, unknown> | undefined;
  if (Array.isArray(jobs)) {
    job = jobs.find(
      (j): j is Record<string, unknown> =>
        typeof j === "object" && j !== null && String((j as Record<string, unknown>).id ?? (j as Record<string, unknown>).jobId) === String(jobId),
    );
  } else if (typeof jobs === "object" && jobs !== null) {
    const entry = (jobs as Record<string, unknown>)[String(jobId)];
    if (typeof entry === "object" && entry !== null) job = entry as Record<string, unknown>;
    else if (typeof entry === "string") job = { state: entry };
  }
  if (!job) return undefined;
  const info: JobInfo = {
    state: normaliseState(job.state ?? job.status),
    message: String(job.error || job.message || job.detail || ""),
  };
  if (typeof job.percentage === "number" && Number.isFinite(job.percentage)) {
    info.percentage = job.percentage;
  }
  return info;
}
