"""sg engine: discovery, chunking, storage, embeddings and ranking. Knows nothing of LSP.

The public API is what this module exports; the CLI, the language server and the tuner use nothing else.
Names load lazily, so `import engine` stays cheap.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# One BLAS thread. MaxSim's matmuls are small and run right after the encoder, whose own threads (torch's OpenMP
# pool, ONNX Runtime's) are still spinning; OpenBLAS's threads on top of them made a 2-core machine's ColBERT
# search p95 115 ms instead of 19 ms (python bench/speed.py --model-path DIR, CoSQA). Only takes effect when
# engine is imported before numpy, as the CLI and the server do; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

_EXPORTS = {
    "Engine": "engine.search",
    "IndexReport": "engine.indexer",
    "SearchResult": "engine.search",
    "Backend": "engine.backends.base",
    "View": "engine.backends.base",
    "BACKENDS": "engine.backends",  # the index backends by name (index.backend, --backend)
    "LocalBackend": "engine.backends.local",
    "render_for_embedding": "engine.embed.render",
    "Settings": "engine.settings",
    "load_settings": "engine.settings",
    "Hit": "engine.records",
    "ChunkInfo": "engine.records",
    "Target": "engine.multi",
    "MultiResult": "engine.multi",
    "search_many": "engine.multi",
    "scope_patterns": "engine.multi",
    "Skip": "engine.records",
    "MODES": "engine.records",
    "Progress": "engine.records",
    "split_lines": "engine.text",
    "decode_text": "engine.discover",  # bytes -> text exactly as the indexer reads a file (the server's columns)
    "run_tune": "engine.tune",  # local tuning (ImportError in a build without its dependencies)
    "run_eval": "engine.eval",
    "explain_route": "engine.route",
    "pull_main": "engine.embed.pull",  # `sg models pull ID`: the one online step
    "IndexWriter": "engine.watch",  # long-lived processes: the one writer thread, debounced file changes
    "FileWatch": "engine.watch",  # a watchdog observer whose events become workspace-relative changes
    "never_indexed": "engine.watch",
    "SgError": "engine.errors",
    "BadQuery": "engine.errors",
    "ConfigError": "engine.errors",
    "ModelError": "engine.errors",
    "StoreError": "engine.errors",
    "SpecError": "engine.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
