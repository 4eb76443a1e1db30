"""Local tuning: pair mining, contrastive LoRA training, merging and loading the result, on a tiny random BERT."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from tests.support.tuning import TOPICS, build_tiny_model, tiny_config, toy_files  # noqa: E402
from engine.embed.registry import resolve_recipe  # noqa: E402
from engine.embed.transformer import Recipe, TransformerEmbedder  # noqa: E402
from engine.settings import ModelSettings, load_settings  # noqa: E402
from engine.tune import load_codesearchnet_jsonl, run_tune  # noqa: E402
from engine.tune.config import CONFIG_DIR, LoraSettings, MiningConfig, TrainSettings, load_config  # noqa: E402
from engine.tune.merge import next_version_dir, save_merged  # noqa: E402
from engine.tune.mine import (Pair, doc_rest, first_sentence, imported_names, read_jsonl,  # noqa: E402
                              split_identifier, strip_doc, write_jsonl)
from engine.tune.train import TrainableEncoder, batch_loss, train  # noqa: E402

torch.set_num_threads(1)

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    texts = list(toy_files().values()) + ["pkg mod klass py image store"]
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"), texts)


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "toyproj"
    for rel, text in toy_files().items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


def lexical_engine(root: Path, **models):
    from engine.search import Engine

    return Engine(root, load_settings(root, {"models": models or {"enabled": False},
                                             "index": {"index_dir": str(root.parent / "idx")}}))


def toy_pairs() -> list[Pair]:
    out = []
    for verb, noun, a, b in TOPICS:
        code = f"def {verb}_{noun}({a}, {b}):\n    return apply_{verb}(load_{a}({a}), {b})"
        out.append(Pair(f"{verb} the {noun} with {a}", code, [f"def other_{noun}():\n    return {b}"],
                        key=f"{verb}_{noun}"))
    return out


# -- pure helpers ------------------------------------------------------------------------------------------------

def test_first_sentence_and_identifiers() -> None:
    assert first_sentence("Return the :class:`~a.b.Item` for ``node``. More.\n\nNext") == "Return the Item for node."
    assert first_sentence("/// Parses input, e.g. tokens. Then more.\n/// x") == "Parses input, e.g. tokens."
    assert first_sentence("Update the cache\nfrom disk.\n\nDetails.") == "Update the cache from disk."
    assert split_identifier("getHTTPServer_name2") == ["get", "http", "server", "name", "2"]
    assert ("eel", "a.b") in imported_names("from a.b import (cat,\n  dog as eel)\nimport numpy.linalg\n", "python")
    assert ("numpy", "numpy.linalg") in imported_names("import numpy.linalg\n", "python")


def test_strip_doc_removes_only_the_docstring() -> None:
    method = 'def f(self,\n            a):\n        """Do the thing.\n\n        Long.\n        """\n        return a'
    assert strip_doc(method, "Do the thing.\n\nLong.", "python") == "def f(self,\n            a):\n        return a"
    one = "@property\n    def g(self):\n        '''One line.'''\n        x = 1\n        return x"
    assert "One line" not in strip_doc(one, "One line.", "python") and "x = 1" in strip_doc(one, "", "python")
    rust = "/// Adds one.\n/// More.\n#[inline]\nfn add(x: i32) -> i32 { x + 1 }"
    assert strip_doc(rust, "Adds one.\nMore.", "rust").startswith("#[inline]")
    js = "/** Parse a value. */\nfunction parseValue(t) { return t; }"
    assert strip_doc(js, "Parse a value.", "javascript") == "function parseValue(t) { return t; }"


def test_doc_rest_keeps_what_follows_the_first_paragraph() -> None:
    f = 'def f(a):\n    """Add one to a.\n\n    Args:\n        a: a number.\n    """\n    return a + 1'
    doc = "Add one to a.\n\nArgs:\n    a: a number."
    want = 'def f(a):\n    """\n    Args:\n        a: a number.\n    """\n    return a + 1'
    assert doc_rest(f, doc, "python") == want
    one = 'def g():\n    """Only a summary."""\n    return 2'
    assert doc_rest(one, "Only a summary.", "python") == strip_doc(one, "Only a summary.", "python")


def test_configs_load() -> None:
    names = sorted(p.name for p in CONFIG_DIR.glob("train_*.yaml") if p.name != "train_public_code.yaml")
    assert {"train_local_default.yaml", "train_rust_direct.yaml", "train_codesearchnet.yaml"} <= set(names)
    for n in names:
        cfg = load_config(str(CONFIG_DIR / n))
        assert cfg.phases and cfg.lora.r >= 1
    rust = load_config("rust_direct")
    assert (rust.lora.r, rust.lora.alpha, rust.lora.dropout, rust.lora.target_modules) == (16, 32, 0.1, ["q", "v"])
    csn = load_config("codesearchnet")
    assert [p.source for p in csn.phases] == ["codesearchnet", "local"]


def test_codesearchnet_loader(tmp_path: Path) -> None:
    recs = [{"code": 'def add(a, b):\n    """Add two numbers together quickly."""\n    return a + b',
             "docstring": "Add two numbers together quickly.", "language": "python", "path": "m/ops.py",
             "func_name": "add"},
            {"func_code_string": "func Sub(a, b int) int { return a - b }", "language": "go",
             "func_documentation_string": "Sub subtracts b from a.", "path": "ops.go", "func_name": "Sub"},
            {"code": "def x(): pass", "docstring": "", "language": "python"}]
    path = tmp_path / "csn.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs), encoding="utf-8")
    pairs = load_codesearchnet_jsonl(path)
    assert [p.query for p in pairs] == ["Add two numbers together quickly.", "Sub subtracts b from a."]
    assert "together" not in pairs[0].positive and "return a + b" in pairs[0].positive
    assert pairs[0].positive.startswith("m ops") and pairs[1].language == "go"
    assert len(load_codesearchnet_jsonl(path, languages=["go"])) == 1


# -- mining from an index -------------------------------------------------------------------------------------------

def test_mine_from_engine(ws: Path, tmp_path: Path) -> None:
    from engine.embed.render import render_for_embedding
    from engine.tune.mine import MineStats, mine_pairs

    eng = lexical_engine(ws)
    eng.index(embed=False)
    stats = MineStats()
    cfg = MiningConfig(min_code_chars=10)
    pairs = mine_pairs(eng.iter_chunks(), cfg, lambda r: render_for_embedding(r, "structured"),
                       lexical=eng.lexical_search, root=ws, stats=stats)
    eng.close()
    docs = [p for p in pairs if p.kind == "doc"]
    assert len(docs) == len(TOPICS) + 1  # every function, plus the class
    for p in docs:
        assert p.query.split()[0] in {t[0].capitalize() for t in TOPICS} | {"Keeps"}
        assert p.query not in p.positive and "More words" not in p.positive  # docstring gone
        assert p.positive.startswith("pkg ")  # rendered like the index renders it
        assert p.negatives and all(n != p.positive for n in p.negatives)
        assert all(p.symbol.split(".")[-1] + "(" not in n for n in p.negatives)
    kinds = {p.kind for p in pairs}
    assert {"doc", "name", "class"} <= kinds
    cls = next(p for p in pairs if p.kind == "class")
    assert cls.query == "image store" and cls.symbol.startswith("ImageStore.")
    out = write_jsonl(pairs, tmp_path / "pairs.jsonl")
    back = read_jsonl(out)
    assert [(p.query, p.positive, p.negatives, p.path, p.symbol) for p in back] == \
        [(p.query, p.positive, p.negatives, p.path, p.symbol) for p in pairs]
    assert set(json.loads(out.read_text().splitlines()[0])) >= {"query", "positive", "negatives", "path", "symbol"}
    # positive_docs: rest keeps what users' code keeps: a docstring, never the part the query came from
    eng = lexical_engine(ws)
    rest = mine_pairs(eng.iter_chunks(), MiningConfig(min_code_chars=10, positive_docs="rest"),
                      lambda r: render_for_embedding(r, "structured"), root=ws)
    eng.close()
    by_query = {p.query: p for p in rest}
    for p in docs:
        q = by_query[p.query]
        assert p.query not in q.positive and ("More words" in q.positive) == (p.symbol != "ImageStore")
    names = [p for p in rest if p.kind == "name"]
    assert names and any('"""' in p.positive for p in names)


