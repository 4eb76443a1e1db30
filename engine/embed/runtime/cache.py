"""Where exports live: one directory per (model identity, variant, runtime version), complete or absent. The
ONNX variants (onnx.py) and a TorchScript trace for bf16 documents (torch.py) share the layout: the model file,
tokenizer.json and a manifest with the token layout.

Light on purpose: a search reads a manifest through this module and never imports the exporter (export.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ...dist import dist_version

# Bump when the exported graph or the manifest changes meaning, so older cache entries are not used.
EXPORT_VERSION = "1"
# Variants of the exported graph. fp32 must match torch fp32 (worst cosine >= FP32_MIN_COSINE on the probe
# texts) or it is not used; the int8 ones are separate vector spaces, admitted by the accuracy gate.
VARIANTS = ("fp32", "int8-dyn", "int8-dyn-rr", "int8-dyn-keep", "int8-static", "int8-fused")
# A variant whose making changed without changing EXPORT_VERSION for all: int8-static 2 calibrates on chunks rendered
# as sg embeds them (issue 26; before, an import error left it on 40-line windows of source).
VARIANT_REVISION = {"int8-static": "2"}
# TorchScript trace of the bf16 model: the same vectors as torch bf16 (worst cosine >= FP32_MIN_COSINE), loaded
# without transformers or peft (torch.py).
SCRIPTED = "torchscript-bf16"
FP32_MIN_COSINE = 0.9999
MANIFEST = "manifest.json"


def cache_root() -> Path:
    return Path(os.environ.get("SG_CACHE_DIR") or Path.home() / ".cache" / "sg") / "onnx"


def cache_key(base_ident: str, variant: str) -> str:
    """Directory name of one export: the torch fp32 identity (weights, adapter, recipe), the variant, and the
    versions that shape the file (export code, onnxruntime which quantises and optimises it, or torch which traces
    and runs the TorchScript one)."""
    parts = [EXPORT_VERSION, base_ident, variant, dist_version("torch" if variant == SCRIPTED else "onnxruntime")]
    if variant in VARIANT_REVISION:
        parts.append(f"revision={VARIANT_REVISION[variant]}")
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
