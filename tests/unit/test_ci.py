"""README's test command (2) is exactly what CI runs, so a newcomer runs the same checks as .ci/run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _readme_command() -> str:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# (2)"))
    return lines[start + 1].strip()


def test_readme_command_is_what_ci_runs() -> None:
    ci = [line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci == [_readme_command()]


def test_checks_run_before_the_tests() -> None:
    steps = [s.strip() for s in _readme_command().split("&&")]
    checks = [".venv/bin/ruff check", ".venv/bin/mypy", ".venv/bin/lint-imports"]
    assert all(c in steps for c in checks), steps
    assert steps[-1].startswith(".venv/bin/python -m pytest")
    assert max(steps.index(c) for c in checks) < len(steps) - 1
