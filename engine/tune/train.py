"""Contrastive LoRA training of an embedding model on mined pairs (InfoNCE, in-batch + hard negatives).

The trainable encoder wraps the engine's own embedder for the base model, so texts become token ids and
vectors exactly as at indexing time (prompts, markers, lowercasing, pooling, projection); only gradients are
added. Cosine similarity for single-vector models, MaxSim for multi-vector ones. Training is seeded and
deterministic per step, so a checkpoint (LoRA weights + optimizer + step) is enough to resume.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError
from ..records import Progress
from .config import TARGETS, LoraSettings, TrainSettings
from .measure import eval_pool, evaluate_encoder, maxsim_scores
from .mine import Pair


def pick_device(name: str) -> str:
    import torch

    if name != "auto":
        if name == "cuda" and not torch.cuda.is_available():
            raise ConfigError("train.device = cuda, but no CUDA device is available")
        if name == "mps" and not torch.backends.mps.is_available():
            raise ConfigError("train.device = mps, but MPS is not available")
        return name
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class TrainableEncoder:
    """The engine's embedder for a recipe, with a differentiable forward pass and a LoRA adapter slot."""

    def __init__(self, recipe, *, threads: int = 0, device: str = "cpu", batch_size: int = 32) -> None:
        import torch

        from ..embed.runtime.torch import for_training

        self.recipe = recipe
        self.emb = for_training(recipe, threads=threads, batch_size=batch_size)
        self.multi = recipe.multi_vector
        self.dim = recipe.dim
        self.max_length = recipe.max_length
        self.device = torch.device(device)
        self.to(self.device)
        self.peft: Any = None  # the peft model once add_lora ran

    @property
    def model(self):
        return self.emb.backbone

    def to(self, device) -> None:
        self.device = device
        self.emb.to_device(device)

    def use_model(self, model) -> None:
        """Train and encode through `model` from now on (the backbone prepared by accelerate)."""
        self.emb.replace_backbone(model)

    # -- LoRA --------------------------------------------------------------------------------------------------
    def add_lora(self, lora: LoraSettings) -> None:
        from peft import LoraConfig, get_peft_model

        targets = list(lora.target_modules) or target_modules(self.model)
        cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                         layers_to_transform=list(lora.layers) or None, bias="none")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # transformers 5 deprecations inside peft
                self.peft = get_peft_model(self.model, cfg)
        except ValueError as exc:
            raise ConfigError(f"LoRA cannot attach to {targets} in {type(self.model).__name__}: {exc}") from exc
        self.emb.replace_backbone(self.peft)

    def merge_adapter(self):
        """Fold the LoRA weights into the backbone; the encoder runs the merged model from then on."""
        if self.peft is None:
            raise ModelError("no adapter to merge")
        merged = self.peft.merge_and_unload()
        self.emb.replace_backbone(merged)
        self.peft = None
        return merged

    def train_mode(self, base_dropout: bool) -> None:
        """Training mode; without base dropout only the LoRA dropout layers train (eval-mode attention is ~2x
        faster on CPU and the frozen weights gain nothing from dropout)."""
        self.model.train()
        if not base_dropout:
            for name, module in self.model.named_modules():
                module.training = "lora_dropout" in name

    def trainable_state(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.peft.named_parameters() if v.requires_grad}

    def load_trainable_state(self, state: dict) -> None:
        import torch

        params = dict(self.peft.named_parameters())
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v.to(params[k].device))

    def trainable_count(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.model.parameters())
        train = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return train, total

    # -- encoding ----------------------------------------------------------------------------------------------
    def ids(self, texts: list[str], query: bool, max_len: int = 0) -> list[list[int]]:
        return self.emb.token_ids(texts, query, max_len)

    def forward(self, seqs: list[list[int]], query: bool):
        """Vectors with gradients: (n, dim) for single-vector models, else ((n, T, dim), keep mask (n, T))."""
        return self.emb.forward_batch(seqs, query, device=self.device)

    def encode(self, texts: list[str], query: bool, max_len: int = 0, batch: int = 32):
        """No-grad vectors in eval mode: a (n, dim) tensor, or a list of (tokens, dim) tensors (multi-vector)."""
        import torch

        seqs = self.ids(texts, query, max_len)
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        out: list = [None] * len(seqs)
        flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch):
                    idx = order[start:start + batch]
                    res = self.forward([seqs[i] for i in idx], query)
                    if self.multi:
                        vecs, keep = res
                        for j, i in enumerate(idx):
                            out[i] = vecs[j][keep[j]].cpu()
                    else:
                        for j, i in enumerate(idx):
                            out[i] = res[j].cpu()
        finally:
            for m, flag in flags:
                m.training = flag
        return out if self.multi else torch.stack(out) if out else torch.zeros((0, self.dim))


