"""A shallower document encoder distilled from the served one: tried as a lever on index time, not shipped.

Documents take all of a cold index's encoder time; queries are one short text each. A student that keeps some of
the served model's layers (MiniLM + sg's adapter, merged) and learns to give the documents the vectors the served
model gives them would cut the index time by its share of layers, while queries stay with the served model in
the same vector space. This tool measures whether one can: it
1. takes chunks of third-party code installed on this machine (the Python standard library and site-packages,
   C headers, JavaScript and TypeScript under node_modules), chunked and rendered as `sg index` does; nothing
   from the bench data, and no package the dev sets are made of (click, pytest, ..., the repo-search
   repositories: httpx and starlette are installed here);
2. embeds them with the served model in bf16 (the teacher's vectors: what `sg index` stores);
3. trains the student (the kept layers, word embeddings frozen; bf16 autocast) to reproduce them: cosine to the
   teacher's vector plus the squared error of the in-batch similarity matrix, for a time budget;
4. scores the dev sets by dense retrieval alone (files ranked by their best chunk, queries by the served model):
   the teacher's documents, the untrained student's and the trained student's, with their cosine to the teacher.

A maintainer tool, not part of the installed package. From the repository root:
    python -m tools.doc_student --layers 0,5 --minutes 12 [--sets repo-click,clones] [--work DIR]
docs/models.md ("A shallower document encoder") has the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

from tools.public_recipe import EVAL_LIBRARIES

ROOT = Path(__file__).resolve().parents[1]
# file types and how many files of each to read; a few chunks per file keep one big file from dominating
CAPS = {".py": 2500, ".h": 700, ".hpp": 250, ".js": 900, ".ts": 500, ".c": 300, ".lua": 178, ".sh": 125,
        ".cpp": 52, ".go": 4, ".rs": 2, ".rb": 1, ".md": 300}
CHUNKS_PER_FILE = 6
BATCH = 32


def code_roots() -> list[Path]:
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"]), Path(paths["purelib"]), Path("/usr/include"), Path("/usr/share"),
             ROOT / "editors" / "vscode" / "node_modules", Path("/usr/lib/node_modules"), Path("/usr/local/lib")]
    return [r for r in roots if r.is_dir()]


def evaluated_names() -> frozenset[str]:
    """Package and folder names whose code the dev sets are made of: the evaluation libraries and the repo-search
    repositories (as installed packages are named)."""
    listing = ROOT.parent / "shared" / "bench" / "repo-search" / "repos.json"
    repos = [r["name"] for r in json.loads(listing.read_text())] if listing.is_file() else []
    return EVAL_LIBRARIES | {r.lower().replace("-", "_").replace(".", "_") for r in repos} | {r.lower() for r in repos}


def _third_party(folder: Path, skip: frozenset[str]) -> bool:
    """Not the bench data nor code the dev sets are made of; inside this repository only installed packages (its
    venv, node_modules)."""
    folder = folder.resolve()
    if folder.is_relative_to((ROOT.parent / "shared").resolve()) or skip & {p.lower() for p in folder.parts}:
        return False
    return not folder.is_relative_to(ROOT.resolve()) or bool({"site-packages", "node_modules"} & set(folder.parts))


def training_texts(seed: int = 0) -> list[str]:
    """Rendered chunks of the installed third-party code (step 1); the bench data and this repository excluded."""
    from engine import chunk as chunking
    from engine.embed.render import render_for_embedding
    from engine.settings import load_settings

    skip = evaluated_names()
    files: dict[str, list[str]] = {ext: [] for ext in CAPS}
    for root in code_roots():
        for dirpath, dirnames, filenames in os.walk(root):
            if not _third_party(Path(dirpath), skip):
                dirnames[:] = []
                continue
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("test", "tests", "__pycache__")]
            for name in filenames:
                ext = os.path.splitext(name)[1]
                if ext in files:
                    files[ext].append(os.path.join(dirpath, name))
    rng = random.Random(seed)
    index_settings = load_settings(None).index
    out: list[str] = []
    for ext, cap in CAPS.items():
        pool = sorted(set(files[ext]))
        rng.shuffle(pool)
        taken = 0
        for path in pool:
            if taken >= cap:
                break
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if not text.strip() or len(text) > 300_000:
                continue
            chunks = chunking.chunk_file("/".join(Path(path).parts[-3:]), text, index_settings)
            rng.shuffle(chunks)
            out += [render_for_embedding(c) for c in chunks[:CHUNKS_PER_FILE]]
            taken += 1
    rng.shuffle(out)
    return out


class Distiller:
    """The served model (the teacher), students made of its layers, their training and their document vectors."""

    def __init__(self, threads: int) -> None:
        import torch

        from engine.embed.sentence import default_recipe
        from engine.embed.transformer import TransformerEmbedder

        torch.set_num_threads(threads)
        self.torch = torch
        self.teacher = TransformerEmbedder(default_recipe(True), threads=threads, batch_size=BATCH).load()
        self.pad_id = self.teacher.backbone.config.pad_token_id or 0

    def _batches(self, seqs: list[list[int]]):
        from engine.embed.base import pad_batch

        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            chunk = [seqs[i] for i in idx]
            ids, mask, _ = pad_batch(chunk, max(map(len, chunk)), self.pad_id)
            yield idx, self.torch.from_numpy(ids), self.torch.from_numpy(mask)

    def vectors(self, model, seqs: list[list[int]]):
        """Normalised document vectors of `model` (a backbone) run in bf16, pooled and projected as served."""
        torch, t = self.torch, self.teacher
        model = copy.deepcopy(model).eval().to(torch.bfloat16)
        out = torch.zeros((len(seqs), t.dim))
        with torch.inference_mode():
            for idx, ids, mask in self._batches(seqs):
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                out[idx] = torch.nn.functional.normalize(t.project(t.pool(hidden, mask)), dim=-1)
        return out

    def student(self, layers: list[int]):
        s = copy.deepcopy(self.teacher.backbone)
        s.encoder.layer = self.torch.nn.ModuleList([s.encoder.layer[i] for i in layers])
        s.config.num_hidden_layers = len(layers)
        return s

    def train(self, student, seqs: list[list[int]], target, minutes: float, lr: float, seed: int = 0) -> int:
        torch, t = self.torch, self.teacher
        student.train().requires_grad_(True)
        student.embeddings.requires_grad_(False)
        opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
        batches = list(self._batches(seqs))
        rng = random.Random(seed)
        t0, steps, ema = time.perf_counter(), 0, None
        while time.perf_counter() - t0 < minutes * 60:
            rng.shuffle(batches)
            for idx, ids, mask in batches:
                spent = time.perf_counter() - t0
                if spent >= minutes * 60:
                    break
                for group in opt.param_groups:  # 50 steps of warm-up, then linear decay over the budget
                    group["lr"] = lr * min(1.0, (steps + 1) / 50) * max(0.05, 1 - spent / (minutes * 60))
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    hidden = student(input_ids=ids, attention_mask=mask).last_hidden_state
                v = torch.nn.functional.normalize(t.project(t.pool(hidden.float(), mask)), dim=-1)
                goal = target[idx]
                loss = (1 - (v * goal).sum(-1)).mean() + ((v @ v.T - goal @ goal.T) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
                ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
                if steps % 50 == 0:
                    print(f"  step {steps}, {spent:.0f} s, loss {ema:.4f}", flush=True)
        return steps


def dense_mrr(distiller: Distiller, name: str, models: dict) -> dict:
    """MRR@10 of dense retrieval alone on one dev set, documents by each model, queries by the served model."""
    sys.path.insert(0, str(ROOT))
    from bench._spec import BENCH, SPECS, corpus_chunks, load_spec, metrics
    from engine.embed.render import render_for_embedding

    spec = load_spec(BENCH / SPECS[name])
    chunks = corpus_chunks(spec.corpus)
    seqs = distiller.teacher.token_ids([render_for_embedding(c) for c in chunks], query=False)
    queries = [q.query for q in spec.queries]
    t = distiller.teacher
    q = np.asarray(t.embed_documents(queries) if spec.mode == "similar" else t.embed_queries(queries))
    out, reference = {}, None
    for label, model in models.items():
        docs = distiller.vectors(model, seqs).numpy()
        reference = docs if reference is None else reference
        ranked = []
        for row in q @ docs.T:
            paths: list[str] = []
            for j in np.argsort(-row):
                if chunks[j].path not in paths:
                    paths.append(chunks[j].path)
                if len(paths) == 10:
                    break
            ranked.append(paths)
        cos = (docs * reference).sum(1)
        out[label] = {"MRR@10": round(metrics(ranked, [x.relevant for x in spec.queries])["MRR@10"], 4),
                      "cosine_to_teacher": round(float(cos.mean()), 4)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default="0,5", help="the served model's layers the student keeps, in order")
    ap.add_argument("--minutes", type=float, default=12.0, help="training budget")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--sets", default="repo-click,clones", help="dev sets to score")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "sg" / "doc-student"))
    args = ap.parse_args()
    layers = [int(x) for x in args.layers.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    d = Distiller(args.threads)
    texts_file, target_file = work / "texts.json", work / "teacher.npy"
    if not texts_file.is_file():
        texts_file.write_text(json.dumps(training_texts()))
    texts = json.loads(texts_file.read_text())
    seqs = d.teacher.token_ids(texts, query=False)
    if not target_file.is_file():
        t0 = time.perf_counter()
        np.save(target_file, d.vectors(d.teacher.backbone, seqs).numpy())
        print(f"teacher: {len(texts)} chunks, {sum(map(len, seqs))} tokens, {time.perf_counter() - t0:.0f} s")
    target = d.torch.from_numpy(np.load(target_file))

    untrained = d.student(layers)
    student = d.student(layers)
    steps = d.train(student, seqs, target, args.minutes, args.lr)
    print(f"student {layers}: {steps} steps of {BATCH} in {args.minutes} min")
    result = {"layers": layers, "minutes": args.minutes, "steps": steps, "chunks": len(texts), "sets": {}}
    for name in args.sets.split(","):
        result["sets"][name] = dense_mrr(d, name, {"teacher": d.teacher.backbone, "untrained": untrained,
                                                   "student": student})
        print(name, json.dumps(result["sets"][name]), flush=True)
    out = ROOT / "bench" / "results" / f"doc_student-{len(layers)}-layers-{args.minutes:g}-min.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
