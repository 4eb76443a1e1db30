"""sg eval through the Qdrant backend next to the local (hnswlib) backend, on the same store, in one run.

    python bench/qdrant_eval.py --spec ../shared/bench/cosqa/dev.json [--qdrant-url DIR|URL] [--exact]

Interim harness until the engine selects its backend itself (engine/backend.py's Protocols wired into Engine):
the Engine's own ranking code (_rank: pruning, fusion, name boost, test demotion, dedupe) runs unchanged, and
only its data accessors — the read transaction, BM25 top-k and fill-in, document counts, rows, ANN candidates,
MaxSim and the semantic fill-in — are answered by QdrantBackend's View instead of the SQLite store and hnswlib.
Writes bench/results/qdrant-eval-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.backends.qdrant_backend import QdrantBackend  # noqa: E402
from engine.eval import load_spec, run_eval  # noqa: E402
from engine.search import Engine  # noqa: E402
from engine.settings import load_settings  # noqa: E402


class _ViewStore:
    """What Engine._rank asks of its store, answered by a QdrantBackend view (the real store for the rest)."""

    def __init__(self, backend: QdrantBackend, real):
        self.backend, self.real = backend, real

    def __getattr__(self, name):
        return getattr(self.real, name)

    @contextmanager
    def read(self):
        with self.backend.view() as v:
            yield v

    def lexical(self, tokens, limit, weights=(1.0, 2.0, 1.0), con=None, ids=None):
        return con.lexical(tokens, limit, weights, keys=ids)

    def doc_freqs(self, tokens, con=None):
        return con.doc_freqs(tokens)

    def chunks_by_id(self, ids, con=None, text=True):
        return con.rows(list(ids), text=text)


class QdrantEvalEngine(Engine):
    """Engine whose ranking reads from Qdrant; indexing is the Engine's own, then a push."""

    def __init__(self, root, settings, *, url: str, collection: str = "sg", exact: bool = False, **kw):
        super().__init__(root, settings, **kw)
        self.backend = QdrantBackend(self.store, url, collection, repository=self.root.name, exact=exact)

    def index(self, *a, **kw):
        rep = super().index(*a, **kw)
        t = time.perf_counter()
        self.backend.open_spaces(self.spaces)  # pushes what Qdrant lacks
        self.backend.save()
        self.push_seconds = time.perf_counter() - t
        return rep

    def _rank(self, **kw):
        real = self.store
        self.store = _ViewStore(self.backend, real)
        try:
            return super()._rank(**kw)
        finally:
            self.store = real

    def _chunk_count(self) -> int:
        with self.backend.view() as v:
            return v.chunk_count()

    def _semantic(self, sp, text, n, doc_query, con):
        emb = sp.embedder
        cached = self._query_vectors.get((sp.name, doc_query, text))
        out = [cached] if cached is not None else \
            emb.embed_documents([text]) if doc_query else emb.embed_queries([text])
        qtok = None
        if emb.multi_vector:
            qtok = out[0]
            pooled = qtok.mean(axis=0)
            pooled = (pooled / (np.linalg.norm(pooled) or 1.0)).astype(np.float32)
        else:
            pooled = np.asarray(out[0], np.float32)
        return con.semantic(sp.name, pooled, n, tokens=qtok), pooled

    def _fill_in(self, components, cand, q_tokens, cols, qvecs, con):
        for key, comp in components.items():
            missing = [i for i in cand if i not in comp]
            if not missing:
                continue
            if key == "lexical":
                comp.update(con.lexical(q_tokens, 0, cols, keys=missing))
            else:
                sp = next(s for s in self.spaces.values() if f"sem:{s.embedder.name}" == key)
                comp.update(con.semantic_fill(sp.name, qvecs[sp.name], missing))

    def close(self):
        try:
            self.backend.close()
        finally:
            super().close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", action="append", required=True)
    ap.add_argument("--qdrant-url", help="default: a fresh temp directory (the embedded engine)")
    ap.add_argument("--exact", action="store_true", help="exact vector search in Qdrant (default: HNSW)")
    ap.add_argument("--mode", default="hybrid")
    ap.add_argument("--name", default="dev")
    args = ap.parse_args()
    cpu = open("/proc/cpuinfo").read()
    flags = " ".join(sorted(set(re.findall(r"\b(avx512_bf16|amx_bf16|avx512_vnni|avx512f|avx2)\b", cpu))))
    print(f"CPU flags: {flags}", flush=True)
    rows = []
    for spec_path in args.spec:
        spec = load_spec(spec_path)
        settings = load_settings(None)
        local = run_eval(spec_path, mode=args.mode, settings=settings)
        url = args.qdrant_url or tempfile.mkdtemp(prefix=f"sg-qdrant-eval-{spec.name}-")
        settings = load_settings(None)
        made = {}

        def factory(corpus, s):
            made["engine"] = QdrantEvalEngine(corpus, s, url=url, exact=args.exact)
            return made["engine"]

        remote = run_eval(spec_path, mode=args.mode, settings=settings, engine_factory=factory)
        row = {"set": spec.name, "n": local.n, "local": local.as_dict(), "qdrant": remote.as_dict(),
               "push_s": round(getattr(made.get("engine"), "push_seconds", 0.0), 2),
               "dMRR@10": round(remote.mrr_at_10 - local.mrr_at_10, 4)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"cpu": flags, "mode": args.mode, "qdrant": "edge (exact)" if args.exact else "edge (HNSW ef 128)",
           "rows": rows}
    dest = Path(__file__).resolve().parent / "results" / f"qdrant-eval-{args.name}.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {dest}")
    print("| set | n | MRR@10 hnswlib | MRR@10 qdrant | diff |")
    for r in rows:
        print(f"| {r['set']} | {r['n']} | {r['local']['MRR@10']:.4f} | {r['qdrant']['MRR@10']:.4f} | "
              f"{r['dMRR@10']:+.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
