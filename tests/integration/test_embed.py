"""Embedders: tiny random models of each family loaded through the real code path, the fallback chain, and the
real offline MiniLM (loads offline, matches sentence-transformers, beats BM25 on a CoSQA slice)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from engine.embed import ROUTES, Embedder, load_embedders  # noqa: E402
from engine.embed import files as embed_files  # noqa: E402
from engine.embed.registry import resolve_recipe  # noqa: E402
from engine.embed.sentence import DEFAULT_NAME, default_model_dir  # noqa: E402
from engine.embed.transformer import TransformerEmbedder  # noqa: E402
from engine.errors import ModelError  # noqa: E402
from engine.settings import ModelSettings  # noqa: E402

from tests.support.models import (TEXTS, build_colbert, build_jina_code, build_st_bert,  # noqa: E402
                                  build_unixcoder, build_xtr, hub_snapshot, write_json, MODELING_TINY)

torch.set_num_threads(1)
BENCH = Path(__file__).resolve().parents[3] / "shared" / "bench"

# -- tiny model builders -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    cache = root / "hub"
    return {
        "st": build_st_bert(root / "st"),
        "unixcoder": build_unixcoder(hub_snapshot(cache, "microsoft/unixcoder-base")),
        "xtr": build_xtr(hub_snapshot(cache, "google/xtr-base-en")),
        "colbert": build_colbert(hub_snapshot(cache, "jinaai/jina-colbert-v2")),
        "jina_code": build_jina_code(root / "jina-code"),
        "cache": cache,
    }


@pytest.fixture
def hub(tiny, monkeypatch) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(tiny["cache"]))
    return tiny["cache"]


@pytest.fixture
def empty_hub(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    return tmp_path / "empty-hub"


def settings_(**kw) -> ModelSettings:
    # the machine is shared: one torch thread in tests; fp32 unless a test asks, so vectors compare exactly;
    # torch, whose internals these tests look at (tests/integration/test_onnx.py covers the ONNX Runtime path)
    return ModelSettings(**{"threads": 1, "precision": "fp32", "runtime": "torch", **kw})


def _make(path_or_name: str, **kw) -> TransformerEmbedder:
    settings = settings_(**kw)
    return TransformerEmbedder(resolve_recipe(str(path_or_name), settings), threads=1,
                               batch_size=settings.batch_size)


def _check_single(emb, texts=TEXTS):
    out = emb.embed_documents(texts)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (len(texts), emb.dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    return out


def _check_multi(emb, texts=TEXTS, query=False):
    out = (emb.embed_queries if query else emb.embed_documents)(texts)
    assert isinstance(out, list) and len(out) == len(texts)
    for vecs in out:
        assert vecs.dtype == np.float32 and vecs.ndim == 2 and vecs.shape[1] == emb.dim and len(vecs) >= 1
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    return out


def _check_batching(emb, query=False):
    """Batched (sorted by length, padded) == one text at a time, in input order."""
    fn = emb.embed_queries if query else emb.embed_documents
    emb.batch_size = 4
    together = fn(TEXTS)
    alone = [fn([t])[0] for t in TEXTS]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, atol=1e-5)


# -- the protocol --------------------------------------------------------------------------------------

def test_construction_is_lazy_and_cheap(tiny):
    emb = _make(tiny["st"])
    assert isinstance(emb, Embedder)
    assert not emb._loaded
    assert emb.dim == 24 and not emb.multi_vector and emb.max_length == 16
    assert emb.ident.startswith(str(tiny["st"]) + "@")
    assert emb.embed_documents([]).shape == (0, 24)


def test_sentence_transformers_dir_matches_sentence_transformers(tiny):
    """Pooling, Dense (Tanh, bias), Normalize and max_seq_length read from the files as ST reads them."""
    from sentence_transformers import SentenceTransformer

    emb = _make(tiny["st"])
    ours = _check_single(emb)
    ref = SentenceTransformer(str(tiny["st"]), device="cpu").encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    _check_batching(emb)


@pytest.mark.parametrize("pooling,legacy", [("cls", True), ("max", True), ("mean", False), ("cls", False)])
def test_pooling_modes_and_layouts_match_sentence_transformers(tmp_path, pooling, legacy):
    from sentence_transformers import SentenceTransformer

    d = build_st_bert(tmp_path / "m", max_seq_length=12, pooling=pooling, legacy=legacy)
    emb = _make(d)
    assert emb.recipe.pooling == (pooling,) and emb.max_length == 12
    ref = SentenceTransformer(str(d), device="cpu")
    assert ref.max_seq_length == 12
    np.testing.assert_allclose(_check_single(emb), ref.encode(TEXTS, normalize_embeddings=True), atol=1e-5)


def test_plain_transformers_dir_uses_mean_pooling(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    d = build_jina_code(tmp_path / "plain")
    cfg = json.loads((d / "config.json").read_text())
    del cfg["auto_map"]
    write_json(d / "config.json", cfg)
    emb = _make(d)
    assert emb.recipe.family == "hf-mean" and emb.dim == 32 and emb.max_length == 512
    ours = _check_single(emb)
    tok, model = AutoTokenizer.from_pretrained(str(d)), AutoModel.from_pretrained(str(d)).eval()
    enc = tok(TEXTS, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_truncation_at_max_length(tiny):
    emb = _make(tiny["st"])
    long_a = "alpha beta gamma delta " * 50
    long_b = long_a + " completely different ending that is far beyond the limit"
    assert max(emb.count_tokens([long_a, long_b])) == emb.max_length == 16
    a, b = emb.embed_documents([long_a, long_b])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_unixcoder_layout_and_pooling(hub, tiny):
    """<s> <encoder-only> </s> text </s>, mean over non-padding, from a weights_only-safe pytorch_model.bin."""
    from transformers import AutoTokenizer, RobertaModel

    emb = _make("microsoft/unixcoder-base")
    assert emb.recipe.family == "unixcoder" and emb.dim == 32 and emb.max_length == 512
    ours = _check_single(emb)
    _check_batching(emb)
    tok = AutoTokenizer.from_pretrained(str(tiny["unixcoder"]))
    model = RobertaModel.from_pretrained(str(tiny["unixcoder"])).eval()
    for text, vec in zip(TEXTS, ours):
        tokens = [tok.cls_token, "<encoder-only>", tok.sep_token] + tok.tokenize(text)[:512 - 4] + [tok.sep_token]
        ids = torch.tensor([tok.convert_tokens_to_ids(tokens)])
        with torch.no_grad():
            ref = model(ids).last_hidden_state[0].mean(0)
        np.testing.assert_allclose(vec, torch.nn.functional.normalize(ref, dim=0).numpy(), atol=1e-5)


def test_xtr_token_vectors(hub, tiny):
    """Lowercased T5 encoding, 2_Dense projection from a .bin, normalised, padding removed."""
    from transformers import AutoTokenizer, T5EncoderModel

    emb = _make("google/xtr-base-en")
    assert emb.recipe.family == "xtr" and emb.multi_vector and emb.dim == 16
    docs = _check_multi(emb)
    _check_multi(emb, query=True)
    _check_batching(emb)
    tok = AutoTokenizer.from_pretrained(str(tiny["xtr"]))
    model = T5EncoderModel.from_pretrained(str(tiny["xtr"])).eval()
    proj = torch.load(tiny["xtr"] / "2_Dense" / "pytorch_model.bin", weights_only=True)["linear.weight"]
    for text, vecs in zip(TEXTS, docs):
        ids = tok(text.lower(), return_tensors="pt")["input_ids"]
        assert ids[0, -1].item() == tok.eos_token_id and len(vecs) == ids.shape[1]
        with torch.no_grad():
            ref = model(ids).last_hidden_state[0] @ proj.T
        np.testing.assert_allclose(vecs, torch.nn.functional.normalize(ref, dim=-1).numpy(), atol=1e-5)
    # the same text in another case gives the same vectors (the reference lowercases)
    np.testing.assert_allclose(emb.embed_documents(["Sort A List"])[0], emb.embed_documents(["sort a list"])[0])


def test_colbert_refuses_without_opt_ins(hub):
    with pytest.raises(ModelError) as both:
        _make("jinaai/jina-colbert-v2")
    assert "models.trust_remote_code = true" in str(both.value)
    assert "models.allow_noncommercial = true" in str(both.value) and "CC-BY-NC-4.0" in str(both.value)
    with pytest.raises(ModelError) as one:
        _make("jinaai/jina-colbert-v2", trust_remote_code=True)
    assert "models.allow_noncommercial = true" in str(one.value)
    assert "trust_remote_code" not in str(one.value)
    with pytest.raises(ModelError) as other:
        _make("jinaai/jina-colbert-v2", allow_noncommercial=True)
    assert "models.trust_remote_code = true" in str(other.value) and "noncommercial" not in str(other.value)


def test_colbert_markers_expansion_and_skiplist(hub, tiny):
    """Queries: <s> [QueryMarker] q </s> + attended <mask>s up to query_maxlen, all kept; documents:
    <s> [DocumentMarker] d </s> without padding or punctuation vectors. Runs the model's (remote) code."""
    emb = _make("jinaai/jina-colbert-v2", trust_remote_code=True, allow_noncommercial=True)
    assert emb.recipe.family == "colbert" and emb.multi_vector and emb.dim == 12
    queries = _check_multi(emb, ["sort a list", "open a file"], query=True)
    assert [len(q) for q in queries] == [8, 8]
    long_query = _check_multi(emb, ["retry the request with exponential backoff and jitter " * 3], query=True)[0]
    assert len(long_query) > 8  # longer queries are not cut to the expansion length
    docs = _check_multi(emb)
    _check_batching(emb)
    _check_batching(emb, query=True)
    assert type(emb._model).__name__ == "TinyColbertModel"
    tok = emb._tok
    for text, vecs in zip(TEXTS, docs):
        ids = tok(text, add_special_tokens=False)["input_ids"][: emb.max_length - 3]
        punct = sum(1 for i in ids if tok.convert_ids_to_tokens(i) in set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"))
        assert len(vecs) == len(ids) + 3 - punct
    # reference: the same computation by hand with the plain XLM-R weights and the linear layer
    from safetensors.torch import load_file
    from transformers import XLMRobertaModel

    state = load_file(str(tiny["colbert"] / "model.safetensors"))
    ref_model = XLMRobertaModel.from_pretrained(str(tiny["colbert"])).eval()
    q_ids = [tok.cls_token_id, tok.convert_tokens_to_ids("[QueryMarker]")]
    q_ids += tok("sort a list", add_special_tokens=False)["input_ids"] + [tok.sep_token_id]
    q_ids += [tok.mask_token_id] * (8 - len(q_ids))
    with torch.no_grad():
        ref = ref_model(torch.tensor([q_ids])).last_hidden_state[0] @ state["linear.weight"].T
    np.testing.assert_allclose(queries[0], torch.nn.functional.normalize(ref, dim=-1).numpy(), atol=1e-5)


def test_jina_code_needs_remote_code(tiny):
    with pytest.raises(ModelError, match=r"models\.trust_remote_code = true"):
        _make(tiny["jina_code"])
    emb = _make(tiny["jina_code"], trust_remote_code=True)
    assert emb.recipe.pooling == ("mean",) and emb.dim == 32
    _check_single(emb)
    assert type(emb._model).__name__ == "TinyJinaBert"


def test_remote_code_is_checked_before_loading(tmp_path, empty_hub):
    """Missing packages or a code repo missing from the cache are reported at resolution, not at first use."""
    d = build_jina_code(tmp_path / "j")
    (d / "modeling_tiny.py").write_text("import surely_not_installed_sg_pkg\n" + MODELING_TINY)
    with pytest.raises(ModelError, match="pip install surely_not_installed_sg_pkg"):
        _make(d, trust_remote_code=True)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "someorg/flash-impl--modeling_x.Model"}
    write_json(d / "config.json", cfg)
    with pytest.raises(ModelError, match="runs code from someorg/flash-impl, which is not in the local"):
        _make(d, trust_remote_code=True)
    embedders, reports = load_embedders(settings_(model_path=str(d), trust_remote_code=True))
    assert embedders["code"].name.startswith(DEFAULT_NAME) and "someorg/flash-impl" in reports[0].note


