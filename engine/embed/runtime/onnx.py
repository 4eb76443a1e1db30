"""The ONNX Runtime: an Embedder over a graph exported once from the exact weights sg serves.

At run time this imports only onnxruntime, tokenizers and numpy. The graph (backbone with the adapter merged,
pooling, dense projection and normalisation in it) and the tokenizer come from a cache directory (cache.py) keyed
by the model identity, the variant and the runtime versions; export.py fills it, with torch, when it is missing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...errors import ModelError
from ..base import LoadsOnce
from ..transformer import Recipe, TransformerEmbedder
from . import RuntimeUnavailable
from .cache import VARIANTS, cache_key, cache_root, read_manifest
from .cpu import cpu_flags

LABEL = "ONNX Runtime"
PRECISIONS = VARIANTS


def runtime_available() -> bool:
    """onnxruntime and tokenizers are installed (checked without importing them)."""
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("tokenizers") is not None


def exportable(recipe: Recipe) -> str:
    """Why this recipe cannot run on ONNX Runtime, or "" when it can."""
    if recipe.trust_remote_code:
        return "its code ships with the model (remote code), which sg does not export"
    if recipe.t5_encoder:
        return "T5 encoders are not exported"
    return ""


def why_not(recipe: Recipe, base: TransformerEmbedder) -> str:
    if type(base) is not TransformerEmbedder:
        return "ColBERT query expansion and skiplist run on torch"
    return exportable(recipe) or ("" if runtime_available() else "onnxruntime is not installed")


def ready(recipe: Recipe, precision: str, base_ident: str) -> bool:
    """Exported already (otherwise the first use exports it, which needs torch)."""
    key = cache_key(base_ident, precision)
    return read_manifest(cache_root() / key, key) is not None


def embedder(recipe: Recipe, precision: str, base: TransformerEmbedder, *, threads: int, batch_size: int,
             log: Callable[[str], None] | None = None) -> OrtEmbedder:
    return OrtEmbedder(recipe, precision, base.ident, threads=threads, batch_size=batch_size, log=log)


class OrtEmbedder(LoadsOnce):
    """An Embedder (see base.py) running an exported graph on ONNX Runtime. Thread-safe; loads lazily.

    fp32 claims the torch fp32 identity: the export is verified against torch (worst cosine >= 0.9999) and
    refused otherwise: `load()` then raises RuntimeUnavailable, and select.py decides what serves instead.
    """

    def __init__(self, recipe: Recipe, variant: str, base_ident: str, *, threads: int = 0, batch_size: int = 32,
                 log: Callable[[str], None] | None = None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown ONNX variant {variant!r}")
        self._from_recipe(recipe, threads, batch_size)
        self.variant = variant
        self.base_ident = base_ident
        if variant == "fp32":
            self.ident = base_ident
        else:  # another vector space: the name stays, the digest changes
            name, _, digest = base_ident.rpartition("@")
            extra = hashlib.blake2b(f"{digest}|onnx={variant}".encode(), digest_size=6).hexdigest()
            self.ident = f"{name}@{extra}"
        self.key = cache_key(base_ident, variant)
        self.directory = cache_root() / self.key
        self.runtime = "onnxruntime"
        self._log = log

    def __repr__(self) -> str:
        return f"<OrtEmbedder {self.ident} {self.variant} dim={self.dim}>"

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
                raise RuntimeUnavailable(f"{self.name}: ONNX {self.variant}: {exc}") from exc
            except ImportError as exc:  # no torch (or no onnx for quantising): the export cannot happen here
                raise RuntimeUnavailable(f"{self.name}: ONNX {self.variant}: cannot export to ONNX here "
                                         f"({exc.name or exc} is not installed)") from exc
            manifest = read_manifest(self.directory, self.key)
            if manifest is None:
                raise RuntimeUnavailable(f"{self.name}: ONNX {self.variant}: the export in {self.directory} is "
                                         f"incomplete")
        self._open(manifest)

    def _options(self, ort, lean: bool):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        so.inter_op_num_threads = 1
        if lean:
            # Opens in about half the time (MiniLM: 0.19 s against 0.34 s on a busy 2-core machine): a one-shot
            # search's single query needs neither a thread pool nor weights repacked for fast matrix products.
            so.intra_op_num_threads = 1
            so.add_session_config_entry("session.disable_prepacking", "1")
        elif self.threads > 0:
            so.intra_op_num_threads = self.threads
        return so

    def _open(self, manifest: dict) -> None:
        """Open lean (see _options); the second embed call reopens with the full options (_settle), so a
        long-lived process, or an index run past its first batch, runs at full speed (a lean session costs a
        short query about 10 ms more)."""
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise RuntimeUnavailable(f"{self.name}: {exc.name} is not installed (pip install onnxruntime "
                                     f"tokenizers)") from exc
        try:
            self._session = _session(ort, self._options(ort, lean=True), self.directory / manifest["model"])
            tok = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry: say where it is
            raise ModelError(f"{self.name}: cannot open the ONNX export in {self.directory}: {exc}") from exc
        self._lean, self._calls = True, 0
        self._settle_lock = threading.Lock()
        m = manifest["layout"]
        self._prefix, self._suffix = list(m["prefix"]), list(m["suffix"])
        self._pad_id, self._mask_id = int(m["pad_id"]), int(m["mask_id"])
        self._head = {True: list(m["prefix"]) + list(m["mode_ids"]) + list(m["q_marker"]),
                      False: list(m["prefix"]) + list(m["mode_ids"]) + list(m["d_marker"])}
        self._skip = np.asarray(sorted(m["skip"]), dtype=np.int64)
        tok.no_padding()
        tok.no_truncation()
        self._tok = tok
        self._inputs = [i.name for i in self._session.get_inputs()]
        self.manifest = manifest

    # -- embedding -------------------------------------------------------------------------------

    def _encode_ids(self, texts: list[str], query: bool) -> list[list[int]]:
        texts = self.recipe.input_texts(texts, query)
        head = self._head[query]
        room = max(1, self.max_length - len(head) - len(self._suffix))
        return [head + enc.ids[:room] + self._suffix
                for enc in self._tok.encode_batch(texts, add_special_tokens=False)]

    def _embed(self, texts: list[str], query: bool) -> np.ndarray | list[np.ndarray]:
        texts = list(texts)
        if not texts:
            return [] if self.multi_vector else np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        if self._lean:
            self._calls += 1
            if self._calls > 1:
                self._settle()
        ids = self._encode_ids(texts, query)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # similar lengths share a batch
        out: list = [None] * len(ids)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            for i, vec in zip(batch, self._forward([ids[i] for i in batch], query)):
                out[i] = vec
        if self.multi_vector:
            return out
        return np.stack(out).astype(np.float32, copy=False)

    def _settle(self) -> None:
        """Swap the lean session for a full one (calls running on the lean one finish on it)."""
        import onnxruntime as ort

        with self._settle_lock:
            if self._lean:
                self._session = _session(ort, self._options(ort, lean=False), self.directory / self.manifest["model"])
                self._lean = False

    def _forward(self, seqs: list[list[int]], query: bool) -> list[np.ndarray]:
        r = self.recipe
        expand = r.query_expand_to if (query and r.multi_vector) else 0
        width = max(max(len(s) for s in seqs), expand)
        input_ids = np.full((len(seqs), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for row, seq in enumerate(seqs):
            input_ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
        keep = mask.astype(bool)
        if expand:  # ColBERT query augmentation, as in TransformerEmbedder.forward_batch
            for row, seq in enumerate(seqs):
                if len(seq) < expand:
                    input_ids[row, len(seq):expand] = self._mask_id
                    keep[row, len(seq):expand] = True
                    if r.query_expand_attend:
                        mask[row, len(seq):expand] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        out = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        if not r.multi_vector:
            return list(out)
        if not query and len(self._skip):
            keep &= ~np.isin(input_ids, self._skip)
        return [out[row][keep[row]].copy() for row in range(len(seqs))]


def _session(ort, so, model: Path):
    """An ONNX Runtime session over `model`. The first open on a machine also saves the optimised graph beside it,
    named by the runtime's version and the CPU's flags (an optimised graph is hardware-specific), with its weights
    in a file of their own; later opens load that graph with optimisation off, and ONNX Runtime maps the weights
    file into memory instead of parsing and copying 90 MB of protobuf. That cuts a lean session's creation for
    MiniLM from 0.17 s to about 0.015 s (part of a one-shot `sg search`: python bench/cold_start.py). A saved
    graph that does not open is replaced."""
    providers = ["CPUExecutionProvider"]
    tag = hashlib.sha256(f"{ort.__version__} {' '.join(cpu_flags())} external".encode()).hexdigest()[:12]
    saved = model.with_name(f"{model.stem}.optimised-{tag}.onnx")
    weights = saved.with_suffix(".weights")
    level = so.graph_optimization_level
    if saved.is_file() and weights.is_file():
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(saved), so, providers=providers)
        except Exception:  # noqa: BLE001 - damaged or foreign: optimise again from the export
            so.graph_optimization_level = level
            saved.unlink(missing_ok=True)
    # Written into a folder of this process first (the graph names its weights file, so both keep their final
    # names), then moved: the weights before the graph, so a graph present always finds its weights.
    tmp = model.with_name(f".{saved.stem}.{os.getpid()}.tmp")
    tmp.mkdir(exist_ok=True)
    so.optimized_model_filepath = str(tmp / saved.name)
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name", weights.name)
    so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    session = ort.InferenceSession(str(model), so, providers=providers)
    try:
        os.replace(tmp / weights.name, weights)
        os.replace(tmp / saved.name, saved)
        for old in model.parent.glob(f"{model.stem}.optimised-*.onnx"):  # graphs saved whole, weights inside (sg 0.1.0 until 2026-12-08)
            if not old.with_suffix(".weights").exists():
                old.unlink(missing_ok=True)
    except OSError:  # a read-only cache: the session still runs, the next open optimises again
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return session
