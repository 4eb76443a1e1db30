"""Reliability and security: the server survives SIGKILL, hostile traffic and save/search storms; the index
survives bad files on disk and never reads outside the workspace; models never run untrusted code; resource
limits are enforced end to end. Full-size versions: bench/reliability/*.py (shared helpers in rellib.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

from bench.reliability import rellib  # noqa: E402
from bench.reliability.rellib import LEXICAL, QUERIES, Fuzzer, Raw, check_answers, copy_corpus, frame, marker  # noqa: E402

from engine.errors import BadQuery, ConfigError  # noqa: E402
from tests.support.workspaces import SECRET, WS_FILES, bad_workspace, lexical_engine, small_workspace  # noqa: E402
from engine.search import Engine  # noqa: E402
from engine.settings import load_settings  # noqa: E402

pytestmark = pytest.mark.timeout(180)
def all_results(eng: Engine, queries: list[str]) -> list[list[tuple[str, str, int]]]:
    return [[(h.path, h.symbol, h.start_line) for h in eng.search(q, k=10, mode="lexical").hits] for q in queries]


def sg_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


# -- crash safety: SIGKILL the server during on-save re-indexing --------------------------------------------------
def test_sigkill_server_during_save_storm(bench_dir: Path, tmp_path: Path):
    root = copy_corpus(bench_dir, tmp_path / "ws", 300)
    files = sorted(p.name for p in root.iterdir())
    crashed = tmp_path / "idx"
    opts = {**LEXICAL, "index": {"index_dir": str(crashed)}}
    rng = random.Random(7)
    kills = 0
    for round_ in range(3):
        kills += rellib.save_storm_then_kill(root, files, opts, rng, rng.uniform(0.5, 2.5), round_)
        eng = lexical_engine(root, crashed)
        try:
            assert eng.check() == []
        finally:
            eng.close()
    eng = lexical_engine(root, crashed)
    clean = lexical_engine(root, tmp_path / "clean")
    try:
        eng.index()
        clean.index()
        assert eng.check() == []
        queries = QUERIES + [marker(r, 0) for r in range(3)]
        assert all_results(eng, queries) == all_results(clean, queries)
        assert eng.status()["chunks"] == clean.status()["chunks"]
    finally:
        eng.close()
        clean.close()
    assert kills == 3


# -- fuzzing the server over stdio --------------------------------------------------------------------------------
def test_fuzz_server_messages(tmp_path: Path):
    root, outside = small_workspace(tmp_path)
    index_dir = tmp_path / "idx"
    srv = Raw(stderr=tmp_path / "stderr.log")
    fz = Fuzzer(root, outside, seed=20261125)
    try:
        # Before initialize: every request gets ServerNotInitialized, notifications are dropped.
        fz.initialize = False
        for _ in range(30):
            srv.write(fz.message())
        codes = check_answers(srv, list(fz.expected))
        assert set(codes) <= {"-32002", "-32600"} and "-32002" in codes, codes
        fz.initialize = True
        srv.initialize(root, {**LEXICAL, "index": {"index_dir": str(index_dir)}})
        assert srv.wait_ready()["files"] == 2
        rss0 = srv.rss_kb()
        for _ in range(470):
            srv.write(fz.message())
        codes = check_answers(srv, fz.expected, timeout=120)
        assert srv.proc.poll() is None
        rss1 = srv.rss_kb()
        # Open finding (see report): RSS grows ~40-50 MB per 500 fuzz messages and the cause is not yet found
        # (not configuration changes, oversized/deep JSON or any single request type alone; the CJK tokenizer's
        # one-time load is ~70 MB). This bound catches a runaway, not the slow growth.
        assert rss1 - rss0 < 1_000_000, (rss0, rss1)
        # ... and it still answers a normal search.
        res = srv.call("sg/search", {"query": "fibonacci", "mode": "lexical"})["result"]
        assert res["results"][0]["symbol"] == "fibonacci"
        assert "result" in codes and "-32602" in codes and "-32601" in codes, codes
        after = srv.call("shutdown")
        assert after["result"] is None
        late = [srv.request("sg/search", {"query": "x"}), srv.request("sg/status")]
        assert all(m["error"]["code"] == -32600 for m in srv.wait(late).values())
        srv.notify("exit")
        assert srv.proc.wait(20) == 0
    finally:
        srv.kill()
    assert "MemoryError" not in (tmp_path / "stderr.log").read_text(errors="replace")
    # Nothing from outside the workspace reached the index (didSave/watch events pointed at the secret file).
    eng = lexical_engine(root, index_dir)
    try:
        assert eng.check() == []
        assert all(SECRET not in c.text for c in eng.store.iter_chunks())
        assert {c.path for c in eng.store.iter_chunks()} <= set(WS_FILES)
    finally:
        eng.close()


def test_huge_content_length_does_not_kill_the_server(tmp_path: Path):
    """pygls allocates whatever Content-Length claims: 10**11 bytes used to end in MemoryError (fixed in
    sg_lsp/cli.py: BoundedStdin). An oversized message is skipped and answered with an id-null error."""
    srv = Raw(stderr=tmp_path / "stderr.log")
    try:
        srv.write(b"Content-Length: 100000000000\r\n\r\n")
        # A blocking write far larger than the pipe's buffer returns only once the server has read (skipped) most
        # of it: the server is alive and consuming the body instead of allocating 100 GB (BrokenPipeError if dead).
        srv.write(b" " * (16 << 20))
        assert srv.proc.poll() is None, (tmp_path / "stderr.log").read_text()
        assert srv.rss_kb() < 500_000
        srv.proc.stdin.close()  # EOF inside the skipped body: a normal exit path, no traceback
        srv.proc.wait(20)
    finally:
        srv.kill()
    assert "MemoryError" not in (tmp_path / "stderr.log").read_text()


def test_oversized_message_is_answered_and_the_stream_recovers(tmp_path: Path):
    import sg_lsp.cli as cli

    root, _ = small_workspace(tmp_path)
    srv = Raw()
    try:
        srv.initialize(root, LEXICAL)
        srv.wait_ready()
        big = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "sg/search",
                          "params": {"query": "a" * (cli.MAX_MESSAGE_BYTES + 10)}}).encode()
        srv.write(frame(big))
        assert srv.wait([None], timeout=60)[None]["error"]["code"] == -32600
        assert "5" not in srv.responses  # the oversized request was never parsed
        res = srv.call("sg/search", {"query": "fibonacci", "mode": "lexical"})["result"]
        assert res["results"][0]["symbol"] == "fibonacci"
    finally:
        srv.kill()


# -- bad inputs on disk -------------------------------------------------------------------------------------------
def test_bad_inputs_on_disk(tmp_path: Path):
    root, outside, exp = bad_workspace(tmp_path)
    eng = lexical_engine(root, tmp_path / "idx")
    try:
        rep = eng.index()
        assert not rep.cancelled
        chunks = list(eng.store.iter_chunks())
        indexed = {c.path for c in chunks}
        skips = {s.path: s for s in eng.skipped()}
        for rel, outcome in exp.items():
            if outcome == "indexed":
                assert rel in indexed, (rel, skips.get(rel))
            elif outcome != "any":
                assert rel in skips and skips[rel].reason == outcome, (rel, skips.get(rel))
                assert skips[rel].detail
                assert rel not in indexed
        assert all(SECRET not in c.text for c in chunks)
        for q in (SECRET, "leak", "secret"):
            assert all(SECRET not in h.snippet and not h.path.startswith(("dir_out", "link_out"))
                       for h in eng.search(q, k=50, mode="lexical").hits)
        # invariants on what was indexed: spans inside the file, at most max_chunks_per_file per file
        per_file: dict[str, int] = {}
        for c in chunks:
            n_lines = (root / c.path).read_text(encoding="utf-8").count("\n") + 1
            assert 1 <= c.start_line <= c.end_line <= n_lines, (c.path, c.start_line, c.end_line)
            per_file[c.path] = per_file.get(c.path, 0) + 1
        assert max(per_file.values()) <= eng.settings.index.max_chunks_per_file
        for name, sym in (("name with spaces.py", "spaced_name_function"), ("new\nline.py", "newline_name_function"),
                          ("ユニコード/日本語ファイル.py", "unicode_path_function")):
            assert eng.search(sym, k=3, mode="lexical").hits[0].path == name
        # update_files with paths that leave the workspace: refused, nothing read
        rep = eng.update_files(["../outside/secret.py", str(outside / "secret.py"), "../outside_secret.py",
                                "link_out.py", "dir_out/secret.py", "loop/again/again/ok.py"])
        assert all(SECRET not in c.text for c in eng.store.iter_chunks())
        assert eng.check() == []
    finally:
        eng.close()
    # The CLI does the same, exits 0 and lists the reasons.
    out = sg_cli("index", str(root), "--index-dir", str(tmp_path / "idx2"), "--no-models", "-q")
    assert out.returncode == 0, out.stderr
    st = sg_cli("status", str(root), "--index-dir", str(tmp_path / "idx2"), "--skipped")
    assert st.returncode == 0 and "symlink-outside" in st.stdout + st.stderr and SECRET not in st.stdout


def test_permission_denied_file_is_skipped_with_reason(tmp_path: Path, unprivileged):
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="sg-rel-perm-"))
    try:
        os.chmod(base, 0o777)
        root = base / "ws"
        root.mkdir(mode=0o777)
        os.chmod(root, 0o777)
        (root / "ok.py").write_text("def fine():\n    pass\n")
        (root / "locked.py").write_text(f"X = '{SECRET}'\n")
        os.chmod(root / "ok.py", 0o644)
        os.chmod(root / "locked.py", 0o000)
        idx = base / "idx"
        idx.mkdir(mode=0o777)
        os.chmod(idx, 0o777)
        with unprivileged():
            eng = lexical_engine(root, idx)
            try:
                eng.index()
                skips = {s.path: s for s in eng.skipped()}
                paths = {c.path for c in eng.store.iter_chunks()}
            finally:
                eng.close()
        assert paths == {"ok.py"}
        assert skips["locked.py"].reason == "unreadable" and "permission" in skips["locked.py"].detail
    finally:
        import shutil
        shutil.rmtree(base, ignore_errors=True)


def test_files_changing_while_indexing(tmp_path: Path):
    """A thread deletes, re-creates and rewrites files while index() runs (no monkeypatching): the index never
    breaks, and the next index() matches a clean build of what is on disk."""
    root = tmp_path / "ws"
    root.mkdir()
    n = 400
    for i in range(n):
        (root / f"f{i}.py").write_text(f"def func_{i}():\n    return '{marker(i, 0)}'\n")
    stop = threading.Event()
    rng = random.Random(3)

    def churn() -> None:
        v = 1
        while not stop.is_set():
            i = rng.randrange(n)
            p = root / f"f{i}.py"
            r = rng.random()
            if r < 0.3:
                p.unlink(missing_ok=True)
            elif r < 0.6:
                p.write_text(f"def func_{i}():\n    return '{marker(i, v)}'\n" * rng.randrange(1, 4))
            else:  # truncate then grow: a reader may see an empty or a partial file
                with open(p, "w") as fh:
                    fh.write("def partial(")
                    fh.flush()
                    fh.write(f"):\n    return '{marker(i, v)}'\n")
            v += 1

    eng = lexical_engine(root, tmp_path / "idx")
    try:
        t = threading.Thread(target=churn)
        t.start()
        try:
            for _ in range(3):
                eng.index()
                assert eng.check() == []
                eng.update_files([f"f{i}.py" for i in rng.sample(range(n), 30)])
        finally:
            stop.set()
            t.join()
        eng.index()
        clean = lexical_engine(root, tmp_path / "clean")
        try:
            clean.index()
            queries = [marker(i, v) for i in range(0, n, 37) for v in range(0, 40, 13)] + ["func partial"]
            assert all_results(eng, queries) == all_results(clean, queries)
            assert eng.status()["chunks"] == clean.status()["chunks"]
            assert {c.path for c in eng.store.iter_chunks()} == {p.name for p in root.iterdir()}
        finally:
            clean.close()
    finally:
        eng.close()


# -- concurrency: saves, watcher events and searches against the real server ---------------------------------------
def test_save_search_storm(tmp_path: Path):
    root = tmp_path / "ws"
    rellib.storm_workspace(root, 12)
    srv = Raw()
    try:
        srv.initialize(root, {**LEXICAL, "index": {"index_dir": str(tmp_path / "idx")}})
        srv.wait_ready()
        st = rellib.storm(srv, root, 200, seed=11)
        assert st.violations == [] and st.lost == [] and st.stale == [], st
        assert st.saves > 40 and st.searches > 80
        assert srv.shutdown() == 0
    finally:
        srv.kill()
    eng = lexical_engine(root, tmp_path / "idx")
    try:
        assert eng.check() == []
    finally:
        eng.close()


# -- models: no pickles, no remote code without opt-in, broken dirs fall back -------------------------------------
def evil_model_dir(base: Path, flag: Path) -> Path:
    """A model directory whose pytorch_model.bin would create `flag` if unpickled unsafely."""
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    d = base / "evil-model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                                               "num_attention_heads": 2, "intermediate_size": 37,
                                               "vocab_size": 100}))
    torch.save({"embeddings.word_embeddings.weight": Evil()}, d / "pytorch_model.bin")
    return d


def remote_code_model_dir(base: Path, flag: Path) -> Path:
    d = base / "remote-code-model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "evil", "architectures": ["EvilModel"],
                                               "auto_map": {"AutoConfig": "modeling_evil.EvilConfig",
                                                            "AutoModel": "modeling_evil.EvilModel"}}))
    (d / "modeling_evil.py").write_text(f"import pathlib\npathlib.Path({str(flag)!r}).touch()\n")
    (d / "model.safetensors").write_bytes(b"")
    return d


def truncated_model_dir(base: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    d = base / "truncated-model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                                               "num_attention_heads": 2, "intermediate_size": 37,
                                               "vocab_size": 100}))
    save_file({"embeddings.word_embeddings.weight": torch.zeros(100, 32)}, d / "model.safetensors")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 3])
    return d


@pytest.mark.parametrize("kind", ["pickle", "remote-code", "truncated", "missing"])
def test_bad_model_dirs_are_refused_with_a_fallback(tmp_path: Path, kind: str):
    root, _ = small_workspace(tmp_path)
    flag = tmp_path / "PWNED"
    model = {"pickle": lambda: evil_model_dir(tmp_path, flag), "remote-code": lambda: remote_code_model_dir(tmp_path, flag),
             "truncated": lambda: truncated_model_dir(tmp_path), "missing": lambda: tmp_path / "nonexistent"}[kind]()
    # CLI: a clear message on stderr, results anyway, exit 0, no traceback.
    out = sg_cli("search", "fibonacci", str(root), "--index-dir", str(tmp_path / "idx"), "--model-path", str(model),
                 timeout=170)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and str(model) in out.stderr, out.stderr
    assert "fibonacci" in out.stdout.splitlines()[0]
    assert not flag.exists()
    if kind == "pickle":
        assert "weights_only" in out.stderr and "refused" in out.stderr
    if kind == "remote-code":
        assert "trust_remote_code" in out.stderr
    # Engine: same through the API (lexical fallback, model reports say why).
    if kind != "missing":  # "missing" falls back to the offline MiniLM, covered by the CLI run above
        eng = Engine(root, load_settings(root, {"models": {"model_path": str(model)},
                                                "index": {"index_dir": str(tmp_path / "idx3")}}))
        try:
            eng.index()
            res = eng.search("fibonacci", k=3)
            assert res.hits[0].symbol == "fibonacci"
            reports = {r.route: r for r in eng.models()}
            # refused with the reason, served lexically or by the offline default, never from the bad directory
            assert str(model) in reports["code"].note and reports["code"].source != str(model), reports["code"]
            assert eng.check() == []
        finally:
            eng.close()
    assert not flag.exists()


# -- resource bounds ----------------------------------------------------------------------------------------------
def test_resource_limits_engine_and_cli(tmp_path: Path):
    root, _ = small_workspace(tmp_path)
    many = "".join(f"def generated_function_{i}(x):\n    return x + {i}\n\n\n" for i in range(50))
    (root / "src" / "many.py").write_text(many)
    (root / "src" / "big.py").write_text("def big_file_function():\n" + "    x = 1\n" * 600)
    (root / ".sg.toml").write_text("[search]\nmax_query_chars = 40\nmax_results = 5\n"
                                   "[index]\nmax_file_bytes = 4000\nmax_chunks_per_file = 7\n")
    eng = Engine(root, load_settings(root, {"models": {"enabled": False}}))
    try:
        eng.index()
        assert {s.path: s.reason for s in eng.skipped()}.get("src/big.py") == "too-large"
        assert len(eng.store.chunks_of_file("src/many.py")) == 7
        assert all("generated_function_40" not in h.snippet
                   for h in eng.search("generated_function_40", k=5, mode="lexical").hits)
        assert all(h.path != "src/big.py" for h in eng.search("big_file_function", k=5, mode="lexical").hits)
        with pytest.raises(BadQuery):
            eng.search("x" * 41, k=3)
        with pytest.raises(BadQuery):
            eng.search("fibonacci", k=6)
        assert len(eng.search("function", k=5, mode="lexical").hits) <= 5
        defaults = load_settings(None)
        assert (defaults.search.max_query_chars, defaults.search.max_results, defaults.index.max_file_bytes,
                defaults.index.max_chunks_per_file) == (2000, 200, 1 << 20, 2000)
    finally:
        eng.close()
    out = sg_cli("search", "x" * 41, str(root), "--no-models")
    assert out.returncode != 0 and "40" in out.stderr and "Traceback" not in out.stderr
    out = sg_cli("search", "fibonacci", str(root), "--no-models", "-k", "6")
    assert out.returncode != 0 and "5" in out.stderr and "Traceback" not in out.stderr
    out = sg_cli("search", "function", str(root), "--no-models", "-k", "5", "--json")
    assert out.returncode == 0, out.stderr


def test_resource_limits_server(tmp_path: Path):
    root, _ = small_workspace(tmp_path)
    (root / "src" / "many.py").write_text(
        "".join(f"def generated_function_{i}(x):\n    return x + {i}\n\n\n" for i in range(50)))
    (root / "src" / "big.py").write_text("def big_file_function():\n" + "    x = 1\n" * 600)
    srv = Raw()
    try:
        srv.initialize(root, {**LEXICAL, "search": {"max_query_chars": 40, "max_results": 5},
                              "index": {"max_file_bytes": 4000, "max_chunks_per_file": 7,
                                        "index_dir": str(tmp_path / "idx")}})
        st = srv.wait_ready()
        assert st["skipped"] == 1
        bad = srv.call("sg/search", {"query": "x" * 41})
        assert bad["error"]["code"] == -32602 and "40" in bad["error"]["message"]
        bad = srv.call("sg/search", {"query": "fibonacci", "limit": 6})
        assert bad["error"]["code"] == -32602
        ok = srv.call("sg/search", {"query": "function", "limit": 5, "mode": "lexical"})["result"]
        assert len(ok["results"]) <= 5
        # no `limit`: the default (10) is capped at max_results instead of failing (fixed in sg_lsp/server.py)
        res = srv.call("sg/search", {"query": "big_file_function", "mode": "lexical"})["result"]["results"]
        assert res and all(h["path"] != "src/big.py" for h in res)
        hits = srv.call("sg/search", {"query": "generated_function_45", "mode": "lexical", "limit": 5})["result"]
        assert all("generated_function_45" not in h["snippet"] for h in hits["results"])
        # a lone surrogate (valid JSON) crashed the model tokenizer (-32603): now InvalidParams (sg_lsp/server.py)
        for method in ("sg/search", "workspace/symbol"):
            assert srv.call(method, {"query": "fib \ud800"})["error"]["code"] == -32602
        sym = srv.call("workspace/symbol", {"query": "y" * 100_000})
        assert ("error" in sym and sym["error"]["code"] == -32602) or sym["result"] == []
        assert len(srv.call("workspace/symbol", {"query": "function"})["result"]) <= 5
        assert srv.shutdown() == 0
    finally:
        srv.kill()


@pytest.mark.parametrize("override", [{"search": {"max_query_chars": 0}}, {"search": {"max_query_chars": 10**12}},
                                      {"index": {"max_chunks_per_file": -1}},
                                      {"index": {"max_chunks_per_file": 10**12}},
                                      {"models": {"max_tokens": 4}}, {"models": {"max_tokens": -1}}])
def test_limit_settings_are_range_checked(override: dict):
    with pytest.raises(ConfigError):
        load_settings(None, override)


def test_lenient_settings_drop_only_the_bad_value():
    """The server loads leniently: an out-of-range value is reported and left out, the rest still applies. It used
    to fall back to every default, which turned models back on (the fuzzer's 'memory leak': MiniLM loading)."""
    problems: list[str] = []
    s = load_settings(None, {"models": {"enabled": False}, "index": {"max_file_bytes": 0},
                             "search": {"mode": "bogus", "lexical_weight": 0.3}}, problems, lenient=True)
    assert s.models.enabled is False and s.search.lexical_weight == 0.3
    assert s.index.max_file_bytes == load_settings(None).index.max_file_bytes and s.search.mode == "hybrid"
    assert len(problems) == 2 and all(p.endswith("; ignored") for p in problems)


def test_cli_query_with_undecodable_bytes_is_refused_cleanly(tmp_path: Path):
    root, _ = small_workspace(tmp_path)
    eng = lexical_engine(root, tmp_path / "idx")
    try:
        with pytest.raises(BadQuery):
            eng.search("fib \udcff", k=3)
    finally:
        eng.close()


def test_cli_json_says_why_the_model_was_refused(tmp_path: Path):
    root, _ = small_workspace(tmp_path)
    model = evil_model_dir(tmp_path, tmp_path / "PWNED")
    out = sg_cli("search", "fibonacci", str(root), "--index-dir", str(tmp_path / "idx"), "--model-path", str(model),
                 "--json", timeout=170)
    assert out.returncode == 0
    assert "weights_only" in out.stderr + " ".join(json.loads(out.stdout)["notes"])
    assert not (tmp_path / "PWNED").exists()
