"""Export a served model once (torch): to ONNX, quantised (onnxruntime.quantization) or not, or as a bf16
TorchScript trace; verify it and cache it (cache.py).

The graph is built from the exact model TransformerEmbedder serves (adapter merged, dense projection and
pooling included), so search needs no torch afterwards, and bf16 indexing no transformers or peft. Every entry
is written into a temporary directory and renamed into place only when complete, so a killed export never leaves
a half entry that gets used.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...dist import dist_version
from ..transformer import Recipe
from .cache import FP32_MIN_COSINE, MANIFEST, SCRIPTED, cache_dir, cache_key, read_manifest

OPSET = 17
CALIBRATION_CHUNKS = 300
# Texts of varied shape the export is checked on: short and long, code and prose, non-ASCII, past the cap.
PROBES = [
    "read a json file",
    "def add(a, b):\n    return a + b\n",
    "class Retry:\n    \"\"\"Retry a call with exponential backoff.\"\"\"\n    def __init__(self, tries=3):\n"
    "        self.tries = tries\n",
    "検索 エンジン の テスト, naïve café — ünïcödé ✓",
    "public static int parseInt(String s) { return Integer.parseInt(s.trim()); }",
    " ".join(f"token{i} value_{i} = compute({i})" for i in range(400)),  # longer than any cap
    "x",
]


class ExportError(Exception):
    """The model cannot be exported or the export does not reproduce the torch vectors."""


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log is not None:
        log(msg)


def export(recipe: Recipe, variant: str, base_ident: str, dest: Path, key: str, *,
           log: Callable[[str], None] | None = None, calibration: list[str] | None = None) -> dict:
    """Write the `variant` export of `recipe` to `dest` (atomically) and return its manifest.

    Raises ImportError when torch (or onnx, for the int8 variants) is not installed, ExportError when the
    model cannot be exported or an export that claims its reference's vectors (ONNX fp32: torch fp32; TorchScript
    bf16: torch bf16) disagrees with it.
    """
    import torch  # noqa: F401 - ImportError here means: no export on this machine

    from ..transformer import TransformerEmbedder

    t0 = time.perf_counter()
    scripted = variant == SCRIPTED
    reference = "bf16" if scripted else "fp32"
    _say(log, f"{recipe.name}: exporting ({variant}), once per model version, into {dest.parent}")
    emb = TransformerEmbedder(dataclasses.replace(recipe, precision=reference), threads=0).load()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=dest.parent))
    model = "model.pt" if scripted else "model.onnx"
    try:
        if scripted:
            _export_script(emb, tmp / model)
        elif variant == "fp32":
            _export_fp32(emb, tmp / model)
        else:
            fp32_dir = cache_dir(base_ident, "fp32")
            fp32_key = cache_key(base_ident, "fp32")
            if read_manifest(fp32_dir, fp32_key) is None:
                export(recipe, "fp32", base_ident, fp32_dir, fp32_key, log=log)
            _quantise(variant, fp32_dir / "model.onnx", tmp / model, emb, calibration)
        (tmp / "tokenizer.json").write_text(emb._tok.backend_tokenizer.to_str(), encoding="utf-8")
        layout = _layout(emb)
        worst = _verify(emb, tmp, layout, script_runner(tmp / model) if scripted else _onnx_runner(tmp / model))
        if variant in ("fp32", SCRIPTED) and worst < FP32_MIN_COSINE:
            raise ExportError(f"the {variant} export's vectors differ from torch {reference}'s (worst cosine "
                              f"{worst:.6f} < {FP32_MIN_COSINE})")
        manifest = {
            "key": key, "variant": variant, "model": model, "ident": base_ident, "name": recipe.name,
            "layout": layout, f"worst_cosine_vs_torch_{reference}": round(float(worst), 7),
            "torch": dist_version("torch"), "onnxruntime": dist_version("onnxruntime"), "opset": OPSET,
            "seconds": round(time.perf_counter() - t0, 1), "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.rename(tmp, dest)  # atomic; fails if another process finished the same export first
        except OSError:
            if read_manifest(dest, key) is None:
                shutil.rmtree(dest, ignore_errors=True)  # a stale entry of the same key, e.g. damaged
                os.rename(tmp, dest)
        _say(log, f"{recipe.name}: {variant} export ready in {manifest['seconds']} s "
                  f"(worst cosine vs torch {reference} {worst:.6f})")
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _sweep(dest.parent)


def _sweep(root: Path, older_than_s: float = 3600) -> None:
    """Remove temporary directories that killed exports left behind."""
    now = time.time()
    for p in root.glob(".tmp-*"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _layout(emb) -> dict:
    return {"prefix": emb._prefix, "suffix": emb._suffix, "pad_id": int(emb._pad_id),
            "mask_id": int(emb._mask_id), "mode_ids": [int(i) for i in emb._mode_ids],
            "q_marker": emb._q_marker, "d_marker": emb._d_marker, "skip": sorted(int(i) for i in emb._skip)}


def _wrapper(emb):
    import torch

    from ..transformer import _pool

    class Encoder(torch.nn.Module):
        """Backbone + pooling + projection + normalisation, exactly as TransformerEmbedder.forward_batch."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = emb._model
            for i, (w, b, _) in enumerate(emb._dense):
                self.register_buffer(f"dense{i}_w", w)
                self.register_buffer(f"dense{i}_b", b if b is not None else torch.zeros(w.shape[0]))

        def forward(self, input_ids, attention_mask):
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.float()
            x = hidden if emb.multi_vector else _pool(hidden, attention_mask, emb.recipe.pooling)
            for i, (_, _, act) in enumerate(emb._dense):
                x = torch.nn.functional.linear(x, getattr(self, f"dense{i}_w"), getattr(self, f"dense{i}_b"))
                x = {"tanh": torch.tanh, "relu": torch.relu, "gelu": torch.nn.functional.gelu,
                     "sigmoid": torch.sigmoid}.get(act, lambda v: v)(x)
            return torch.nn.functional.normalize(x, dim=-1)

    return Encoder().eval()