def target_modules(model) -> list[str]:
    """LoRA targets for an architecture: attention query and value projections (TARGETS), else a clear error."""
    config = getattr(model, "config", None)
    mtype = getattr(config, "model_type", "")
    if mtype in TARGETS:
        return list(TARGETS[mtype])
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    for pair in (["query", "value"], ["q_proj", "v_proj"], ["q", "v"], ["q_lin", "v_lin"]):
        if set(pair) <= names:
            return pair
    raise ConfigError(f"no known attention projections in a {mtype or type(model).__name__} model; "
                      f"set lora.target_modules in the training config")


# -- scoring and loss ------------------------------------------------------------------------------------------

def info_nce(scores, pos_index, mask, temperature: float):
    """Cross-entropy over each query's row of scores; `mask` (True = ignore) hides false negatives."""
    import torch

    logits = (scores / temperature).masked_fill(mask, -1e4)
    return torch.nn.functional.cross_entropy(logits, pos_index)


def batch_loss(enc: TrainableEncoder, batch: list[Pair], negatives: list[list[str]], ts: TrainSettings,
               doc_len: int):
    """InfoNCE for one batch: docs = every positive, then every sampled hard negative."""
    import torch

    queries = [p.query for p in batch]
    docs = [p.positive for p in batch]
    doc_keys = [p.key for p in batch]
    for _p, negs in zip(batch, negatives):
        docs += negs
        doc_keys += [f"neg:{hashlib.blake2b(n.encode(), digest_size=8).hexdigest()}" for n in negs]
    # a document identical to the query's positive (same function via another pair, or the same text) is no negative
    text_id: dict[str, int] = {}
    doc_ids = [text_id.setdefault(t, len(text_id)) for t in docs]
    qn = [" ".join(q.lower().split()) for q in queries]
    mask = torch.zeros((len(batch), len(docs)), dtype=torch.bool)
    for i, p in enumerate(batch):
        for j in range(len(docs)):
            if j == i:
                continue
            if doc_ids[j] == doc_ids[i] or doc_keys[j] == p.key or (j < len(batch) and qn[j] == qn[i]):
                mask[i, j] = True
    qs = enc.forward(enc.ids(queries, True, ts.max_query_length), True)
    ds = enc.forward(enc.ids(docs, False, doc_len), False)
    if enc.multi:
        scores = maxsim_scores(qs[0], qs[1], ds[0], ds[1])
    else:
        scores = qs @ ds.T
    target = torch.arange(len(batch), device=scores.device)
    return info_nce(scores, target, mask.to(scores.device), ts.temperature)


# -- the loop --------------------------------------------------------------------------------------------------

@dataclass
class TrainResult:
    steps: int = 0
    micro_steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)  # mean loss per optimizer step
    history: list[dict] = field(default_factory=list)  # held-out checks: step, MRR@10, P@1
    best_step: int = 0
    best: dict = field(default_factory=dict)
    stopped: str = ""  # done | max-steps | early-stop | time-budget | cancelled
    resumed_from: int = 0


def fingerprint(pairs: list[Pair], ts: TrainSettings, extra: str = "") -> str:
    h = hashlib.blake2b(digest_size=10)
    h.update(repr(sorted(vars(ts).items())).encode())
    h.update(extra.encode())
    for p in pairs:
        h.update(p.query.encode())
        h.update(b"\0")
        h.update(hashlib.blake2b(p.positive.encode(), digest_size=8).digest())
    return h.hexdigest()


