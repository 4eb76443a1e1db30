"""One transformer-encoder embedder driven by a declarative recipe; the model families only differ in their recipe.

The recipe says how a text becomes token ids (markers, lowercasing, prompts, query expansion), how hidden states
become vectors (pooling or per-token, dense projections) and where the weights are. Construction is cheap
(files and hashes only); torch and the weights load on the first embed call.
"""

from __future__ import annotations

import os
import string
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError
from . import files
from .base import LoadsOnce, pad_batch

# Bump when a recipe change alters vectors, so an index built with the old code is not reused.
RECIPE_VERSION = "1"

# Longest input we embed on CPU. Cost grows with the square of the length and sg's chunks are at most
# ~120 lines, so longer model limits (8K for the Jina models) only buy latency.
DOC_TOKEN_CAP = 512

POOLINGS = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": "identity",
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.activation.ReLU": "relu",
    "torch.nn.modules.activation.GELU": "gelu",
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
}


_TRACE_WIDTH = 32  # queries of up to this many tokens run through a traced model (see _query_trace)


@dataclass(frozen=True)
class DenseSpec:
    """A linear layer applied after pooling (single-vector) or to every token vector (multi-vector)."""

    path: Path  # safetensors or .bin file
    key: str = "linear.weight"  # weight tensor name; the bias is the same name with .bias
    activation: str = "identity"

    @staticmethod
    def activation_from(name: str | None, where: Path) -> str:
        if not name:
            return "identity"
        if name not in _ACTIVATIONS:
            raise ModelError(f"{where}: dense activation {name!r} is not supported (only {sorted(_ACTIVATIONS)})")
        return _ACTIVATIONS[name]


@dataclass
class Recipe:
    """Everything needed to turn texts into vectors with one checkpoint."""

    name: str  # shown to users: repo id, directory name, ...
    family: str  # sentence-transformers | unixcoder | xtr | colbert | jina-code | hf-mean
    directory: Path  # the transformers backbone (config.json, weights, tokenizer)
    weights: files.Weights
    multi_vector: bool
    dim: int
    max_length: int
    pooling: tuple[str, ...] = ("mean",)  # ignored when multi_vector
    dense: tuple[DenseSpec, ...] = ()
    lowercase: bool = False
    query_prompt: str = ""  # text prefixes from config_sentence_transformers.json
    doc_prompt: str = ""
    mode_token: str | None = None  # UniXcoder: "<encoder-only>" then a separator after the leading special token
    mode_sep: bool = False
    query_marker: str | None = None  # ColBERT: a token right after the leading special token
    doc_marker: str | None = None
    query_expand_to: int = 0  # ColBERT: queries padded with [MASK] to this length, all positions kept
    query_expand_attend: bool = True  # whether the encoder attends to those [MASK] tokens
    doc_skip_punctuation: bool = False  # ColBERT drops punctuation token vectors from documents
    trust_remote_code: bool = False
    t5_encoder: bool = False
    adapter: Path | None = None  # PEFT adapter directory merged into the backbone at load
    precision: str = "fp32"  # fp32 | int8 | bf16 (see set_precision); part of the identity: a new vector space
    note: str = ""
    extra_files: tuple[Path, ...] = field(default_factory=tuple)

    def input_texts(self, texts: list[str], query: bool) -> list[str]:
        """The texts as the model reads them: its query or document prompt first, lowercased if it expects that.
        Every runtime (torch, ONNX Runtime, the export check) prepares its input here."""
        prompt = self.query_prompt if query else self.doc_prompt
        texts = [prompt + t for t in texts] if prompt else list(texts)
        return [t.lower() for t in texts] if self.lowercase else texts

    def hashed_files(self) -> list[Path]:
        paths = list(self.weights.files) + [d.path for d in self.dense] + list(self.extra_files)
        if self.adapter is not None:
            paths += sorted(p for p in self.adapter.iterdir() if p.suffix in (".safetensors", ".json"))
        return paths

    def salt(self) -> str:
        parts = [RECIPE_VERSION, self.family, ",".join(self.pooling), str(self.max_length), str(self.lowercase),
                 self.query_prompt, self.doc_prompt, str(self.mode_token), str(self.query_marker),
                 str(self.doc_marker), str(self.query_expand_to), str(self.query_expand_attend),
                 str(self.doc_skip_punctuation)]
        if self.precision != "fp32":
            parts.append(f"precision={self.precision}")
        return "|".join(parts)


