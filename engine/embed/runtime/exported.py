"""An Embedder over a model exported once into the cache (cache.py, export.py): its tokenizer.json and token layout
come from the export, so running it needs neither transformers nor peft. onnx.py runs an ONNX graph on ONNX
Runtime; torch.py runs a traced TorchScript module (bf16 documents, without importing transformers).

A subclass says how to open its model file (`_open_model`) and how to run one padded batch (`_run`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...errors import ModelError
from ..base import LoadsOnce, pad_batch
from ..transformer import Recipe
from . import RuntimeUnavailable
from .cache import cache_key, cache_root, read_manifest


class ExportedEmbedder(LoadsOnce):
    """Thread-safe; loads lazily. An export that reproduces its reference (torch fp32 for ONNX fp32, torch bf16 for
    TorchScript bf16) claims that reference's identity, `same_space`; another variant is a vector space of its own."""

    def __init__(self, recipe: Recipe, variant: str, base_ident: str, *, same_space: str = "", threads: int = 0,
                 batch_size: int = 32, log: Callable[[str], None] | None = None) -> None:
        self._from_recipe(recipe, threads, batch_size)
        self.variant = variant
        self.base_ident = base_ident
        if same_space:
            self.ident = same_space
        else:  # another vector space: the name stays, the digest changes
            name, _, digest = base_ident.rpartition("@")
            extra = hashlib.blake2b(f"{digest}|onnx={variant}".encode(), digest_size=6).hexdigest()
            self.ident = f"{name}@{extra}"
        self.key = cache_key(base_ident, variant)
        self.directory = cache_root() / self.key
        self._log = log

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ident} {self.variant} dim={self.dim}>"

    @property
    def cached(self) -> bool:
        return read_manifest(self.directory, self.key) is not None

    # -- loading ---------------------------------------------------------------------------------

    def _load(self) -> None:
        manifest = read_manifest(self.directory, self.key)
        if manifest is None:
            from .export import ExportError, export

            try:
                export(self.recipe, self.variant, self.base_ident, self.directory, self.key, log=self._log)
            except ExportError as exc:
                raise RuntimeUnavailable(f"{self.name}: {self.variant} export: {exc}") from exc
            except ImportError as exc:  # no torch, transformers (or onnx, for quantising): no export here
                raise RuntimeUnavailable(f"{self.name}: {self.variant}: cannot export here "
                                         f"({exc.name or exc} is not installed)") from exc
            manifest = read_manifest(self.directory, self.key)
            if manifest is None:
                raise RuntimeUnavailable(f"{self.name}: {self.variant}: the export in {self.directory} is "
                                         f"incomplete")
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise RuntimeUnavailable(f"{self.name}: tokenizers is not installed") from exc
        try:
            self._open_model(self.directory / manifest["model"])
            tok = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        except RuntimeUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry: say where it is
            raise ModelError(f"{self.name}: cannot open the {self.variant} export in {self.directory}: {exc}") from exc
        m = manifest["layout"]
        self._prefix, self._suffix = list(m["prefix"]), list(m["suffix"])
        self._pad_id, self._mask_id = int(m["pad_id"]), int(m["mask_id"])
        self._head = {True: list(m["prefix"]) + list(m["mode_ids"]) + list(m["q_marker"]),
                      False: list(m["prefix"]) + list(m["mode_ids"]) + list(m["d_marker"])}
        self._skip = np.asarray(sorted(m["skip"]), dtype=np.int64)
        tok.no_padding()
        tok.no_truncation()
        self._tok = tok
        self.manifest = manifest

    def _open_model(self, path: Path) -> None:
        raise NotImplementedError

    # -- embedding -------------------------------------------------------------------------------

    def _encode_ids(self, texts: list[str], query: bool) -> list[list[int]]:
        texts = self.recipe.input_texts(texts, query)
        head = self._head[query]
        room = max(1, self.max_length - len(head) - len(self._suffix))
        return [head + enc.ids[:room] + self._suffix
                for enc in self._tok.encode_batch(texts, add_special_tokens=False)]

    def _before_embed(self) -> None:
        """A hook run before each embed call, after loading."""

    def _embed(self, texts: list[str], query: bool) -> np.ndarray | list[np.ndarray]:
        texts = list(texts)
        if not texts:
            return [] if self.multi_vector else np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        self._before_embed()
        return self._in_batches(self._encode_ids(texts, query), query)

    def _forward(self, seqs: list[list[int]], query: bool) -> list[np.ndarray]:
        r = self.recipe
        expand = r.query_expand_to if (query and r.multi_vector) else 0
        width = max(max(len(s) for s in seqs), expand)
        input_ids, mask, keep = pad_batch(seqs, width, self._pad_id, expand, self._mask_id, r.query_expand_attend)
        out = self._run(input_ids, mask)
        if not r.multi_vector:
            return list(out)
        if not query and len(self._skip):
            keep &= ~np.isin(input_ids, self._skip)
        return [out[row][keep[row]].copy() for row in range(len(seqs))]

    def _run(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The model's float32 output for one padded batch: (n, dim) vectors, or (n, T, dim) token vectors."""
        raise NotImplementedError
