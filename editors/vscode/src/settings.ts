/**
 * Maps the extension's flat `sg.*` settings onto the server's nested settings tree
 * ({models, index, search}, the same keys as `.sg.toml`). No `vscode` import: unit-tested with node.
 */

export type Nested = Record<string, Record<string, unknown>>;

/** Returns the value the user set explicitly (any scope), or undefined when only the default applies. */
export type Lookup = (key: string) => unknown;

export interface Vars {
  workspaceFolder?: string;
  home?: string;
}

export const DEFAULT_SERVER_COMMAND: readonly string[] = ["sg-lsp", "--stdio"];

/** Keys under `sg.` that change what the server is told (a change is forwarded to the running server). */
export const FORWARDED_KEYS = [
  "model",
  "modelPath",
  "trustRemoteCode",
  "exclude",
  "indexDir",
  "searchMode",
  "settings",
] as const;

const SECTIONS = ["models", "index", "search"] as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.trim() !== "";
}

function stringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}

/** Expand `${workspaceFolder}`, `${userHome}` and a leading `~` the way VS Code users expect. */
export function expandVars(value: string, vars: Vars): string {
  let out = value;
  if (vars.workspaceFolder !== undefined) {
    out = out.split("${workspaceFolder}").join(vars.workspaceFolder);
  }
  if (vars.home !== undefined) {
    out = out.split("${userHome}").join(vars.home);
    if (out === "~" || out.startsWith("~/")) {
      out = vars.home + out.slice(1);
    }
  }
  return out;
}

/**
 * Build the server's initializationOptions. Only settings the user set are sent, so `.sg.toml` in the
 * workspace keeps its say over anything left at the default. Wrong types are skipped and reported.
 */
export function buildServerSettings(get: Lookup, vars: Vars = {}, problems: string[] = []): Nested {
  const out: Nested = {};
  const section = (name: (typeof SECTIONS)[number]): Record<string, unknown> => (out[name] ??= {});

  const raw = get("settings");
  if (raw !== undefined) {
    if (isRecord(raw)) {
      for (const [key, value] of Object.entries(raw)) {
        if ((SECTIONS as readonly string[]).includes(key) && isRecord(value)) {
          out[key] = JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
        } else {
          problems.push(`sg.settings.${key}: expected one of the tables ${SECTIONS.join(", ")}; ignored`);
        }
      }
    } else {
      problems.push("sg.settings: expected an object; ignored");
    }
  }

  const model = get("model");
  if (model !== undefined && model !== "") {
    if (!nonEmptyString(model)) {
      problems.push("sg.model: expected a string; ignored");
    } else if (model.trim().toLowerCase() === "off") {
      section("models").enabled = false;
    } else {
      section("models").code = expandVars(model.trim(), vars);
    }
  }

  const modelPath = get("modelPath");
  if (modelPath !== undefined && modelPath !== "") {
    if (nonEmptyString(modelPath)) section("models").model_path = expandVars(modelPath.trim(), vars);
    else problems.push("sg.modelPath: expected a string; ignored");
  }

  const trust = get("trustRemoteCode");
  if (trust !== undefined) {
    if (typeof trust === "boolean") section("models").trust_remote_code = trust;
    else problems.push("sg.trustRemoteCode: expected true or false; ignored");
  }

  const exclude = get("exclude");
  if (exclude !== undefined) {
    if (stringList(exclude)) {
      const patterns = exclude.map((p) => p.trim()).filter((p) => p !== "");
      if (patterns.length > 0) section("index").excludes = patterns;
    } else {
      problems.push("sg.exclude: expected a list of strings; ignored");
    }
  }

  const indexDir = get("indexDir");
  if (indexDir !== undefined && indexDir !== "") {
    if (nonEmptyString(indexDir)) section("index").index_dir = expandVars(indexDir.trim(), vars);
    else problems.push("sg.indexDir: expected a string; ignored");
  }

  const mode = get("searchMode");
  if (mode !== undefined && mode !== "") {
    if (mode === "hybrid" || mode === "semantic" || mode === "lexical") section("search").mode = mode;
    else problems.push("sg.searchMode: expected hybrid, semantic or lexical; ignored");
  }

  return out;
}

/** The program and arguments that start the server, from `sg.serverCommand`. */
export function serverCommand(
  get: Lookup,
  vars: Vars = {},
  problems: string[] = [],
): { command: string; args: string[] } {
  let list: readonly string[] = DEFAULT_SERVER_COMMAND;
  const value = get("serverCommand");
  if (value !== undefined) {
    if (typeof value === "string" && value.trim() !== "") {
      // A plain string is a common mistake; splitting on spaces is what the user meant in practice.
      list = value.trim().split(/\s+/);
    } else if (stringList(value) && value.length > 0 && value[0].trim() !== "") {
      list = value;
    } else {
      problems.push(`sg.serverCommand: expected a list like ["sg-lsp", "--stdio"]; using the default`);
    }
  }
  const [command, ...args] = list.map((part) => expandVars(part, vars));
  return { command, args };
}
