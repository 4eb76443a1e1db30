"""Which runtime and precision serve a model: the one place that decides, from the CPU's flags and recorded gates.

`models.precision = "auto"` chooses, per CPU, the fastest path among those that passed the accuracy gate for
that model (at most GATE_BUDGET MRR@10 lost on any dev set against fp32), as recorded in precision_gate.json
by bench/precision_gate.py. Nothing is measured on the user's machine. fp32 always passes: ONNX fp32 is
verified against torch fp32 at export. A model without a recorded gate runs fp32 (or bf16 where native).

Queries never need torch where ONNX Runtime can run the model: where documents are embedded with torch (bf16 on
CPUs with native bf16 units, the fastest way to index there), queries come from ONNX Runtime fp32 (a split;
gate path "torch-bf16+onnx-fp32"), because importing torch alone costs a one-shot search over a second.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import RUNTIMES
from .compose import Fallback, Split
from .cpu import cpu_class, cpu_flags, flag_text

GATE_FILE = Path(__file__).resolve().parents[1] / "precision_gate.json"
GATE_BUDGET = 0.005
SPLIT = "torch-bf16+onnx-fp32"  # documents torch bf16, queries ONNX Runtime fp32


def runtime_module(name: str):
    """The module of one runtime in RUNTIMES (imported on first use)."""
    return importlib.import_module(RUNTIMES[name].module)


@lru_cache(maxsize=1)
def gate_records() -> dict:
    try:
        data = json.loads(GATE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Choice:
    runtime: str  # torch | onnx: the documents' runtime (and the queries' unless `queries` says otherwise)
    precision: str  # fp32 | bf16 | int8 (torch), or an ONNX variant: fp32 | int8-dyn | ...
    why: str
    queries: str = ""  # "runtime-precision" of the queries when they run elsewhere (a split), e.g. "onnx-fp32"

    @property
    def path(self) -> str:
        docs = f"{self.runtime}-{self.precision}"
        return f"{docs}+{self.queries}" if self.queries else docs


def torch_installed() -> bool:
    return runtime_module("torch").installed()


def _int8_variant(cls: str, passed: list[str]) -> str:
    """The ONNX int8 variant for an explicit `precision = "int8"`: the gate's best, else dynamic per channel.
    Without VNNI, u8s8 products saturate 16-bit sums (AVX2's vpmaddubsw); reduced-range weights do not."""
    for p in passed:
        if p.startswith("onnx-int8"):
            return p[len("onnx-"):]
    return "int8-dyn" if cls in ("bf16", "vnni") else "int8-dyn-rr"


def choose(precision: str, runtime: str, base_ident: str, onnx_ok: str, onnx_cached: bool,
           flags: tuple[str, ...] | None = None) -> Choice:
    """The path for one model.

    `onnx_ok` is "" when the model can run on ONNX Runtime here, else why not; `onnx_cached` says whether its
    export exists (otherwise the first use exports it, which needs torch).
    """
    choice = _choose_documents(precision, runtime, base_ident, onnx_ok, onnx_cached, flags)
    # torch fp32 or int8 documents only where ONNX Runtime cannot run the model, so not its queries either
    if choice.path != "torch-bf16" or runtime == "torch" or _why_not_onnx(onnx_ok, onnx_cached):
        return choice
    # documents in torch bf16 (fastest to index on this CPU), queries in ONNX Runtime fp32: a search never
    # imports torch. Not where a recorded gate has shown that pair losing more than the budget.
    verdict = (gate_records().get("models", {}).get(base_ident) or {}).get("paths", {}).get(SPLIT) or {}
    if (verdict.get("max_loss") or 0) > GATE_BUDGET:
        return choice
    gated = "passed the accuracy gate" if verdict.get("pass") else "no recorded gate has shown it losing"
    return Choice(choice.runtime, choice.precision, f"{choice.why}; queries on ONNX Runtime fp32, so a search "
                  f"never imports torch ({gated})", queries="onnx-fp32")


def _why_not_onnx(onnx_ok: str, onnx_cached: bool) -> str:
    if not onnx_ok and not onnx_cached and not torch_installed():
        return "not exported yet and torch is not installed to export it"
    return onnx_ok


def _choose_documents(precision: str, runtime: str, base_ident: str, onnx_ok: str, onnx_cached: bool,
                      flags: tuple[str, ...] | None = None) -> Choice:
    flags = cpu_flags() if flags is None else flags
    cls = cpu_class(flags)
    native_bf16 = cls == "bf16"
    onnx_ok = _why_not_onnx(onnx_ok, onnx_cached)
    if runtime == "torch":
        onnx_ok = "models.runtime = torch"
    elif runtime == "onnx" and onnx_ok:
        onnx_ok = f"models.runtime = onnx, but {onnx_ok}"
    record = gate_records().get("models", {}).get(base_ident) or {}
    paths = record.get("paths", {})
    passed = [p for p, r in paths.items() if r.get("pass") and "+" not in p]  # one runtime for both sides
    if precision == "bf16":
        return Choice("torch", "bf16", "models.precision = bf16 (torch; ONNX Runtime has no fast CPU bf16)")
    if precision == "int8":
        if onnx_ok:
            return Choice("torch", "int8", f"models.precision = int8 on torch ({onnx_ok})")
        return Choice("onnx", _int8_variant(cls, passed), "models.precision = int8")
    if precision == "fp32":
        if onnx_ok:
            return Choice("torch", "fp32", f"models.precision = fp32 on torch ({onnx_ok})")
        return Choice("onnx", "fp32", "models.precision = fp32 (ONNX Runtime, verified equal to torch fp32)")
    # auto. torch bf16 is what sg ran on native-bf16 CPUs before this gate existed (docs/models.md: 3.0x fp32, at
    # most 0.004 MRR@10 lost); it stays there unless a recorded gate shows it losing more than the budget.
    # Where queries would run on ONNX Runtime fp32, the gate of that pair decides (if recorded).
    bf16_key = SPLIT if SPLIT in paths and runtime != "torch" and not onnx_ok else "torch-bf16"
    bf16_failed = (paths.get(bf16_key, {}).get("max_loss") or 0) > GATE_BUDGET
    keep_bf16 = native_bf16 and not bf16_failed and not (runtime == "onnx" and not onnx_ok)
    if runtime == "torch":
        if keep_bf16:
            return Choice("torch", "bf16", f"auto on torch: this CPU has native bf16 ({flag_text(flags)})")
        return Choice("torch", "fp32", "auto on torch: fp32")
    if not record:
        if keep_bf16:
            return Choice("torch", "bf16", f"auto: no accuracy gate recorded for this model; torch bf16 as before on "
                                           f"a CPU with native bf16 ({flag_text(flags)})")
        if onnx_ok:
            return Choice("torch", "fp32",
                          f"auto: no accuracy gate recorded for this model, so fp32; torch ({onnx_ok})")
        return Choice("onnx", "fp32", "auto: no accuracy gate recorded for this model, so fp32 (ONNX Runtime)")
    speeds = record.get("speed", {})
    table = {k: v for k, v in (speeds.get(cls) or speeds.get("avx2") or {}).items() if not k.startswith("_")}
    runnable = []
    for p in passed + ["torch-fp32"] + ([] if onnx_ok else ["onnx-fp32"]) + (["torch-bf16"] if keep_bf16 else []):
        rt, _, prec = p.partition("-")
        if (rt == "onnx" and onnx_ok) or (rt == "torch" and runtime == "onnx" and not onnx_ok):
            continue
        if p == "torch-bf16" and not keep_bf16:
            continue
        if rt == "onnx" and prec.startswith("int8") and cls not in ("bf16", "vnni") and not prec.endswith("-rr"):
            continue  # full-range u8s8 saturates without VNNI: a gate measured with VNNI does not hold there
        runnable.append(p)
    # unmeasured here: bf16 where native (as before), else ONNX fp32 before torch fp32
    best = max(dict.fromkeys(runnable), key=lambda p: (table.get(p, 0) or (10**9 if p == "torch-bf16" else 0),
                                                       p == "onnx-fp32"))
    rt, _, prec = best.partition("-")
    measured = f"{table[best]:,} tokens/s" if best in table else "unmeasured"
    basis = cls if cls in speeds else ("avx2" if "avx2" in speeds else "no")
    if best == "torch-bf16" and best not in passed and not paths.get(bf16_key, {}).get("pass"):
        verdict = "torch bf16 as before on a CPU with native bf16 (its gate has not shown a loss over the budget)"
    else:
        verdict = f"the fastest path that passed the accuracy gate (<= {GATE_BUDGET} MRR@10 lost on every dev set)"
    why = f"auto: {verdict}; CPU class {cls} ({flag_text(flags)}); speed recorded on class {basis}: {measured}"
    return Choice(rt, prec, why)


def build(recipe, base, precision: str, runtime: str, *, threads: int = 0, batch_size: int = 32,
          log: Callable[[str], None] | None = None):
    """The embedder that serves `recipe` here, with `.choice` (what runs and why) set for `sg models`.

    `base` is the recipe's torch fp32 embedder (its class carries the family's rules); it names the fp32 vector
    space and loads only if it ends up serving. Nothing heavy happens here: no torch import, no export.
    """
    onnx = runtime_module("onnx")
    why_not = onnx.why_not(recipe, base)
    choice = choose(precision, runtime, base.ident, why_not, not why_not and onnx.ready(recipe, "fp32", base.ident))

    def make(path: str):
        name, _, prec = path.partition("-")
        return runtime_module(name).embedder(recipe, prec, base, threads=threads, batch_size=batch_size, log=log)

    documents = make(f"{choice.runtime}-{choice.precision}")
    if choice.path == "onnx-fp32":  # the same vectors as torch fp32, which serves when no export can run here
        documents = Fallback(documents, lambda: base, log)
    emb = documents
    if choice.queries:  # queries on ONNX Runtime fall back to the documents' own runtime, the same vector space
        emb = Split(documents, Fallback(make(choice.queries), lambda: documents, log))
    emb.choice = choice
    return emb


def report_note(emb) -> str:
    """What runs a served embedder and why, for `sg models` (and a fallback that happened, once loaded)."""
    choice = getattr(emb, "choice", None)
    if choice is None:
        return ""
    label = runtime_module(choice.runtime).LABEL
    if choice.queries:
        q_name, _, q_prec = choice.queries.partition("-")
        text = (f"runs on {label}, {choice.precision} (documents) and {runtime_module(q_name).LABEL}, {q_prec} "
                f"(queries): {choice.why}")
    else:
        text = f"runs on {label}, {choice.precision}: {choice.why}"
    fell_back = [getattr(e, "note", "") for e in (emb, getattr(emb, "queries", None)) if isinstance(e, Fallback)]
    return "; ".join([text] + [n for n in fell_back if n])
