"""Which runtime (torch or ONNX Runtime) and precision serve a model, from the CPU's flags and recorded gates.

`models.precision = "auto"` chooses, per CPU, the fastest path among those that passed the accuracy gate for
that model (at most GATE_BUDGET MRR@10 lost on any dev set against fp32), as recorded in precision_gate.json
by bench/precision_gate.py. Nothing is measured on the user's machine. fp32 always passes: ONNX fp32 is
verified against torch fp32 at export. A model without a recorded gate runs fp32.
"""

from __future__ import annotations

import importlib.util
import json
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

GATE_FILE = Path(__file__).with_name("precision_gate.json")
GATE_BUDGET = 0.005
RUNTIMES = ("auto", "torch", "onnx")
_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@lru_cache(maxsize=1)
def cpu_flags() -> tuple[str, ...]:
    """The flags that decide the fast path (x86 Linux: /proc/cpuinfo), else the machine name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return tuple(f for f in _FLAGS if f in have)
    except OSError:
        pass
    return (platform.machine().lower(),)


def cpu_class(flags: tuple[str, ...] | None = None) -> str:
    """bf16 (native bf16 units) | vnni (int8 dot products) | avx2 | other. The gate's speed table is per class."""
    flags = cpu_flags() if flags is None else flags
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return "bf16"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return "vnni"
    if "avx2" in flags:
        return "avx2"
    return "other"


@lru_cache(maxsize=1)
def gate_records() -> dict:
    try:
        data = json.loads(GATE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Choice:
    runtime: str  # torch | onnx
    precision: str  # fp32 | bf16 | int8 (torch), or an ONNX variant: fp32 | int8-dyn | ...
    why: str

    @property
    def path(self) -> str:
        return f"{self.runtime}-{self.precision}"


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


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
    flags = cpu_flags() if flags is None else flags
    cls = cpu_class(flags)
    native_bf16 = cls == "bf16"
    if not onnx_ok and not onnx_cached and not torch_installed():
        onnx_ok = "not exported yet and torch is not installed to export it"
    if runtime == "torch":
        onnx_ok = "models.runtime = torch"
    elif runtime == "onnx" and onnx_ok:
        onnx_ok = f"models.runtime = onnx, but {onnx_ok}"
    record = gate_records().get("models", {}).get(base_ident) or {}
    passed = [p for p, r in record.get("paths", {}).items() if r.get("pass")]
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
    bf16_failed = (record.get("paths", {}).get("torch-bf16", {}).get("max_loss") or 0) > GATE_BUDGET
    keep_bf16 = native_bf16 and not bf16_failed and not (runtime == "onnx" and not onnx_ok)
    if runtime == "torch":
        if keep_bf16:
            return Choice("torch", "bf16", f"auto on torch: this CPU has native bf16 ({_flag_text(flags)})")
        return Choice("torch", "fp32", "auto on torch: fp32")
    if not record:
        if keep_bf16:
            return Choice("torch", "bf16", f"auto: no accuracy gate recorded for this model; torch bf16 as before on "
                                           f"a CPU with native bf16 ({_flag_text(flags)})")
        if onnx_ok:
            return Choice("torch", "fp32", f"auto: no accuracy gate recorded for this model, so fp32; torch ({onnx_ok})")
        return Choice("onnx", "fp32", "auto: no accuracy gate recorded for this model, so fp32 (ONNX Runtime)")
    speeds = record.get("speed", {})
    table = {k: v for k, v in (speeds.get(cls) or speeds.get("avx2") or {}).items() if not k.startswith("_")}
    runnable = []
    for p in passed + ["torch-fp32"] + ([] if onnx_ok else ["onnx-fp32"]) + (["torch-bf16"] if keep_bf16 else []):
        rt, _, prec = p.partition("-")
        if (rt == "onnx" and onnx_ok) or (rt == "torch" and runtime == "onnx" and not onnx_ok):
            continue
        if p == "torch-bf16" and not native_bf16:
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
    if best == "torch-bf16" and best not in passed:
        verdict = "torch bf16 as before on a CPU with native bf16 (its gate has not shown a loss over the budget)"
    else:
        verdict = f"the fastest path that passed the accuracy gate (<= {GATE_BUDGET} MRR@10 lost on every dev set)"
    why = f"auto: {verdict}; CPU class {cls} ({_flag_text(flags)}); speed recorded on class {basis}: {measured}"
    return Choice(rt, prec, why)


def _flag_text(flags: tuple[str, ...]) -> str:
    return ", ".join(flags) if flags else "no AVX2"