def _export_fp32(emb, path: Path) -> None:
    import torch

    ids = torch.full((2, 16), emb._pad_id, dtype=torch.long)
    ids[:, 0] = emb._prefix[0] if emb._prefix else 1
    mask = torch.ones((2, 16), dtype=torch.long)
    out_axes = {0: "batch", 1: "tokens"} if emb.multi_vector else {0: "batch"}
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(_wrapper(emb), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                              output_names=["vectors"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"}, "vectors": out_axes})
    except Exception as exc:  # noqa: BLE001 - any exporter failure means: serve with torch
        raise ExportError(f"torch.onnx.export failed: {str(exc).strip().splitlines()[0][:200]}") from exc


def _export_script(emb, path: Path) -> None:
    """The bf16 model traced (TorchScript, not frozen: a frozen module takes ~2 s to load, this one ~0.1 s) with
    dynamic batch and length: loading it needs torch alone, not transformers and peft (~2.3 s of an index run)."""
    import torch

    ids = torch.full((2, 16), emb._pad_id, dtype=torch.long)
    ids[:, 0] = emb._prefix[0] if emb._prefix else 1
    mask = torch.ones((2, 16), dtype=torch.long)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow
            torch.jit.save(torch.jit.trace(_wrapper(emb), (ids, mask), strict=False, check_trace=False), str(path))
    except Exception as exc:  # noqa: BLE001 - an untraceable model runs eagerly
        raise ExportError(f"torch.jit.trace failed: {str(exc).strip().splitlines()[0][:200]}") from exc


def _onnx_runner(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda ids, mask: session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def script_runner(path: Path):
    """The TorchScript module `_export_script` saved at `path`, as `run(ids, mask) -> float32 vectors` (numpy in and
    out), for ScriptEmbedder (torch.py) and for the check of the export here."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated in favour of torch.export, whose programs take
        module = torch.jit.load(str(path))  # ~2 s to load against ~0.1 s (measured with torch 2.13)

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()

    return run


def _matmuls(path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type == "MatMul"]


def _sensitive_nodes(path: Path, layers: int) -> list[str]:
    """MatMuls of the first and the last encoder layer and of everything after the encoder (the projection)."""
    keep = []
    for name in _matmuls(path):
        if "layer.0/" in name or f"layer.{layers - 1}/" in name or "/encoder/" not in name:
            keep.append(name)
    return keep


def _quantise(variant: str, src: Path, dst: Path, emb, calibration: list[str] | None) -> None:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # the quantiser logs pre-processing hints on the root logger
    try:
        _quantise_variant(variant, src, dst, emb, calibration)
    finally:
        root.setLevel(level)


def _quantise_variant(variant: str, src: Path, dst: Path, emb, calibration: list[str] | None) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    layers = int(getattr(emb._model.config, "num_hidden_layers", 0) or 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if variant in ("int8-dyn", "int8-dyn-rr", "int8-dyn-keep"):
            exclude = _sensitive_nodes(src, layers) if variant == "int8-dyn-keep" else []
            quantize_dynamic(str(src), str(dst), per_channel=True, reduce_range=variant == "int8-dyn-rr",
                             weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], nodes_to_exclude=exclude)
        elif variant == "int8-fused":
            from onnxruntime.transformers.optimizer import optimize_model

            cfg = emb._model.config
            fused = dst.with_name("fused.onnx")
            opt = optimize_model(str(src), model_type="bert", num_heads=int(cfg.num_attention_heads),
                                 hidden_size=int(cfg.hidden_size), opt_level=1)
            opt.save_model_to_file(str(fused))
            import onnx

            # fused ops (com.microsoft) defeat ONNX shape inference; their outputs are float tensors
            quantize_dynamic(str(fused), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Attention"],
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            fused.unlink()
        elif variant == "int8-static":
            texts = calibration if calibration is not None else calibration_texts()
            quantize_static(str(src), str(dst), _Reader(emb, texts), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["MatMul"])
        else:
            raise ExportError(f"unknown variant {variant}")


class _Reader:
    """Calibration batches for static quantisation: one text per batch, as sg tokenises documents."""

    def __init__(self, emb, texts: list[str]) -> None:
        seqs = emb._encode_ids(texts, False)
        self._feeds = iter([{"input_ids": np.asarray([s], np.int64), "attention_mask": np.ones((1, len(s)), np.int64)}
                            for s in seqs])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self) -> None:  # pragma: no cover - the calibrator reads once
        pass


def calibration_texts(n: int = CALIBRATION_CHUNKS) -> list[str]:
    """Chunks of sg's own source, rendered as sg embeds them: not one of the dev corpora the gate scores."""
    from ... import chunk as chunking
    from ...settings import load_settings
    from ..render import render_for_embedding

    root = Path(__file__).resolve().parents[2]  # engine/
    settings = load_settings(None)
    texts: list[str] = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root.parent).as_posix()
        try:
            source = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):  # a file that vanished or is not text: calibrate on the others
            continue
        texts += [render_for_embedding(c) for c in chunking.chunk_file(rel, source, settings.index)]
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def _verify(emb, directory: Path, layout: dict, run) -> float:
    """Worst cosine between `emb` (torch, the reference) and the export, run through `run(ids, mask)`, over the
    probe texts, as documents and as queries."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
    worst = 1.0
    for query in (False, True):
        want = emb._encode_ids(PROBES, query)
        head = layout["prefix"] + layout["mode_ids"] + (layout["q_marker"] if query else layout["d_marker"])
        room = max(1, emb.max_length - len(head) - len(layout["suffix"]))
        texts = emb.recipe.input_texts(PROBES, query)
        got = [head + e.ids[:room] + layout["suffix"] for e in tok.encode_batch(texts, add_special_tokens=False)]
        if got != want:
            raise ExportError("the tokenizer saved with the export does not reproduce transformers' token ids")
        ref = emb.embed_queries(PROBES) if query else emb.embed_documents(PROBES)
        width = max(len(s) for s in want)
        ids = np.full((len(want), width), layout["pad_id"], np.int64)
        mask = np.zeros_like(ids)
        for row, s in enumerate(want):
            ids[row, :len(s)] = s
            mask[row, :len(s)] = 1
        if emb.recipe.multi_vector and query and emb.recipe.query_expand_to:
            continue  # query expansion is checked through OrtEmbedder in the tests
        out = run(ids, mask)
        skip = np.asarray(layout["skip"], np.int64)
        for row in range(len(want)):
            a = ref[row]
            if emb.recipe.multi_vector:
                keep = mask[row].astype(bool)
                if not query and len(skip):
                    keep &= ~np.isin(ids[row], skip)
                b = out[row][keep]
                cos = float(np.min(np.sum(a * b, axis=-1))) if len(a) and a.shape == b.shape else 0.0
            else:
                b = out[row]
                cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
            worst = min(worst, cos)
    return worst