def torch_threads(threads: int) -> int:
    """settings.threads, or torch's default capped at the core count (several processes may share the CPU)."""
    import torch

    if threads > 0:
        return threads
    return max(1, min(os.cpu_count() or 1, torch.get_num_threads()))


class TransformerEmbedder(LoadsOnce):
    """An Embedder (see base.py) over a transformers encoder. Thread-safe; loads lazily."""

    def __init__(self, recipe: Recipe, *, threads: int = 0, batch_size: int = 32) -> None:
        self._from_recipe(recipe, threads, batch_size)
        self.ident = f"{recipe.name}@{files.files_digest(recipe.hashed_files(), recipe.salt())}"
        self._trace: tuple | None = None  # (the model traced, its traced query function or None)

    def __repr__(self) -> str:
        kind = "multi" if self.multi_vector else "single"
        return f"<{type(self).__name__} {self.ident} {kind} dim={self.dim} max_length={self.max_length}>"

    # -- loading ---------------------------------------------------------------------------------

    def _load(self) -> None:
        import torch

        r = self.recipe
        torch.set_num_threads(torch_threads(self.threads))
        with _quiet_transformers():
            self._tok = _load_tokenizer(r)
            self._model = _load_backbone(r)
            self._dense = [_load_dense(d) for d in r.dense]
        tok = self._tok
        self._pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self._prefix, self._suffix = _special_layout(tok)
        self._mode_ids = []
        if r.mode_token:
            self._mode_ids = [_token_id(tok, r.mode_token, r.name)]
            if r.mode_sep:
                sep = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
                self._mode_ids.append(sep)
        self._q_marker = [_token_id(tok, r.query_marker, r.name)] if r.query_marker else []
        self._d_marker = [_token_id(tok, r.doc_marker, r.name)] if r.doc_marker else []
        self._mask_id = tok.mask_token_id if tok.mask_token_id is not None else self._pad_id
        self._skip: set[int] = set()
        if r.doc_skip_punctuation:
            unk = tok.unk_token_id
            for ch in string.punctuation:
                tid = tok.convert_tokens_to_ids(ch)
                if isinstance(tid, int) and tid != unk:
                    self._skip.add(tid)
        out_dim = self._dense[-1][0].shape[0] if self._dense else None
        if out_dim is not None and out_dim != self.dim:
            raise ModelError(f"{r.name}: projection gives {out_dim} dimensions, files promised {self.dim}")

    # -- embedding -------------------------------------------------------------------------------

    def _embed(self, texts: list[str], query: bool) -> np.ndarray | list[np.ndarray]:
        texts = list(texts)
        if not texts:
            return [] if self.multi_vector else np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        import torch

        ids = self._encode_ids(texts, query)
        with self._lock, torch.inference_mode():
            return self._in_batches(ids, query)

    def _encode_ids(self, texts: list[str], query: bool) -> list[list[int]]:
        texts = self.recipe.input_texts(texts, query)
        marker = self._q_marker if query else self._d_marker
        head = self._prefix + self._mode_ids + marker
        room = max(1, self.max_length - len(head) - len(self._suffix))
        enc = self._tok(texts, add_special_tokens=False, truncation=True, max_length=room,
                        return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        return [head + list(body) + self._suffix for body in enc]

    def forward_batch(self, seqs: list[list[int]], query: bool, device=None):
        """Vectors for already-encoded sequences (see `token_ids`), differentiable outside inference mode.

        Single-vector: a normalised (n, dim) tensor. Multi-vector: normalised (n, T, dim) token vectors and
        the (n, T) mask of the ones to keep. `sg tune` trains through this, so training sees exactly the
        inputs search does.
        """
        import torch

        r = self.recipe
        expand = r.query_expand_to if (query and r.multi_vector) else 0
        traced = self._query_trace() if query and len(seqs) == 1 and len(seqs[0]) <= _TRACE_WIDTH \
            and device is None and not torch.is_grad_enabled() else None
        width = _TRACE_WIDTH if traced is not None else max(max(len(s) for s in seqs), expand)
        input_ids, mask, keep = (torch.from_numpy(a) for a in pad_batch(
            seqs, width, self._pad_id, expand, self._mask_id, r.query_expand_attend))
        if device is not None:
            input_ids, mask, keep = input_ids.to(device), mask.to(device), keep.to(device)
        if traced is not None:
            hidden = traced(input_ids, mask)
            hidden = (hidden["last_hidden_state"] if isinstance(hidden, dict) else hidden[0]).float()
        else:
            hidden = self._model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
        if r.multi_vector:
            hidden = torch.nn.functional.normalize(self.project(hidden), dim=-1)
            if not query and self._skip:
                for tid in self._skip:
                    keep &= input_ids != tid
            return hidden, keep
        return torch.nn.functional.normalize(self.project(self.pool(hidden, mask)), dim=-1)

    # -- the training surface: what `sg tune` (engine/tune/train.py) may use -------------------------------------

    @property
    def backbone(self):
        """The loaded transformers encoder (a torch.nn.Module) that every forward pass runs through."""
        self.load()
        return self._model

    def replace_backbone(self, model) -> None:
        """Run every later forward pass through `model`: the backbone wrapped in LoRA layers while training, the
        merged model after. A traced query path belongs to the model it was traced from, so it is not reused."""
        self.load()
        self._model = model

    def to_device(self, device) -> None:
        """Move the backbone and the projection weights to `device` (a torch.device or its name)."""
        self.load()
        self._model = self._model.to(device)
        self._dense = [(w.to(device), None if b is None else b.to(device), a) for w, b, a in self._dense]

    def token_ids(self, texts: list[str], query: bool, max_length: int = 0) -> list[list[int]]:
        """Token ids exactly as embedding sees them (prompt, markers, special tokens). `max_length` below the
        model's cuts longer sequences to that many tokens, keeping the closing special tokens."""
        self.load()
        seqs = self._encode_ids(list(texts), query)
        if max_length and max_length < self.max_length:
            suffix = list(self._suffix)
            seqs = [s if len(s) <= max_length else s[: max_length - len(suffix)] + suffix for s in seqs]
        return seqs

    def pool(self, hidden, mask):
        """One vector per sequence from (n, T, width) hidden states and their (n, T) attention mask, as the
        recipe pools (single-vector models)."""
        return _pool(hidden, mask, self.recipe.pooling)

    def project(self, x):
        """The recipe's dense projections (with their activations) applied to pooled or token vectors."""
        return self._project(x)

    def _query_trace(self):
        """The backbone traced and frozen (TorchScript) for one query padded to _TRACE_WIDTH tokens: a search
        encodes one short query at a time, where the eager model is mostly per-op overhead (MiniLM, 12 tokens:
        4.4 ms traced against 8.7 ms eager, same outputs). Single-vector models without remote code only; made
        once per loaded model, and never for a model swapped in later (training wraps it in LoRA layers)."""
        if self._trace is not None and self._trace[0] is self._model:
            return self._trace[1]
        import torch

        fn = None
        if not self.recipe.multi_vector and not self.recipe.trust_remote_code:
            ids = torch.full((1, _TRACE_WIDTH), self._pad_id, dtype=torch.long)
            mask = torch.zeros((1, _TRACE_WIDTH), dtype=torch.long)
            seq = self._prefix + self._suffix
            ids[0, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[0, :len(seq)] = 1
            try:
                with warnings.catch_warnings(), _quiet_transformers():
                    warnings.simplefilter("ignore")  # tracer warnings about Python control flow
                    fn = torch.jit.freeze(torch.jit.trace(self._model, (ids, mask), strict=False,
                                                          check_trace=False).eval())
            except Exception:  # noqa: BLE001 - an untraceable model simply runs eagerly
                fn = None
        self._trace = (self._model, fn)
        return fn

    def _forward(self, seqs: list[list[int]], query: bool) -> list[np.ndarray]:
        out = self.forward_batch(seqs, query)
        if self.multi_vector:
            hidden, keep = out
            return [hidden[row][keep[row]].numpy().copy() for row in range(len(seqs))]
        return list(out.numpy())

    def _project(self, x):
        import torch

        for weight, bias, act in self._dense:
            x = torch.nn.functional.linear(x, weight, bias)
            if act == "tanh":
                x = torch.tanh(x)
            elif act == "relu":
                x = torch.relu(x)
            elif act == "gelu":
                x = torch.nn.functional.gelu(x)
            elif act == "sigmoid":
                x = torch.sigmoid(x)
        return x


# -- helpers -------------------------------------------------------------------------------------


class _quiet_transformers:
    """Silence transformers' progress bars and load chatter (stdout/stderr belong to the CLI and LSP)."""

    def __enter__(self):
        from transformers.utils import logging as tlog

        self._verbosity = tlog.get_verbosity()
        tlog.set_verbosity_error()
        self._bars = tlog.is_progress_bar_enabled()
        tlog.disable_progress_bar()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as tlog

        tlog.set_verbosity(self._verbosity)
        if self._bars:
            tlog.enable_progress_bar()
        return False


def _token_id(tok, token: str, name: str) -> int:
    tid = tok.convert_tokens_to_ids(token)
    if not isinstance(tid, int) or tid == tok.unk_token_id:
        raise ModelError(f"{name}: the tokenizer has no {token!r} token, so this is not the model its files claim")
    return tid


def _special_layout(tok) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after a text ([CLS] x [SEP], <s> x </s>, x </s>)."""
    probe = "hello world"
    plain = tok(probe, add_special_tokens=False)["input_ids"]
    full = tok(probe, add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return list(full[:i]), list(full[i + len(plain):])
    raise ModelError("cannot work out the tokenizer's special-token layout")


def _load_tokenizer(r: Recipe):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(r.directory), local_files_only=True,
                                             trust_remote_code=r.trust_remote_code)
    except Exception as exc:
        raise ModelError(f"{r.name}: cannot load the tokenizer from {r.directory}: {_first_line(exc)}") from exc


def _load_backbone(r: Recipe):
    import torch

    if not r.weights.safetensors:
        for path in r.weights.files:
            files.check_bin(path)
    kwargs = dict(local_files_only=True, use_safetensors=r.weights.safetensors, trust_remote_code=r.trust_remote_code,
                  dtype=torch.float32)
    try:
        if r.t5_encoder:
            from transformers import T5EncoderModel

            model = T5EncoderModel.from_pretrained(str(r.directory), **kwargs)
        else:
            from transformers import AutoModel

            model = AutoModel.from_pretrained(str(r.directory), **kwargs)
    except ImportError as exc:
        raise ModelError(f"{r.name}: its code needs a package that is not installed: {_first_line(exc)}") from exc
    except Exception as exc:
        raise ModelError(f"{r.name}: cannot load the weights from {r.directory}: {_first_line(exc)}") from exc
    if r.adapter is not None:
        model = _merge_adapter(model, r.adapter, r.name)
    model.eval()
    return set_precision(model, r.precision)


def set_precision(model, precision: str):
    """The encoder's arithmetic; measured with MiniLM on CoSQA by bench/int8_encoder.py.

    int8: dynamic quantisation of the linear layers, int8 weights with one scale per output channel, activations
    quantised per batch (fbgemm, VNNI where the CPU has it). Per-tensor weight scales cost 0.016 MRR@10; per
    channel stays within 0.01. bf16: weights and activations in bfloat16, outputs widened to fp32 before pooling;
    fast only with native bf16 units (AMX, AVX512-BF16), which `auto` checks for (precision.py).
    """
    import torch

    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig})
    return model


def _merge_adapter(model, adapter: Path, name: str):
    try:
        from peft import PeftModel

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers 5 deprecations inside peft
            merged = PeftModel.from_pretrained(model, str(adapter), is_trainable=False).merge_and_unload()
    except Exception as exc:
        raise ModelError(f"{name}: cannot apply the adapter in {adapter}: {_first_line(exc)}") from exc
    return merged


def _load_dense(spec: DenseSpec):
    import torch

    if spec.path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(spec.path))
    else:
        files.check_bin(spec.path)
        state = torch.load(spec.path, map_location="cpu", weights_only=True)
    if spec.key not in state:
        raise ModelError(f"{spec.path}: no {spec.key!r} tensor (has {sorted(state)[:5]})")
    bias_key = spec.key[: -len("weight")] + "bias"
    weight = state[spec.key].float()
    bias = state[bias_key].float() if bias_key in state else None
    return weight, bias, spec.activation


def _pool(hidden, mask, modes: tuple[str, ...]):
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    counts = m.sum(1).clamp(min=1e-9)
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "max":
            parts.append(hidden.masked_fill(m == 0, -1e9).max(1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            summed = (hidden * m).sum(1)
            parts.append(summed / (counts if mode == "mean" else counts.sqrt()))
        elif mode == "weightedmean":
            w = torch.arange(1, hidden.shape[1] + 1, dtype=hidden.dtype).view(1, -1, 1) * m
            parts.append((hidden * w).sum(1) / w.sum(1).clamp(min=1e-9))
        elif mode == "lasttoken":
            last = mask.sum(1) - 1
            parts.append(hidden[torch.arange(hidden.shape[0]), last.clamp(min=0)])
        else:
            raise ModelError(f"unknown pooling {mode!r}")
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
