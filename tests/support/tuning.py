"""A toy workspace with docstrings to mine, a tiny BERT to tune, and a fast training config for it."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import torch

TOPICS = [
    ("parse", "config", "file", "settings"), ("compute", "checksum", "bytes", "digest"),
    ("render", "html", "page", "template"), ("send", "email", "message", "smtp"),
    ("resize", "image", "pixels", "thumbnail"), ("merge", "sorted", "lists", "heap"),
    ("connect", "database", "socket", "pool"), ("encode", "json", "record", "string"),
    ("retry", "request", "backoff", "timeout"), ("hash", "password", "salt", "secret"),
    ("schedule", "task", "queue", "worker"), ("compress", "archive", "folder", "zip"),
    ("validate", "email", "address", "pattern"), ("download", "url", "stream", "chunk"),
    ("tokenize", "sentence", "words", "spaces"), ("rotate", "matrix", "angle", "degrees"),
]


def toy_files() -> dict[str, str]:
    files: dict[str, list[str]] = {}
    for i, (verb, noun, a, b) in enumerate(TOPICS):
        rel = f"pkg/mod{i % 4}.py"
        body = (f"def {verb}_{noun}({a}, {b}=None):\n"
                f"    \"\"\"{verb.capitalize()} the {noun} using the {a} and the {b}.\n\n"
                f"    More words about {a} here.\n    \"\"\"\n"
                f"    {a}_value = load_{a}({a})\n"
                f"    if {b} is None:\n        {b} = default_{b}()\n"
                f"    return apply_{verb}({a}_value, {b})\n")
        files.setdefault(rel, ["import os\nfrom helpers import load_thing\n"]).append(body)
    files["pkg/klass.py"] = ["class ImageStore:\n    \"\"\"Keeps resized images on disk.\"\"\"\n\n"
                             "    def save_thumbnail(self, image):\n        return write_pixels(image)\n\n"
                             "    def load_thumbnail(self, name):\n        return read_pixels(name)\n"]
    return {k: "\n\n".join(v) for k, v in files.items()}


def build_tiny_model(d: Path, texts: list[str]) -> Path:
    """A random 2-layer, 32-wide BERT in sentence-transformers layout with a WordPiece vocab of the toy words."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    d.mkdir(parents=True, exist_ok=True)
    words = sorted({w for t in texts for w in re.findall(r"[a-z]+|\d+", t.lower())})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(string.ascii_lowercase + string.digits
                                                                  + string.punctuation)
    vocab += ["##" + c for c in string.ascii_lowercase + string.digits] + words
    vocab = list(dict.fromkeys(vocab))
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(str(d))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(str(d))
    (d / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (d / "1_Pooling").mkdir(exist_ok=True)
    (d / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32,
                                                              "pooling_mode_mean_tokens": True}))
    (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    return d


def tiny_config(tmp_path: Path, tiny_model: Path, **train) -> str:
    import yaml

    cfg = {"base_model": str(tiny_model),
           "mining": {"heldout_fraction": 0.2, "heldout_min": 3, "min_code_chars": 10},
           "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
           "train": {"epochs": 4, "batch_size": 4, "lr": 5e-3, "warmup": 0.0, "eval_every": 5, "patience": 0,
                     "save_every": 2, "max_doc_length": 64, **train},
           "output": {"root": str(tmp_path / "models")},
           "eval": {"pool": 50}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return str(path)
