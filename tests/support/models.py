"""Tiny random models of each family sg loads, built in the test and saved as real checkpoints (safetensors, or
.bin where a family ships that), plus a Hugging Face cache snapshot to put them in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from engine.embed.sentence import default_model_dir


TEXTS = [
    "def read_lines(path):\n    with open(path) as fh:\n        return fh.readlines()",
    "Retry the request with exponential backoff.",
    "",
    "x = [i * i for i in range(10)]  # squares, then some more words to make this one longer than the rest " * 3,
    "sort a list of dicts by key",
    "class Stack:\n    def push(self, item):\n        self.items.append(item)",
]
CORPUS = [
    "def add(a, b): return a + b", "read a file line by line", "retry with exponential backoff",
    "the quick brown fox jumps over the lazy dog", "class Foo: pass", "import os, sys; print(os.getcwd())",
    "sort a list of dictionaries by a key", "parse json from a string", "open a socket and listen",
] * 4


def _bpe(specials: list[str], template: tuple[str, str] | None) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS + TEXTS, trainer)
    if template:
        first, last = template
        pieces = [t for t in (first, last) if t]
        tok.post_processor = processors.TemplateProcessing(
            single=" ".join(([first] if first else []) + ["$A"] + [last]),
            special_tokens=[(t, tok.token_to_id(t)) for t in pieces])
    return tok


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def hub_snapshot(cache: Path, repo: str) -> Path:
    """The directory layout huggingface_hub uses for a cached repo: models--org--name/snapshots/<rev>/."""
    rev = "0123456789abcdef0123456789abcdef01234567"
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / rev
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(rev)
    return snap


def build_st_bert(dst: Path, max_seq_length: int = 16, dense: bool = True, pooling: str = "mean",
                  legacy: bool = True) -> Path:
    """A sentence-transformers directory: tiny BERT + pooling + Tanh Dense + Normalize, in the 2.x file layout
    (pooling_mode_*_tokens flags, max_seq_length in sentence_bert_config.json) or the 6.x one."""
    from transformers import BertConfig, BertModel

    src = default_model_dir()
    dst.mkdir(parents=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, dst / name)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    BertModel(cfg).save_pretrained(dst, safe_serialization=True)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if legacy:
        write_json(dst / "1_Pooling" / "config.json", {
            "word_embedding_dimension": 32, "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": pooling == "max",
            "pooling_mode_mean_sqrt_len_tokens": False})
    else:
        write_json(dst / "1_Pooling" / "config.json", {"embedding_dimension": 32, "pooling_mode": pooling,
                                                        "include_prompt": True})
    if dense:
        from safetensors.torch import save_file

        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
        write_json(dst / "2_Dense" / "config.json", {"in_features": 32, "out_features": 24, "bias": True,
                                                      "activation_function": "torch.nn.modules.activation.Tanh"})
        save_file({"linear.weight": torch.randn(24, 32) * 0.3, "linear.bias": torch.randn(24) * 0.1},
                  str(dst / "2_Dense" / "model.safetensors"))
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": f"{len(modules)}_Normalize",
                    "type": "sentence_transformers.models.Normalize"})
    write_json(dst / "modules.json", modules)
    if legacy:
        write_json(dst / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    else:
        write_json(dst / "sentence_bert_config.json", {"transformer_task": "feature-extraction"})
        tok_cfg = json.loads((dst / "tokenizer_config.json").read_text())
        tok_cfg["model_max_length"] = max_seq_length
        write_json(dst / "tokenizer_config.json", tok_cfg)
    return dst


def build_unixcoder(dst: Path, use_bin: bool = True) -> Path:
    """RoBERTa with UniXcoder's mode tokens in a vocab.json/merges.txt tokenizer, weights as a (safe) .bin."""
    from transformers import RobertaConfig, RobertaModel

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<encoder-only>", "<decoder-only>", "<encoder-decoder>"]
    dst.mkdir(parents=True, exist_ok=True)
    tok = _bpe(specials, None)
    tok.model.save(str(dst))
    write_json(dst / "tokenizer_config.json", {
        "tokenizer_class": "RobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
        "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
        "model_max_length": 1024})
    torch.manual_seed(1)
    cfg = RobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=1026, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2)
    model = RobertaModel(cfg, add_pooling_layer=False)
    if use_bin:
        cfg.save_pretrained(dst)
        torch.save(model.state_dict(), dst / "pytorch_model.bin")
    else:
        model.save_pretrained(dst, safe_serialization=True)
    return dst


