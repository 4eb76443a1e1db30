"""sg's MCP server: `sg mcp` answers coding agents over stdio, a thin adapter over Engine like sg_lsp."""

__version__ = "0.1.0"
