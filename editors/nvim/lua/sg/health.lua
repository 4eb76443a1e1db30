--- :checkhealth sg
local M = {}

function M.check()
  local health = vim.health
  health.start("sg")
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. tostring(vim.version()))
  else
    health.error("Neovim 0.10 or newer is needed")
  end
  local sg = require("sg")
  local cmd = sg.config.cmd or {}
  if cmd[1] and vim.fn.executable(cmd[1]) == 1 then
    health.ok("server command found: " .. table.concat(cmd, " "))
  else
    health.error("server command not found: " .. tostring(cmd[1]),
      { "pip install -e /path/to/sg (the sg-search package provides sg-lsp)", "or setup({ cmd = { '/path/to/python', '-m', 'sg_lsp', '--stdio' } })" })
  end
  local client = sg.client()
  if client then
    health.ok("client running, root " .. tostring(client.root_dir or (client.config and client.config.root_dir)))
  else
    health.info("no sg client in this session yet (open a file inside a project)")
  end
end

return M
