"""The torch runtime: the model as transformers runs it (TransformerEmbedder), in fp32, bf16 or dynamic int8.

bf16 (the documents' path on CPUs with native bf16) runs a TorchScript trace of that model, exported once into the
cache (export.py) and verified to give the same vectors: loading it imports torch alone, not transformers and
peft, which takes ~1.4 s instead of ~3.7 s of every index run. Where no trace can be made, the eager model serves.

Importing this module does not import torch; loading an embedder does. Training (`sg tune`) starts from
`for_training` and uses only TransformerEmbedder's training surface: `forward_batch` (differentiable),
`token_ids`, `pool`, `project`, `backbone`, `replace_backbone` and `to_device`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..transformer import Recipe, TransformerEmbedder, torch_threads
from . import RuntimeUnavailable
from .cache import SCRIPTED
from .compose import Fallback
from .exported import ExportedEmbedder

LABEL = "torch"
PRECISIONS = ("fp32", "bf16", "int8")


def installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def why_not(recipe: Recipe, base: TransformerEmbedder) -> str:
    return "" if installed() else "torch is not installed"


def ready(recipe: Recipe, precision: str, base_ident: str) -> bool:
    return True


def embedder(recipe: Recipe, precision: str, base: TransformerEmbedder, *, threads: int, batch_size: int,
             log: Callable[[str], None] | None = None):
    """`base` itself for fp32; another precision is another vector space (its recipe's identity says so). bf16 runs
    traced where the model can be (single-vector, no remote code, the plain TransformerEmbedder), else eagerly."""
    if precision == "fp32":
        return base
    eager = type(base)(dataclasses.replace(recipe, precision=precision), threads=threads, batch_size=batch_size)
    if precision != "bf16" or type(base) is not TransformerEmbedder or recipe.multi_vector \
            or recipe.trust_remote_code or recipe.t5_encoder:
        return eager
    scripted = ScriptEmbedder(eager.recipe, SCRIPTED, base.ident, same_space=eager.ident, threads=threads,
                              batch_size=batch_size, log=log)
    return Fallback(scripted, lambda: eager, log)


class ScriptEmbedder(ExportedEmbedder):
    """The bf16 model as a TorchScript trace (export.py), run with torch alone. Same vectors as the eager bf16 model
    (verified at export), so it claims that identity."""

    def _open_model(self, path: Path) -> None:
        try:
            import torch
        except ImportError as exc:
            raise RuntimeUnavailable(f"{self.name}: torch is not installed") from exc
        from .export import script_runner

        torch.set_num_threads(torch_threads(self.threads))
        self._script = script_runner(path)

    def _run(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self._script(input_ids, mask)


def for_training(recipe: Recipe, *, threads: int = 0, batch_size: int = 32) -> TransformerEmbedder:
    """A loaded embedder for `recipe` to train through: the token ids, pooling and projection search uses."""
    return TransformerEmbedder(recipe, threads=threads, batch_size=batch_size).load()
