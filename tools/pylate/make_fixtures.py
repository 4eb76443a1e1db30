"""Build the tiny ColBERT test fixtures with PyLate itself and record what PyLate's encoder returns for them.

Run in the PyLate venv (tools/pylate/make_venv.sh), from the repository root:
    ~/.cache/sg/pylate-venv/bin/python tools/pylate/make_fixtures.py [tests/fixtures/pylate]
or, to record PyLate's vectors for any model directory (e.g. one tools/pylate/train.py made) for a parity check:
    ~/.cache/sg/pylate-venv/bin/python tools/pylate/make_fixtures.py --record MODEL_DIR OUT.npz

Writes, for each fixture NAME, the model directory NAME/ (as PyLate saves it, or the Stanford `HF_ColBERT`
layout) and NAME.expected.npz: PyLate's `encode(TEXTS, is_query=True)` and `is_query=False` token vectors
(q0, q1, ... / d0, d1, ...) with the token ids behind them (qids0... / dids0...). Backbones are RANDOM and tiny
(hidden 32, a few hundred tokens of vocabulary): they test the plumbing, not retrieval quality.

Fixtures:
  bert        BERT backbone, PyLate defaults: "[Q] "/"[D] " prefix tokens added to the vocabulary, query
              expansion with [MASK] tokens that are NOT attended, punctuation skiplist, one Dense 32->16.
  bert_plain  the same backbone with no prefixes (query_prefix = document_prefix = "") and no query expansion.
  modernbert  ModernBERT backbone (byte-level BPE), two Dense layers (32->24 with bias and tanh, then 24->16
              with a residual projection), expansion tokens attended, a skiplist with a word in it.
  stanford    Stanford ColBERT `HF_ColBERT` layout (bert.* weights + linear.weight in one checkpoint,
              artifact.metadata with [unused0]/[unused1] markers). Expected vectors come from PyLate loading
              that layout (colbert-ai cannot be installed offline here); PyLate follows colbert-ai's rules for it:
              [CLS] [unused0] query [SEP] [MASK]... (masks not attended unless attend_to_mask_tokens),
              [CLS] [unused1] doc [SEP], punctuation dropped from documents, vectors L2-normalised.
"""

from __future__ import annotations

import json
import shutil
import string
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

QUERY_LENGTH = 16
DOCUMENT_LENGTH = 48

# Code, prose, punctuation-heavy lines, whitespace to strip, a long text to truncate, characters outside the
# tiny vocabularies. Shared by queries and documents.
TEXTS = [
    "def parse_config(path):\n    with open(path) as f:\n        return json.load(f)",
    "How do I read a JSON config file and return it as a dict?",
    "if (x->next != NULL && *p == '{') { return -1; } // check: [a, b]",
    "!!! ??? ... ;;; ::: ((( ))) {{{ }}} <<< >>> ### $$$ %%% ^^^",
    "   leading and trailing whitespace is stripped   \n",
    "The store keeps token vectors, and the search reranks candidates with MaxSim over them. " * 4,
    "class Engine:\n    def search(self, query: str, k: int = 10) -> list[Hit]: ...",
    "naïve café — résumé “quoted” 検索",
    "x",
    "retry the request with exponential backoff when the server returns 503",
]

BPE_CORPUS = TEXTS + [
    "import os, sys, json; from pathlib import Path",
    "for i in range(10): print(i, end=', ')",
    "the quick brown fox jumps over the lazy dog",
    "return the value of the parsed config file as a dictionary of settings",
]


def _wordpiece_vocab() -> list[str]:
    words = set()
    for text in BPE_CORPUS:
        for w in text.lower().replace("\n", " ").split():
            w = w.strip(string.punctuation + "“”—")
            if w.isascii() and w.isalpha() and len(w) > 1:
                words.add(w)
    chars = [c for c in string.ascii_lowercase + string.digits]
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(4)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(string.punctuation) + chars + ["##" + c for c in chars] + sorted(words)
    return vocab


