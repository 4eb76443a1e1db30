--- sg: semantic code search in Neovim through the sg language server (`sg-lsp --stdio`).
--- Results go to the quickfix list; all search logic lives in the server.

local M = {}

local NAME = "sg"
local FIND_SIMILAR = "sg.findSimilar"
local has_011 = vim.fn.has("nvim-0.11") == 1

local defaults = {
  -- Command that starts the server: program then arguments.
  cmd = { "sg-lsp", "--stdio" },
  -- Server settings, same nested keys as .sg.toml: { models = {...}, index = {...}, search = {...} }.
  settings = {},
  -- The first group with a match wins, so a .sg.toml or .git above a nested pyproject.toml decides the root.
  root_markers = {
    { ".sg.toml", ".sgignore" },
    { ".git", ".hg", ".jj" },
    { "pyproject.toml", "package.json", "Cargo.toml", "go.mod", "setup.py", "pom.xml" },
  },
  -- nil: attach to every filetype (search and similar work in any file the server indexes).
  filetypes = nil,
  -- How many results :SgSearch asks for.
  limit = 50,
  -- Open the quickfix window after :SgSearch / :SgSimilar.
  open_quickfix = true,
  -- Echo indexing progress ($/progress) in the command line.
  progress = true,
  -- "auto": vim.lsp.config + vim.lsp.enable on 0.11+, vim.lsp.start on 0.10. "start" forces the latter.
  method = "auto",
}

M.config = vim.deepcopy(defaults)

local function notify(msg, level)
  vim.notify("sg: " .. msg, level or vim.log.levels.INFO)
end

-- An empty Lua table encodes as a JSON list; the server wants an object.
local function as_object(tbl)
  if type(tbl) ~= "table" or next(tbl) == nil then
    return vim.empty_dict()
  end
  return tbl
end

