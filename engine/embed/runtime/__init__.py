"""Inference runtimes: one module per runtime (torch.py, onnx.py) and one table of them; select.py decides which
serves a model on this CPU, and nothing else does.

A runtime module provides:

- `LABEL`: how `sg models` names it;
- `why_not(recipe, base) -> str`: "" when it can run this recipe here, else why not (`base` is the recipe's torch
  fp32 embedder, which names the vector space and is never loaded by this call);
- `ready(recipe, precision, base_ident) -> bool`: whether it can start without a one-off preparation (an export);
- `embedder(recipe, precision, base, *, threads, batch_size, log) -> Embedder`: cheap, loads on first use, and
  raises RuntimeUnavailable from `load()` when it cannot run after all (select.py then falls back).

Adding a runtime is one new module and one row in RUNTIMES (and its paths in the accuracy gate).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ModelError


class RuntimeUnavailable(ModelError):
    """This runtime cannot serve the model here after all (no export possible, the export disagrees with torch)."""


@dataclass(frozen=True)
class Runtime:
    name: str  # the settings value (models.runtime) and the first part of a gate path, e.g. "onnx-fp32"
    module: str  # imported only when the runtime is considered


RUNTIMES: dict[str, Runtime] = {
    "torch": Runtime("torch", "engine.embed.runtime.torch"),
    "onnx": Runtime("onnx", "engine.embed.runtime.onnx"),
}
