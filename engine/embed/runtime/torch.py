"""The torch runtime: the model as transformers runs it (TransformerEmbedder), in fp32, bf16 or dynamic int8.

Importing this module does not import torch; loading an embedder does. Training (`sg tune`) starts from
`for_training` and uses only TransformerEmbedder's training surface: `forward_batch` (differentiable),
`token_ids`, `pool`, `project`, `backbone`, `replace_backbone` and `to_device`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable

from ..transformer import Recipe, TransformerEmbedder

LABEL = "torch"
PRECISIONS = ("fp32", "bf16", "int8")


def installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def why_not(recipe: Recipe, base: TransformerEmbedder) -> str:
    return "" if installed() else "torch is not installed"


def ready(recipe: Recipe, precision: str, base_ident: str) -> bool:
    return True


def embedder(recipe: Recipe, precision: str, base: TransformerEmbedder, *, threads: int, batch_size: int,
             log: Callable[[str], None] | None = None) -> TransformerEmbedder:
    """`base` itself for fp32; another precision is another vector space (its recipe's identity says so)."""
    if precision == "fp32":
        return base
    return type(base)(dataclasses.replace(recipe, precision=precision), threads=threads, batch_size=batch_size)


def for_training(recipe: Recipe, *, threads: int = 0, batch_size: int = 32) -> TransformerEmbedder:
    """A loaded embedder for `recipe` to train through: the token ids, pooling and projection search uses."""
    return TransformerEmbedder(recipe, threads=threads, batch_size=batch_size).load()