# -- training ---------------------------------------------------------------------------------------------------------

def test_encoder_matches_engine_embedder(tiny_model: Path) -> None:
    recipe = resolve_recipe(str(tiny_model), ModelSettings())
    enc = TrainableEncoder(recipe)
    texts = ["parse the config file", "def compute_checksum(bytes):\n    return digest(bytes)"]
    ref = TransformerEmbedder(recipe).embed_documents(texts)
    assert torch.allclose(enc.encode(texts, False), torch.as_tensor(ref), atol=1e-5)


def test_loss_falls_merge_matches_and_loads(tiny_model: Path, tmp_path: Path) -> None:
    recipe = resolve_recipe(str(tiny_model), ModelSettings())
    enc = TrainableEncoder(recipe)
    enc.add_lora(LoraSettings(r=4, alpha=8, dropout=0.0))
    n_train, n_all = enc.trainable_count()
    assert 0 < n_train < n_all // 5
    pairs = toy_pairs()
    ts = TrainSettings(epochs=30, batch_size=8, lr=1e-2, warmup=0.0, eval_every=0, save_every=0, max_doc_length=48)
    with torch.no_grad():
        enc.model.eval()
        before = float(batch_loss(enc, pairs, [p.negatives for p in pairs], ts, 48))
    res = train(enc, pairs, [], ts)
    with torch.no_grad():
        after = float(batch_loss(enc, pairs, [p.negatives for p in pairs], ts, 48))
    assert res.steps == 60 and after < 0.7 * before, (before, after)
    assert sum(res.losses[-5:]) < 0.7 * sum(res.losses[:5])
    texts = ["compute the checksum with bytes", "def send_email(message, smtp):\n    return message"]
    with_adapter_q = enc.encode(texts, True)
    with_adapter_d = enc.encode(texts, False)
    out, adapter = save_merged(enc, recipe, tiny_model, tmp_path / "merged")
    assert (adapter / "adapter_model.safetensors").stat().st_size < 0.2 * (out / "model.safetensors").stat().st_size
    assert {"modules.json", "config.json", "tokenizer.json", "vocab.txt", "sentence_bert_config.json"} <= \
        {p.name for p in out.iterdir()}
    assert (out / "1_Pooling" / "config.json").is_file() and (out / "2_Normalize").is_dir()
    loaded = TransformerEmbedder(resolve_recipe(str(out), ModelSettings()))
    assert torch.allclose(torch.as_tensor(loaded.embed_queries(texts)), with_adapter_q, atol=1e-5)
    assert torch.allclose(torch.as_tensor(loaded.embed_documents(texts)), with_adapter_d, atol=1e-5)
    base = TransformerEmbedder(recipe).embed_documents(texts)
    assert not torch.allclose(torch.as_tensor(base), with_adapter_d, atol=1e-3)  # training changed something
    # the adapter alone, applied by the engine's loader to the base, gives the same vectors as the merged model
    via_adapter = TransformerEmbedder(Recipe(**{**vars(recipe), "adapter": adapter}))
    assert torch.allclose(torch.as_tensor(via_adapter.embed_documents(texts)), with_adapter_d, atol=1e-5)


