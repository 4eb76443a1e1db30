"""UniXcoder (microsoft/unixcoder-base, RoBERTa): encoder-only mode, mean pooling, L2-normalised.

Input layout as in the reference unixcoder.py `tokenize(mode="<encoder-only>")`:
<s> <encoder-only> </s> tokens[:max_length-4] </s>, and `forward` averages the hidden states of all
non-padding positions (special tokens included).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from . import files
from .sentence import hidden_size
from .transformer import Recipe

NAME = "microsoft/unixcoder-base"
MODE_TOKEN = "<encoder-only>"
# The reference tokenize() defaults to 512 and asserts < 1024; the code-search fine-tuning used 256-320.
MAX_LENGTH = 512


def looks_like(directory: Path, config: dict) -> bool:
    """A RoBERTa checkpoint whose vocabulary has UniXcoder's mode tokens."""
    if config.get("model_type") != "roberta":
        return False
    for fname in ("vocab.json", "added_tokens.json", "tokenizer.json"):
        path = directory / fname
        if path.is_file():
            try:
                if f'"{MODE_TOKEN}"' in path.read_text(encoding="utf-8", errors="replace"):
                    return True
            except OSError:
                continue
    return False


def recipe(directory: Path, name: str = NAME) -> Recipe:
    config = files.read_json(directory / "config.json")
    if config.get("model_type") != "roberta":
        raise ModelError(f"{name}: expected a RoBERTa checkpoint, config says {config.get('model_type')!r}")
    positions = int(config.get("max_position_embeddings", MAX_LENGTH + 2))
    return Recipe(
        name=name,
        family="unixcoder",
        directory=directory,
        weights=files.weight_files(directory),
        multi_vector=False,
        dim=hidden_size(config),
        max_length=min(MAX_LENGTH, positions - 2),
        pooling=("mean",),
        mode_token=MODE_TOKEN,
        mode_sep=True,
    )
