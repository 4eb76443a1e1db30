"""Old import path of runtime selection, kept for the benches that import it; new code imports engine.embed.runtime."""

from .runtime.cpu import cpu_class, cpu_flags  # noqa: F401
from .runtime.select import GATE_BUDGET, GATE_FILE, Choice, choose, gate_records  # noqa: F401