def _schedule(total: int, warmup: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    return f


class _Trainer:
    """One training phase: the step plan, the optimizer, the held-out checks, and the checkpoint that resumes it."""

    def __init__(self, enc: TrainableEncoder, pairs: list[Pair], heldout: list[Pair], ts: TrainSettings,
                 ckpt_dir: Path | None, tag: str, log: Callable[[str], None]) -> None:
        import torch

        self.t0 = time.perf_counter()
        if ts.threads > 0:
            torch.set_num_threads(ts.threads)
        self.enc, self.pairs, self.ts, self.tag, self.log = enc, pairs, ts, tag, log
        self.res = TrainResult()
        # the plan: micro-batches of bs pairs, grad_accum of them per optimizer step
        self.bs = min(ts.batch_size, len(pairs))
        self.per_epoch = math.ceil(len(pairs) / self.bs)
        micro_total = max(1, math.ceil(ts.epochs * self.per_epoch))
        self.total = max(1, micro_total // ts.grad_accum)
        if ts.max_steps:
            self.total = min(self.total, ts.max_steps)
        self.warmup = int(ts.warmup * self.total)
        self.doc_len = min(ts.max_doc_length or enc.max_length, enc.max_length)
        self.params = [p for p in enc.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=ts.lr, weight_decay=ts.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _schedule(self.total, self.warmup))
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(ts.precision)
        self.scaler = torch.amp.GradScaler(enc.device.type) if ts.precision == "fp16" else None
        self.accel = None
        if ts.accelerate:
            try:
                from accelerate import Accelerator

                self.accel = Accelerator(gradient_accumulation_steps=ts.grad_accum)
                model, self.opt = self.accel.prepare(enc.model, self.opt)
                enc.use_model(model)
                enc.to(self.accel.device)
            except ImportError:
                log("accelerate is not installed: training on one device")
        self.hq, self.hd, self.hg = eval_pool(heldout)
        self.fp = fingerprint(pairs, ts, tag)
        self.state_path = ckpt_dir / f"{tag}.pt" if ckpt_dir else None
        self.best_state: dict | None = None
        self.bad = 0
        self.step = 0
        self.order: list[int] = []

    # -- checkpoints -------------------------------------------------------------------------------------------
    def resume(self) -> bool:
        """Pick up this phase's checkpoint when it matches (same pairs and settings); True when it had finished."""
        import torch

        res, path = self.res, self.state_path
        if path is None or not self.ts.resume or not path.is_file():
            return False
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn file from a killed run: start over
            self.log(f"checkpoint {path} unreadable ({exc}); starting over")
            return False
        if ck.get("fingerprint") != self.fp:
            return False
        self.enc.load_trainable_state(ck["lora"])
        self.opt.load_state_dict(ck["optim"])
        self.step = step = int(ck["step"])
        if step:
            self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _schedule(self.total, self.warmup),
                                                           last_epoch=step - 1)
        res.losses = list(ck["losses"])
        res.history = list(ck["history"])
        res.best = dict(ck["best"])
        res.best_step = int(ck["best_step"])
        self.best_state = ck.get("best_state") or None
        self.bad = int(ck["bad"])
        res.resumed_from = step
        self.log(f"resumed {self.tag} at step {step}/{self.total}")
        if not ck.get("finished"):
            return False
        res.steps = step
        res.stopped = str(ck.get("stopped", "done"))
        if self.best_state:
            self.enc.load_trainable_state(self.best_state)
        res.seconds = time.perf_counter() - self.t0
        return True

    def save(self, finished: bool = False) -> None:
        import torch

        if self.state_path is None:
            return
        res = self.res
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        torch.save({"fingerprint": self.fp, "lora": self.enc.trainable_state(), "optim": self.opt.state_dict(),
                    "step": self.step, "losses": res.losses, "history": res.history, "best": res.best,
                    "best_step": res.best_step, "best_state": self.best_state or {}, "bad": self.bad,
                    "finished": finished, "stopped": res.stopped}, tmp)
        tmp.replace(self.state_path)

    def check(self) -> bool:
        """Held-out check; True when this state is the best so far."""
        if not self.hq:
            return False
        res = self.res
        m = evaluate_encoder(self.enc, self.hq, self.hd, self.hg, self.doc_len)
        score = (m["MRR@10"], m["P@1"])
        res.history.append({"step": self.step, **m})
        self.log(f"{self.tag} step {self.step}: held-out MRR@10 {m['MRR@10']:.3f} P@1 {m['P@1']:.3f}")
        if not res.best or score > (res.best["MRR@10"], res.best["P@1"]):
            res.best, res.best_step, self.best_state, self.bad = m, self.step, self.enc.trainable_state(), 0
            return True
        self.bad += 1
        return False

    # -- steps -------------------------------------------------------------------------------------------------
    def micro_batch(self, micro: int) -> tuple[list[Pair], list[list[str]]]:
        """The pairs of one micro-batch and their sampled hard negatives: a function of the seed and `micro`
        alone (each epoch its own shuffle), so a resumed run draws what an uninterrupted one would."""
        ts = self.ts
        epoch, pos = divmod(micro, self.per_epoch)
        if pos == 0 or not self.order:
            self.order = list(range(len(self.pairs)))
            random.Random(ts.seed * 100_003 + epoch).shuffle(self.order)
        idx = self.order[pos * self.bs:(pos + 1) * self.bs] or self.order[:self.bs]
        batch = [self.pairs[i] for i in idx]
        rng = random.Random(ts.seed * 1_000_003 + micro)
        return batch, [rng.sample(p.negatives, min(ts.negatives, len(p.negatives))) for p in batch]

    def optimizer_step(self) -> float:
        """grad_accum micro-batches, clipped gradients, one optimizer and schedule step; the step's loss."""
        import torch

        ts, enc, scaler = self.ts, self.enc, self.scaler
        self.opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for a in range(ts.grad_accum):
            micro = self.step * ts.grad_accum + a
            batch, negs = self.micro_batch(micro)
            torch.manual_seed(ts.seed * 7919 + micro)  # dropout masks, reproducible on resume
            if self.autocast_dtype is not None and enc.device.type != "cpu":
                with torch.autocast(enc.device.type, dtype=self.autocast_dtype):
                    loss = batch_loss(enc, batch, negs, ts, self.doc_len) / ts.grad_accum
            else:
                loss = batch_loss(enc, batch, negs, ts, self.doc_len) / ts.grad_accum
            if self.accel is not None:
                self.accel.backward(loss)
            elif scaler is not None:
                scaler.scale(loss).backward()
            else:
                loss.backward()
            step_loss += float(loss.detach())
        if scaler is not None:
            scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        if scaler is not None:
            scaler.step(self.opt)
            scaler.update()
        else:
            self.opt.step()
        self.sched.step()
        self.step += 1
        return step_loss

    def stop_reason(self, cancel: threading.Event | None) -> str:
        if cancel is not None and cancel.is_set():
            return "cancelled"
        if self.ts.time_budget_minutes and time.perf_counter() - self.t0 > 60 * self.ts.time_budget_minutes:
            return "time-budget"
        return ""

    def run(self, progress: Progress | None, cancel: threading.Event | None) -> TrainResult:
        """Steps until the plan, the patience, the time budget or `cancel` ends them; then the best state."""
        ts, res = self.ts, self.res
        self.enc.train_mode(ts.base_dropout)
        if self.step == 0:
            self.check()
        res.stopped = "done"
        while self.step < self.total:
            why = self.stop_reason(cancel)
            if why:
                res.stopped = why
                break
            res.losses.append(round(self.optimizer_step(), 5))
            step = self.step
            if progress:
                progress("train", step, self.total)
            if ts.eval_every and step % ts.eval_every == 0 and step < self.total:
                self.check()
                if ts.patience and self.bad >= ts.patience:
                    res.stopped = "early-stop"
                    break
            if ts.save_every and step % ts.save_every == 0:
                self.save()
        step = self.step
        if res.stopped in ("done", "time-budget") and self.hq and (not res.history or res.history[-1]["step"] != step):
            self.check()
        res.steps, res.micro_steps = step, step * ts.grad_accum
        if res.stopped != "cancelled" and self.best_state:
            self.enc.load_trainable_state(self.best_state)
        self.save(finished=res.stopped != "cancelled")
        self.enc.model.eval()
        res.seconds = time.perf_counter() - self.t0
        return res


def train(enc: TrainableEncoder, pairs: list[Pair], heldout: list[Pair], ts: TrainSettings, *,
          ckpt_dir: Path | None = None, tag: str = "phase0", progress: Progress | None = None,
          cancel: threading.Event | None = None, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train the encoder's LoRA adapter on `pairs`; keep the state that did best on `heldout` (early stopping).
    A checkpoint of the same pairs and settings in `ckpt_dir` is resumed."""
    if enc.peft is None:
        raise ModelError("add a LoRA adapter (TrainableEncoder.add_lora) before training")
    if len(pairs) < 2:
        raise ConfigError(f"only {len(pairs)} training pairs: nothing to learn from")
    trainer = _Trainer(enc, pairs, heldout, ts, ckpt_dir, tag, log or (lambda m: None))
    if trainer.resume():
        return trainer.res
    return trainer.run(progress, cancel)
