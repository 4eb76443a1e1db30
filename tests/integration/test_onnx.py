"""The ONNX Runtime path: export from the served weights, equal vectors to torch fp32, a cache keyed by identity
and written atomically, no torch at run time, `auto` choosing from recorded gates, and an index built by each
runtime through the public Engine API."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from engine.embed import load_embedders  # noqa: E402
from engine.embed.runtime import RuntimeUnavailable, select  # noqa: E402
from engine.embed.runtime.cache import cache_root  # noqa: E402
from engine.embed.runtime.compose import Fallback, Split  # noqa: E402
from engine.embed.runtime.cpu import cpu_class  # noqa: E402
from engine.embed.runtime.onnx import OrtEmbedder  # noqa: E402
from engine.embed.runtime.select import SPLIT, Choice, choose  # noqa: E402
from engine.embed.registry import resolve_recipe  # noqa: E402
from engine.embed.transformer import TransformerEmbedder  # noqa: E402
from engine.settings import ModelSettings, load_settings  # noqa: E402
from tests.support.models import TEXTS, build_colbert, build_st_bert  # noqa: E402

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
BENCH = REPO.parent / "shared" / "bench"


@pytest.fixture(scope="module")
def st(tmp_path_factory) -> Path:
    return build_st_bert(tmp_path_factory.mktemp("onnx") / "st", max_seq_length=32)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    return tmp_path / "cache"


def settings_(**kw) -> ModelSettings:
    return ModelSettings(**{"threads": 1, "precision": "fp32", **kw})


def _pair(path: Path, variant: str = "fp32"):
    recipe = resolve_recipe(str(path), settings_())
    torch_emb = TransformerEmbedder(recipe, threads=1)
    return torch_emb, OrtEmbedder(recipe, variant, torch_emb.ident, threads=1)


def _worst_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def test_fp32_export_equals_torch_and_shares_its_space(st, cache):
    ref, ort = _pair(st)
    assert not ort.cached
    for query in (False, True):
        a = ref.embed_queries(TEXTS) if query else ref.embed_documents(TEXTS)
        b = ort.embed_queries(TEXTS) if query else ort.embed_documents(TEXTS)
        assert b.dtype == np.float32 and b.shape == a.shape
        assert _worst_cos(a, b) >= 0.9999
    assert ort.ident == ref.ident
    assert ort.count_tokens(TEXTS) == ref.count_tokens(TEXTS)
    manifest = json.loads((ort.directory / "manifest.json").read_text())
    assert manifest["worst_cosine_vs_torch_fp32"] >= 0.9999 and manifest["variant"] == "fp32"
    one = np.stack([ort.embed_documents([t])[0] for t in TEXTS])  # batching and padding change nothing
    np.testing.assert_allclose(one, ort.embed_documents(TEXTS), atol=1e-5)


def test_optimised_graph_is_saved_once_and_gives_the_same_vectors(st, cache):
    _, first = _pair(st)
    a = first.embed_documents(TEXTS)
    saved = sorted(first.directory.glob("model.optimised-*.onnx"))
    assert len(saved) == 1 and saved[0].with_suffix(".weights").is_file()  # weights apart: mapped, not parsed
    assert not list(first.directory.glob("*.tmp"))
    stamp = saved[0].stat().st_mtime_ns
    b = _pair(st)[1].embed_documents(TEXTS)  # opens the saved graph, optimisation off
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert saved[0].stat().st_mtime_ns == stamp
    saved[0].write_bytes(b"damaged")  # a graph that does not open is optimised again from the export
    np.testing.assert_allclose(_pair(st)[1].embed_documents(TEXTS), a, atol=1e-6)
    assert saved[0].stat().st_size > 1000


def test_first_session_is_lean_and_the_second_call_settles(st, cache):
    """A process's first ONNX session opens lean (one thread, no prepacked weights: a one-shot search's one query);
    the second call swaps in the full session. The vectors do not change."""
    ref, ort = _pair(st)
    first = ort.embed_queries(TEXTS[:1])
    assert ort._lean and ort._calls == 1
    lean_session = ort._session
    second = ort.embed_queries(TEXTS[:1])
    assert not ort._lean and ort._session is not lean_session
    np.testing.assert_allclose(first, second, atol=1e-5)
    np.testing.assert_allclose(first, ref.embed_queries(TEXTS[:1]), atol=1e-4)


def test_int8_is_another_space_close_to_fp32(st, cache):
    ref, ort = _pair(st, "int8-dyn")
    assert ort.ident != ref.ident and ort.ident.split("@")[0] == ref.ident.split("@")[0]
    assert _worst_cos(ref.embed_documents(TEXTS), ort.embed_documents(TEXTS)) > 0.9


def test_cache_is_keyed_by_identity_and_never_uses_half_entries(st, cache, tmp_path):
    _, ort = _pair(st)
    ort.load()
    entries = sorted(p.name for p in cache_root().iterdir())
    assert entries == [ort.key]
    # a killed export leaves only a temporary directory, which nothing reads
    (cache_root() / f".tmp-{ort.key}-dead").mkdir()
    (cache_root() / f".tmp-{ort.key}-dead" / "model.onnx").write_bytes(b"half")
    again = _pair(st)[1]
    assert again.cached and again.load().manifest["key"] == ort.key
    # a manifest that does not name this key is not this export
    manifest = ort.directory / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "key": "something-else"}))
    assert not _pair(st)[1].cached
    manifest.write_text(json.dumps(data))
    # new weights: a new identity, a new key, a new export
    import shutil

    changed = tmp_path / "changed"
    shutil.copytree(st, changed)
    from safetensors.torch import load_file, save_file

    state = load_file(str(changed / "model.safetensors"))
    first = sorted(state)[0]
    state[first] = state[first] + 0.01
    save_file(state, str(changed / "model.safetensors"))
    ref2, ort2 = _pair(changed)
    assert ort2.key != ort.key and not ort2.cached
    assert _worst_cos(ref2.embed_documents(TEXTS), ort2.embed_documents(TEXTS)) >= 0.9999


def test_multi_vector_projection_model(tmp_path, cache):
    path = build_colbert(tmp_path / "colbert", remote_code=False)
    recipe = resolve_recipe(str(path), settings_(allow_noncommercial=True))
    ref = TransformerEmbedder(recipe, threads=1)
    ort = OrtEmbedder(recipe, "fp32", ref.ident, threads=1)
    for query in (False, True):
        a = ref.embed_queries(TEXTS) if query else ref.embed_documents(TEXTS)
        b = ort.embed_queries(TEXTS) if query else ort.embed_documents(TEXTS)
        for x, y in zip(a, b):
            assert x.shape == y.shape and float(np.min(np.sum(x * y, axis=1))) >= 0.9999


def test_registry_runs_onnx_and_says_so(st, cache):
    embs, reports = load_embedders(settings_(model_path=str(st)))
    assert isinstance(embs["code"], Fallback) and isinstance(embs["code"].serving, OrtEmbedder)
    assert "runs on ONNX Runtime, fp32" in reports[0].note
    embs, reports = load_embedders(settings_(model_path=str(st), runtime="torch"))
    assert isinstance(embs["code"], TransformerEmbedder) and "runs on torch, fp32" in reports[0].note
    embs, reports = load_embedders(settings_(model_path=str(st), precision="int8"))
    assert isinstance(embs["code"], OrtEmbedder) and embs["code"].variant.startswith("int8")


def test_run_time_imports_no_torch(st, cache):
    """Once exported, searching needs only onnxruntime, tokenizers and numpy."""
    OrtEmbedder(*_args(st)).load()
    code = f"""
