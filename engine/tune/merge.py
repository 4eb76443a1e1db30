"""Merge a trained LoRA adapter into its base model and save a model directory the engine loads via --model-path.

The output keeps the base model's own layout (a sentence-transformers directory for MiniLM: modules.json,
1_Pooling/, sentence_bert_config.json, tokenizer files; XTR's T5 checkpoint + 2_Dense/), with the backbone
tensors replaced by the merged ones under their original names, so every loader that read the base reads this.
The adapter itself is kept in `adapter/` (small; PEFT format).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from ..errors import ModelError

# Files of the backbone directory replaced by the merged weights (other formats are dropped, not converted).
_WEIGHT_FILE = re.compile(r"^(model.*\.safetensors|model\.safetensors\.index\.json|pytorch_model.*\.bin|"
                          r"pytorch_model\.bin\.index\.json|tf_model\.h5|flax_model\.msgpack|rust_model\.ot|"
                          r"model\.onnx|.*\.gguf)$")
_SKIP_DIRS = {"onnx", "openvino", ".git", ".cache", "adapter", "checkpoints"}
_SKIP_FILES = {"README.md", ".gitattributes", "tune.json", "pairs.jsonl"}
MARKER = "tune.json"  # written last: a directory with it holds a finished model


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "workspace"


def next_version_dir(root: Path, name: str) -> Path:
    """<root>/<name>-vN with N one past the highest finished version; an unfinished last one is reused (resume)."""
    root = Path(root).expanduser()
    pat = re.compile(rf"^{re.escape(slug(name))}-v(\d+)$")
    found = sorted((int(m.group(1)), p) for p in (root.iterdir() if root.is_dir() else [])
                   if (m := pat.match(p.name)) and p.is_dir())
    if found:
        n, last = found[-1]
        if not (last / MARKER).is_file() and (last / "checkpoints").is_dir():
            return last
        return root / f"{slug(name)}-v{n + 1}"
    return root / f"{slug(name)}-v1"


def latest_finished(root: Path, name: str) -> Path | None:
    root = Path(root).expanduser()
    pat = re.compile(rf"^{re.escape(slug(name))}-v(\d+)$")
    found = sorted((int(m.group(1)), p) for p in (root.iterdir() if root.is_dir() else [])
                   if (m := pat.match(p.name)) and (p / MARKER).is_file())
    return found[-1][1] if found else None


def _load_tensors(weights) -> dict:
    import torch

    out = {}
    for f in weights.files:
        if weights.safetensors:
            from safetensors.torch import load_file

            out.update(load_file(str(f)))
        else:
            out.update(torch.load(f, map_location="cpu", weights_only=True))
    return out


def merged_state(merged_model, recipe) -> dict:
    """The base checkpoint's tensors, each replaced by the merged model's tensor of the same parameter."""
    new = merged_model.state_dict()
    prefix = getattr(merged_model, "base_model_prefix", "") or ""
    orig = _load_tensors(recipe.weights)
    used: set[str] = set()
    out = {}
    for k, t in orig.items():
        cand = k if k in new else (k[len(prefix) + 1:] if prefix and k.startswith(prefix + ".") else None)
        if cand is not None and cand in new and tuple(new[cand].shape) == tuple(t.shape):
            out[k] = new[cand].detach().to(t.dtype).contiguous().clone()
            used.add(cand)
        else:
            out[k] = t.contiguous().clone()
    missing = [k for k in new if k not in used and not k.endswith(("position_ids", "embed_tokens.weight"))]
    if missing and len(missing) > len(new) // 10:
        raise ModelError(f"merged weights do not match the base checkpoint's names (e.g. {missing[:3]})")
    # a parameter the base file did not hold (rare: a tied copy) is added under the model's own name
    for k in missing:
        out[k] = new[k].detach().contiguous().clone()
    return out


def copy_layout(base_root: Path, backbone: Path, out_dir: Path) -> None:
    """Copy every non-weight file of the base model (tokenizer, configs, pooling/dense modules)."""
    base_root, backbone = base_root.resolve(), backbone.resolve()
    for src in sorted(base_root.rglob("*")):
        rel = src.relative_to(base_root)
        if any(part in _SKIP_DIRS for part in rel.parts) or src.is_dir():
            continue
        if src.parent.resolve() == backbone and (_WEIGHT_FILE.match(src.name) or src.name in _SKIP_FILES):
            continue
        if src.parent.resolve() == base_root and src.name in _SKIP_FILES:
            continue
        dst = out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    modules = base_root / "modules.json"
    if modules.is_file():
        try:
            for m in json.loads(modules.read_text(encoding="utf-8")):
                if str(m.get("type", "")).endswith("Normalize") and m.get("path"):
                    (out_dir / m["path"]).mkdir(parents=True, exist_ok=True)
        except (ValueError, AttributeError, TypeError):
            pass


def save_merged(enc, recipe, base_root: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write adapter/ and the merged model into out_dir; the encoder's model becomes the merged one.

    Returns (model directory, adapter directory).
    """
    from safetensors.torch import save_file

    if enc.peft is None:
        raise ModelError("no adapter to merge")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    enc.to("cpu")
    adapter_dir = out_dir / "adapter"
    enc.peft.save_pretrained(str(adapter_dir))
    merged = enc.merge_adapter()
    merged.eval()
    backbone = Path(recipe.directory).resolve()
    base_root = Path(base_root).resolve()
    copy_layout(base_root, backbone, out_dir)
    rel = backbone.relative_to(base_root) if backbone.is_relative_to(base_root) else Path(".")
    target = out_dir / rel
    target.mkdir(parents=True, exist_ok=True)
    state = merged_state(merged, recipe)
    tmp = target / "model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(target / "model.safetensors")
    if not (target / "config.json").is_file():
        merged.config.to_json_file(str(target / "config.json"))
    return out_dir, adapter_dir