def test_pickled_bin_is_refused(tmp_path):
    """A .bin that needs more than weights_only unpickling is refused; a plain tensor .bin loads."""
    d = build_unixcoder(tmp_path / "m", use_bin=True)
    emb = _make(d)
    _check_single(emb, ["ok"])
    state = torch.load(d / "pytorch_model.bin", weights_only=True)
    state["evil"] = Evil()
    torch.save(state, d / "pytorch_model.bin")
    with pytest.raises(ModelError, match="weights_only"):
        _make(d).load()


class Evil:
    def __reduce__(self):
        return (print, ("this would have run at load time",))


def test_safetensors_preferred_and_ident_tracks_weights(tmp_path):
    d = build_unixcoder(tmp_path / "m", use_bin=False)
    first = _make(d)
    assert first.recipe.weights.safetensors
    assert first.ident == _make(d).ident
    d2 = build_unixcoder(tmp_path / "m2", use_bin=False)  # same seed, same weights, other directory
    assert first.ident.split("@")[1] == _make(d2).ident.split("@")[1]
    from safetensors.torch import load_file, save_file

    state = load_file(str(d2 / "model.safetensors"))
    key = sorted(state)[len(state) // 2]  # a tensor in the middle of the file
    state[key] = state[key] + 0.01
    save_file(state, str(d2 / "model.safetensors"), metadata={"format": "pt"})
    assert first.ident.split("@")[1] != _make(d2).ident.split("@")[1]


def test_hub_blob_names_are_the_weights_hash(tmp_path):
    blob = tmp_path / "blobs" / ("ab" * 32)
    blob.parent.mkdir()
    blob.write_bytes(b"weights")
    link = tmp_path / "model.safetensors"
    link.symlink_to(blob)
    assert embed_files.file_digest(link) == "ab" * 32


# -- registry and fallback chain -------------------------------------------------------------------------

def test_fallback_to_offline_default_and_sharing(empty_hub):
    lines: list[str] = []
    embedders, reports = load_embedders(settings_(), log=lines.append)
    assert set(embedders) == set(ROUTES) and [r.route for r in reports] == list(ROUTES)
    assert embedders["code"] is embedders["prose"]  # one instance, loaded once
    assert embedders["code"].name.startswith(DEFAULT_NAME) and embedders["cjk"] is None
    by = {r.route: r for r in reports}
    assert "microsoft/unixcoder-base is not in the local Hugging Face cache" in by["code"].note
    assert "serving code with the offline default all-MiniLM-L6-v2" in by["code"].note
    assert "google/xtr-base-en" in by["prose"].note
    assert by["cjk"].model is None and by["cjk"].kind == "lexical"
    assert "lexically" in by["cjk"].note and "allow_noncommercial" in by["cjk"].note
    assert by["code"].dim == 384 and by["code"].kind == "single"
    assert len(lines) == 3 and lines[2].startswith("cjk: lexical only")


def test_configured_models_from_the_cache(hub):
    settings = settings_(trust_remote_code=True, allow_noncommercial=True)
    embedders, reports = load_embedders(settings)
    assert embedders["code"].recipe.family == "unixcoder"
    assert embedders["prose"].recipe.family == "xtr"
    assert embedders["cjk"].recipe.family == "colbert"
    assert [r.kind for r in reports] == ["single", "multi", "multi"]
    assert reports[0].note.startswith("models.code = microsoft/unixcoder-base; runs on torch, fp32")


def test_cjk_never_falls_back_to_minilm(hub):
    embedders, reports = load_embedders(settings_())  # no opt-ins for Jina-ColBERT
    assert embedders["cjk"] is None and embedders["code"] is not None
    assert "models.trust_remote_code = true and models.allow_noncommercial = true" in reports[2].note
    embedders, reports = load_embedders(settings_(cjk=""))
    assert embedders["cjk"] is None and "no model configured" in reports[2].note


def test_model_path_serves_code_and_prose_not_cjk(tiny, empty_hub):
    embedders, reports = load_embedders(settings_(model_path=str(tiny["st"])))
    assert embedders["code"] is embedders["prose"] and embedders["code"].dim == 24
    assert reports[0].note.startswith(f"models.model_path = {tiny['st']}; runs on torch, fp32")
    assert embedders["cjk"] is None


def test_bad_model_path_falls_back_with_reason(tmp_path, empty_hub):
    embedders, reports = load_embedders(settings_(model_path=str(tmp_path / "nope")))
    assert embedders["code"].name.startswith(DEFAULT_NAME)
    assert "nope is not a directory" in reports[0].note and "offline default" in reports[0].note


def test_disabled_means_lexical_everywhere():
    embedders, reports = load_embedders(settings_(enabled=False))
    assert all(v is None for v in embedders.values())
    assert all(r.kind == "lexical" and "models.enabled = false" in r.note for r in reports)


def test_eager_load_failure_falls_back(tmp_path, empty_hub):
    d = build_unixcoder(tmp_path / "m", use_bin=True)
    state = torch.load(d / "pytorch_model.bin", weights_only=True)
    state["evil"] = Evil()
    torch.save(state, d / "pytorch_model.bin")
    embedders, reports = load_embedders(settings_(model_path=str(d)), eager=True)
    assert embedders["code"].name.startswith(DEFAULT_NAME)
    assert "weights_only" in reports[0].note


# -- the real offline MiniLM ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm():
    from engine.embed.sentence import default_recipe

    return TransformerEmbedder(default_recipe(use_adapter=False), threads=1, batch_size=32)


def test_minilm_loads_offline_and_matches_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    assert minilm.name == DEFAULT_NAME and minilm.dim == 384 and minilm.max_length == 256
    texts = TEXTS + ["how do I reverse a string", "def reverse(s): return s[::-1]", "bake a chocolate cake"]
    ours = _check_single(minilm, texts)
    ref = SentenceTransformer(str(default_model_dir()), device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    q = minilm.embed_queries(["reverse a string"])[0]
    sims = ours[-3:] @ q
    assert sims[0] > sims[2] and sims[1] > sims[2]


def test_minilm_adapter_hook(tmp_path, minilm):
    """A PEFT LoRA adapter dir is merged when default_adapter is on, recorded in name, ident and note."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    base = AutoModel.from_pretrained(str(default_model_dir()))
    torch.manual_seed(0)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
                                                 init_lora_weights=False))
    adapter = tmp_path / "minilm-code"
    peft_model.save_pretrained(str(adapter))
    assert (adapter / "adapter_model.safetensors").is_file()
    on, rep_on = load_embedders(settings_(code="", prose=""), adapter_dir=adapter)
    off, rep_off = load_embedders(settings_(code="", prose="", default_adapter=False), adapter_dir=adapter)
    assert on["code"].name == f"{DEFAULT_NAME}+minilm-code" and "adapter minilm-code merged" in rep_on[0].note
    assert off["code"].name == DEFAULT_NAME and "default_adapter = false" in rep_off[0].note
    assert on["code"].ident != off["code"].ident == minilm.ident
    texts = ["read a file", "def f(x): return x"]
    merged = on["code"].embed_documents(texts)
    with torch.no_grad():
        peft_model.eval()
        enc = on["code"]._tok(texts, padding=True, return_tensors="pt")
        hidden = peft_model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        ref = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(merged, ref, atol=1e-5)
    assert np.abs(merged - minilm.embed_documents(texts)).max() > 1e-3


def test_no_adapter_shipped_means_plain_minilm(tmp_path, empty_hub):
    embedders, reports = load_embedders(settings_(), adapter_dir=tmp_path / "absent")
    assert embedders["code"].name == DEFAULT_NAME and "no sg adapter shipped yet" in reports[0].note


def test_minilm_beats_bm25_on_a_cosqa_slice(minilm):
    """30 CoSQA queries, their gold functions and 200 distractors: MRR@10 of MiniLM > plain BM25."""
    spec_path = BENCH / "cosqa" / "dev.json"
    if not spec_path.is_file():
        pytest.skip(f"bench data not found at {spec_path}")
    bm25s = pytest.importorskip("bm25s")
    spec = json.loads(spec_path.read_text())
    corpus_dir = spec_path.parent / spec["corpus"]
    queries = spec["queries"][:30]
    gold = [q["relevant"][0] for q in queries]
    others = sorted(p.name for p in corpus_dir.iterdir() if p.suffix == ".py" and p.name not in set(gold))
    names = gold + others[:: max(1, len(others) // 200)][:200]
    docs = [(corpus_dir / n).read_text(encoding="utf-8", errors="replace") for n in names]
    texts = [q["query"] for q in queries]

    def mrr(rankings):
        total = 0.0
        for qi, ranked in enumerate(rankings):
            top = [names[i] for i in ranked[:10]]
            total += 1 / (top.index(gold[qi]) + 1) if gold[qi] in top else 0.0
        return total / len(rankings)

    d = minilm.embed_documents(docs)
    q = minilm.embed_queries(texts)
    semantic = mrr(np.argsort(-(q @ d.T), axis=1))
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(docs, show_progress=False), show_progress=False)
    ids, _ = retriever.retrieve(bm25s.tokenize(texts, show_progress=False), k=10, show_progress=False)
    lexical = mrr(ids)
    print(f"MRR@10 on {len(texts)} queries / {len(names)} functions: MiniLM {semantic:.3f}, BM25 {lexical:.3f}")
    assert semantic > lexical


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_precision_is_a_separate_space_close_to_fp32(tiny, empty_hub, precision):
    """models.precision changes the arithmetic, so it changes the identity (vectors never mix) but not much else."""
    fp32, _ = load_embedders(settings_(model_path=str(tiny["st"])))
    other, reports = load_embedders(settings_(model_path=str(tiny["st"]), precision=precision))  # torch int8 too
    assert other["code"].ident != fp32["code"].ident and f"runs on torch, {precision}" in reports[0].note
    a, b = fp32["code"].embed_documents(TEXTS), other["code"].embed_documents(TEXTS)
    assert a.dtype == b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-3)
    assert (a * b).sum(1).min() > 0.97


def test_auto_precision_on_torch_follows_the_cpu():
    from engine.embed.runtime.cpu import cpu_class
    from engine.embed.runtime.select import choose

    want = "bf16" if cpu_class() == "bf16" else "fp32"
    assert choose("auto", "torch", "no-gate@0", "", False).precision == want
    assert choose("int8", "torch", "no-gate@0", "", False).path == "torch-int8"
    assert choose("fp32", "torch", "no-gate@0", "", False).path == "torch-fp32"


def test_single_queries_use_a_trace_with_the_same_vectors(tiny, empty_hub):
    emb = load_embedders(settings_(model_path=str(tiny["st"])))[0]["code"]
    one = np.stack([emb.embed_queries([t])[0] for t in TEXTS[:3]])
    assert emb._trace is not None and emb._trace[1] is not None  # traced on first single query
    np.testing.assert_allclose(one, emb.embed_queries(TEXTS[:3]), atol=1e-5)  # a batch runs eagerly
    long_query = " ".join(["word"] * 80)  # longer than the trace width: eager
    np.testing.assert_allclose(emb.embed_queries([long_query]), emb.embed_queries([long_query, "x"])[:1], atol=1e-5)
    first = emb._query_trace()
    assert emb._query_trace() is first  # made once per model
    import copy

    emb._model = copy.deepcopy(emb._model)  # a model swapped in (training wraps it in LoRA) is traced anew
    assert emb._query_trace() is not first and emb._trace[0] is emb._model


def test_importing_the_engine_loads_no_model_runtime_nor_parsers():
    """The cold path of a one-shot command: `import engine.search` (and the model registry) brings in no model
    runtime, no tree-sitter and no stemmer; each loads when first needed."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    heavy = ("torch", "transformers", "peft", "onnxruntime", "tokenizers", "tree_sitter", "snowballstemmer")
    code = ("import sys, engine.search, engine.embed.registry, engine.embed.runtime.select\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(repo)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
