"""sg language server: a thin pygls adapter that exposes engine.Engine to editors over LSP."""

__version__ = "0.1.0"
