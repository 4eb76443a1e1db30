"""sg engine: discovery, chunking, storage, embeddings and ranking. Knows nothing of LSP."""

__version__ = "0.1.0"