def build_xtr(dst: Path) -> Path:
    """T5 encoder with the projection as a sentence-transformers 2_Dense module holding a .bin, like the hub."""
    from transformers import T5Config, T5EncoderModel

    dst.mkdir(parents=True, exist_ok=True)
    tok = _bpe(["<pad>", "</s>", "<unk>"], ("", "</s>"))
    tok.save(str(dst / "tokenizer.json"))
    write_json(dst / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "model_max_length": 512})
    torch.manual_seed(2)
    cfg = T5Config(vocab_size=tok.get_vocab_size(), d_model=32, d_kv=8, num_heads=4, num_layers=2, d_ff=64,
                   feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5EncoderModel(cfg).save_pretrained(dst, safe_serialization=True)
    write_json(dst / "2_Dense" / "config.json", {"in_features": 32, "out_features": 16, "bias": False,
                                                  "activation_function": "torch.nn.modules.linear.Identity"})
    torch.save({"linear.weight": torch.randn(16, 32)}, dst / "2_Dense" / "pytorch_model.bin")
    return dst


MODELING_TINY = '''
from transformers import BertModel, XLMRobertaModel


class TinyColbertModel(XLMRobertaModel):
    """Stands in for jinaai/xlm-roberta-flash-implementation: remote code the user must opt into."""


class TinyJinaBert(BertModel):
    """Stands in for JinaBERT's remote code."""
'''


def build_colbert(dst: Path, remote_code: bool = True) -> Path:
    """Stanford HF_ColBERT layout like jinaai/jina-colbert-v2: XLM-R weights under roberta., linear.weight in the
    same safetensors, markers in artifact.metadata, remote code via auto_map, CC-BY-NC model card."""
    from safetensors.torch import save_file
    from transformers import XLMRobertaConfig, XLMRobertaModel

    dst.mkdir(parents=True, exist_ok=True)
    tok = _bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>", "[QueryMarker]", "[DocumentMarker]"], ("<s>", "</s>"))
    tok.save(str(dst / "tokenizer.json"))
    write_json(dst / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
        "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
        "model_max_length": 8192})
    torch.manual_seed(3)
    cfg = XLMRobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=514,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2)
    model = XLMRobertaModel(cfg, add_pooling_layer=False)
    state = {f"roberta.{k}": v.contiguous() for k, v in model.state_dict().items()}
    state["linear.weight"] = torch.randn(12, 32)
    save_file(state, str(dst / "model.safetensors"))
    cfg.architectures = ["HF_ColBERT"]
    if remote_code:
        cfg.auto_map = {"AutoModel": "modeling_tiny.TinyColbertModel"}
        (dst / "modeling_tiny.py").write_text(MODELING_TINY)
    cfg.save_pretrained(dst)
    write_json(dst / "artifact.metadata", {"query_token_id": "[QueryMarker]", "doc_token_id": "[DocumentMarker]",
                                            "query_maxlen": 8, "doc_maxlen": 8192, "attend_to_mask_tokens": True,
                                            "mask_punctuation": True, "dim": 12})
    (dst / "README.md").write_text("---\nlicense: cc-by-nc-4.0\nlibrary_name: transformers\n---\n# tiny\n")
    return dst


def build_jina_code(dst: Path) -> Path:
    """A plain encoder dir whose config points at remote code (auto_map), like jina-embeddings-v2-base-code."""
    build_st_bert(dst, dense=False)
    for extra in ("modules.json", "sentence_bert_config.json"):
        (dst / extra).unlink()
    shutil.rmtree(dst / "1_Pooling")
    shutil.rmtree(dst / "2_Normalize", ignore_errors=True)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_tiny.TinyJinaBert"}
    write_json(dst / "config.json", cfg)
    (dst / "modeling_tiny.py").write_text(MODELING_TINY)
    return dst
