"""PyLate ColBERT directories (e.g. lightonai/LateOn-Code-edge, GTE-ModernColBERT): one vector per token, MaxSim.

The layout is sentence-transformers' with PyLate's settings: modules.json lists a Transformer then one or more
Dense projections and no Pooling; config_sentence_transformers.json carries query_prefix / document_prefix
(tokens PyLate added to the vocabulary, "[Q] " / "[D] " by default), query_length, document_length,
do_query_expansion, attend_to_expansion_tokens and skiplist_words. PyLate's encoder, which this reproduces
without importing pylate:
  - the text is stripped (and lowercased if the Transformer says so), tokenised with the backbone's special
    tokens and truncated to length - 1, then the prefix token is inserted right after the first token;
  - queries are padded to query_length with [MASK] (EOS if there is no mask token) when do_query_expansion,
    attended only if attend_to_expansion_tokens, and every position is kept;
  - documents keep their real tokens minus the skiplist (each skiplist word through convert_tokens_to_ids,
    so a word outside the vocabulary puts the unknown token on the list, as in PyLate);
  - Dense layers in order (linear + activation, plus PyLate's optional residual projection), then L2-normalise.
The same query truncation (at the query length) is applied to Stanford `HF_ColBERT` checkpoints (colbert.py), as
colbert-ai and PyLate do. tests/test_pylate.py checks all of it against vectors PyLate itself produced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import ModelError
from . import files
from .sentence import dense_spec, hidden_size, max_length
from .transformer import DOC_TOKEN_CAP, Recipe, TransformerEmbedder

FAMILY = "pylate"
LABEL = "PyLate"


@dataclasses.dataclass
class PyLateRecipe(Recipe):
    """A Recipe plus what only PyLate models have: their query length and skiplist, residual projections."""

    query_length: int = 32
    skiplist_words: tuple[str, ...] = ()
    residual: tuple[bool, ...] = ()  # per Dense layer: PyLate's use_residual

    def salt(self) -> str:
        return "|".join([super().salt(), FAMILY, str(self.query_length), "\x1f".join(self.skiplist_words),
                         ",".join(map(str, self.residual))])


def _kind(module: dict) -> str:
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def _modules(directory: Path) -> list[dict]:
    modules = files.read_json_opt(directory / "modules.json")
    if not isinstance(modules, list):
        return []
    return sorted((m for m in modules if isinstance(m, dict)), key=lambda m: m.get("idx", 0))


def looks_like(directory: Path) -> bool:
    """A sentence-transformers directory with Transformer + Dense... and no Pooling, saved by PyLate."""
    modules = _modules(directory)
    kinds = [_kind(m) for m in modules]
    if len(kinds) < 2 or kinds[0] != "Transformer" or any(k != "Dense" for k in kinds[1:]):
        return False
    st_cfg = files.read_json_opt(directory / "config_sentence_transformers.json")
    return (any(str(m.get("type", "")).startswith("pylate.") for m in modules)
            or st_cfg.get("similarity_fn_name") == "MaxSim"
            or any(k in st_cfg for k in ("query_prefix", "query_length", "skiplist_words")))


def recipe(directory: Path, name: str, *, trust_remote_code: bool = False,
           allow_noncommercial: bool = False) -> PyLateRecipe:
    """Read a PyLate ColBERT directory. Raises ModelError saying what is wrong with it."""
    modules = _modules(directory)
    if not looks_like(directory):
        raise ModelError(f"{name}: {directory} is not a PyLate ColBERT directory (Transformer + Dense, no Pooling)")
    backbone = (directory / modules[0].get("path", "")).resolve()
    config = files.read_json(backbone / "config.json")
    files.check_opt_ins(name, directory, config, trust_remote_code=trust_remote_code,
                        allow_noncommercial=allow_noncommercial)
    st_cfg = files.read_json_opt(directory / "config_sentence_transformers.json")
    bert_cfg = files.read_json_opt(backbone / "sentence_bert_config.json") or \
        files.read_json_opt(directory / "sentence_bert_config.json")
    dim = hidden_size(config)
    dense, residual = [], []
    for module in modules[1:]:
        sub = directory / module.get("path", "")
        spec, fan_in, fan_out = dense_spec(sub)
        if fan_in != dim:
            raise ModelError(f"{sub}: projection expects {fan_in} inputs, gets {dim}")
        dense.append(spec)
        residual.append(bool(files.read_json(sub / "config.json").get("use_residual", False)))
        dim = fan_out

    def setting(key: str, default):
        value = st_cfg.get(key)
        return default if value is None else value

    query_prefix = str(setting("query_prefix", "[Q] "))
    doc_prefix = str(setting("document_prefix", "[D] "))
    query_length = int(setting("query_length", 32))
    doc_length = int(setting("document_length", 180))
    expand = bool(setting("do_query_expansion", True))
    attend = bool(setting("attend_to_expansion_tokens", False)) and expand
    skiplist = setting("skiplist_words", None)
    if skiplist is None:
        import string

        skiplist = list(string.punctuation)
    if not isinstance(skiplist, list) or not all(isinstance(w, str) for w in skiplist):
        raise ModelError(f"{directory}/config_sentence_transformers.json: skiplist_words is not a list of strings")
    declared = bert_cfg.get("max_seq_length") if isinstance(bert_cfg.get("max_seq_length"), int) else None
    # the backbone's own limit still applies (PyLate would fail past its position table)
    doc_length = min(doc_length, max_length(backbone, config, declared or doc_length), DOC_TOKEN_CAP)
    return PyLateRecipe(
        name=name,
        family=FAMILY,
        directory=backbone,
        weights=files.weight_files(backbone),
        multi_vector=True,
        dim=dim,
        max_length=doc_length,
        dense=tuple(dense),
        lowercase=bool(bert_cfg.get("do_lower_case", False)),
        query_marker=query_prefix or None,
        doc_marker=doc_prefix or None,
        query_expand_to=query_length if expand else 0,
        query_expand_attend=attend,
        doc_skip_punctuation=bool(skiplist),
        trust_remote_code=trust_remote_code and files.needs_remote_code(config),
        note=LABEL,
        extra_files=tuple(p for p in (directory / "config_sentence_transformers.json",) if p.is_file()),
        query_length=query_length,
        skiplist_words=tuple(skiplist),
        residual=tuple(residual),
    )


class ColBERTEmbedder(TransformerEmbedder):
    """TransformerEmbedder with the ColBERT rules it lacks: queries truncated at the query length; for PyLate
    models also texts stripped as sentence-transformers does, PyLate's skiplist and residual projections."""

    def _load(self) -> None:
        super()._load()
        r = self.recipe
        tok = self._tok
        # PyLate pads (expands) queries with the mask token, else EOS
        for candidate in (tok.mask_token_id, tok.eos_token_id, tok.pad_token_id):
            if candidate is not None:
                self._mask_id = candidate
                break
        self._residual = []
        if isinstance(r, PyLateRecipe):
            self._skip = {tok.convert_tokens_to_ids(w) for w in r.skiplist_words} - {None}
            self._residual = [_load_residual(spec.path, weight) if use else None
                              for spec, use, (weight, _b, _a) in zip(r.dense, r.residual, self._dense)]

    def _encode_ids(self, texts: list[str], query: bool) -> list[list[int]]:
        r = self.recipe
        if isinstance(r, PyLateRecipe):  # sentence-transformers strips; Stanford/Jina documents stay as they were
            texts = [t.strip() for t in texts]
        if r.lowercase:
            texts = [t.lower() for t in texts]
        limit = self.max_length
        if query:
            limit = r.query_length if isinstance(r, PyLateRecipe) else (r.query_expand_to or limit)
        head = self._prefix + (self._q_marker if query else self._d_marker)
        room = max(1, limit - len(head) - len(self._suffix))
        enc = self._tok(texts, add_special_tokens=False, truncation=True, max_length=room,
                        return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        return [head + list(body) + self._suffix for body in enc]

    def _project(self, x):
        if not any(res is not None for res in self._residual):
            return super()._project(x)
        import torch

        for (weight, bias, act), res in zip(self._dense, self._residual):
            y = torch.nn.functional.linear(x, weight, bias)
            y = {"tanh": torch.tanh, "relu": torch.relu, "gelu": torch.nn.functional.gelu,
                 "sigmoid": torch.sigmoid}.get(act, lambda t: t)(y)
            if res is not None:
                y = y + (x if res is True else torch.nn.functional.linear(x, res))
            x = y
        return x


def _load_residual(path: Path, weight):
    """PyLate's residual branch: the input itself when the sizes match, else a bias-free `residual` linear."""
    import torch

    if weight.shape[0] == weight.shape[1]:
        return True
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        files.check_bin(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    if "residual.weight" not in state:
        raise ModelError(f"{path}: use_residual is set but there is no residual.weight")
    return state["residual.weight"].float()


def embedder_class(recipe: Recipe) -> type[TransformerEmbedder]:
    """The embedder for a recipe: ColBERT families get the ColBERT rules, everything else the plain one."""
    return ColBERTEmbedder if recipe.family in (FAMILY, "colbert") else TransformerEmbedder


def report_note(emb, note: str) -> str:
    """`sg models` says "multi-vector, N-d, PyLate" for a PyLate model."""
    recipe = getattr(emb, "recipe", None)
    if isinstance(recipe, PyLateRecipe):
        return f"multi-vector, {emb.dim}-d, {LABEL}; {note}"
    return note
