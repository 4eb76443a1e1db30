"""Retrieval metrics on held-out pairs: P@1 and MRR@10 of each query's positive among a pool of documents, through
the trainable encoder (during training) or through an engine Embedder (before and after, as search sees it)."""

from __future__ import annotations

import random

import numpy as np

from .mine import Pair


def maxsim_scores(q, qkeep, d, dkeep):
    """(nq, nd) MaxSim: for each query token the best document token, averaged over the query's tokens."""
    import torch

    sim = torch.einsum("qtd,nsd->qnts", q, d)
    sim = sim.masked_fill(~dkeep[None, :, None, :], -1e4)
    best = sim.max(dim=-1).values * qkeep[:, None, :].to(sim.dtype)
    return best.sum(-1) / qkeep.sum(-1).clamp(min=1)[:, None].to(sim.dtype)


def rank_metrics(score_matrix: np.ndarray, gold: list[int], k: int = 10) -> dict[str, float]:
    """P@1 and MRR@k for rows of scores where gold[i] is the relevant column of row i."""
    n = len(gold)
    if n == 0:
        return {"P@1": 0.0, f"MRR@{k}": 0.0, "n": 0}
    p1 = mrr = 0.0
    for i, g in enumerate(gold):
        row = score_matrix[i]
        rank = int((row > row[g]).sum()) + 1
        p1 += rank == 1
        mrr += 1.0 / rank if rank <= k else 0.0
    return {"P@1": round(p1 / n, 4), f"MRR@{k}": round(mrr / n, 4), "n": n}


def score_sets(qv, dv, multi: bool) -> np.ndarray:
    """Similarity of every query to every document (tensors from TrainableEncoder.encode or numpy arrays)."""
    import torch

    if not multi:
        q = torch.as_tensor(np.asarray(qv, dtype=np.float32)) if not torch.is_tensor(qv) else qv
        d = torch.as_tensor(np.asarray(dv, dtype=np.float32)) if not torch.is_tensor(dv) else dv
        return (q @ d.T).numpy()
    docs = [torch.as_tensor(x) for x in dv]
    width = max((len(x) for x in docs), default=1)
    dim = docs[0].shape[-1] if docs else 1
    d = torch.zeros((len(docs), width, dim))
    dkeep = torch.zeros((len(docs), width), dtype=torch.bool)
    for i, x in enumerate(docs):
        d[i, :len(x)] = x
        dkeep[i, :len(x)] = True
    rows = []
    for x in qv:
        x = torch.as_tensor(x)
        rows.append(maxsim_scores(x[None], torch.ones((1, len(x)), dtype=torch.bool), d, dkeep)[0])
    return torch.stack(rows).numpy() if rows else np.zeros((0, len(docs)), np.float32)


def eval_pool(pairs: list[Pair], extra_docs: list[str] | None = None, limit: int = 0,
              seed: int = 0) -> tuple[list[str], list[str], list[int]]:
    """(queries, documents, gold column per query): positives and hard negatives of `pairs`, then extra docs."""
    docs: list[str] = []
    index: dict[str, int] = {}

    def add(t: str) -> int:
        if t not in index:
            index[t] = len(docs)
            docs.append(t)
        return index[t]

    gold = [add(p.positive) for p in pairs]
    for p in pairs:
        for n in p.negatives:
            add(n)
    if extra_docs:
        rest = [t for t in extra_docs if t not in index]
        random.Random(seed).shuffle(rest)
        room = max(0, limit - len(docs)) if limit else len(rest)
        for t in rest[:room]:
            add(t)
    return [p.query for p in pairs], docs, gold


def evaluate_encoder(enc, queries: list[str], docs: list[str], gold: list[int],
                     doc_len: int = 0, batch: int = 32) -> dict[str, float]:
    """The metric through a TrainableEncoder (train.py): its no-grad vectors, as training sees them."""
    qv = enc.encode(queries, True, 0, batch)
    dv = enc.encode(docs, False, doc_len, batch)
    return rank_metrics(score_sets(qv, dv, enc.multi), gold)


def evaluate_embedder(emb, queries: list[str], docs: list[str], gold: list[int]) -> dict[str, float]:
    """The same metric through an engine Embedder (embed_queries / embed_documents), as search would see it."""
    qv = emb.embed_queries(queries)
    dv = emb.embed_documents(docs)
    return rank_metrics(score_sets(qv, dv, emb.multi_vector), gold)