def write_card(out_dir: Path, info: dict) -> None:
    """README.md (model card) and tune.json (machine-readable; its presence marks the model as finished)."""
    out_dir = Path(out_dir)
    b, a = info.get("before") or {}, info.get("after") or {}
    kinds = ", ".join(f"{k}: {v}" for k, v in (info.get("pair_kinds") or {}).items())
    lines = [
        "---",
        "library_name: sentence-transformers" if (out_dir / "modules.json").is_file() else "library_name: transformers",
        f"base_model: {info.get('base_model', '')}",
        "tags: [sg, code-search, lora, local-tuning]",
        "---",
        f"# {out_dir.name}",
        "",
        f"Tuned by `sg tune` for the workspace `{info.get('workspace', '')}` on {time.strftime('%Y-%m-%d')}: "
        f"a LoRA adapter (r={info.get('lora', {}).get('r')}) trained contrastively on pairs mined from the "
        f"workspace's own code, merged into `{info.get('base_model', '')}`.",
        "",
        f"- pairs: {info.get('pairs')} mined ({kinds}); {info.get('train_pairs')} trained on, "
        f"{info.get('heldout_pairs')} held out",
        f"- steps: {info.get('steps')} ({info.get('stopped', '')}), {info.get('train_seconds', 0):.0f} s on "
        f"{info.get('device', '')}",
        f"- held-out mined pairs, semantic ranking among {info.get('pool', '?')} chunks: "
        f"P@1 {b.get('P@1', '?')} -> {a.get('P@1', '?')}, MRR@10 {b.get('MRR@10', '?')} -> {a.get('MRR@10', '?')}",
        "",
        "Use it: `sg index --model-path " + str(out_dir) + "` (or `models.model_path` in .sg.toml).",
        "The adapter alone is in `adapter/` (PEFT format, applies to the base model above).",
        "",
    ]
    (out_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")
    tmp = out_dir / (MARKER + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    tmp.replace(out_dir / MARKER)