def tiny_bert(out: Path, architectures: list[str] | None = None) -> None:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    vocab = _wordpiece_vocab()
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tok.model_max_length = 128
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    model = BertModel(config, add_pooling_layer=False)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def tiny_modernbert(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(BPE_CORPUS * 3, trainer=trainer)
    cls_id, sep_id = bpe.token_to_id("[CLS]"), bpe.token_to_id("[SEP]")
    bpe.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                  pad_token="[PAD]", mask_token="[MASK]", model_max_length=128)
    torch.manual_seed(1)
    config = ModernBertConfig(vocab_size=bpe.get_vocab_size(), hidden_size=32, intermediate_size=48,
                              num_hidden_layers=3, num_attention_heads=2, max_position_embeddings=128,
                              local_attention=16, global_attn_every_n_layers=2,
                              pad_token_id=bpe.token_to_id("[PAD]"), cls_token_id=cls_id, sep_token_id=sep_id,
                              bos_token_id=cls_id, eos_token_id=sep_id)
    model = ModernBertModel(config)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def tiny_stanford(out: Path) -> None:
    """A BERT checkpoint saved the way colbert-ai's HF_ColBERT saves one: bert.* + linear.weight, one file."""
    from safetensors.torch import load_file, save_file

    tiny_bert(out)
    state = load_file(str(out / "model.safetensors"))
    state = {f"bert.{k}": v for k, v in state.items()}
    torch.manual_seed(2)
    state["linear.weight"] = torch.randn(16, 32) * 0.2
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((out / "config.json").read_text())
    config["architectures"] = ["HF_ColBERT"]
    (out / "config.json").write_text(json.dumps(config, indent=2))
    meta = {"query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": QUERY_LENGTH,
            "doc_maxlen": DOCUMENT_LENGTH, "dim": 16, "attend_to_mask_tokens": False, "mask_punctuation": True,
            "similarity": "cosine"}
    (out / "artifact.metadata").write_text(json.dumps(meta, indent=2))


def record(model_dir: Path, expected: Path) -> dict:
    from pylate import models

    model = models.ColBERT(model_name_or_path=str(model_dir), device="cpu")
    arrays: dict[str, Any] = {}  # Any: numpy's stub reads **arrays as if it could hold allow_pickle
    counts = {}
    for is_query, tag in ((True, "q"), (False, "d")):
        vecs = model.encode(TEXTS, is_query=is_query, batch_size=4, convert_to_numpy=True)
        raw = model.encode(TEXTS, is_query=is_query, batch_size=4, output_value=None)
        for i, vec in enumerate(vecs):
            ids = np.asarray(raw["input_ids"][i])[np.asarray(raw["masks"][i]).astype(bool)]
            assert len(ids) == len(vec), (model_dir, tag, i)
            arrays[f"{tag}{i}"] = np.asarray(vec, dtype=np.float32)
            arrays[f"{tag}ids{i}"] = ids.astype(np.int64)
        counts[tag] = [len(v) for v in vecs]
    np.savez_compressed(expected, texts=np.array(TEXTS), **arrays)
    return counts


def build_pylate(backbone: Path, out: Path, **kwargs) -> None:
    from pylate import models

    torch.manual_seed(3)
    model = models.ColBERT(model_name_or_path=str(backbone), device="cpu", **kwargs)
    if out.exists():
        shutil.rmtree(out)
    model.save(str(out))


def main(dest: Path) -> None:
    from pylate.models import Dense
    from sentence_transformers.models import Transformer

    dest.mkdir(parents=True, exist_ok=True)
    work = dest / "_backbones"
    shutil.rmtree(work, ignore_errors=True)
    try:
        tiny_bert(work / "bert")
        build_pylate(work / "bert", dest / "bert", embedding_size=16, query_length=QUERY_LENGTH,
                     document_length=DOCUMENT_LENGTH)

        # no prefixes and no query expansion: queries keep only their real tokens
        build_pylate(work / "bert", dest / "bert_plain", embedding_size=8, query_length=12, document_length=32,
                     query_prefix="", document_prefix="", do_query_expansion=False)

        tiny_modernbert(work / "modernbert")
        torch.manual_seed(4)
        first = Transformer(str(work / "modernbert"))
        dense1 = Dense(in_features=32, out_features=24, bias=True, activation_function=torch.nn.Tanh())
        dense2 = Dense(in_features=24, out_features=16, bias=False, use_residual=True)
        from pylate import models

        model = models.ColBERT(modules=[first, dense1, dense2], device="cpu", query_length=QUERY_LENGTH,
                               document_length=DOCUMENT_LENGTH, attend_to_expansion_tokens=True,
                               skiplist_words=list(string.punctuation) + ["the"])
        shutil.rmtree(dest / "modernbert", ignore_errors=True)
        model.save(str(dest / "modernbert"))

        shutil.rmtree(dest / "stanford", ignore_errors=True)
        tiny_stanford(dest / "stanford")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in ("bert", "bert_plain", "modernbert", "stanford"):
        counts = record(dest / name, dest / f"{name}.expected.npz")
        print(name, "query tokens", counts["q"], "document tokens", counts["d"])
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"fixtures: {total / 1024:.0f} KiB in {dest}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--record"] and len(sys.argv) == 4:
        print(record(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/pylate"))
