"""`run_tune`: the tuning job as phases in order: index, mine, split, write the pairs, base model and the 'before'
measurement, train, merge, evaluate, write the model card. Each phase reads and fills one TuneRun."""

from __future__ import annotations

import dataclasses
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..embed.render import render_for_embedding
from ..errors import ConfigError, ModelError
from ..records import Progress
from .config import TuneConfig, load_config
from .mine import MineStats, Pair, load_codesearchnet_jsonl, mine_pairs, read_jsonl, split_heldout, write_jsonl

UNIT_KINDS = ("function", "method", "class")


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


@dataclass
class TuneRun:
    """What the phases share: the job's inputs, the report they fill, and the clock of each phase."""

    engine: Any
    cfg: TuneConfig
    out_dir: str | None
    progress: Progress | None
    cancel: threading.Event | None
    log: Callable[[str], None]
    rep: TuneReport = field(default_factory=TuneReport)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    mark: float = field(default_factory=time.perf_counter)
    name: str = ""
    out: Path = Path()
    style: str = ""
    seed: int = 0

    def tick(self, phase: str) -> None:
        """Record the time since the last tick as `phase`'s."""
        now = time.perf_counter()
        self.timings[phase] = round(now - self.mark, 2)
        self.mark = now

    def report(self, phase: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(phase, done, total)

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def finish(self) -> TuneReport:
        self.rep.timings = self.timings
        self.rep.seconds = round(time.perf_counter() - self.started, 2)
        return self.rep


@dataclass
class Split:
    """Mined pairs split by function: train (plus mining.extra_pairs) and held out; `held_eval` is what the
    before/after measurement ranks (the held-out docstring pairs, the skill users need)."""

    local: list[Pair]
    train: list[Pair]
    heldout: list[Pair]
    extra: list[Pair]

    @property
    def held_eval(self) -> list[Pair]:
        return [p for p in self.heldout if p.kind == "doc"] or self.heldout


@dataclass
class EvalPool:
    queries: list[str]
    docs: list[str]
    gold: list[int]

    def measure(self, emb) -> dict:
        from .measure import evaluate_embedder

        return {**evaluate_embedder(emb, self.queries, self.docs, self.gold), "pool": len(self.docs)}


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


def phase_pairs(phase, local: list[Pair], style: str) -> list[Pair]:
    """The pairs one training phase trains on: the mined ones, CodeSearchNet JSONL, or sg pair files."""
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


def pool_docs(engine, style: str, exclude: set[str], limit: int, seed: int) -> list[str]:
    """Chunks rendered exactly as indexed, to rank the held-out positives against (a sample when large)."""
    rows = [r for r in engine.iter_chunks() if r.kind in UNIT_KINDS and f"{r.path}::{r.symbol}" not in exclude]
    rng = random.Random(seed)
    if limit and len(rows) > limit:
        rows = rng.sample(rows, limit)
    return [render_for_embedding(r, style) for r in rows]


# -- the phases, in order --------------------------------------------------------------------------------------

def index(run: TuneRun) -> bool:
    """Bring the lexical index up to date (mining needs no vectors); False when cancelled."""
    ix = run.engine.index(progress=run.progress, cancel=run.cancel, embed=False)
    run.tick("index")
    if ix.cancelled or run.cancelled():
        run.rep.cancelled, run.rep.stopped = True, "cancelled"
        return False
    return True


def mine(run: TuneRun, stats: MineStats) -> list[Pair]:
    """Pairs mined from the workspace's own code, hard negatives from BM25."""
    engine, depth, style = run.engine, run.cfg.mining.bm25_depth, run.style

    def lexical(q: str, n: int) -> dict[int, float]:
        return engine.lexical_search(q, n or depth)

    run.report("mine", 0, 1)
    return mine_pairs(engine.iter_chunks(), run.cfg.mining, lambda r: render_for_embedding(r, style),
                      lexical=lexical, root=engine.root, seed=run.seed, stats=stats)


def split(run: TuneRun, local: list[Pair], stats: MineStats) -> Split:
    """Held-out functions apart from training; the user's extra pairs join training. Fills the report's counts."""
    mining, rep = run.cfg.mining, run.rep
    train_local, heldout = split_heldout(local, mining, run.seed)
    extra = read_jsonl(mining.extra_pairs) if mining.extra_pairs else []
    train_local += extra
    rep.pairs, rep.heldout_pairs = len(local), len(heldout)
    rep.pair_kinds, rep.languages = dict(stats.kinds), dict(stats.languages)
    if extra:
        rep.pair_kinds["user"] = len(extra)
    if stats.dropped:
        rep.notes.append("dropped while mining: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.dropped.items())))
    return Split(local, train_local, heldout, extra)


def write_pairs(run: TuneRun, sp: Split, dry_run: bool) -> None:
    """The pairs as JSONL beside the model (or beside the models for a dry run without --out)."""
    rep = run.rep
    pairs_path = (run.out / "pairs.jsonl") if (run.out_dir or not dry_run) else \
        run.cfg.output_root() / f"{run.name}-pairs.jsonl"
    write_jsonl(sp.train + sp.heldout, pairs_path)
    rep.pairs_path, rep.out_dir = str(pairs_path), str(run.out)
    run.report("mine", 1, 1)
    run.tick("mine")
    run.log(f"sg tune: {len(sp.local)} pairs mined ({rep.pair_kinds}), {len(sp.heldout)} held out -> {pairs_path}")


def base_model(run: TuneRun):
    """(recipe, base model root, the trainable encoder) for the model the workspace is searched with."""
    from .train import TrainableEncoder, pick_device

    cfg, rep, models = run.cfg, run.rep, run.engine.settings.models
    recipe, base_root, base_note = resolve_base(run.engine, cfg)
    rep.base_model = recipe.name
    rep.notes.append(f"base model: {recipe.name} ({base_note})")
    device = pick_device(cfg.train.device)
    rep.device = device
    enc = TrainableEncoder(recipe, threads=models.threads, device=device, batch_size=models.batch_size)
    sim = cfg.train.similarity
    if sim != "auto" and (sim == "maxsim") != enc.multi:
        raise ConfigError(f"train.similarity = {sim}, but {recipe.name} is a "
                          f"{'multi' if enc.multi else 'single'}-vector model")
    return recipe, base_root, enc


def measure_before(run: TuneRun, sp: Split, enc) -> EvalPool:
    """The held-out pool (positives, hard negatives, a sample of the indexed chunks) and the base model's score
    on it. The held-out functions' other pairs are only kept out of training."""
    from .measure import eval_pool

    held_keys = {p.key for p in sp.heldout}
    cfg = run.cfg
    pool = EvalPool(*eval_pool(sp.held_eval, pool_docs(run.engine, run.style, held_keys, cfg.eval.pool, run.seed),
                               cfg.eval.pool, run.seed))
    if sp.heldout:
        run.report("eval", 0, 2)
        run.rep.before = pool.measure(enc.emb)
        run.tick("eval_before")
    return pool


def load_tuned(run: TuneRun, directory: Path):
    from ..embed.registry import resolve_recipe
    from ..embed.transformer import TransformerEmbedder

    models = run.engine.settings.models
    return TransformerEmbedder(resolve_recipe(str(directory), models), threads=models.threads).load()


def evaluate_only(run: TuneRun, sp: Split, pool: EvalPool) -> None:
    """--eval: score an already tuned model (--out, models.model_path, or the latest finished one)."""
    from .merge import latest_finished

    models = run.engine.settings.models
    target = Path(run.out_dir).expanduser() if run.out_dir else (
        Path(models.model_path).expanduser() if models.model_path
        else latest_finished(run.cfg.output_root(), run.name))
    if target is None or not target.is_dir():
        raise ConfigError("no tuned model to evaluate: give --out DIR or set models.model_path")
    tuned = load_tuned(run, target)
    if sp.heldout:
        run.rep.after = pool.measure(tuned)
    run.rep.out_dir, run.rep.stopped = str(target), "eval-only"
    run.tick("eval_after")


def train(run: TuneRun, sp: Split, enc) -> list[float] | None:
    """LoRA on the encoder, then each configured phase in turn. The losses; None when cancelled (a checkpoint
    stays for a later run to resume from)."""
    from .merge import slug
    from .train import train as train_phase

    cfg, rep, out = run.cfg, run.rep, run.out
    enc.add_lora(cfg.lora)
    n_train, n_all = enc.trainable_count()
    rep.notes.append(f"LoRA r={cfg.lora.r} on {enc.peft.peft_config['default'].target_modules}: "
                     f"{n_train:,} of {n_all:,} parameters trainable")
    ckpt_dir = out / "checkpoints"
    losses: list[float] = []
    for i, phase in enumerate(cfg.phases):
        ts = cfg.phase_train(phase)
        ppairs = phase_pairs(phase, sp.train, run.style)
        rep.train_pairs += len(ppairs)
        if not ppairs:
            rep.notes.append(f"phase {phase.name}: no pairs, skipped")
            continue
        run.log(f"sg tune: phase {phase.name}: {len(ppairs)} pairs on {rep.device}")
        res = train_phase(enc, ppairs, sp.held_eval, ts, ckpt_dir=ckpt_dir, tag=f"{i}-{slug(phase.name)}",
                          progress=run.progress, cancel=run.cancel, log=run.log)
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
            run.tick("train")
            return None
    rep.loss_first, rep.loss_last = (losses[0], losses[-1]) if losses else (None, None)
    run.tick("train")
    return losses


def merge(run: TuneRun, enc, recipe, base_root: Path) -> None:
    """The adapter folded into the base model, saved in the base's own layout; the adapter kept beside it."""
    from .merge import save_merged

    run.report("merge", 0, 1)
    _, adapter_dir = save_merged(enc, recipe, base_root, run.out)
    run.rep.adapter_dir = str(adapter_dir)
    run.report("merge", 1, 1)
    run.tick("merge")


def evaluate(run: TuneRun, sp: Split, pool: EvalPool) -> None:
    """The tuned model, loaded back from its directory as search will load it, on the held-out pool."""
    tuned = load_tuned(run, run.out)
    if sp.heldout:
        run.report("eval", 1, 2)
        run.rep.after = pool.measure(tuned)
        run.report("eval", 2, 2)
    run.tick("eval_after")


def write(run: TuneRun, pool: EvalPool, losses: list[float]) -> None:
    """The model card and tune.json (written last: its presence marks the model as finished)."""
    import torch

    from .merge import write_card

    cfg, rep = run.cfg, run.rep
    if not cfg.output.keep_checkpoints:
        shutil.rmtree(run.out / "checkpoints", ignore_errors=True)
    rep.out_dir = str(run.out)
    run.finish()
    info = {**dataclasses.asdict(rep), "workspace": str(run.engine.root), "lora": dataclasses.asdict(cfg.lora),
            "pool": len(pool.docs), "train_seconds": run.timings.get("train", 0.0), "config": cfg.as_dict(),
            "torch": torch.__version__, "losses": losses}
    write_card(run.out, info)


def run_tune(engine, config_path: str | None = None, out_dir: str | None = None, progress: Progress | None = None,
             cancel: threading.Event | None = None, dry_run: bool = False, eval_only: bool = False,
             overrides: dict | None = None) -> TuneReport:
    """Tune the embedding model on the engine's workspace (the phases above); raises SgError subclasses."""
    import torch  # noqa: F401  (fails here, before any work, in a build without the training dependencies)

    from .merge import next_version_dir, slug

    cfg = load_config(config_path, overrides)
    run = TuneRun(engine, cfg, out_dir, progress, cancel, getattr(engine, "log", None) or (lambda m: None))
    if not index(run):
        return run.finish()
    run.name = cfg.output.name or slug(engine.root.name)
    run.out = Path(out_dir).expanduser() if out_dir else next_version_dir(cfg.output_root(), run.name)
    run.style, run.seed = engine.settings.index.embed_render, cfg.train.seed

    stats = MineStats()
    sp = split(run, mine(run, stats), stats)
    write_pairs(run, sp, dry_run)
    if dry_run:
        run.rep.stopped = "dry-run"
        run.rep.train_pairs = len(sp.train)
        return run.finish()
    if not sp.local and not sp.extra and all(p.source == "local" for p in cfg.phases):
        raise ConfigError("no training pairs could be mined from this workspace (functions with docstrings or "
                          "multi-word names are needed); add pairs with mining.extra_pairs")

    recipe, base_root, enc = base_model(run)
    pool = measure_before(run, sp, enc)
    if eval_only:
        evaluate_only(run, sp, pool)
        return run.finish()
    losses = train(run, sp, enc)
    if losses is None:
        return run.finish()
    merge(run, enc, recipe, base_root)
    del enc
    evaluate(run, sp, pool)
    write(run, pool, losses)
    return run.rep