def test_maxsim_training_on_a_multi_vector_recipe(tiny_model: Path) -> None:
    recipe = resolve_recipe(str(tiny_model), ModelSettings())
    multi = Recipe(**{**vars(recipe), "multi_vector": True, "pooling": ()})
    enc = TrainableEncoder(multi)
    enc.add_lora(LoraSettings(r=4, alpha=8, dropout=0.0))
    pairs = toy_pairs()
    ts = TrainSettings(epochs=40, batch_size=8, lr=1e-2, warmup=0.0, eval_every=0, save_every=0,
                       max_doc_length=48, temperature=0.05)
    res = train(enc, pairs, [], ts)
    assert res.steps == 80 and sum(res.losses[-5:]) < 0.75 * sum(res.losses[:5]), res.losses


# -- the whole pipeline --------------------------------------------------------------------------------------------

def test_run_tune_end_to_end(ws: Path, tiny_model: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_model)
    eng = lexical_engine(ws)
    phases = []
    rep = run_tune(eng, config_path=cfg, progress=lambda ph, d, t: phases.append(ph))
    eng.close()
    out = Path(rep.out_dir)
    assert out == tmp_path / "models" / "toyproj-v1"
    assert rep.pairs >= len(TOPICS) and rep.heldout_pairs >= 3 and rep.train_pairs == rep.pairs - rep.heldout_pairs
    assert rep.steps > 0 and rep.before["n"] == rep.after["n"] > 0 and set(rep.before) >= {"P@1", "MRR@10"}
    assert {"files", "mine", "train", "merge", "eval"} <= set(phases)
    assert (out / "tune.json").is_file() and (out / "README.md").is_file() and (out / "adapter").is_dir()
    assert Path(rep.pairs_path).is_file() and not (out / "checkpoints").exists()
    info = json.loads((out / "tune.json").read_text())
    assert info["base_model"] == str(tiny_model) and info["steps"] == rep.steps
    # the tuned model serves an index through --model-path / models.model_path
    eng2 = lexical_engine(ws, model_path=str(out))
    eng2.index()
    res = eng2.search("compute the checksum", k=3, mode="semantic")
    assert res.hits and str(out) in res.models["code"]
    eng2.close()
    assert next_version_dir(tmp_path / "models", "toyproj").name == "toyproj-v2"


def test_dry_run_cancel_and_resume(ws: Path, tiny_model: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_model, epochs=6)
    eng = lexical_engine(ws)
    dry = run_tune(eng, config_path=cfg, dry_run=True)
    assert dry.stopped == "dry-run" and dry.steps == 0 and Path(dry.pairs_path).is_file()
    assert not (tmp_path / "models" / "toyproj-v1").exists()
    cancel = threading.Event()

    def stop_at_3(phase: str, done: int, total: int) -> None:
        if phase == "train" and done >= 3:
            cancel.set()

    rep = run_tune(eng, config_path=cfg, progress=stop_at_3, cancel=cancel)
    assert rep.cancelled and rep.steps == 3
    out = Path(rep.out_dir)
    assert (out / "checkpoints").is_dir() and not (out / "tune.json").exists()
    again = run_tune(eng, config_path=cfg)  # picks the unfinished directory up and resumes from the checkpoint
    eng.close()
    assert again.out_dir == rep.out_dir and not again.cancelled
    assert any("resumed" in n for n in again.notes) and (out / "tune.json").is_file()
