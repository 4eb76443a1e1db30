"""Local tuning: mine training pairs from the workspace's own code, train a LoRA adapter, merge it, use it.

`run_tune(engine)` is the one entry point (CLI `sg tune`, LSP `sg/tune`): index (lexical is enough) -> mine ->
train -> merge -> save `<cache>/sg/models/local/<workspace>-vN/` -> evaluate on held-out mined pairs.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..embed.render import render_for_embedding
from ..errors import ConfigError, ModelError
from ..records import Progress
from .config import TuneConfig, load_config
from .mine import MineStats, Pair, load_codesearchnet_jsonl, mine_pairs, read_jsonl, split_heldout, write_jsonl

__all__ = ["TuneReport", "Pair", "run_tune", "load_codesearchnet_jsonl", "load_config", "resolve_base"]

_UNIT_KINDS = ("function", "method", "class")


@dataclass
class TuneReport:
    pairs: int = 0  # mined from the workspace (train + held out)
    train_pairs: int = 0  # all phases, including external pairs
    heldout_pairs: int = 0
    steps: int = 0
    seconds: float = 0.0
    out_dir: str = ""
    before: dict = field(default_factory=dict)  # held-out mined pairs, base model: P@1, MRR@10, n
    after: dict = field(default_factory=dict)  # the same with the tuned model (loaded back from out_dir)
    pairs_path: str = ""
    base_model: str = ""
    adapter_dir: str = ""
    pair_kinds: dict = field(default_factory=dict)
    languages: dict = field(default_factory=dict)
    loss_first: float | None = None
    loss_last: float | None = None
    stopped: str = ""  # done | max-steps | early-stop | time-budget | cancelled | dry-run | eval-only
    cancelled: bool = False
    device: str = ""
    timings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def resolve_base(engine, cfg: TuneConfig):
    """(recipe, model root directory, note): the model to start from.

    auto: models.model_path if set, else the model configured for the code route if it is available
    offline, else the offline default MiniLM (with sg's shipped adapter merged, as the engine serves it).
    """
    from ..embed import files, sentence
    from ..embed.registry import resolve_recipe

    ms = engine.settings.models
    want = cfg.base_model or "auto"

    def default():
        use = cfg.use_default_adapter and ms.default_adapter
        return sentence.default_recipe(use), sentence.default_model_dir()

    if want in ("offline-default", "default", "minilm"):
        r, root = default()
        return r, root, "the offline default"
    if want != "auto":
        return resolve_recipe(want, ms), files.locate(want), f"base_model = {want}"
    if ms.model_path:
        return resolve_recipe(ms.model_path, ms), files.locate(ms.model_path), f"models.model_path = {ms.model_path}"
    if ms.code:
        try:
            return resolve_recipe(ms.code, ms), files.locate(ms.code), f"models.code = {ms.code}"
        except ModelError as exc:
            note = f"{exc}; starting from the offline default"
            r, root = default()
            return r, root, note
    r, root = default()
    return r, root, "the offline default"


def _phase_pairs(phase, local: list[Pair], style: str) -> list[Pair]:
    if phase.source == "local":
        pairs = list(local)
    elif phase.source == "codesearchnet":
        if not phase.paths:
            raise ConfigError(f"phase {phase.name}: source codesearchnet needs paths (JSONL files)")
        pairs = load_codesearchnet_jsonl(list(phase.paths), render_style=style, languages=phase.languages or None,
                                         max_pairs=phase.max_pairs)
    else:
        pairs = read_jsonl(phase.paths)
    if phase.max_pairs and len(pairs) > phase.max_pairs:
        pairs = random.Random(0).sample(pairs, phase.max_pairs)
    return pairs


def _pool_docs(engine, style: str, exclude: set[str], limit: int, seed: int) -> list[str]:
    """Chunks rendered exactly as indexed, to rank the held-out positives against (a sample when large)."""

    rows = [r for r in engine.iter_chunks() if r.kind in _UNIT_KINDS and f"{r.path}::{r.symbol}" not in exclude]
    rng = random.Random(seed)
    if limit and len(rows) > limit:
        rows = rng.sample(rows, limit)
    return [render_for_embedding(r, style) for r in rows]


def run_tune(engine, config_path: str | None = None, out_dir: str | None = None, progress: Progress | None = None,
             cancel: threading.Event | None = None, dry_run: bool = False, eval_only: bool = False,
             overrides: dict | None = None) -> TuneReport:
    """Tune the embedding model on the engine's workspace. See the module docstring; raises SgError subclasses."""
    import torch

    from ..embed.registry import resolve_recipe
    from ..embed.transformer import TransformerEmbedder
    from .merge import latest_finished, next_version_dir, save_merged, slug, write_card
    from .train import TrainableEncoder, eval_pool, evaluate_embedder, pick_device, train

    t_start = time.perf_counter()
    cfg = load_config(config_path, overrides)
    rep = TuneReport()
    log = getattr(engine, "log", None) or (lambda m: None)
    timings: dict[str, float] = {}

    def tick(name: str, t: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t, 2)
        return now

    def finish() -> TuneReport:
        rep.timings = timings
        rep.seconds = round(time.perf_counter() - t_start, 2)
        return rep

    t = time.perf_counter()
    ix = engine.index(progress=progress, cancel=cancel, embed=False)
    t = tick("index", t)
    if ix.cancelled or (cancel is not None and cancel.is_set()):
        rep.cancelled, rep.stopped = True, "cancelled"
        return finish()

    name = cfg.output.name or slug(engine.root.name)
    out = Path(out_dir).expanduser() if out_dir else next_version_dir(cfg.output_root(), name)
    style = engine.settings.index.embed_render
    seed = cfg.train.seed

    # -- mine ------------------------------------------------------------------------------------------------
    stats = MineStats()
    depth = cfg.mining.bm25_depth

    def lexical(q: str, n: int) -> dict[int, float]:
        return engine.lexical_search(q, n or depth)

    if progress:
        progress("mine", 0, 1)
    local = mine_pairs(engine.iter_chunks(), cfg.mining, lambda r: render_for_embedding(r, style),
                       lexical=lexical, root=engine.root, seed=seed, stats=stats)
    train_local, heldout = split_heldout(local, cfg.mining, seed)
    extra = read_jsonl(cfg.mining.extra_pairs) if cfg.mining.extra_pairs else []
    train_local += extra
    rep.pairs, rep.heldout_pairs = len(local), len(heldout)
    rep.pair_kinds, rep.languages = dict(stats.kinds), dict(stats.languages)
    if extra:
        rep.pair_kinds["user"] = len(extra)
    if stats.dropped:
        rep.notes.append("dropped while mining: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.dropped.items())))
    pairs_path = (out / "pairs.jsonl") if (out_dir or not dry_run) else \
        cfg.output_root() / f"{name}-pairs.jsonl"
    write_jsonl(train_local + heldout, pairs_path)
    rep.pairs_path, rep.out_dir = str(pairs_path), str(out)
    if progress:
        progress("mine", 1, 1)
    t = tick("mine", t)
    log(f"sg tune: {len(local)} pairs mined ({rep.pair_kinds}), {len(heldout)} held out -> {pairs_path}")
    if dry_run:
        rep.stopped = "dry-run"
        rep.train_pairs = len(train_local)
        return finish()
    if not local and not extra and all(p.source == "local" for p in cfg.phases):
        raise ConfigError("no training pairs could be mined from this workspace (functions with docstrings or "
                          "multi-word names are needed); add pairs with mining.extra_pairs")

    # -- base model and the 'before' measurement -------------------------------------------------------------
    recipe, base_root, base_note = resolve_base(engine, cfg)
    rep.base_model = recipe.name
    rep.notes.append(f"base model: {recipe.name} ({base_note})")
    device = pick_device(cfg.train.device)
    rep.device = device
    enc = TrainableEncoder(recipe, threads=engine.settings.models.threads, device=device,
                           batch_size=engine.settings.models.batch_size)
    sim = cfg.train.similarity
    if sim != "auto" and (sim == "maxsim") != enc.multi:
        raise ConfigError(f"train.similarity = {sim}, but {recipe.name} is a "
                          f"{'multi' if enc.multi else 'single'}-vector model")
    held_keys = {p.key for p in heldout}
    # measured on the held-out docstring pairs (the skill users need); other kinds of those functions are only
    # kept out of training
    held_eval = [p for p in heldout if p.kind == "doc"] or heldout
    pool_q, pool_d, pool_g = eval_pool(held_eval, _pool_docs(engine, style, held_keys, cfg.eval.pool, seed),
                                       cfg.eval.pool, seed)
    if heldout:
        if progress:
            progress("eval", 0, 2)
        rep.before = {**evaluate_embedder(enc.emb, pool_q, pool_d, pool_g), "pool": len(pool_d)}
        t = tick("eval_before", t)

    if eval_only:
        target = Path(out_dir).expanduser() if out_dir else (
            Path(engine.settings.models.model_path).expanduser() if engine.settings.models.model_path
            else latest_finished(cfg.output_root(), name))
        if target is None or not target.is_dir():
            raise ConfigError("no tuned model to evaluate: give --out DIR or set models.model_path")
        tuned = TransformerEmbedder(resolve_recipe(str(target), engine.settings.models),
                                    threads=engine.settings.models.threads).load()
        if heldout:
            rep.after = {**evaluate_embedder(tuned, pool_q, pool_d, pool_g), "pool": len(pool_d)}
        rep.out_dir, rep.stopped = str(target), "eval-only"
        tick("eval_after", t)
        return finish()

    # -- train -----------------------------------------------------------------------------------------------
    enc.add_lora(cfg.lora)
    n_train, n_all = enc.trainable_count()
    rep.notes.append(f"LoRA r={cfg.lora.r} on {enc.peft.peft_config['default'].target_modules}: "
                     f"{n_train:,} of {n_all:,} parameters trainable")
    ckpt_dir = out / "checkpoints"
    losses: list[float] = []
    for i, phase in enumerate(cfg.phases):
        ts = cfg.phase_train(phase)
        ppairs = _phase_pairs(phase, train_local, style)
        rep.train_pairs += len(ppairs)
        if not ppairs:
            rep.notes.append(f"phase {phase.name}: no pairs, skipped")
            continue
        log(f"sg tune: phase {phase.name}: {len(ppairs)} pairs on {device}")
        res = train(enc, ppairs, held_eval, ts, ckpt_dir=ckpt_dir, tag=f"{i}-{slug(phase.name)}",
                    progress=progress, cancel=cancel, log=log)
        rep.steps += res.steps
        if res.resumed_from:
            rep.notes.append(f"phase {phase.name}: resumed from the checkpoint at step {res.resumed_from}")
        losses += res.losses
        rep.stopped = res.stopped
        if res.history:
            rep.notes.append(f"phase {phase.name}: {res.steps} steps ({res.stopped}); best held-out step "
                             f"{res.best_step}: {res.best}")
        if res.stopped == "cancelled":
            rep.cancelled = True
            rep.notes.append(f"cancelled; a checkpoint is in {ckpt_dir}: run again with --out {out} to resume")
            rep.loss_first, rep.loss_last = (losses[0], losses[-1]) if losses else (None, None)
            tick("train", t)
            return finish()
    rep.loss_first, rep.loss_last = (losses[0], losses[-1]) if losses else (None, None)
    t = tick("train", t)

    # -- merge, save, measure --------------------------------------------------------------------------------
    if progress:
        progress("merge", 0, 1)
    _, adapter_dir = save_merged(enc, recipe, base_root, out)
    rep.adapter_dir = str(adapter_dir)
    if progress:
        progress("merge", 1, 1)
    t = tick("merge", t)
    del enc
    tuned = TransformerEmbedder(resolve_recipe(str(out), engine.settings.models),
                                threads=engine.settings.models.threads).load()
    if heldout:
        if progress:
            progress("eval", 1, 2)
        rep.after = {**evaluate_embedder(tuned, pool_q, pool_d, pool_g), "pool": len(pool_d)}
        if progress:
            progress("eval", 2, 2)
    t = tick("eval_after", t)
    if not cfg.output.keep_checkpoints:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    rep.out_dir = str(out)
    finish()
    info = {**dataclasses.asdict(rep), "workspace": str(engine.root), "lora": dataclasses.asdict(cfg.lora),
            "pool": len(pool_d), "train_seconds": timings.get("train", 0.0), "config": cfg.as_dict(),
            "torch": torch.__version__, "losses": losses}
    write_card(out, info)
    return rep
