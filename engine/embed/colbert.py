"""ColBERT checkpoints in the Stanford `HF_ColBERT` layout, e.g. jinaai/jina-colbert-v2 (XLM-RoBERTa + 128-d linear).

Layout, as PyLate's and colbert-ai's loaders read it: the projection is `linear.weight` inside the main
checkpoint; `artifact.metadata` names the marker tokens and lengths. Jina-ColBERT-v2 uses "[QueryMarker]" /
"[DocumentMarker]", 32-token queries padded with attended [MASK] expansion tokens, and needs remote code
(jinaai/xlm-roberta-flash-implementation) plus an opt-in for its CC-BY-NC-4.0 licence.
Queries: <s> [QueryMarker] text </s> <mask>... (all positions kept); documents: <s> [DocumentMarker] text </s>
with padding and punctuation vectors dropped.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from . import files
from .sentence import dense_spec, hidden_size
from .transformer import DOC_TOKEN_CAP, DenseSpec, Recipe

NAME = "jinaai/jina-colbert-v2"
_DEFAULT_MARKERS = {"jina": ("[QueryMarker]", "[DocumentMarker]"), "stanford": ("[unused0]", "[unused1]")}


def looks_like(directory: Path, config: dict) -> bool:
    return "HF_ColBERT" in (config.get("architectures") or []) or (directory / "artifact.metadata").is_file()


def recipe(directory: Path, name: str = NAME, *, trust_remote_code: bool = False,
           allow_noncommercial: bool = False) -> Recipe:
    config = files.read_json(directory / "config.json")
    files.check_opt_ins(name, directory, config, trust_remote_code=trust_remote_code,
                        allow_noncommercial=allow_noncommercial)
    meta = files.read_json_opt(directory / "artifact.metadata")
    weights = files.weight_files(directory)
    width = hidden_size(config)
    dense, dim = _projection(directory, weights, meta, width, name)
    jina = "jina" in name.lower() or "[QueryMarker]" in _vocab_text(directory)
    q_default, d_default = _DEFAULT_MARKERS["jina" if jina else "stanford"]
    query_len = int(meta.get("query_maxlen") or 32)
    doc_len = int(meta.get("doc_maxlen") or DOC_TOKEN_CAP)
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 2:
        doc_len = min(doc_len, positions - 2)
    return Recipe(
        name=name,
        family="colbert",
        directory=directory,
        weights=weights,
        multi_vector=True,
        dim=dim,
        max_length=min(doc_len, DOC_TOKEN_CAP),
        dense=(dense,),
        query_marker=str(meta.get("query_token_id") or q_default),
        doc_marker=str(meta.get("doc_token_id") or d_default),
        query_expand_to=query_len,
        query_expand_attend=bool(meta.get("attend_to_mask_tokens", jina)),
        doc_skip_punctuation=bool(meta.get("mask_punctuation", True)),
        trust_remote_code=trust_remote_code and files.needs_remote_code(config),
    )


def _projection(directory: Path, weights: files.Weights, meta: dict, width: int, name: str) -> tuple[DenseSpec, int]:
    if weights.safetensors:
        for path in weights.files:
            shape = files.safetensors_shapes(path).get("linear.weight")
            if shape:
                if shape[1] != width:
                    raise ModelError(f"{name}: linear.weight is {shape}, the encoder gives {width}")
                return DenseSpec(path, "linear.weight"), int(shape[0])
    elif isinstance(meta.get("dim"), int):
        return DenseSpec(weights.files[0], "linear.weight"), int(meta["dim"])
    for sub in ("1_Dense", "2_Dense"):
        if (directory / sub / "config.json").is_file():
            spec, _fan_in, fan_out = dense_spec(directory / sub)
            return spec, fan_out
    raise ModelError(f"{name}: no ColBERT projection (linear.weight or 1_Dense/) in {directory}")


def _vocab_text(directory: Path) -> str:
    for fname in ("added_tokens.json", "special_tokens_map.json", "tokenizer_config.json"):
        path = directory / fname
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if "[QueryMarker]" in text:
                return text
    return ""
