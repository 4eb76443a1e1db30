-- User commands for sg. The language server starts after require("sg").setup({...}).
if vim.g.loaded_sg then
  return
end
vim.g.loaded_sg = true

vim.api.nvim_create_user_command("SgSearch", function(opts)
  require("sg").search(opts.args)
end, { nargs = "*", desc = "sg: semantic search into the quickfix list" })

vim.api.nvim_create_user_command("SgSimilar", function()
  require("sg").similar()
end, { nargs = 0, desc = "sg: functions similar to the one under the cursor" })

vim.api.nvim_create_user_command("SgTune", function()
  require("sg").tune()
end, { nargs = 0, desc = "sg: tune the embedding model on this workspace" })

vim.api.nvim_create_user_command("SgStatus", function()
  require("sg").show_status()
end, { nargs = 0, desc = "sg: index state, counts and models" })

vim.api.nvim_create_user_command("SgReindex", function()
  require("sg").reindex()
end, { nargs = 0, desc = "sg: re-index the workspace" })
