"""XTR (google/xtr-base-en): T5 encoder + 768->128 linear projection, one normalised vector per token (MaxSim).

The hub checkpoint keeps the projection as a sentence-transformers Dense module in `2_Dense/` (config.json with
in/out features and an Identity activation, weights as `linear.weight`, no bias) next to a T5 checkpoint
without modules.json. The reference encoder lowercases the text, tokenizes with the T5 tokenizer (text </s>),
projects every hidden state and drops padding.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from . import files
from .sentence import dense_spec, hidden_size
from .transformer import DOC_TOKEN_CAP, Recipe

NAME = "google/xtr-base-en"


def looks_like(directory: Path, config: dict) -> bool:
    return config.get("model_type") in ("t5", "mt5") and (directory / "2_Dense" / "config.json").is_file()


def recipe(directory: Path, name: str = NAME) -> Recipe:
    config = files.read_json(directory / "config.json")
    if config.get("model_type") not in ("t5", "mt5"):
        raise ModelError(f"{name}: expected a T5 checkpoint, config says {config.get('model_type')!r}")
    dense_dir = directory / "2_Dense"
    if not (dense_dir / "config.json").is_file():
        raise ModelError(f"{name}: the 128-d projection (2_Dense/) is missing from {directory}")
    spec, fan_in, fan_out = dense_spec(dense_dir)
    if fan_in != hidden_size(config):
        raise ModelError(f"{dense_dir}: projection expects {fan_in} inputs, the encoder gives {hidden_size(config)}")
    return Recipe(
        name=name,
        family="xtr",
        directory=directory,
        weights=files.weight_files(directory),
        multi_vector=True,
        dim=fan_out,
        # T5 has relative positions, no hard limit; the reference encodes documents at 512 tokens
        max_length=DOC_TOKEN_CAP,
        dense=(spec,),
        lowercase=True,
        t5_encoder=True,
    )
