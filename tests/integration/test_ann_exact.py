"""Where hnswlib cannot be installed (no compiler), candidate search runs exactly in numpy behind the same AnnIndex.

Each test runs in a subprocess in which `import hnswlib` fails, as on a machine where pip could not build it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCK = "import sys; sys.modules['hnswlib'] = None\n"  # makes `import hnswlib` raise ImportError


def _run(code: str, timeout: int = 600) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def test_ann_suite_passes_on_exact_search():
    """The whole AnnIndex suite (add, replace, remove, compaction, save/load, threads) on the numpy backend; only
    the test that shows weak hnswlib parameters lose recall does not apply (exact search never does)."""
    out = _run("import pytest\n"
               "from engine.backends.local import ann\n"
               "assert ann.BACKEND == 'numpy-exact' and ann.hnswlib is None\n"
               "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/unit/test_ann.py', '--deselect',"
               " 'tests/unit/test_ann.py::test_weak_parameters_do_lose_recall_so_the_data_is_not_trivial']))")
    assert " passed" in out.stdout and "failed" not in out.stdout


def test_exact_index_files_are_not_read_as_hnswlib(tmp_path):
    """An index saved by one backend is rebuilt, never misread, by the other."""
    from engine.backends.local.ann import AnnIndex

    ids, vecs = np.arange(50), np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    AnnIndex.build(8, ids, vecs).save(tmp_path / "h.hnsw", generation=1)
    _run(f"from engine.backends.local.ann import AnnIndex\nimport numpy as np\n"
         f"assert AnnIndex.load({str(tmp_path / 'h.hnsw')!r}, 1, 8) is None\n"
         f"a = AnnIndex.build(8, np.arange(5), np.eye(5, 8, dtype=np.float32))\n"
         f"a.save({str(tmp_path / 'e.hnsw')!r}, generation=1)\n"
         f"b = AnnIndex.load({str(tmp_path / 'e.hnsw')!r}, 1, 8)\n"
         f"assert b is not None and b.backend == 'numpy-exact' and b.search(np.eye(5, 8)[2], 1)[0].tolist() == [2]\n")
    assert AnnIndex.load(tmp_path / "e.hnsw", 1, 8) is None


def test_search_path_without_hnswlib(tmp_path):
    """Index and search a small corpus through Engine with hnswlib unimportable: same hits as with hnswlib."""
    pytest.importorskip("torch")
    from tests.support.models import TEXTS, build_st_bert

    model = build_st_bert(tmp_path / "st", max_seq_length=32)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, text in enumerate(TEXTS[:2] + TEXTS[3:]):
        (corpus / f"m{i}.py").write_text(text + "\n")
    script = f"""
import json
from engine.backends.local import ann
from engine.search import Engine
from engine.settings import load_settings
settings = load_settings(None, {{"models": {{"model_path": {str(model)!r}, "threads": 1, "precision": "fp32"}},
                                 "index": {{"index_dir": sys.argv[1]}}}})
eng = Engine({str(corpus)!r}, settings)
eng.index()
res = eng.search("read lines from a file", k=5, mode="semantic")
backends = sorted({{eng.backend.ann(name).backend for name in eng.spaces}})
print(json.dumps({{"backend": backends, "hnswlib": ann.hnswlib is not None,
                   "hits": [[h.path, round(h.score, 4)] for h in res.hits]}}))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = {}
    for blocked in (True, False):
        code = (BLOCK if blocked else "import sys\n") + script
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"idx-{blocked}")], capture_output=True,
                             text=True, cwd=REPO, env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        runs[blocked] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs[True]["backend"] == ["numpy-exact"] and not runs[True]["hnswlib"]
    assert runs[False]["backend"] == ["hnswlib"]
    assert len(runs[True]["hits"]) >= 3 and runs[True]["hits"] == runs[False]["hits"]