--- The project root for a buffer: the first marker group that matches, walking up from the file.
function M.find_root(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" or vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  for _, group in ipairs(M.config.root_markers) do
    local root = vim.fs.root(bufnr, group)
    if root then
      return root
    end
  end
  return nil
end

local function request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function request_sync(client, method, params, timeout_ms, bufnr)
  if has_011 then
    return client:request_sync(method, params, timeout_ms, bufnr)
  end
  return client.request_sync(method, params, timeout_ms, bufnr)
end

local function get_clients(filter)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients(filter)
  end
  return vim.lsp.get_active_clients(filter)
end

--- The sg client for a buffer (default: current), else any running sg client.
function M.client(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local attached = get_clients({ name = NAME, bufnr = bufnr })
  if attached[1] then
    return attached[1]
  end
  return get_clients({ name = NAME })[1]
end

local function require_client(bufnr)
  local client = M.client(bufnr)
  if not client then
    notify("no sg language server is running. Open a file inside a project (with .git, pyproject.toml or .sg.toml), "
      .. "and check that `" .. tostring(M.config.cmd[1]) .. "` is installed (:checkhealth sg).", vim.log.levels.WARN)
  end
  return client
end

local function str_byteindex(line, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  if ok then
    return col
  end
  -- Neovim 0.10 signature: (str, index, use_utf16)
  ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16")
  return ok and col or math.min(character, #line)
end

local function line_text(fname, lnum)
  local bufnr = vim.fn.bufnr(fname)
  if bufnr ~= -1 and vim.api.nvim_buf_is_loaded(bufnr) then
    return vim.api.nvim_buf_get_lines(bufnr, lnum - 1, lnum, false)[1] or ""
  end
  local ok, lines = pcall(vim.fn.readfile, fname, "", lnum)
  return ok and lines[lnum] or ""
end

local function first_line(snippet)
  for line in vim.gsplit(snippet or "", "\n", { plain = true }) do
    local trimmed = vim.trim(line)
    if trimmed ~= "" then
      return trimmed
    end
  end
  return ""
end

--- Quickfix items from sg results (search-shaped hits or plain Locations), keeping the server's ranking.
function M.to_qf_items(results, encoding)
  local items = {}
  for _, r in ipairs(results or {}) do
    local uri = r.uri or r.targetUri
    local range = r.range or r.targetSelectionRange or r.targetRange
    if uri and range then
      local fname = vim.uri_to_fname(uri)
      local lnum = range.start.line + 1
      local col = str_byteindex(line_text(fname, lnum), range.start.character, encoding or "utf-16") + 1
      local text
      if r.symbol ~= nil then
        local label = (r.symbol ~= "" and r.symbol) or "(" .. (r.kind or "chunk") .. ")"
        text = string.format("%s  %s", label, first_line(r.snippet))
        if type(r.score) == "number" then
          -- lexical-only scores can be tiny: keep two significant digits
          local fmt = (r.score == 0 or math.abs(r.score) >= 0.01) and "%s  [%.2f]" or "%s  [%.1e]"
          text = string.format(fmt, text, r.score)
        end
      else
        text = vim.trim(line_text(fname, lnum))
      end
      items[#items + 1] = {
        filename = fname,
        lnum = lnum,
        col = col,
        end_lnum = range["end"].line + 1,
        text = text,
        user_data = { symbol = r.symbol, kind = r.kind, score = r.score, space = r.space },
      }
    end
  end
  return items
end

local function show_results(title, results, encoding, event)
  local items = M.to_qf_items(results, encoding)
  vim.fn.setqflist({}, " ", { title = title, items = items })
  if #items == 0 then
    -- The title already starts with "sg: ", and notify() adds it too.
    vim.notify(title .. ": nothing found", vim.log.levels.INFO)
  elseif M.config.open_quickfix then
    vim.cmd("botright copen")
  end
  vim.api.nvim_exec_autocmds("User", { pattern = event, modeline = false, data = { title = title, count = #items } })
end

local function error_text(err)
  if type(err) == "table" then
    return err.message or vim.inspect(err)
  end
  return tostring(err)
end

--- :SgSearch {query} — semantic search over the workspace into the quickfix list.
function M.search(query, opts)
  opts = opts or {}
  query = vim.trim(query or "")
  if query == "" then
    vim.ui.input({ prompt = "sg search: " }, function(input)
      if input and vim.trim(input) ~= "" then
        M.search(input, opts)
      end
    end)
    return
  end
  local client = require_client()
  if not client then
    return
  end
  local params = { query = query, limit = opts.limit or M.config.limit }
  if opts.mode then
    params.mode = opts.mode
  end
  if opts.paths then
    params.paths = opts.paths
  end
  request(client, "sg/search", params, function(err, result)
    if err then
      notify("search failed: " .. error_text(err), vim.log.levels.ERROR)
      vim.api.nvim_exec_autocmds("User", { pattern = "SgSearchDone", modeline = false, data = { error = error_text(err) } })
      return
    end
    show_results("sg: " .. query, result and result.results or {}, client.offset_encoding, "SgSearchDone")
  end)
end

local function position_params(client)
  return vim.lsp.util.make_position_params(0, client.offset_encoding or "utf-16")
end

--- :SgSimilar — functions similar to the one under the cursor, into the quickfix list.
function M.similar()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = require_client(bufnr)
  if not client then
    return
  end
  local params = position_params(client)
  local here = vim.fn.expand("%:t") .. ":" .. (params.position.line + 1)
  request(client, "sg/similar", { textDocument = params.textDocument, position = params.position }, function(err, result)
    if err then
      notify("similar failed: " .. error_text(err), vim.log.levels.ERROR)
      vim.api.nvim_exec_autocmds("User", { pattern = "SgSimilarDone", modeline = false, data = { error = error_text(err) } })
      return
    end
    show_results("sg: similar to " .. here, result and result.results or {}, client.offset_encoding, "SgSimilarDone")
  end, bufnr)
end

-- The server's "Find similar functions" code action runs this command. Neovim would send it and drop the
-- answer, so run it here and show the Locations it returns.
local function find_similar_command(command, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if not client then
    return
  end
  local params = { command = command.command, arguments = command.arguments }
  request(client, "workspace/executeCommand", params, function(err, result)
    if err then
      notify("similar failed: " .. error_text(err), vim.log.levels.ERROR)
      return
    end
    show_results("sg: similar functions", result or {}, client.offset_encoding, "SgSimilarDone")
  end, ctx.bufnr)
end

--- The server's status table ({state, files, chunks, skipped, models, jobs}), or nil and an error.
function M.status_sync(timeout_ms)
  local client = M.client()
  if not client then
    return nil, "no sg client"
  end
  local resp, err = request_sync(client, "sg/status", vim.empty_dict(), timeout_ms or 2000)
  if not resp then
    return nil, err
  end
  if resp.err then
    return nil, error_text(resp.err)
  end
  return resp.result, nil
end

local function count(v)
  if type(v) == "table" then
    return #v
  end
  return v
end

local function status_line(s)
  local parts = {}
  if s.files then
    parts[#parts + 1] = count(s.files) .. " files"
  end
  if s.chunks then
    parts[#parts + 1] = count(s.chunks) .. " chunks"
  end
  if s.skipped then
    parts[#parts + 1] = count(s.skipped) .. " skipped"
  end
  local text = "sg is " .. tostring(s.state) .. (#parts > 0 and (": " .. table.concat(parts, ", ")) or "")
  if type(s.models) == "table" and next(s.models) ~= nil then
    text = text .. "\nmodels: " .. vim.inspect(s.models, { newline = " ", indent = "" })
  end
  for _, job in ipairs(type(s.jobs) == "table" and s.jobs or {}) do
    local detail = (job.error and job.error ~= "" and job.error) or job.message or ""
    text = text .. string.format("\njob %s (%s): %s %s", tostring(job.id), tostring(job.kind), tostring(job.state), detail)
  end
  return text
end

--- :SgStatus — index state, counts and models.
function M.show_status()
  local client = require_client()
  if not client then
    return
  end
  request(client, "sg/status", vim.empty_dict(), function(err, result)
    if err then
      notify("status failed: " .. error_text(err), vim.log.levels.ERROR)
      return
    end
    vim.notify(status_line(result or {}), vim.log.levels.INFO)
  end)
end

--- :SgTune — tune the embedding model on this workspace (a background job on the server).
function M.tune()
  local client = require_client()
  if not client then
    return
  end
  request(client, "sg/tune", vim.empty_dict(), function(err, result)
    if err then
      notify("tuning is not available: " .. error_text(err), vim.log.levels.WARN)
      return
    end
    -- The server reports progress ($/progress) and the outcome (window/showMessage) itself.
    notify("tuning started (job " .. tostring(result and result.jobId) .. "); :SgStatus shows how it goes")
  end)
end

--- :SgReindex — re-index changed files in every folder (e.g. after a cancelled index).
function M.reindex()
  local client = require_client()
  if not client then
    return
  end
  request(client, "sg/reindex", vim.empty_dict(), function(err)
    if err then
      notify("reindex failed: " .. error_text(err), vim.log.levels.ERROR)
    end
  end)
end

--- Send new server settings to the running servers (workspace/didChangeConfiguration).
function M.update_settings(settings)
  M.config.settings = vim.tbl_deep_extend("force", M.config.settings or {}, settings or {})
  for _, client in ipairs(get_clients({ name = NAME })) do
    client.settings = { sg = as_object(M.config.settings) }
    local params = { settings = as_object(M.config.settings) }
    if has_011 then
      client:notify("workspace/didChangeConfiguration", params)
    else
      client.notify("workspace/didChangeConfiguration", params)
    end
  end
end

local group = vim.api.nvim_create_augroup("sg", { clear = true })

-- Crash times (seconds) within the last few minutes: restart after a crash, but not forever.
local crashes = {}
local MAX_RESTARTS, CRASH_WINDOW_S = 4, 180
local restart -- set below: restarts the server for every buffer it served

--- Neovim does not restart a language server that dies; sg does, and says so.
local function on_exit(code, signal, _client_id)
  -- A requested stop (or quitting nvim) exits cleanly; only a crash or a kill leaves a code or a signal.
  if (code == 0 and signal == 0) or vim.v.exiting ~= vim.NIL then
    return
  end
  local now = vim.uv.now() / 1000
  crashes = vim.tbl_filter(function(t) return now - t < CRASH_WINDOW_S end, crashes)
  crashes[#crashes + 1] = now
  local how = signal ~= 0 and ("signal " .. signal) or ("exit code " .. code)
  vim.schedule(function()
    if #crashes > MAX_RESTARTS then
      notify(("the language server stopped (%s), %d times in %d minutes; not restarting it. :LspLog has details; "
        .. ":edit a file to try again."):format(how, #crashes, CRASH_WINDOW_S / 60), vim.log.levels.ERROR)
      return
    end
    notify(("the language server stopped (%s); restarting it."):format(how), vim.log.levels.WARN)
    restart()
  end)
end

local function lsp_config()
  local settings = as_object(M.config.settings)
  return {
    name = NAME,
    cmd = M.config.cmd,
    filetypes = M.config.filetypes,
    init_options = settings,
    -- Answers workspace/configuration for section "sg" with the same tree.
    settings = { sg = settings },
    commands = { [FIND_SIMILAR] = find_similar_command },
    on_exit = on_exit,
  }
end

local function start_legacy(bufnr)
  if vim.bo[bufnr].buftype ~= "" then
    return
  end
  local ft = vim.bo[bufnr].filetype
  if M.config.filetypes and not vim.tbl_contains(M.config.filetypes, ft) then
    return
  end
  local root = M.find_root(bufnr)
  if not root then
    return
  end
  local config = lsp_config()
  config.root_dir = root
  config.workspace_folders = { { uri = vim.uri_from_fname(root), name = root } }
  vim.lsp.start(config, { bufnr = bufnr })
end

restart = function()
  -- vim.lsp.start in both modes: with vim.lsp.enable, a later FileType finds this client (same name and root)
  -- and reuses it.
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) then
      start_legacy(bufnr)
    end
  end
end

local function setup_progress()
  if not M.config.progress then
    return
  end
  vim.api.nvim_create_autocmd("LspProgress", {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if not client or client.name ~= NAME then
        return
      end
      local value = ev.data.params and ev.data.params.value or {}
      local msg = value.kind == "end" and (value.message or "done")
        or table.concat(vim.tbl_filter(function(x) return x ~= nil and x ~= "" end, {
          value.title,
          value.message,
          value.percentage and (value.percentage .. "%") or nil,
        }), " ")
      vim.api.nvim_echo({ { (msg:match("^sg") and "" or "sg: ") .. msg } }, false, {})
    end,
  })
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  -- Lists replace, they do not merge by index.
  if opts and opts.cmd then
    M.config.cmd = opts.cmd
  end
  if opts and opts.root_markers then
    M.config.root_markers = opts.root_markers
  end
  vim.api.nvim_clear_autocmds({ group = group })
  setup_progress()

  crashes = {}
  local use_config = M.config.method ~= "start" and has_011 and vim.lsp.config ~= nil and vim.lsp.enable ~= nil
  if use_config then
    local config = lsp_config()
    config.name = nil
    config.root_dir = function(bufnr, on_dir)
      local root = M.find_root(bufnr)
      if root then
        on_dir(root)
      end
    end
    vim.lsp.config(NAME, config)
    vim.lsp.enable(NAME)
  else
    vim.api.nvim_create_autocmd({ "FileType", "BufReadPost" }, {
      group = group,
      callback = function(ev)
        start_legacy(ev.buf)
      end,
    })
    restart() -- the buffers already loaded
  end
end

return M