import sys
from engine.embed import load_embedders
from engine.settings import ModelSettings
embs, reports = load_embedders(ModelSettings(model_path={str(st)!r}, threads=1, precision="fp32"))
v = embs["code"].embed_queries(["read a file"])
assert v.shape == (1, 24), v.shape
print(sorted(m for m in ("torch", "transformers", "peft", "sentence_transformers", "onnx") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_bf16_documents_run_traced_without_transformers(st, cache):
    """bf16 documents come from a TorchScript trace exported once (torch.py): the same vectors as the eager bf16
    model, under its identity, and a later process loads it with torch alone (no transformers, no peft)."""
    from engine.embed.runtime.torch import ScriptEmbedder

    recipe = resolve_recipe(str(st), settings_())
    base = TransformerEmbedder(recipe, threads=1)
    eager = TransformerEmbedder(dataclasses.replace(recipe, precision="bf16"), threads=1)
    emb = select.runtime_module("torch").embedder(recipe, "bf16", base, threads=1, batch_size=4)
    assert isinstance(emb, Fallback) and emb.ident == eager.ident
    docs = TEXTS + [" ".join(["token"] * 100)]  # several batches of several lengths, one past the cap
    np.testing.assert_allclose(emb.embed_documents(docs), eager.embed_documents(docs), atol=2e-3)
    assert isinstance(emb.serving, ScriptEmbedder) and emb.serving.cached
    manifest = json.loads((emb.serving.directory / "manifest.json").read_text())
    assert manifest["model"] == "model.pt" and manifest["worst_cosine_vs_torch_bf16"] >= 0.9999
    code = f"""
import sys
from engine.embed import load_embedders
from engine.settings import ModelSettings
embs, _ = load_embedders(ModelSettings(model_path={str(st)!r}, threads=1, precision="bf16", runtime="torch"))
v = embs["code"].embed_documents(["read a file", "def f(x):\\n    return x"])
assert v.shape == (2, 24), v.shape
print(type(embs["code"].serving).__name__, sorted(m for m in ("transformers", "peft") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "ScriptEmbedder []"


def test_max_tokens_caps_every_text_in_a_space_of_its_own(st, cache):
    """models.max_tokens below the model's cap: texts are cut there, and the vectors are a space of their own (an
    index built with the model's own cap re-embeds)."""
    full, _ = load_embedders(settings_(model_path=str(st)))
    capped, _ = load_embedders(settings_(model_path=str(st), max_tokens=16))
    assert full["code"].max_length == 32 and capped["code"].max_length == 16
    assert capped["code"].ident != full["code"].ident
    long = " ".join(["token"] * 100)
    assert capped["code"].count_tokens([long]) == [16]
    same, _ = load_embedders(settings_(model_path=str(st), max_tokens=64))  # above the model's cap: no change
    assert same["code"].ident == full["code"].ident


def _args(path: Path):
    recipe = resolve_recipe(str(path), settings_())
    return recipe, "fp32", TransformerEmbedder(recipe).ident


def test_index_built_by_each_runtime_agrees(st, cache, tmp_path):
    """An index built with torch and one built with ONNX hold the same vectors: one index serves both runtimes."""
    from engine.search import Engine

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, text in enumerate(TEXTS[:2] + TEXTS[3:] + ["def parse_json(s):\n    return json.loads(s)\n"]):
        (corpus / f"m{i}.py").write_text(text + "\n")
    found = {}
    for runtime in ("torch", "onnx"):
        settings = load_settings(None, {"models": {"model_path": str(st), "threads": 1, "precision": "fp32",
                                                   "runtime": runtime},
                                        "index": {"index_dir": str(tmp_path / f"idx-{runtime}")}})
        eng = Engine(corpus, settings)
        eng.index()
        (space,) = eng.spaces.values()
        ann = eng.backend.ann(space.name)
        ids = ann.live_ids()
        hits = eng.search("read lines from a file", k=5, mode="semantic").hits
        found[runtime] = (space.embedder.ident, ids, ann.vectors(ids), [(h.path, h.score) for h in hits])
        eng.close()
    (ti, tids, tvec, thits), (oi, oids, ovec, ohits) = found["torch"], found["onnx"]
    assert ti == oi and tids.tolist() == oids.tolist() and len(tids) >= 5
    assert _worst_cos(tvec, ovec) >= 0.9999
    assert [p for p, _ in thits] == [p for p, _ in ohits]
    np.testing.assert_allclose([s for _, s in thits], [s for _, s in ohits], atol=1e-3)


@pytest.mark.slow
def test_real_minilm_with_adapter_matches_torch(cache, bench_dir):
    from engine.embed.sentence import default_recipe

    recipe = default_recipe(True)
    ref = TransformerEmbedder(recipe, threads=1)
    ort = OrtEmbedder(recipe, "fp32", ref.ident, threads=1)
    files = sorted((bench_dir / "cosqa" / "corpus").iterdir())[:64]
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    assert _worst_cos(ref.embed_documents(texts), ort.embed_documents(texts)) >= 0.9999
    queries = ["read a json file", "python sort dict by value", "check if a string is a number"]
    assert _worst_cos(ref.embed_queries(queries), ort.embed_queries(queries)) >= 0.9999
    assert ort.ident == ref.ident


# -- choosing ----------------------------------------------------------------------------------------------

GATE = {"models": {"m@1": {"paths": {
    "onnx-fp32": {"pass": True}, "torch-bf16": {"pass": True}, "onnx-int8-dyn": {"pass": True},
    "onnx-int8-dyn-rr": {"pass": True}, "onnx-int8-static": {"pass": False}},
    "speed": {"bf16": {"torch-fp32": 100, "onnx-fp32": 120, "torch-bf16": 200, "onnx-int8-dyn": 180,
                       "onnx-int8-static": 999},
              "avx2": {"torch-fp32": 100, "onnx-fp32": 123, "onnx-int8-dyn": 158, "onnx-int8-dyn-rr": 150}}}}}


@pytest.fixture
def gate(monkeypatch):
    monkeypatch.setattr(select, "gate_records", lambda: GATE)


def test_auto_picks_the_fastest_gated_path_per_cpu(gate, monkeypatch):
    bf16 = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16")
    avx2 = ("avx2",)
    assert cpu_class(bf16) == "bf16" and cpu_class(avx2) == "avx2" and cpu_class(("arm64",)) == "other"
    # native bf16: documents in torch bf16, queries in ONNX Runtime fp32 (static int8 failed its gate)
    assert choose("auto", "auto", "m@1", "", True, bf16).path == SPLIT == "torch-bf16+onnx-fp32"
    assert choose("auto", "auto", "m@1", "", False, bf16).path == SPLIT  # the first search exports
    assert choose("auto", "auto", "m@1", "no onnxruntime", False, bf16).path == "torch-bf16"
    # full-range u8s8 saturates without VNNI, so AVX2 takes the reduced-range int8
    assert choose("auto", "auto", "m@1", "", True, avx2).path == "onnx-int8-dyn-rr"
    assert choose("auto", "auto", "m@1", "no onnxruntime", False, avx2).path == "torch-fp32"
    assert choose("auto", "torch", "m@1", "", True, bf16).path == "torch-bf16"
    assert choose("auto", "torch", "m@1", "", True, avx2).path == "torch-fp32"
    assert choose("auto", "onnx", "m@1", "", True, bf16).path == "onnx-int8-dyn"  # ONNX paths only
    assert choose("auto", "onnx", "other@2", "", True, bf16).path == "onnx-fp32"
    # no gate recorded for a model: fp32, or bf16 documents as before on a CPU with native bf16
    assert choose("auto", "auto", "other@2", "", True, bf16).path == SPLIT
    assert choose("auto", "auto", "other@2", "", True, avx2).path == "onnx-fp32"
    assert choose("fp32", "auto", "other@2", "", True, avx2).path == "onnx-fp32"
    assert choose("int8", "auto", "other@2", "", True, avx2).path == "onnx-int8-dyn-rr"
    assert choose("int8", "torch", "other@2", "", True, avx2).path == "torch-int8"
    assert choose("bf16", "auto", "other@2", "", True, avx2).path == SPLIT
    assert choose("bf16", "torch", "other@2", "", True, avx2).path == "torch-bf16"
    assert isinstance(choose("auto", "auto", "m@1", "", True, bf16), Choice)
    # a recorded gate where bf16 lost too much: bf16 is out even where native
    failed = {"models": {"m@1": {"paths": {"onnx-fp32": {"pass": True},
                                           "torch-bf16": {"pass": False, "max_loss": 0.02}}, "speed": {}}}}
    monkeypatch.setattr(select, "gate_records", lambda: failed)
    assert choose("auto", "auto", "m@1", "", True, bf16).path == "onnx-fp32"
    # bf16 passed alone but the pair with fp32 queries lost too much: neither runs where ONNX Runtime can
    split_failed = {"models": {"m@1": {"paths": {"onnx-fp32": {"pass": True}, "torch-bf16": {"pass": True},
                                                 SPLIT: {"pass": False, "max_loss": 0.02}}, "speed": {}}}}
    monkeypatch.setattr(select, "gate_records", lambda: split_failed)
    assert choose("auto", "auto", "m@1", "", True, bf16).path == "onnx-fp32"
    assert choose("auto", "torch", "m@1", "", True, bf16).path == "torch-bf16"  # the pair is not this path


def test_split_serves_documents_and_queries_from_their_runtimes(st, cache):
    """bf16 documents from torch, fp32 queries from ONNX Runtime: one vector space (the documents'), and a search
    loads only the query side."""
    recipe = resolve_recipe(str(st), settings_())
    base = TransformerEmbedder(recipe, threads=1)
    emb = select.build(recipe, base, "bf16", "auto", threads=1)
    assert isinstance(emb, Split) and emb.choice.path == SPLIT
    bf16 = TransformerEmbedder(dataclasses.replace(recipe, precision="bf16"), threads=1)
    assert emb.ident == bf16.ident != base.ident
    emb.load()
    assert emb.queries.serving._loaded and emb.documents._active is None  # nothing of torch loaded for a search
    np.testing.assert_allclose(emb.embed_queries(TEXTS), OrtEmbedder(recipe, "fp32", base.ident).embed_queries(TEXTS),
                               atol=1e-5)
    snippets = emb.embed_snippets(TEXTS)  # find-similar: a snippet as a document, from the query runtime
    assert emb.documents._active is None
    np.testing.assert_allclose(snippets, OrtEmbedder(recipe, "fp32", base.ident).embed_documents(TEXTS), atol=1e-5)
    np.testing.assert_allclose(emb.embed_documents(TEXTS), bf16.embed_documents(TEXTS), atol=1e-5)
    assert _worst_cos(emb.embed_queries(TEXTS), base.embed_queries(TEXTS)) >= 0.9999
    _, reports = load_embedders(settings_(model_path=str(st), precision="bf16"))
    assert "runs on torch, bf16 (documents) and ONNX Runtime, fp32 (queries)" in reports[0].note


def test_a_runtime_that_cannot_run_falls_back_in_select(st, cache, monkeypatch):
    """An export that cannot happen (or disagrees with torch) makes the ONNX embedder raise RuntimeUnavailable;
    select.py's Fallback then serves torch fp32 (the same vectors) and says why. int8 has no such stand-in."""
    from engine.embed.runtime import export

    def refuse(*a, **k):
        raise export.ExportError("the ONNX export's vectors differ from torch's (worst cosine 0.5 < 0.9999)")

    monkeypatch.setattr(export, "export", refuse)
    recipe = resolve_recipe(str(st), settings_())
    with pytest.raises(RuntimeUnavailable):
        OrtEmbedder(recipe, "fp32", TransformerEmbedder(recipe).ident).load()
    logged = []
    embs, reports = load_embedders(settings_(model_path=str(st)), log=logged.append)
    ref = TransformerEmbedder(recipe, threads=1)
    np.testing.assert_allclose(embs["code"].embed_queries(TEXTS), ref.embed_queries(TEXTS), atol=1e-5)
    assert isinstance(embs["code"].serving, TransformerEmbedder)
    assert any("worst cosine 0.5" in line and "served by TransformerEmbedder" in line for line in logged)
    assert "served by TransformerEmbedder" in select.report_note(embs["code"])
    int8, _ = load_embedders(settings_(model_path=str(st), precision="int8"))
    with pytest.raises(RuntimeUnavailable):
        int8["code"].embed_queries(TEXTS)


def test_int8_static_calibrates_on_chunks_rendered_as_sg_embeds_them():
    """The calibration texts are sg's own chunks rendered by engine/embed/render.py (path words, then
    symbol words, then the code); an import error there must fail, not fall back to windows of lines."""
    from engine.embed.runtime.export import calibration_texts

    texts = calibration_texts(60)
    assert len(texts) == 60
    heads = [t.split("\n", 1)[0] for t in texts]
    assert all(h.startswith("engine ") for h in heads), heads[:5]
    assert sum(" | " in h for h in heads) > 40  # most chunks are functions: "engine embed ... | symbol words"


def test_recorded_gate_names_the_shipped_default():
    """The gate file ships for the offline default as it is served (weights + adapter + recipe)."""
    from engine.embed.runtime.select import GATE_FILE, gate_records
    from engine.embed.sentence import default_recipe

    if not GATE_FILE.is_file():
        pytest.skip("no precision_gate.json recorded")
    ident = TransformerEmbedder(default_recipe(True)).ident
    entry = gate_records()["models"][ident]
    assert entry["paths"]["onnx-fp32"]["pass"]
    for path, verdict in entry["paths"].items():
        if path not in ("onnx-fp32", "torch-fp32"):  # fp32 is the reference, verified equal at export
            assert verdict["pass"] == (verdict["complete"] and verdict["max_loss"] <= 0.005), path


def test_one_shot_search_on_the_default_path_imports_no_torch(tmp_path, bench_dir):
    """`sg index` then a one-shot `sg search` with the default settings (the offline MiniLM + adapter,
    runtime and precision auto) on any CPU. Indexing may run torch (bf16 documents where the CPU has native bf16;
    it also readies the ONNX query encoder), but a search process (sg search, then sg similar) never imports torch,
    transformers or peft."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in sorted((bench_dir / "cosqa" / "corpus").iterdir())[:40]:
        (corpus / f.name).write_bytes(f.read_bytes())
    env = {**os.environ, "PYTHONPATH": str(REPO), "SG_CACHE_DIR": str(tmp_path / "cache"),
           "HF_HUB_CACHE": str(tmp_path / "empty-hub")}
    idx = subprocess.run([sys.executable, "-m", "engine.cli", "index", str(corpus), "--json"], capture_output=True,
                         text=True, cwd=REPO, env=env, timeout=900)
    assert idx.returncode == 0, idx.stderr[-3000:]
    assert json.loads(idx.stdout)["embedded"] == 40
    first = sorted(corpus.glob("*.py"))[0]
    code = f"""
import contextlib, io, json, sys
from engine.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = main(["search", "check if a variable is iterable", {str(corpus)!r}, "-k", "5", "--json"])
res = json.loads(out.getvalue())
similar = io.StringIO()
with contextlib.redirect_stdout(similar):
    rc2 = main(["similar", {str(first)!r} + ":1", "--root", {str(corpus)!r}, "-k", "3", "--json"])
print(json.dumps({{"rc": rc, "hits": len(res["results"]), "mode": res["mode"], "notes": res["notes"],
                   "similar": [rc2, len(json.loads(similar.getvalue())["results"])],
                   "loaded": sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0 and got["hits"] == 5 and got["mode"] == "hybrid" and got["notes"] == [], got
    assert got["similar"] == [0, 3], got
    assert got["loaded"] == [], (got, out.stderr[-2000:])
    assert "ONNX Runtime" in out.stderr  # the models line says what serves the queries
