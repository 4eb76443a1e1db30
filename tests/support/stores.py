"""A real store of synthetic chunks with tiny random vectors, for the backend tests: no model, no workspace."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from engine import tokenize
from engine.codec import get_codec
from engine.records import Chunk
from engine.store import Store

DENSE_NAME, DENSE_DIM = "dense-t", 16  # a single-vector space serving the code route
MULTI_NAME, MULTI_DIM = "multi-t", 8  # a multi-vector (int8 token vectors) space serving the prose route
VOCAB = [f"w{i}" for i in range(300)] + ["parse", "config", "http", "request", "tokenizer", "retry"]


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def make_store(path: Path, n_files: int = 40, per_file: int = 5, seed: int = 0, version: str = "") -> Store:
    """A real store of synthetic chunks with zipf-like words, dense vectors for the code route and int8 token
    vectors (plus pooled) for the prose route."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, len(VOCAB) + 1)
    store = Store(path)
    store.ensure_space(DENSE_NAME, "test-dense", DENSE_DIM, False, "fp32")
    store.ensure_space(MULTI_NAME, "test-multi", MULTI_DIM, True, "int8")
    with store.write() as con:
        for f in range(n_files):
            fpath = f"{'tests' if f % 4 == 0 else 'src'}/pkg{f % 3}/mod{f}.py"
            chunks = []
            for j in range(per_file):
                body = " ".join(rng.choice(VOCAB, size=int(rng.integers(5, 60)), p=p / p.sum())) + version
                sym = f"handle_{VOCAB[(f * 7 + j) % len(VOCAB)]}_{j}"
                c = Chunk(fpath, "python", "function", sym, j * 10 + 1, j * 10 + 9, body)
                chash = hashlib.blake2b(f"{fpath}\0{sym}\0{body}".encode(), digest_size=16).hexdigest()
                fts = (" ".join(tokenize.tokenize_path(fpath)), " ".join(tokenize.tokenize_symbol(sym)),
                       " ".join(tokenize.tokenize(body)))
                chunks.append((c, "code" if j % 2 == 0 else "prose", chash, fts))
            store.put_file(con, fpath, 100, 1, f"file{f}{version}", "python", chunks)
    codec = get_codec("int8")
    rows = list(store.iter_chunks())
    with store.write() as con:
        store.put_vectors(con, DENSE_NAME, [(r.hash, unit(rng.normal(size=DENSE_DIM)).tobytes(), None)
                                            for r in rows if r.route == "code"])
        multi = []
        for r in rows:
            if r.route == "prose":
                tok = unit(rng.normal(size=(int(rng.integers(2, 9)), MULTI_DIM)))
                multi.append((r.hash, unit(tok.mean(0)).tobytes(), codec.encode(tok)))
        store.put_vectors(con, MULTI_NAME, multi)
    return store
