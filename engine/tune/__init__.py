"""Local tuning: mine training pairs from the workspace's own code, train a LoRA adapter, merge it, use it.

`run_tune(engine)` is the one entry point (CLI `sg tune`, LSP `sg/tune`): index (lexical is enough) -> mine ->
split -> train -> merge -> save `<cache>/sg/models/local/<workspace>-vN/` -> evaluate on held-out mined pairs.
mine.py mines the pairs, train.py trains, merge.py merges and saves, run.py runs the phases in order.
"""

from __future__ import annotations

from .config import load_config
from .mine import Pair, load_codesearchnet_jsonl
from .run import TuneReport, resolve_base, run_tune

__all__ = ["TuneReport", "Pair", "run_tune", "load_codesearchnet_jsonl", "load_config", "resolve_base"]
