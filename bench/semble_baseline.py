"""The peer baseline for bench/repo_search.py, run by the Python of a venv that holds `semble==0.7.0` (never sg's):
semble's BM25 with its full ranking stack, with a placeholder model2vec StaticModel (a tiny local tokenizer and zero
vectors; semble's real model lives on a model hub this machine cannot reach) and `alpha=0`, so the model carries no
weight. Reads a JSON job on stdin ({"repos": [{"name", "root", "queries": [...]}], "cache": DIR}) and writes one JSON
line per repository: index seconds, chunks (path and span, for the benchmark's ideal), per-query top-10 hits and
warm query times. Scoring happens in bench/repo_search.py, with the same code as sg's figures."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def placeholder_model(where: Path) -> str:
    import numpy as np
    from model2vec import StaticModel
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    StaticModel(np.zeros((2, 8), dtype=np.float32), tok).save_pretrained(str(where))
    return str(where)


def main() -> None:
    job = json.load(sys.stdin)
    os.environ["XDG_CACHE_HOME"] = job["cache"]  # semble caches indexes there: a fresh folder keeps every run cold
    from semble import SembleIndex

    model_dir = placeholder_model(Path(tempfile.mkdtemp(prefix="semble-placeholder-")))
    for repo in job["repos"]:
        t0 = time.perf_counter()
        index = SembleIndex.from_path(repo["root"], model_path=model_dir)
        index_s = time.perf_counter() - t0
        hits, times = [], []
        for q in repo["queries"]:
            res = index.search(q, top_k=10, alpha=0.0)
            t1 = time.perf_counter()
            index.search(q, top_k=10, alpha=0.0)
            times.append((time.perf_counter() - t1) * 1000)
            hits.append([[r.chunk.file_path, r.chunk.start_line, r.chunk.end_line] for r in res])
        chunks = [[c.file_path, c.start_line, c.end_line] for c in index.chunks]
        print(json.dumps({"name": repo["name"], "index_s": index_s, "hits": hits, "query_ms": times,
                          "chunks": chunks}), flush=True)


if __name__ == "__main__":
    main()
