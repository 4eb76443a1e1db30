"""The ONNX Runtime inference path: an Embedder over a graph exported once from the exact weights sg serves.

At run time this imports only onnxruntime, tokenizers and numpy. The graph (backbone with the adapter merged,
pooling, dense projection and normalisation in it) and the tokenizer come from a cache directory keyed by the
model identity, the variant and the runtime versions; `onnx_export.py` fills it, with torch, when it is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ModelError
from .transformer import Recipe
from .base import LoadsOnce

# Bump when the exported graph or the manifest changes meaning, so older cache entries are not used.
EXPORT_VERSION = "1"
# Variants of the exported graph. fp32 must match torch fp32 (worst cosine >= FP32_MIN_COSINE on the probe
# texts) or it is not used; the int8 ones are separate vector spaces, admitted by the accuracy gate.
VARIANTS = ("fp32", "int8-dyn", "int8-dyn-rr", "int8-dyn-keep", "int8-static", "int8-fused")
FP32_MIN_COSINE = 0.9999
MANIFEST = "manifest.json"


def cache_root() -> Path:
    return Path(os.environ.get("SG_CACHE_DIR") or Path.home() / ".cache" / "sg") / "onnx"


def dist_version(dist: str) -> str:
    """An installed distribution's version from its dist-info directory name, without importlib.metadata
    (which imports the email package: ~0.1 s of a cold start); "none" when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(dist)
    if spec is None:
        return "none"
    where = next(iter(spec.submodule_search_locations or []), None) or spec.origin
    site = Path(where or ".").parent
    found = sorted(site.glob(f"{dist}-*.dist-info"))
    if len(found) == 1:
        return found[0].name[len(dist) + 1:-len(".dist-info")]
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def runtime_available() -> bool:
    """onnxruntime and tokenizers are installed (checked without importing them)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("tokenizers") is not None


def exportable(recipe: Recipe) -> str:
    """Why this recipe cannot run on ONNX Runtime, or "" when it can."""
    if recipe.trust_remote_code:
        return "its code ships with the model (remote code), which sg does not export"
    if recipe.t5_encoder:
        return "T5 encoders are not exported"
    return ""


def cache_key(base_ident: str, variant: str) -> str:
    """Directory name of one export: the torch fp32 identity (weights, adapter, recipe), the variant, and the
    versions that shape the file (export code, onnxruntime which quantises and optimises it)."""
    parts = [EXPORT_VERSION, base_ident, variant, dist_version("onnxruntime")]
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=10).hexdigest()
    return f"{variant}-{digest}"


def cache_dir(base_ident: str, variant: str) -> Path:
    return cache_root() / cache_key(base_ident, variant)


def read_manifest(directory: Path, key: str) -> dict | None:
    """The manifest of a complete export for `key`, or None (absent, half-written, or for something else)."""
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    if not (directory / data.get("model", "model.onnx")).is_file() or not (directory / "tokenizer.json").is_file():
        return None
    return data


class OrtEmbedder(LoadsOnce):
    """An Embedder (see base.py) running an exported graph on ONNX Runtime. Thread-safe; loads lazily.

    fp32 claims the torch fp32 identity: the export is verified against torch (worst cosine >= 0.9999) and
    refused otherwise, in which case this embedder runs the torch model itself (`fallback`), same vectors.
    """

    def __init__(self, recipe: Recipe, variant: str, base_ident: str, *, threads: int = 0, batch_size: int = 32,
                 fallback: Callable[[], object] | None = None, log: Callable[[str], None] | None = None) -> None:
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
        self.note = ""  # set on load when something fell back
        self._fallback_factory = fallback
        self._fallback = None
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
            try:
                from .onnx_export import ExportError, export

                try:
                    export(self.recipe, self.variant, self.base_ident, self.directory, self.key, log=self._log)
                except ExportError as exc:
                    return self._fall_back(str(exc))
            except ImportError as exc:  # no torch (or no onnx for quantising): the export cannot happen
                return self._fall_back(f"cannot export to ONNX here ({exc.name or exc} is not installed)")
            manifest = read_manifest(self.directory, self.key)
            if manifest is None:
                return self._fall_back(f"the ONNX export in {self.directory} is incomplete")
        self._open(manifest)

    def _fall_back(self, why: str) -> None:
        if self.variant != "fp32" or self._fallback_factory is None:
            raise ModelError(f"{self.name}: ONNX {self.variant}: {why}")
        self.note = f"ONNX Runtime not used: {why}; running torch fp32"
        if self._log is not None:
            self._log(f"{self.name}: {self.note}")
        self._fallback = self._fallback_factory().load()
        self.runtime = "torch"

    def _open(self, manifest: dict) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelError(f"{self.name}: {exc.name} is not installed (pip install onnxruntime tokenizers)") from exc
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if self.threads > 0:
            so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        try:
            self._session = _session(ort, so, self.directory / manifest["model"])
            tok = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry: say where it is
            raise ModelError(f"{self.name}: cannot open the ONNX export in {self.directory}: {exc}") from exc
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

    def embed_queries(self, texts: list[str]) -> np.ndarray | list[np.ndarray]:
        return self._embed(texts, query=True)

    def embed_documents(self, texts: list[str]) -> np.ndarray | list[np.ndarray]:
        return self._embed(texts, query=False)

    def count_tokens(self, texts: list[str]) -> list[int]:
        self.load()
        if self._fallback is not None:
            return self._fallback.count_tokens(texts)
        return [len(ids) for ids in self._encode_ids(list(texts), query=False)]

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
        if self._fallback is not None:
            return self._fallback.embed_queries(texts) if query else self._fallback.embed_documents(texts)
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
    named by the runtime's version and the CPU's flags (an optimised graph is hardware-specific); later opens load
    that one with optimisation off, which cuts session creation from 0.17-0.33 s to about 0.11 s for MiniLM (part
    of a one-shot `sg search`: python bench/cold_start.py). A saved graph that does not open is replaced."""
    from .precision import cpu_flags

    providers = ["CPUExecutionProvider"]
    tag = hashlib.sha256(f"{ort.__version__} {' '.join(cpu_flags())}".encode()).hexdigest()[:12]
    saved = model.with_name(f"{model.stem}.optimised-{tag}.onnx")
    level = so.graph_optimization_level
    if saved.is_file():
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(saved), so, providers=providers)
        except Exception:  # noqa: BLE001 - damaged or foreign: optimise again from the export
            so.graph_optimization_level = level
            saved.unlink(missing_ok=True)
    tmp = saved.with_name(f"{saved.name}.{os.getpid()}.tmp")
    so.optimized_model_filepath = str(tmp)
    session = ort.InferenceSession(str(model), so, providers=providers)
    try:
        os.replace(tmp, saved)
    except OSError:  # a read-only cache: the session still runs, the next open optimises again
        tmp.unlink(missing_ok=True)
    return session
