"""The CPU's flags that decide the fast inference path, and its class (the gate's speed table is per class)."""

from __future__ import annotations

import platform
from functools import lru_cache

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
    """bf16 (native bf16 units) | vnni (int8 dot products) | avx2 | other."""
    flags = cpu_flags() if flags is None else flags
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return "bf16"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return "vnni"
    if "avx2" in flags:
        return "avx2"
    return "other"


def flag_text(flags: tuple[str, ...]) -> str:
    return ", ".join(flags) if flags else "no AVX2"
